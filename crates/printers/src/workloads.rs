//! Printers of the workload kinds: ReplicaSets, Deployments, StatefulSets, DaemonSets,
//! ControllerRevisions, Jobs, CronJobs and HorizontalPodAutoscalers.

use serde_json::{Value, json};

use crate::columns::{AGE, CONTAINERS, Col, IMAGES, NAME, SELECTOR};
use crate::duration::{human_duration, parse_rfc3339, since};
use crate::format::{
    age, arr, bool_ptr, format_label_selector, format_labels, i, name, opt_b, opt_i, opt_s,
    present, quantity, s, selector_text, template_cells,
};

pub(crate) const REPLICA_SET: &[Col] = &[
    NAME,
    Col::integer("Desired", "Number of replicas the set should run."),
    Col::integer("Current", "Number of replicas the set runs."),
    Col::integer("Ready", "Number of ready replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) fn replica_set(obj: &Value, now: i64) -> Vec<Value> {
    let [names, images] = template_cells(obj, "/spec/template");
    vec![
        name(obj),
        opt_i(obj, "/spec/replicas").unwrap_or(1).into(),
        i(obj, "/status/replicas").into(),
        i(obj, "/status/readyReplicas").into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

pub(crate) const DEPLOYMENT: &[Col] = &[
    NAME,
    Col::string("Ready", "Ready replicas out of desired replicas."),
    Col::string("Up-to-date", "Replicas updated to the current template."),
    Col::string("Available", "Replicas available to serve."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) fn deployment(obj: &Value, now: i64) -> Vec<Value> {
    let [names, images] = template_cells(obj, "/spec/template");
    let desired = opt_i(obj, "/spec/replicas").unwrap_or(1);
    vec![
        name(obj),
        format!("{}/{desired}", i(obj, "/status/readyReplicas")).into(),
        i(obj, "/status/updatedReplicas").into(),
        i(obj, "/status/availableReplicas").into(),
        age(obj, now),
        names,
        images,
        selector_text(obj.pointer("/spec/selector")).into(),
    ]
}

pub(crate) const STATEFUL_SET: &[Col] = &[
    NAME,
    Col::string("Ready", "Ready replicas out of desired replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(crate) fn stateful_set(obj: &Value, now: i64) -> Vec<Value> {
    let [names, images] = template_cells(obj, "/spec/template");
    let desired = opt_i(obj, "/spec/replicas").unwrap_or(1);
    vec![
        name(obj),
        format!("{}/{desired}", i(obj, "/status/readyReplicas")).into(),
        age(obj, now),
        names,
        images,
    ]
}

pub(crate) const DAEMON_SET: &[Col] = &[
    NAME,
    Col::integer("Desired", "Number of nodes that should run the daemon pod."),
    Col::integer("Current", "Number of nodes that run the daemon pod."),
    Col::integer("Ready", "Number of nodes whose daemon pod is ready."),
    Col::integer(
        "Up-to-date",
        "Number of nodes running the current template.",
    ),
    Col::integer(
        "Available",
        "Number of nodes whose daemon pod is available.",
    ),
    Col::string(
        "Node Selector",
        "Labels a node needs to run the daemon pod.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) fn daemon_set(obj: &Value, now: i64) -> Vec<Value> {
    let [names, images] = template_cells(obj, "/spec/template");
    vec![
        name(obj),
        i(obj, "/status/desiredNumberScheduled").into(),
        i(obj, "/status/currentNumberScheduled").into(),
        i(obj, "/status/numberReady").into(),
        i(obj, "/status/updatedNumberScheduled").into(),
        i(obj, "/status/numberAvailable").into(),
        format_labels(obj.pointer("/spec/template/spec/nodeSelector")).into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

pub(crate) const CONTROLLER_REVISION: &[Col] = &[
    NAME,
    Col::string("Controller", "The object that owns the revision."),
    Col::string("Revision", "The revision number."),
    AGE,
];

pub(crate) fn controller_revision(obj: &Value, now: i64) -> Vec<Value> {
    let controller = arr(obj, "/metadata/ownerReferences")
        .iter()
        .find(|r| opt_b(r, "/controller") == Some(true))
        .map_or_else(
            || "<none>".to_owned(),
            |r| {
                let api_version = s(r, "/apiVersion");
                let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
                let kind = s(r, "/kind");
                let group_kind = if group.is_empty() || kind.is_empty() {
                    kind.to_owned()
                } else {
                    format!("{kind}.{group}")
                };
                if group_kind.is_empty() {
                    s(r, "/name").to_owned()
                } else {
                    format!("{}/{}", group_kind.to_lowercase(), s(r, "/name"))
                }
            },
        );
    vec![
        name(obj),
        controller.into(),
        i(obj, "/revision").into(),
        age(obj, now),
    ]
}

pub(crate) const JOB: &[Col] = &[
    NAME,
    Col::string("Status", "The job's state."),
    Col::string(
        "Completions",
        "Succeeded pods out of the completions the job needs.",
    ),
    Col::string("Duration", "How long the job ran, or has been running."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// Whether the job has a condition of type `ty` — the first one of that type decides.
fn job_condition(job: &Value, ty: &str) -> bool {
    crate::format::condition_status(job, "/status/conditions", ty) == Some("True")
}

/// The Job STATUS cell.
pub(crate) fn job_status(job: &Value) -> &'static str {
    if job_condition(job, "Complete") {
        "Complete"
    } else if job_condition(job, "Failed") {
        "Failed"
    } else if present(job, "/metadata/deletionTimestamp") {
        "Terminating"
    } else if job_condition(job, "Suspended") {
        "Suspended"
    } else if job_condition(job, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    }
}

pub(crate) fn job(obj: &Value, now: i64) -> Vec<Value> {
    let succeeded = i(obj, "/status/succeeded");
    let completions = match opt_i(obj, "/spec/completions") {
        Some(c) => format!("{succeeded}/{c}"),
        None => match opt_i(obj, "/spec/parallelism").unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = opt_s(obj, "/status/startTime").and_then(parse_rfc3339);
    let end = opt_s(obj, "/status/completionTime").and_then(parse_rfc3339);
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(s), None) => human_duration(now - s),
        (Some(s), Some(e)) => human_duration(e - s),
    };
    let [names, images] = template_cells(obj, "/spec/template");
    vec![
        name(obj),
        job_status(obj).into(),
        completions.into(),
        duration.into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/selector")).into(),
    ]
}

pub(crate) const CRON_JOB: &[Col] = &[
    NAME,
    Col::string("Schedule", "The cron schedule."),
    Col::string("Timezone", "Time zone the schedule is read in."),
    Col::boolean("Suspend", "Whether new runs are suspended."),
    Col::integer("Active", "Number of running jobs."),
    Col::string("Last Schedule", "Time since a job was last scheduled."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(crate) fn cron_job(obj: &Value, now: i64) -> Vec<Value> {
    let last = match opt_s(obj, "/status/lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".into(),
    };
    let [names, images] = template_cells(obj, "/spec/jobTemplate/spec/template");
    vec![
        name(obj),
        s(obj, "/spec/schedule").into(),
        opt_s(obj, "/spec/timeZone").unwrap_or("<none>").into(),
        bool_ptr(opt_b(obj, "/spec/suspend")).into(),
        (arr(obj, "/status/active").len() as i64).into(),
        last.into(),
        age(obj, now),
        names,
        images,
        format_label_selector(obj.pointer("/spec/jobTemplate/spec/selector")).into(),
    ]
}

pub(crate) const HPA: &[Col] = &[
    NAME,
    Col::string("Reference", "The object the autoscaler scales."),
    Col::string("Targets", "Current metric values against their targets."),
    Col::string("MinPods", "Lowest replica count the autoscaler sets."),
    Col::string("MaxPods", "Highest replica count the autoscaler sets."),
    Col::string("Replicas", "Current replica count."),
    AGE,
];

/// A `*Quantity` as Go prints it: `<nil>` when unset.
fn qty_ptr(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "<nil>".into(),
        some => quantity(some),
    }
}

/// The metric specs and current statuses, in `autoscaling/v2` form. `autoscaling/v1` objects
/// are converted, and an empty spec gets the CPU target upstream's defaulting gives it.
fn hpa_metrics(obj: &Value) -> (Vec<Value>, Vec<Value>) {
    let cpu = |target: i64| {
        json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target}}})
    };
    if s(obj, "/apiVersion") == "autoscaling/v1"
        || present(obj, "/spec/targetCPUUtilizationPercentage")
    {
        let target = opt_i(obj, "/spec/targetCPUUtilizationPercentage").unwrap_or(80);
        let statuses = match opt_i(obj, "/status/currentCPUUtilizationPercentage") {
            Some(c) => vec![json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": c}}})],
            None => Vec::new(),
        };
        return (vec![cpu(target)], statuses);
    }
    let specs = match arr(obj, "/spec/metrics") {
        [] => vec![cpu(80)],
        specs => specs.to_vec(),
    };
    (specs, arr(obj, "/status/currentMetrics").to_vec())
}

/// One metric of the TARGETS cell.
fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    // The status entry of the same source type, when the status has one at this index.
    let current = |source: &str| {
        status
            .and_then(|st| st.get(source))
            .filter(|v| !v.is_null())
    };
    match s(spec, "/type") {
        source @ ("External" | "Object") => {
            let key = if source == "External" {
                "external"
            } else {
                "object"
            };
            let target = spec.pointer(&format!("/{key}/target"));
            let cur = current(key);
            match target
                .and_then(|t| t.get("averageValue"))
                .filter(|v| !v.is_null())
            {
                Some(avg) => {
                    let now = cur
                        .and_then(|c| c.pointer("/current/averageValue"))
                        .filter(|v| !v.is_null())
                        .map_or_else(|| "<unknown>".to_owned(), |v| quantity(Some(v)));
                    format!("{now}/{} (avg)", quantity(Some(avg)))
                }
                None => {
                    let now = cur.map_or_else(
                        || "<unknown>".to_owned(),
                        |c| qty_ptr(c.pointer("/current/value")),
                    );
                    format!("{now}/{}", qty_ptr(target.and_then(|t| t.get("value"))))
                }
            }
        }
        "Pods" => {
            let now = current("pods").map_or_else(
                || "<unknown>".to_owned(),
                |c| qty_ptr(c.pointer("/current/averageValue")),
            );
            format!(
                "{now}/{}",
                qty_ptr(spec.pointer("/pods/target/averageValue"))
            )
        }
        source @ ("Resource" | "ContainerResource") => {
            let key = if source == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let resource = s(spec, &format!("/{key}/name"));
            let target = spec.pointer(&format!("/{key}/target"));
            let cur = current(key);
            match target
                .and_then(|t| t.get("averageValue"))
                .filter(|v| !v.is_null())
            {
                Some(avg) => {
                    let now = cur.map_or_else(
                        || "<unknown>".to_owned(),
                        |c| qty_ptr(c.pointer("/current/averageValue")),
                    );
                    format!("{resource}: {now}/{}", quantity(Some(avg)))
                }
                None => {
                    let now = cur
                        .and_then(|c| opt_i(c, "/current/averageUtilization"))
                        .map_or_else(|| "<unknown>".to_owned(), |u| format!("{u}%"));
                    let goal = target
                        .and_then(|t| opt_i(t, "/averageUtilization"))
                        .map_or_else(|| "<auto>".to_owned(), |u| format!("{u}%"));
                    format!("{resource}: {now}/{goal}")
                }
            }
        }
        _ => "<unknown type>".into(),
    }
}

/// The TARGETS cell: the first two metrics, then `+ N more...`.
pub(crate) fn hpa_targets(obj: &Value) -> String {
    const MAX: usize = 2;
    let (specs, statuses) = hpa_metrics(obj);
    if specs.is_empty() {
        return "<none>".into();
    }
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(idx, spec)| hpa_metric(spec, statuses.get(idx)))
        .collect();
    if list.len() > MAX {
        format!("{} + {} more...", list[..MAX].join(", "), list.len() - MAX)
    } else {
        list.join(", ")
    }
}

pub(crate) fn hpa(obj: &Value, now: i64) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        s(obj, "/spec/scaleTargetRef/kind"),
        s(obj, "/spec/scaleTargetRef/name")
    );
    let min =
        opt_i(obj, "/spec/minReplicas").map_or_else(|| "<unset>".to_owned(), |m| m.to_string());
    vec![
        name(obj),
        reference.into(),
        hpa_targets(obj).into(),
        min.into(),
        i(obj, "/spec/maxReplicas").into(),
        i(obj, "/status/currentReplicas").into(),
        age(obj, now),
    ]
}
