//! The DaemonSet decisions, after upstream's `daemon` controller: which nodes should run the
//! daemon pod (nodeSelector, required node affinity, taints against the template's
//! tolerations plus the ones upstream adds to every daemon pod), and per node what to create or
//! delete, including RollingUpdate within maxUnavailable or, with maxSurge, by starting the new
//! pod next to the old one and deleting the old one once the new one is available. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, Pod, PodSpec, Taint, Toleration};

use crate::pods;

/// Label: the template revision a daemon pod was made from.
pub use crate::revisions::REVISION_HASH;

/// Tolerations upstream adds to every daemon pod, so daemons run on nodes that are not ready,
/// unreachable, under pressure or cordoned.
pub fn default_tolerations(host_network: bool) -> Vec<Toleration> {
    let t = |key: &str, effect: &str| Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    };
    let mut v = vec![
        t("node.kubernetes.io/not-ready", "NoExecute"),
        t("node.kubernetes.io/unreachable", "NoExecute"),
        t("node.kubernetes.io/disk-pressure", "NoSchedule"),
        t("node.kubernetes.io/memory-pressure", "NoSchedule"),
        t("node.kubernetes.io/pid-pressure", "NoSchedule"),
        t("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if host_network {
        v.push(t("node.kubernetes.io/network-unavailable", "NoSchedule"));
    }
    v
}

/// Whether a toleration tolerates a taint (upstream's `ToleratesTaint`).
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    match t.key.as_deref() {
        None | Some("") => t.operator.as_deref() == Some("Exists"),
        Some(k) if k != taint.key => false,
        Some(_) => match t.operator.as_deref().unwrap_or("Equal") {
            "Exists" => true,
            _ => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        },
    }
}

fn requirement(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether `node` should run a pod with `spec` (selector, affinity, NoSchedule/NoExecute taints).
pub fn should_run(spec: &PodSpec, node: &Node) -> bool {
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.as_deref().unwrap_or_default();
    if let Some(sel) = &spec.node_selector
        && !sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    {
        return false;
    }
    let terms = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| r.node_selector_terms.clone());
    if let Some(terms) = terms
        && !terms.iter().any(|t| {
            t.match_expressions
                .as_deref()
                .unwrap_or_default()
                .iter()
                .all(|r| requirement(r, labels.get(&r.key).map(String::as_str)))
                && t.match_fields
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .all(|r| requirement(r, (r.key == "metadata.name").then_some(name)))
        })
    {
        return false;
    }
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    tolerations.extend(default_tolerations(spec.host_network.unwrap_or(false)));
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .all(|taint| tolerations.iter().any(|t| tolerates(t, taint)))
}

/// The node a daemon pod is for: where it is bound, or the node its affinity names.
pub fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_ref().filter(|n| !n.is_empty()) {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields
            .as_deref()?
            .iter()
            .find(|f| f.key == "metadata.name" && f.operator == "In")
            .and_then(|f| f.values.as_ref()?.first().cloned())
    })
}

/// What one sync does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes that need a pod.
    pub create_on: Vec<String>,
    /// Pods to delete (names).
    pub delete: Vec<String>,
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub available: i32,
    pub updated: i32,
}

/// A rolling update's bounds, resolved against the number of eligible nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rolling {
    /// Nodes that may be without an available daemon at once.
    pub max_unavailable: i32,
    /// Nodes that may run an old and a new pod at once (0: no surge).
    pub max_surge: i32,
}

