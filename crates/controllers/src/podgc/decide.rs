//! Which pods the pod garbage collector deletes, after upstream's podgc: terminated pods
//! beyond the threshold (evicted first, then oldest first), pods bound to nodes that have been
//! gone for the whole quarantine, pods being deleted on a not-ready node tainted
//! `node.kubernetes.io/out-of-service`, and pods being deleted that were never scheduled. Pure.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Node, Pod};

/// Upstream's default `--terminated-pod-gc-threshold`.
pub const DEFAULT_TERMINATED_POD_THRESHOLD: usize = 12500;
/// How long a node must stay missing before its pods are deleted (upstream's quarantine): a
/// node may be re-registering, or the cache may not have seen it yet.
pub const QUARANTINE_SECONDS: i64 = 40;

/// Why a pod is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// One terminated pod too many.
    Terminated,
    /// Its node no longer exists: marked Failed (DisruptionTarget) and force-deleted.
    Orphaned,
    /// Being deleted but never scheduled, so no node agent will finish it: force-deleted.
    UnscheduledTerminating,
    /// Being deleted on a node an operator declared out of service: force-deleted.
    OutOfService,
}

/// The taint an operator puts on a node that is shut down for good, so its pods are released.
pub const OUT_OF_SERVICE_TAINT: &str = "node.kubernetes.io/out-of-service";

/// Whether a node is not ready and tainted out of service (upstream's condition for force
/// deleting its terminating pods).
pub fn out_of_service(node: &Node) -> bool {
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == OUT_OF_SERVICE_TAINT);
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    tainted && !ready
}

/// Whether a pod has finished (Succeeded or Failed).
pub fn terminated(pod: &Pod) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

fn evicted(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some("Evicted")
}

