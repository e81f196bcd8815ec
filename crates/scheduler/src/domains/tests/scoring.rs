//! Scoring against brute force over the same random clusters: InterPodAffinity's preferred terms
//! (the pod's own and existing pods' about it, and existing pods' required affinity) and PodTopologySpread's ScheduleAnyway counts,
//! read from the index, must give every node the raw score a visit of every pod gives.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use crate::framework::{Code, CycleState, Plugin};
use crate::plugins::inter_pod_affinity::InterPodAffinity;
use crate::plugins::topology_spread::PodTopologySpread;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

use super::{KEYS, NAMESPACES};

/// An incoming pod in `ns` with `labels` and `spec`.
fn incoming(ns: &str, labels: Value, spec: Value) -> PodInfo {
    let mut s = json!({"containers": [{"name": "c"}]});
    if let (Some(s), Value::Object(extra)) = (s.as_object_mut(), spec) {
        s.extend(extra);
    }
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "incoming", "namespace": ns, "labels": labels}, "spec": s}))
    .expect("pod");
    PodInfo::new(Arc::new(pod), 0)
}

fn preferred(kind: &str, terms: &[(&str, &str, i32)]) -> Value {
    let terms: Vec<Value> = terms
        .iter()
        .map(|(app, key, w)| {
            json!({"weight": w, "podAffinityTerm":
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}})
        })
        .collect();
    json!({"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": terms}}})
}

fn soft_spread(constraints: &[(&str, &str, i32)], extra: Value) -> Value {
    let cs: Vec<Value> = constraints
        .iter()
        .map(|(app, key, skew)| {
            json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app": app}}})
        })
        .collect();
    let mut spec = json!({"topologySpreadConstraints": cs});
    if let (Some(s), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        s.extend(extra);
    }
    spec
}

fn same_domain(a: &NodeInfo, b: &NodeInfo, key: &str) -> bool {
    matches!((a.labels.get(key), b.labels.get(key)), (Some(x), Some(y)) if x == y)
}

/// InterPodAffinity's raw preferred score of `node` by definition: every pod on every node in
/// the same domain, the incoming pod's terms against it (non-terminating pods only, as every
/// selector count) and its terms against the incoming pod.
fn affinity_by_visit(snap: &Snapshot, pod: &PodInfo, node: &NodeInfo) -> i64 {
    let mut score = 0;
    for other in &snap.nodes {
        for existing in &other.pods {
            let own = (pod.preferred_affinity.iter().map(|t| (t, 1)))
                .chain(pod.preferred_anti_affinity.iter().map(|t| (t, -1)));
            for (t, sign) in own {
                if !existing.terminating()
                    && t.matches(existing)
                    && same_domain(node, other, &t.topology_key)
                {
                    score += sign * i64::from(t.weight);
                }
            }
            let theirs = (existing
                .preferred_affinity
                .iter()
                .map(|t| (t, i64::from(t.weight))))
            .chain(
                existing
                    .preferred_anti_affinity
                    .iter()
                    .map(|t| (t, -i64::from(t.weight))),
            )
            // Required affinity by the default `hardPodAffinityWeight`.
            .chain(existing.required_affinity.iter().map(|t| (t, 1)));
            for (t, w) in theirs {
                if t.matches(pod) && same_domain(node, other, &t.topology_key) {
                    score += w;
                }
            }
        }
    }
    score
}