/// Decides one sync: `eligible` nodes (by name), the daemon's pods, the current
/// template hash, the rolling update's bounds (`None`: OnDelete).
pub fn plan(
    eligible: &[String],
    daemon_pods: &[Arc<Pod>],
    hash: &str,
    rolling: Option<Rolling>,
    min_ready_seconds: i64,
    now: i64,
) -> Plan {
    let surge = rolling.map_or(0, |r| r.max_surge);
    let mut by_node: BTreeMap<String, Vec<&Arc<Pod>>> = BTreeMap::new();
    for p in daemon_pods.iter().filter(|p| !pods::is_terminating(p)) {
        if let Some(n) = node_of(p) {
            by_node.entry(n).or_default().push(p);
        }
    }
    let mut plan = Plan {
        desired: i32::try_from(eligible.len()).unwrap_or(i32::MAX),
        ..Default::default()
    };
    let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
    let is_new = |p: &Pod| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_HASH))
            .map(String::as_str)
            == Some(hash)
    };
    let mut old_on: Vec<(&Arc<Pod>, bool)> = Vec::new();
    let mut unavailable = 0;
    // With surge: nodes whose old pod waits for its new one, and nodes that could start one.
    let mut surging = 0;
    let mut surge_candidates: Vec<&String> = Vec::new();
    for node in eligible {
        let mut here: Vec<&Arc<Pod>> = by_node.remove(node).unwrap_or_default();
        // Failed daemon pods are replaced.
        let (failed, mut live): (Vec<_>, Vec<_>) = here
            .drain(..)
            .partition(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"));
        plan.delete.extend(failed.iter().map(|p| name(p)));
        if live.is_empty() {
            plan.create_on.push(node.clone());
            unavailable += 1;
            continue;
        }
        live.sort_by_key(|p| p.metadata.creation_timestamp.clone());
        if surge > 0 {
            // One old and one new pod per node at most: the oldest of each stays.
            let (new, old): (Vec<&Arc<Pod>>, Vec<&Arc<Pod>>) =
                live.iter().copied().partition(|p| is_new(p));
            plan.delete.extend(new.iter().skip(1).map(|p| name(p)));
            plan.delete.extend(old.iter().skip(1).map(|p| name(p)));
            match (old.first(), new.first()) {
                (Some(o), None) if !pods::is_available(o, min_ready_seconds, now) => {
                    plan.create_on.push(node.clone());
                }
                (Some(_), None) => surge_candidates.push(node),
                (Some(o), Some(n)) => {
                    if pods::is_available(n, min_ready_seconds, now) {
                        plan.delete.push(name(o));
                    } else {
                        surging += 1;
                    }
                }
                _ => {}
            }
            live = old
                .into_iter()
                .take(1)
                .chain(new.into_iter().take(1))
                .collect();
        } else {
            // One pod per node: the oldest stays.
            plan.delete.extend(live.iter().skip(1).map(|p| name(p)));
        }
        let p = live[0];
        plan.current += 1;
        let available = pods::is_available(p, min_ready_seconds, now);
        if pods::is_ready(p) {
            plan.ready += 1;
        }
        if available {
            plan.available += 1;
        } else {
            unavailable += 1;
        }
        if is_new(p) {
            plan.updated += 1;
        } else if surge == 0 {
            old_on.push((p, available));
        }
    }
    // Pods on nodes that should not run them, or that no longer exist.
    for here in by_node.into_values() {
        plan.misscheduled += i32::try_from(here.len()).unwrap_or(0);
        plan.delete.extend(here.iter().map(|p| name(p)));
    }
    let budget = usize::try_from(surge - surging).unwrap_or(0);
    plan.create_on
        .extend(surge_candidates.into_iter().take(budget).cloned());
    // Rolling update: unavailable old pods go at once, available ones within maxUnavailable.
    if let Some(Rolling {
        max_unavailable: max,
        max_surge: 0,
    }) = rolling
    {
        let mut budget = max - unavailable;
        for (p, available) in old_on {
            if !available {
                plan.delete.push(name(p));
            } else if budget > 0 {
                plan.delete.push(name(p));
                budget -= 1;
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::*;
    use k8s_openapi::api::core::v1::NodeSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|(k, e)| Taint {
                            key: k.to_string(),
                            effect: e.to_string(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn eligibility() {
        let mut spec = PodSpec::default();
        assert!(should_run(&spec, &node("a", &[], &[])));
        // Not-ready and cordoned nodes still run daemons.
        assert!(should_run(
            &spec,
            &node(
                "a",
                &[],
                &[
                    ("node.kubernetes.io/not-ready", "NoExecute"),
                    ("node.kubernetes.io/unschedulable", "NoSchedule")
                ]
            )
        ));
        assert!(!should_run(
            &spec,
            &node("a", &[], &[("dedicated", "NoSchedule")])
        ));
        assert!(should_run(
            &spec,
            &node("a", &[], &[("dedicated", "PreferNoSchedule")])
        ));
        spec.tolerations = Some(vec![Toleration {
            key: Some("dedicated".into()),
            operator: Some("Exists".into()),
            ..Default::default()
        }]);
        assert!(should_run(
            &spec,
            &node("a", &[], &[("dedicated", "NoSchedule")])
        ));
        spec.node_selector = Some([("disk".to_string(), "ssd".to_string())].into());
        assert!(!should_run(&spec, &node("a", &[], &[])));
        assert!(should_run(&spec, &node("a", &[("disk", "ssd")], &[])));
    }

    fn daemon(name: &str, node: &str, hash: &str, ready_since: Option<i64>) -> Arc<Pod> {
        let mut p = pod(name, "d", 1);
        if let Some(t) = ready_since {
            p = ready(p, t);
        }
        p.spec.get_or_insert_default().node_name = Some(node.into());
        p.metadata
            .labels
            .get_or_insert_default()
            .insert(REVISION_HASH.into(), hash.into());
        Arc::new(p)
    }

    #[test]
    fn one_pod_per_eligible_node_and_rolling_updates() {
        let nodes: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let pods = vec![
            daemon("pa", "a", "v1", Some(0)),
            daemon("pb", "b", "v1", Some(0)),
            daemon("px", "gone", "v1", Some(0)),
        ];
        let one = Some(Rolling {
            max_unavailable: 1,
            max_surge: 0,
        });
        let p = plan(&nodes, &pods, "v1", one, 0, 100);
        assert_eq!(p.create_on, vec!["c".to_string()]);
        assert_eq!(p.delete, vec!["px".to_string()]);
        assert_eq!((p.desired, p.current, p.ready, p.updated), (3, 2, 2, 2));

        // New template: with c unavailable (no pod), maxUnavailable 1 allows no more.
        let p = plan(&nodes, &pods[..2], "v2", one, 0, 100);
        assert!(p.delete.is_empty());
        let all = vec![
            daemon("pa", "a", "v1", Some(0)),
            daemon("pb", "b", "v1", Some(0)),
            daemon("pc", "c", "v2", Some(0)),
        ];
        let p = plan(&nodes, &all, "v2", one, 0, 100);
        assert_eq!(p.delete, vec!["pa".to_string()]);
        // OnDelete: nothing is replaced.
        assert!(plan(&nodes, &all, "v2", None, 0, 100).delete.is_empty());
    }

    #[test]
    fn max_surge_starts_new_pods_before_old_ones_go() {
        let nodes: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let surge = Some(Rolling {
            max_unavailable: 0,
            max_surge: 1,
        });
        let old = |n: &str| daemon(&format!("old-{n}"), n, "v1", Some(0));
        // Nothing surging yet: one node gets a new pod next to its old one.
        let pods = vec![old("a"), old("b"), old("c")];
        let p = plan(&nodes, &pods, "v2", surge, 0, 100);
        assert_eq!(p.create_on, vec!["a".to_string()]);
        assert!(p.delete.is_empty());
        // a's new pod is not available yet: no more surge, nothing deleted.
        let mut pods = pods;
        pods.push(daemon("new-a", "a", "v2", None));
        let p = plan(&nodes, &pods, "v2", surge, 0, 100);
        assert!(p.create_on.is_empty() && p.delete.is_empty(), "{p:?}");
        assert_eq!((p.current, p.updated, p.available), (3, 0, 3));
        // Available: the old pod goes, and the next node surges.
        pods[3] = daemon("new-a", "a", "v2", Some(50));
        let p = plan(&nodes, &pods, "v2", surge, 0, 100);
        assert_eq!(p.delete, vec!["old-a".to_string()]);
        assert_eq!(p.create_on, vec!["b".to_string()]);
        // An old pod that is not available is replaced at once, outside the surge budget.
        let pods = vec![
            old("a"),
            daemon("old-b", "b", "v1", None),
            daemon("new-c", "c", "v2", Some(0)),
        ];
        let p = plan(&nodes, &pods, "v2", surge, 0, 100);
        assert_eq!(p.create_on, vec!["b".to_string(), "a".to_string()]);
    }
}
