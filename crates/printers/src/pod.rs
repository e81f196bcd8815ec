//! The Pod printer: READY, the STATUS reason kubectl users know (`Init:1/2`,
//! `CrashLoopBackOff`, `Terminating`, …), RESTARTS with the time of the last restart, and the
//! wide columns.

use serde_json::{Value, json};

use crate::columns::{AGE, Col, NAME};
use crate::duration::{human_duration, parse_rfc3339};
use crate::format::{arr, i, name, opt_b, s};

pub(crate) const COLUMNS: &[Col] = &[
    NAME,
    Col::string("Ready", "Ready containers out of all the pod's containers."),
    Col::string(
        "Status",
        "The pod's state, summed up from its phase and containers.",
    ),
    Col::string(
        "Restarts",
        "How often the pod's containers restarted, and how long ago the last restart was.",
    ),
    AGE,
    Col::string("IP", "The pod's IP address.").wide(),
    Col::string("Node", "The node the pod is bound to.").wide(),
    Col::string(
        "Nominated Node",
        "The node the scheduler preempted pods on for this pod.",
    )
    .wide(),
    Col::string(
        "Readiness Gates",
        "Readiness gates that hold out of all the pod's readiness gates.",
    )
    .wide(),
];

/// Whether a container of `spec.initContainers` is a sidecar (`restartPolicy: Always`).
fn restartable(spec_init: &[Value], name: &str) -> bool {
    spec_init
        .iter()
        .any(|c| s(c, "/name") == name && s(c, "/restartPolicy") == "Always")
}

/// Whether the pod has a condition of type `ty` with status `True`.
fn condition_true(pod: &Value, ty: &str) -> bool {
    arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == ty && s(c, "/status") == "True")
}

/// `finishedAt` of a container status' last termination, in Unix seconds.
fn last_termination(status: &Value) -> Option<i64> {
    status
        .pointer("/lastState/terminated/finishedAt")
        .and_then(Value::as_str)
        .and_then(parse_rfc3339)
}

/// The later of two optional instants.
fn later(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// A state object (`state.waiting`, `state.terminated`) when set.
fn state<'a>(status: &'a Value, which: &str) -> Option<&'a Value> {
    status
        .pointer(&format!("/state/{which}"))
        .filter(|v| v.is_object())
}

/// `Signal:9` or `ExitCode:1` for a termination without a reason.
fn exit_text(terminated: &Value) -> String {
    let signal = i(terminated, "/signal");
    if signal != 0 {
        format!("Signal:{signal}")
    } else {
        format!("ExitCode:{}", i(terminated, "/exitCode"))
    }
}

/// The row conditions upstream attaches to finished pods.
fn row_conditions(phase: &str) -> Vec<Value> {
    match phase {
        "Succeeded" => vec![json!({
            "type": "Completed", "status": "True", "reason": "Succeeded",
            "message": "The pod ran to completion.",
        })],
        "Failed" => vec![json!({
            "type": "Completed", "status": "True", "reason": "Failed",
            "message": "The pod has failed.",
        })],
        _ => Vec::new(),
    }
}

/// Counters gathered while walking container statuses.
#[derive(Default)]
struct Tally {
    restarts: i64,
    ready: i64,
    last_restart: Option<i64>,
}