/// PodTopologySpread's raw score of `node` by definition: per constraint, the matching
/// non-terminating pods in the pod's namespace on the eligible nodes (passing its node selector,
/// carrying every constraint's key) in the node's domain, times `ln(domains + 2)` (the domains
/// of the feasible nodes carrying every key: every other node, as [`raw_scores`] samples them),
/// plus `maxSkew - 1`, rounded; `None` for a node without every key.
fn spread_by_visit(snap: &Snapshot, pod: &PodInfo, node: &NodeInfo) -> Option<i64> {
    let spec = pod.pod.spec.as_ref()?;
    let constraints = spec
        .topology_spread_constraints
        .as_deref()
        .unwrap_or_default();
    let selector = spec.node_selector.clone().unwrap_or_default();
    let eligible = |n: &NodeInfo| {
        constraints
            .iter()
            .all(|c| n.labels.contains_key(&c.topology_key))
            && selector.iter().all(|(k, v)| n.labels.get(k) == Some(v))
    };
    if !constraints
        .iter()
        .all(|c| node.labels.contains_key(&c.topology_key))
    {
        return None;
    }
    let scored: Vec<&NodeInfo> = snap
        .nodes
        .iter()
        .step_by(2)
        .filter(|n| {
            constraints
                .iter()
                .all(|c| n.labels.contains_key(&c.topology_key))
        })
        .collect();
    let mut total = 0.0;
    for c in constraints {
        let sel =
            rudder_machinery::label_selector::LabelSelector::from_api(c.label_selector.as_ref())
                .expect("selector");
        let domains: std::collections::HashSet<&String> = scored
            .iter()
            .map(|n| {
                if c.topology_key == "kubernetes.io/hostname" {
                    &n.name
                } else {
                    &n.labels[&c.topology_key]
                }
            })
            .collect();
        let weight = (domains.len() as f64 + 2.0).ln();
        let mut here = 0;
        for other in snap.nodes.iter().filter(|n| eligible(n)) {
            if !same_domain(node, other, &c.topology_key) {
                continue;
            }
            here += other
                .pods
                .iter()
                .filter(|p| {
                    !p.terminating() && p.namespace == pod.namespace && sel.matches(&p.labels)
                })
                .count() as i64;
        }
        total += here as f64 * weight + f64::from(c.max_skew - 1);
    }
    Some(total.round() as i64)
}

/// Raw scores of every node after PreScore; `None` when PreScore skipped. Only every other
/// node is feasible (a decision samples the nodes): the counts must still cover them all.
fn raw_scores(plugin: &dyn Plugin, snap: &Snapshot, pod: &PodInfo) -> Option<Vec<i64>> {
    let mut state = CycleState::default();
    let feasible: Vec<&NodeInfo> = snap.nodes.iter().step_by(2).collect();
    if plugin.pre_score(&mut state, pod, snap, &feasible).code == Code::Skip {
        return None;
    }
    Some(
        snap.nodes
            .iter()
            .map(|n| plugin.score(&state, pod, n))
            .collect(),
    )
}

pub(super) fn check(snap: &Snapshot) {
    let labels = |app: &str| json!(BTreeMap::from([("app", app)]));
    let mut affinity_pods = Vec::new();
    for ns in NAMESPACES {
        for app in ["web", "db"] {
            // Only existing pods' terms can score these.
            affinity_pods.push(incoming(ns, labels(app), json!({})));
            for key in KEYS {
                affinity_pods.push(incoming(
                    ns,
                    labels(app),
                    preferred("podAffinity", &[(app, key, 3)]),
                ));
                affinity_pods.push(incoming(
                    ns,
                    labels(app),
                    preferred("podAntiAffinity", &[("web", key, 2), ("db", "zone", 1)]),
                ));
            }
        }
    }
    for pod in &affinity_pods {
        let want: Vec<i64> = snap
            .nodes
            .iter()
            .map(|n| affinity_by_visit(snap, pod, n))
            .collect();
        let got = raw_scores(&InterPodAffinity::default(), snap, pod)
            .unwrap_or_else(|| vec![0; snap.nodes.len()]);
        assert_eq!(got, want, "preferred affinity of {:?}", pod.pod.spec);
    }
    let mut spread_pods = Vec::new();
    for ns in NAMESPACES {
        for key in KEYS {
            spread_pods.push(incoming(
                ns,
                labels("web"),
                soft_spread(&[("web", key, 1)], json!({})),
            ));
            spread_pods.push(incoming(
                ns,
                labels("db"),
                soft_spread(&[("web", key, 2), ("db", "zone", 1)], json!({})),
            ));
            spread_pods.push(incoming(
                ns,
                labels("web"),
                soft_spread(&[("web", key, 1)], json!({"nodeSelector": {"zone": "z1"}})),
            ));
        }
    }
    for pod in &spread_pods {
        let want: Vec<Option<i64>> = snap
            .nodes
            .iter()
            .map(|n| spread_by_visit(snap, pod, n))
            .collect();
        let got = raw_scores(&PodTopologySpread, snap, pod).expect("constraints");
        let got: Vec<Option<i64>> = got.into_iter().map(|s| (s >= 0).then_some(s)).collect();
        assert_eq!(got, want, "spread of {:?}", pod.pod.spec);
    }
}
