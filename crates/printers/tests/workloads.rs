//! Workload printers: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision, Job
//! (status and duration), CronJob and the HorizontalPodAutoscaler TARGETS column.

mod common;

use common::{ago, cells, headers};
use serde_json::{Value, json};

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
        {"name": "main", "image": "nginx:1.27"}, {"name": "sidecar", "image": "busybox:1.36"}]}})
}

fn names(h: Vec<(String, i32)>) -> Vec<String> {
    h.into_iter()
        .map(|(n, p)| if p > 0 { format!("{n}*") } else { n })
        .collect()
}

#[test]
fn workload_headers() {
    let cases: [(&str, &str, &[&str]); 8] = [
        (
            "apps",
            "Deployment",
            &[
                "Name",
                "Ready",
                "Up-to-date",
                "Available",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "apps",
            "ReplicaSet",
            &[
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "apps",
            "StatefulSet",
            &["Name", "Ready", "Age", "Containers*", "Images*"],
        ),
        (
            "apps",
            "DaemonSet",
            &[
                "Name",
                "Desired",
                "Current",
                "Ready",
                "Up-to-date",
                "Available",
                "Node Selector",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "apps",
            "ControllerRevision",
            &["Name", "Controller", "Revision", "Age"],
        ),
        (
            "batch",
            "Job",
            &[
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "batch",
            "CronJob",
            &[
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age",
                "Containers*",
                "Images*",
                "Selector*",
            ],
        ),
        (
            "autoscaling",
            "HorizontalPodAutoscaler",
            &[
                "Name",
                "Reference",
                "Targets",
                "MinPods",
                "MaxPods",
                "Replicas",
                "Age",
            ],
        ),
    ];
    for (group, kind, want) in cases {
        assert_eq!(names(headers(group, kind)), want, "{kind}");
    }
}

#[test]
fn deployment_cells() {
    let d = json!({
        "metadata": {"name": "web", "creationTimestamp": ago(3 * 3600 + 300)},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]},
            "template": template()},
        "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
    });
    assert_eq!(
        cells("apps", "Deployment", &d),
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("3h5m"),
            json!("main,sidecar"),
            json!("nginx:1.27,busybox:1.36"),
            json!("app=web,tier in (back,front)"),
        ]
    );
    // A fresh deployment: no status yet, replicas defaulted.
    let fresh = json!({"metadata": {"name": "new"}, "spec": {"template": template()}});
    let c = cells("apps", "Deployment", &fresh);
    assert_eq!(c[1..4], [json!("0/1"), json!(0), json!(0)]);
    assert_eq!(c[4], json!("<unknown>"));
    assert_eq!(
        c[7],
        json!(""),
        "a missing selector prints empty, unlike other kinds"
    );
}

#[test]
fn replica_stateful_and_daemon_sets() {
    let rs = json!({"metadata": {"name": "rs"}, "spec": {"replicas": 2, "template": template(),
        "selector": {"matchLabels": {"app": "web"}}}, "status": {"replicas": 2, "readyReplicas": 1}});
    let c = cells("apps", "ReplicaSet", &rs);
    assert_eq!(c[1..4], [json!(2), json!(2), json!(1)]);
    assert_eq!(c[7], json!("app=web"));
    let no_selector = json!({"metadata": {"name": "rs"}, "spec": {"template": template()}});
    assert_eq!(
        cells("apps", "ReplicaSet", &no_selector)[7],
        json!("<none>")
    );

    let sts = json!({"metadata": {"name": "db"}, "spec": {"replicas": 3, "template": template()},
        "status": {"readyReplicas": 3}});
    assert_eq!(cells("apps", "StatefulSet", &sts)[1], json!("3/3"));

    let ds = json!({"metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"},
                                       "containers": [{"name": "a", "image": "agent:1"}]}}},
        "status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberReady": 3,
                   "updatedNumberScheduled": 4, "numberAvailable": 3}});
    let c = cells("apps", "DaemonSet", &ds);
    assert_eq!(
        c[1..7],
        [
            json!(4),
            json!(4),
            json!(3),
            json!(4),
            json!(3),
            json!("kubernetes.io/os=linux")
        ]
    );
    assert_eq!(c[8..], [json!("a"), json!("agent:1"), json!("app=agent")]);
}

