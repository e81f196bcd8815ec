//! The Pod printer: READY, STATUS and RESTARTS for the states upstream distinguishes, and the
//! wide columns.

mod common;

use common::{ago, cells, headers};
use rudder_printers::Printer;
use serde_json::{Value, json};

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "creationTimestamp": ago(600)},
        "spec": spec,
        "status": status,
    })
}

fn containers(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"name": format!("c{i}"), "image": "busybox"}))
            .collect(),
    )
}

fn running_ready(name: &str) -> Value {
    json!({"name": name, "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ago(500)}}})
}

/// READY, STATUS and RESTARTS of a pod.
fn summary(p: &Value) -> (String, String, String) {
    let c = cells("", "Pod", p);
    let text = |v: &Value| v.as_str().unwrap_or("?").to_owned();
    (text(&c[1]), text(&c[2]), text(&c[3]))
}

#[test]
fn pod_columns_match_upstream() {
    let want = [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
        ("Nominated Node", 1),
        ("Readiness Gates", 1),
    ];
    let got = headers("", "Pod");
    let got: Vec<(&str, i32)> = got.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    assert_eq!(got, want);
    let name = &Printer::for_kind("", "Pod").columns()[0];
    assert_eq!(
        (name.format.as_str(), name.type_name.as_str()),
        ("name", "string")
    );
}

#[test]
fn pod_status_table() {
    let init2 = json!({"containers": containers(1), "initContainers": [
        {"name": "i0", "image": "busybox"}, {"name": "i1", "image": "busybox"}]});
    let cases: Vec<(&str, Value, (&str, &str, &str))> = vec![
        (
            "pending, nothing reported yet",
            pod(
                json!({"containers": containers(2)}),
                json!({"phase": "Pending"}),
            ),
            ("0/2", "Pending", "0"),
        ),
        (
            "running and ready",
            pod(
                json!({"containers": containers(1)}),
                json!({"phase": "Running", "containerStatuses": [running_ready("c0")]}),
            ),
            ("1/1", "Running", "0"),
        ),
        (
            "crash loop with the last restart 5 minutes ago",
            pod(
                json!({"containers": containers(1)}),
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "c0", "ready": false, "restartCount": 4,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}},
                }]}),
            ),
            ("0/1", "CrashLoopBackOff", "4 (5m ago)"),
        ),
        (
            "restarts without a termination time have no ago",
            pod(
                json!({"containers": containers(1)}),
                json!({"phase": "Running", "containerStatuses": [{
                    "name": "c0", "ready": true, "restartCount": 2,
                    "state": {"running": {}},
                }]}),
            ),
            ("1/1", "Running", "2"),
        ),
        (
            "second of two init containers running",
            pod(
                init2.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    {"name": "i1", "state": {"running": {}}},
                ]}),
            ),
            ("0/1", "Init:1/2", "0"),
        ),
        (
            "init container waiting to pull",
            pod(
                init2.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i0", "state": {"waiting": {"reason": "ErrImagePull"}}},
                    {"name": "i1", "state": {"waiting": {"reason": "PodInitializing"}}},
                ]}),
            ),
            ("0/1", "Init:ErrImagePull", "0"),
        ),
        (
            "init container PodInitializing counts as index",
            pod(
                init2.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i0", "state": {"waiting": {"reason": "PodInitializing"}}},
                ]}),
            ),
            ("0/1", "Init:0/2", "0"),
        ),
        (
            "init container failed with an exit code",
            pod(
                init2.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i0", "restartCount": 3, "state": {"terminated": {"exitCode": 1}},
                     "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(30)}}},
                ]}),
            ),
            ("0/1", "Init:ExitCode:1", "3 (30s ago)"),
        ),
        (
            "init container killed by a signal",
            pod(
                init2.clone(),
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i0", "state": {"terminated": {"exitCode": 137, "signal": 9}}},
                ]}),
            ),
            ("0/1", "Init:Signal:9", "0"),
        ),
        (
            "init container failed with a reason",
            pod(
                init2,
                json!({"phase": "Pending", "initContainerStatuses": [
                    {"name": "i0", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}},
                ]}),
            ),
            ("0/1", "Init:Error", "0"),
        ),
        (
            "container exited without a reason",
            pod(
                json!({"containers": containers(1)}),
                json!({"phase": "Running", "containerStatuses": [
                    {"name": "c0", "state": {"terminated": {"exitCode": 2}}}]}),
            ),
            ("0/1", "ExitCode:2", "0"),
        ),
        (
            "one container completed, one still running and the pod ready",
            pod(
                json!({"containers": containers(2)}),
                json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [
                    {"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    running_ready("c1"),
                ]}),
            ),
            ("1/2", "Running", "0"),
        ),
        (
            "one container completed, one still running, pod not ready",
            pod(
                json!({"containers": containers(2)}),
                json!({"phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [
                    {"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
                    running_ready("c1"),
                ]}),
            ),
            ("1/2", "NotReady", "0"),
        ),
        (
            "evicted",
            pod(
                json!({"containers": containers(1)}),
                json!({"phase": "Failed", "reason": "Evicted"}),
            ),
            ("0/1", "Evicted", "0"),
        ),
        (
            "scheduling gated",
            pod(
                json!({"containers": containers(1)}),
                json!({"phase": "Pending", "conditions": [
                    {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            ),
            ("0/1", "SchedulingGated", "0"),
        ),
        (
            "sidecar started and ready, restarts counted after initialization",
            pod(
                json!({"containers": containers(1), "initContainers": [
                    {"name": "side", "image": "busybox", "restartPolicy": "Always"}]}),
                json!({"phase": "Running",
                    "conditions": [{"type": "Initialized", "status": "True"}],
                    "initContainerStatuses": [{
                        "name": "side", "started": true, "ready": true, "restartCount": 2,
                        "state": {"running": {}},
                        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(60)}},
                    }],
                    "containerStatuses": [running_ready("c0")]}),
            ),
            ("2/2", "Running", "2 (60s ago)"),
        ),
    ];
    for (what, p, (ready, status, restarts)) in cases {
        assert_eq!(
            summary(&p),
            (ready.to_owned(), status.to_owned(), restarts.to_owned()),
            "{what}"
        );
    }
}