/// The terminated pods to delete so that at most `threshold` remain (0: keep all): evicted
/// pods first, then by creation time, oldest first, ties by name.
pub fn terminated_surplus<'a>(pods: &[&'a Pod], threshold: usize) -> Vec<&'a Pod> {
    if threshold == 0 {
        return Vec::new();
    }
    let mut done: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| terminated(p) && p.metadata.deletion_timestamp.is_none())
        .collect();
    let Some(surplus) = done.len().checked_sub(threshold).filter(|n| *n > 0) else {
        return Vec::new();
    };
    done.sort_by(|a, b| {
        evicted(b)
            .cmp(&evicted(a))
            .then_with(|| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    done.truncate(surplus);
    done
}

/// Node names pods are bound to that are not among `nodes`.
pub fn missing_nodes(pods: &[&Pod], nodes: &BTreeSet<String>) -> BTreeSet<String> {
    pods.iter()
        .filter_map(|p| node_name(p))
        .filter(|n| !nodes.contains(*n))
        .map(str::to_owned)
        .collect()
}

/// When each missing node was first seen missing; a node counts as gone once it has been
/// missing for [`QUARANTINE_SECONDS`].
#[derive(Debug, Default)]
pub struct Quarantine {
    since: BTreeMap<String, i64>,
}

impl Quarantine {
    /// Records the nodes missing at `now` (forgetting those that are back or no longer
    /// referenced) and returns those missing for the whole quarantine.
    pub fn update(&mut self, missing: &BTreeSet<String>, now: i64) -> BTreeSet<String> {
        self.since.retain(|n, _| missing.contains(n));
        for n in missing {
            self.since.entry(n.clone()).or_insert(now);
        }
        self.since
            .iter()
            .filter(|(_, since)| now - **since >= QUARANTINE_SECONDS)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// Everything to delete: surplus terminated pods, pods on nodes in `gone`, pods being deleted
/// on nodes in `out_of_service`, and unscheduled pods being deleted. A pod appears once, with
/// the first reason that applies.
pub fn plan<'a>(
    pods: &[&'a Pod],
    threshold: usize,
    gone: &BTreeSet<String>,
    out_of_service: &BTreeSet<String>,
) -> Vec<(&'a Pod, Why)> {
    let mut out: Vec<(&Pod, Why)> = terminated_surplus(pods, threshold)
        .into_iter()
        .map(|p| (p, Why::Terminated))
        .collect();
    let mut seen: BTreeSet<(Option<String>, Option<String>)> = out
        .iter()
        .map(|(p, _)| (p.metadata.namespace.clone(), p.metadata.name.clone()))
        .collect();
    for p in pods {
        let why = match node_name(p) {
            Some(n) if gone.contains(n) => Why::Orphaned,
            Some(n) if out_of_service.contains(n) && p.metadata.deletion_timestamp.is_some() => {
                Why::OutOfService
            }
            None if p.metadata.deletion_timestamp.is_some() => Why::UnscheduledTerminating,
            _ => continue,
        };
        if seen.insert((p.metadata.namespace.clone(), p.metadata.name.clone())) {
            out.push((p, why));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn pod(name: &str, phase: &str, created: i64, node: Option<&str>) -> Pod {
        let ts = k8s_openapi::jiff::Timestamp::from_second(created).expect("time");
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": []},
            "status": {"phase": phase},
        }))
        .expect("pod");
        p.metadata.creation_timestamp = Some(Time(ts));
        if let Some(n) = node {
            p.spec.as_mut().expect("spec").node_name = Some(n.into());
        }
        p
    }

    fn names(pods: &[&Pod]) -> Vec<String> {
        pods.iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect()
    }

    #[test]
    fn terminated_surplus_by_threshold() {
        let mut evicted = pod("evicted", "Failed", 500, None);
        evicted.status.as_mut().expect("status").reason = Some("Evicted".into());
        let all = [
            pod("new", "Succeeded", 300, None),
            pod("old", "Failed", 100, None),
            pod("mid-b", "Succeeded", 200, None),
            pod("mid-a", "Succeeded", 200, None),
            pod("running", "Running", 1, None),
            pod("pending", "Pending", 2, None),
            evicted,
        ];
        let refs: Vec<&Pod> = all.iter().collect();
        let cases: Vec<(usize, Vec<&str>)> = vec![
            (0, vec![]),
            (5, vec![]),
            (6, vec![]),
            (4, vec!["evicted"]),
            (3, vec!["evicted", "old"]),
            (1, vec!["evicted", "old", "mid-a", "mid-b"]),
        ];
        for (threshold, want) in cases {
            assert_eq!(
                names(&terminated_surplus(&refs, threshold)),
                want,
                "threshold {threshold}"
            );
        }
    }

    #[test]
    fn pods_being_deleted_do_not_count_as_surplus() {
        let mut going = pod("going", "Succeeded", 1, None);
        going.metadata.deletion_timestamp = going.metadata.creation_timestamp.clone();
        let all = [
            going,
            pod("a", "Succeeded", 2, None),
            pod("b", "Succeeded", 3, None),
        ];
        let refs: Vec<&Pod> = all.iter().collect();
        assert_eq!(names(&terminated_surplus(&refs, 1)), ["a"]);
    }

    #[test]
    fn nodes_are_gone_after_the_quarantine() {
        let mut q = Quarantine::default();
        let missing = |ns: &[&str]| ns.iter().map(|n| (*n).to_owned()).collect::<BTreeSet<_>>();
        assert!(q.update(&missing(&["a"]), 100).is_empty());
        assert!(q.update(&missing(&["a", "b"]), 139).is_empty());
        assert_eq!(q.update(&missing(&["a", "b"]), 140), missing(&["a"]));
        // "a" came back: its clock starts again when it goes missing again.
        assert!(q.update(&missing(&["b"]), 150).is_empty());
        assert!(q.update(&missing(&["a", "b"]), 170).is_empty());
        assert_eq!(q.update(&missing(&["a", "b"]), 179), missing(&["b"]));
        assert_eq!(q.update(&missing(&["a", "b"]), 210), missing(&["a", "b"]));
    }

    #[test]
    fn missing_nodes_are_the_unknown_bound_ones() {
        let all = [
            pod("on-live", "Running", 1, Some("live")),
            pod("on-dead", "Running", 1, Some("dead")),
            pod("unbound", "Pending", 1, None),
        ];
        let refs: Vec<&Pod> = all.iter().collect();
        let nodes = BTreeSet::from(["live".to_owned()]);
        assert_eq!(
            missing_nodes(&refs, &nodes),
            BTreeSet::from(["dead".to_owned()])
        );
    }

    #[test]
    fn plan_names_each_pod_once_with_its_reason() {
        let mut unscheduled_going = pod("unscheduled-going", "Pending", 5, None);
        unscheduled_going.metadata.deletion_timestamp =
            unscheduled_going.metadata.creation_timestamp.clone();
        let mut scheduled_going = pod("scheduled-going", "Running", 5, Some("live"));
        scheduled_going.metadata.deletion_timestamp =
            scheduled_going.metadata.creation_timestamp.clone();
        let all = [
            pod("done-on-dead", "Succeeded", 1, Some("dead")),
            pod("done", "Succeeded", 2, Some("live")),
            pod("running-on-dead", "Running", 3, Some("dead")),
            pod("running", "Running", 4, Some("live")),
            unscheduled_going,
            scheduled_going,
        ];
        let refs: Vec<&Pod> = all.iter().collect();
        let gone = BTreeSet::from(["dead".to_owned()]);
        let got: Vec<(String, Why)> = plan(&refs, 1, &gone, &BTreeSet::new())
            .into_iter()
            .map(|(p, w)| (p.metadata.name.clone().unwrap_or_default(), w))
            .collect();
        let want = vec![
            ("done-on-dead".to_owned(), Why::Terminated),
            ("running-on-dead".to_owned(), Why::Orphaned),
            ("unscheduled-going".to_owned(), Why::UnscheduledTerminating),
        ];
        assert_eq!(got, want);
        // Without a threshold the terminated pod on the dead node is an orphan.
        let got: Vec<Why> = plan(&refs, 0, &gone, &BTreeSet::new())
            .into_iter()
            .map(|(_, w)| w)
            .collect();
        assert_eq!(
            got,
            [Why::Orphaned, Why::Orphaned, Why::UnscheduledTerminating]
        );
    }

    #[test]
    fn terminating_pods_of_out_of_service_nodes_are_released() {
        let node = |taint: bool, ready: &str| -> Node {
            serde_json::from_value(json!({
                "metadata": {"name": "n"},
                "spec": {"taints": if taint {
                    json!([{"key": OUT_OF_SERVICE_TAINT, "effect": "NoExecute"}])
                } else { json!([]) }},
                "status": {"conditions": [{"type": "Ready", "status": ready}]},
            }))
            .expect("node")
        };
        assert!(out_of_service(&node(true, "False")));
        assert!(out_of_service(&node(true, "Unknown")));
        assert!(!out_of_service(&node(true, "True")));
        assert!(!out_of_service(&node(false, "False")));

        let mut going = pod("going", "Running", 1, Some("down"));
        going.metadata.deletion_timestamp = going.metadata.creation_timestamp.clone();
        let all = [going, pod("staying", "Running", 1, Some("down"))];
        let refs: Vec<&Pod> = all.iter().collect();
        let down = BTreeSet::from(["down".to_owned()]);
        let got: Vec<(String, Why)> = plan(&refs, 0, &BTreeSet::new(), &down)
            .into_iter()
            .map(|(p, w)| (p.metadata.name.clone().unwrap_or_default(), w))
            .collect();
        assert_eq!(got, [("going".to_owned(), Why::OutOfService)]);
    }
}