#[test]
fn controller_revision_names_its_owner() {
    let rev = json!({"metadata": {"name": "web-7d9", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": false},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db", "controller": true}]},
        "revision": 4});
    let c = cells("apps", "ControllerRevision", &rev);
    assert_eq!(c[1..3], [json!("statefulset.apps/db"), json!(4)]);
    let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
    assert_eq!(
        cells("apps", "ControllerRevision", &orphan)[1],
        json!("<none>")
    );
}

fn job(conditions: Value, status: Value, deleting: bool) -> Value {
    let mut status = status;
    status["conditions"] = conditions;
    let mut j = json!({"metadata": {"name": "j", "creationTimestamp": ago(7200)},
        "spec": {"completions": 1, "parallelism": 1, "template": template(),
                 "selector": {"matchLabels": {"batch.kubernetes.io/job-name": "j"}}},
        "status": status});
    if deleting {
        j["metadata"]["deletionTimestamp"] = json!(ago(1));
    }
    j
}

#[test]
fn job_status_and_duration() {
    let t = |ty: &str| json!([{"type": ty, "status": "True"}]);
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "complete after 95 seconds",
            job(
                t("Complete"),
                json!({"succeeded": 1, "startTime": ago(3600), "completionTime": ago(3505)}),
                false,
            ),
            "Complete",
            "95s",
        ),
        (
            "running for 4 minutes",
            job(
                json!([]),
                json!({"active": 1, "startTime": ago(240)}),
                false,
            ),
            "Running",
            "4m",
        ),
        (
            "not started",
            job(json!([]), json!({}), false),
            "Running",
            "",
        ),
        (
            "failed",
            job(
                t("Failed"),
                json!({"failed": 7, "startTime": ago(600), "completionTime": ago(0)}),
                false,
            ),
            "Failed",
            "10m",
        ),
        (
            "a false Complete condition does not count",
            job(
                json!([{"type": "Complete", "status": "False"}]),
                json!({}),
                false,
            ),
            "Running",
            "",
        ),
        (
            "terminating",
            job(json!([]), json!({}), true),
            "Terminating",
            "",
        ),
        (
            "complete wins over deletion",
            job(t("Complete"), json!({}), true),
            "Complete",
            "",
        ),
        (
            "suspended",
            job(t("Suspended"), json!({}), false),
            "Suspended",
            "",
        ),
        (
            "failure target",
            job(t("FailureTarget"), json!({}), false),
            "FailureTarget",
            "",
        ),
    ];
    for (what, j, status, duration) in cases {
        let c = cells("batch", "Job", &j);
        assert_eq!(
            (c[1].clone(), c[3].clone()),
            (json!(status), json!(duration)),
            "{what}"
        );
        assert_eq!(c[7], json!("batch.kubernetes.io/job-name=j"), "{what}");
    }
}

#[test]
fn job_completions() {
    let with = |spec: Value| {
        let mut j = json!({"metadata": {"name": "j"}, "spec": spec, "status": {"succeeded": 2}});
        j["spec"]["template"] = template();
        cells("batch", "Job", &j)[2].clone()
    };
    assert_eq!(with(json!({"completions": 5})), json!("2/5"));
    assert_eq!(with(json!({"parallelism": 3})), json!("2/1 of 3"));
    assert_eq!(with(json!({"parallelism": 1})), json!("2/1"));
    assert_eq!(with(json!({})), json!("2/1"));
}

#[test]
fn cron_job_cells() {
    let cj = json!({"metadata": {"name": "nightly", "creationTimestamp": ago(86_400 * 3)},
        "spec": {"schedule": "*/5 * * * *", "suspend": false,
                 "jobTemplate": {"spec": {"template": template()}}},
        "status": {"active": [{"name": "nightly-1"}], "lastScheduleTime": ago(300)}});
    assert_eq!(
        cells("batch", "CronJob", &cj),
        [
            json!("nightly"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("5m"),
            json!("3d"),
            json!("main,sidecar"),
            json!("nginx:1.27,busybox:1.36"),
            json!("<none>"),
        ]
    );
    let zoned = json!({"metadata": {"name": "z"}, "spec": {"schedule": "@daily",
        "timeZone": "Europe/Paris", "jobTemplate": {"spec": {"template": template()}}}});
    let c = cells("batch", "CronJob", &zoned);
    assert_eq!(
        c[2..6],
        [
            json!("Europe/Paris"),
            json!("<unset>"),
            json!(0),
            json!("<none>")
        ]
    );
}

fn hpa_targets(spec_metrics: Value, current: Value) -> Value {
    let h = json!({"apiVersion": "autoscaling/v2", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1,
                 "maxReplicas": 10, "metrics": spec_metrics},
        "status": {"currentReplicas": 2, "currentMetrics": current}});
    cells("autoscaling", "HorizontalPodAutoscaler", &h)[2].clone()
}