#[test]
fn deletion_changes_the_status() {
    let mut running = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Running", "containerStatuses": [running_ready("c0")]}),
    );
    running["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(summary(&running).1, "Terminating");

    let mut done = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Succeeded"}),
    );
    done["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(summary(&done).1, "Succeeded");

    let mut lost = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Running", "reason": "NodeLost"}),
    );
    lost["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(summary(&lost).1, "Unknown");
}

#[test]
fn wide_columns_and_age() {
    let p = pod(
        json!({"containers": containers(1), "nodeName": "n1",
               "readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]}),
        json!({"phase": "Running", "podIP": "10.0.0.9",
               "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
               "nominatedNodeName": "n2",
               "conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}]}),
    );
    let c = cells("", "Pod", &p);
    assert_eq!(
        c[4..],
        [
            json!("10m"),
            json!("10.0.0.7"),
            json!("n1"),
            json!("n2"),
            json!("1/2")
        ]
    );
    let bare = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Pending"}),
    );
    assert_eq!(
        cells("", "Pod", &bare)[5..],
        [
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );
    let legacy = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Running", "podIP": "10.0.0.9"}),
    );
    assert_eq!(cells("", "Pod", &legacy)[5], json!("10.0.0.9"));
}

#[test]
fn finished_pods_carry_a_completed_condition() {
    let printer = Printer::for_kind("", "Pod");
    let done = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Succeeded"}),
    );
    let row = printer.row(&done, common::now());
    assert_eq!(row.conditions.len(), 1);
    assert_eq!(row.conditions[0]["type"], "Completed");
    assert_eq!(row.conditions[0]["reason"], "Succeeded");
    let failed = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Failed"}),
    );
    assert_eq!(
        printer.row(&failed, common::now()).conditions[0]["reason"],
        "Failed"
    );
    let running = pod(
        json!({"containers": containers(1)}),
        json!({"phase": "Running"}),
    );
    assert!(printer.row(&running, common::now()).conditions.is_empty());
}

#[test]
fn malformed_pods_do_not_panic() {
    for p in [
        json!({}),
        json!({"metadata": "x", "spec": 3, "status": []}),
        json!({"status": {"containerStatuses": [null, 1, {"state": null}]}}),
        json!({"status": {"initContainerStatuses": [{"state": {"terminated": "x"}}]}}),
    ] {
        let c = cells("", "Pod", &p);
        assert_eq!(c[0], json!(""));
    }
}