/// Cells and row conditions of one pod.
pub(crate) fn row(pod: &Value, now: i64) -> (Vec<Value>, Vec<Value>) {
    let spec_init = arr(pod, "/spec/initContainers");
    let mut total = arr(pod, "/spec/containers").len() as i64;
    total += spec_init
        .iter()
        .filter(|c| s(c, "/restartPolicy") == "Always")
        .count() as i64;

    let phase = s(pod, "/status/phase");
    let status_reason = s(pod, "/status/reason");
    let mut reason = if status_reason.is_empty() {
        phase.to_owned()
    } else {
        status_reason.to_owned()
    };
    if arr(pod, "/status/conditions")
        .iter()
        .any(|c| s(c, "/type") == "PodScheduled" && s(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }

    // All init containers count towards restarts while the pod initializes; afterwards only
    // sidecars (restartable init containers) still do.
    let mut all = Tally::default();
    let mut sidecars = Tally::default();
    let mut initializing = false;
    for (idx, cs) in arr(pod, "/status/initContainerStatuses").iter().enumerate() {
        let cname = s(cs, "/name");
        let rc = i(cs, "/restartCount");
        all.restarts += rc;
        all.last_restart = later(all.last_restart, last_termination(cs));
        let sidecar = restartable(spec_init, cname);
        if sidecar {
            sidecars.restarts += rc;
            sidecars.last_restart = later(sidecars.last_restart, last_termination(cs));
        }
        let terminated = state(cs, "terminated");
        let waiting = state(cs, "waiting");
        if terminated.is_some_and(|t| i(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && opt_b(cs, "/started") == Some(true) {
            if opt_b(cs, "/ready") == Some(true) {
                sidecars.ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            let r = s(t, "/reason");
            if r.is_empty() {
                format!("Init:{}", exit_text(t))
            } else {
                format!("Init:{r}")
            }
        } else if let Some(w) = waiting.filter(|w| {
            let r = s(w, "/reason");
            !r.is_empty() && r != "PodInitializing"
        }) {
            format!("Init:{}", s(w, "/reason"))
        } else {
            format!("Init:{idx}/{}", spec_init.len())
        };
        initializing = true;
        break;
    }

    let mut tally = Tally {
        ready: sidecars.ready,
        ..all
    };
    if !initializing || condition_true(pod, "Initialized") {
        tally.restarts = sidecars.restarts;
        tally.last_restart = sidecars.last_restart;
        let mut has_running = false;
        // Upstream walks the statuses backwards, so the first container's state wins.
        for cs in arr(pod, "/status/containerStatuses").iter().rev() {
            tally.restarts += i(cs, "/restartCount");
            tally.last_restart = later(tally.last_restart, last_termination(cs));
            let waiting_reason = state(cs, "waiting").map(|w| s(w, "/reason"));
            let terminated = state(cs, "terminated");
            if let Some(r) = waiting_reason.filter(|r| !r.is_empty()) {
                reason = r.to_owned();
            } else if let Some(t) = terminated {
                let r = s(t, "/reason");
                reason = if r.is_empty() {
                    exit_text(t)
                } else {
                    r.to_owned()
                };
            } else if opt_b(cs, "/ready") == Some(true) && state(cs, "running").is_some() {
                has_running = true;
                tally.ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    let deleting = pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if deleting && status_reason == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".into();
    }

    let restarts = match tally.last_restart {
        Some(at) if tally.restarts != 0 => {
            format!("{} ({} ago)", tally.restarts, human_duration(now - at))
        }
        _ => tally.restarts.to_string(),
    };

    let mut cells = vec![
        name(pod),
        Value::from(format!("{}/{total}", tally.ready)),
        Value::from(reason),
        Value::from(restarts),
        crate::format::age(pod, now),
    ];
    cells.extend(wide(pod).map(Value::from));
    (cells, row_conditions(phase))
}

/// IP, NODE, NOMINATED NODE and READINESS GATES.
fn wide(pod: &Value) -> [String; 4] {
    let first_ip = arr(pod, "/status/podIPs")
        .first()
        .map(|p| s(p, "/ip"))
        .unwrap_or_else(|| s(pod, "/status/podIP"));
    let or_none = crate::format::or_none;
    let gates = arr(pod, "/spec/readinessGates");
    let gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let conditions = arr(pod, "/status/conditions");
        let holding = gates
            .iter()
            .filter(|g| {
                let ty = s(g, "/conditionType");
                conditions
                    .iter()
                    .find(|c| s(c, "/type") == ty)
                    .is_some_and(|c| s(c, "/status") == "True")
            })
            .count();
        format!("{holding}/{}", gates.len())
    };
    [
        or_none(first_ip),
        or_none(s(pod, "/spec/nodeName")),
        or_none(s(pod, "/status/nominatedNodeName")),
        gates,
    ]
}