#[test]
fn hpa_targets_table() {
    let cpu =
        |target: Value| json!({"type": "Resource", "resource": {"name": "cpu", "target": target}});
    let cpu_now = |u: i64| json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": u}}});
    let cases: Vec<(&str, Value, Value, &str)> = vec![
        (
            "utilization with a current value",
            json!([cpu(
                json!({"type": "Utilization", "averageUtilization": 50})
            )]),
            json!([cpu_now(20)]),
            "cpu: 20%/50%",
        ),
        (
            "utilization before metrics arrive",
            json!([cpu(
                json!({"type": "Utilization", "averageUtilization": 50})
            )]),
            json!([]),
            "cpu: <unknown>/50%",
        ),
        (
            "average value",
            json!([{"type": "Resource", "resource": {"name": "memory",
                "target": {"type": "AverageValue", "averageValue": "100Mi"}}}]),
            json!([{"type": "Resource", "resource": {"name": "memory",
                "current": {"averageValue": "80Mi"}}}]),
            "memory: 80Mi/100Mi",
        ),
        (
            "pods metric",
            json!([{"type": "Pods", "pods": {"metric": {"name": "qps"},
                "target": {"type": "AverageValue", "averageValue": "1k"}}}]),
            json!([{"type": "Pods", "pods": {"current": {"averageValue": "500"}}}]),
            "500/1k",
        ),
        (
            "external average value",
            json!([{"type": "External", "external": {"metric": {"name": "queue"},
                "target": {"type": "AverageValue", "averageValue": "30"}}}]),
            json!([]),
            "<unknown>/30 (avg)",
        ),
        (
            "object value",
            json!([{"type": "Object", "object": {"metric": {"name": "rps"},
                "target": {"type": "Value", "value": "10"}}}]),
            json!([{"type": "Object", "object": {"current": {"value": "7"}}}]),
            "7/10",
        ),
        (
            "container resource without a target utilization",
            json!([{"type": "ContainerResource", "containerResource": {"name": "cpu",
                "container": "app", "target": {"type": "Utilization"}}}]),
            json!([]),
            "cpu: <unknown>/<auto>",
        ),
        (
            "three metrics show two and a count",
            json!([
                cpu(json!({"type": "Utilization", "averageUtilization": 50})),
                cpu(json!({"type": "Utilization", "averageUtilization": 60})),
                cpu(json!({"type": "Utilization", "averageUtilization": 70})),
            ]),
            json!([cpu_now(1), cpu_now(2), cpu_now(3)]),
            "cpu: 1%/50%, cpu: 2%/60% + 1 more...",
        ),
        (
            "no metrics get upstream's default CPU target",
            json!([]),
            json!([]),
            "cpu: <unknown>/80%",
        ),
        (
            "unknown metric type",
            json!([{"type": "Weird"}]),
            json!([]),
            "<unknown type>",
        ),
    ];
    for (what, spec, status, want) in cases {
        assert_eq!(hpa_targets(spec, status), json!(want), "{what}");
    }
}

#[test]
fn hpa_v1_and_other_cells() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "metadata": {"name": "h"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                 "targetCPUUtilizationPercentage": 60},
        "status": {"currentReplicas": 3, "currentCPUUtilizationPercentage": 30}});
    assert_eq!(
        cells("autoscaling", "HorizontalPodAutoscaler", &v1)[1..6],
        [
            json!("Deployment/web"),
            json!("cpu: 30%/60%"),
            json!("<unset>"),
            json!(5),
            json!(3)
        ]
    );
}
