//! InterPodAffinity: required pod affinity and anti-affinity (the pod's own, and existing pods'
//! anti-affinity against it) per topology domain; preferred terms score. PreFilter reads the
//! snapshot's per-domain counts (`domains.rs`) instead of visiting every node.

use std::collections::HashMap;
use std::sync::Arc;

use crate::domains::{DomainCounts, Domains};
use crate::framework::{Code, CycleState, Plugin, Point, Status, normalize_min_max};
use crate::snapshot::{AffinityTerm, NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "InterPodAffinity";
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

pub struct InterPodAffinity;

/// Topology key → value → preferred-term weights (nested so lookups borrow, never allocate:
/// Score runs once per node).
type Counts = HashMap<String, HashMap<String, i64>>;

/// Matching pods in the domain `key=value`.
fn count_in(counts: &Counts, key: &str, value: &str) -> i64 {
    counts
        .get(key)
        .and_then(|values| values.get(value))
        .copied()
        .unwrap_or(0)
}

/// What PreFilter found, shared with the snapshot's counts (no copy per pod).
struct FilterState {
    /// Existing pods' anti-affinity terms that select the incoming pod: their topology key and
    /// pods carrying them per domain.
    existing_anti: Vec<(String, Arc<DomainCounts>)>,
    /// Per incoming required affinity term: pods it selects per domain.
    affinity: Vec<Domains>,
    /// Per incoming required anti-affinity term: pods it selects per domain.
    anti: Vec<Domains>,
}

/// Pods `term` selects per domain of its topology key.
fn selected(snap: &Snapshot, term: &AffinityTerm) -> Domains {
    snap.pods_per_domain(term.namespaces.as_ref(), &term.selector, &term.topology_key)
}

/// Whether `node`'s domain of `key` has a pod in `counts`.
fn hit(node: &NodeInfo, key: &str, counts: &Domains) -> bool {
    node.labels.get(key).is_some_and(|v| counts.get(v) > 0)
}

fn bump(counts: &mut Counts, term: &AffinityTerm, node: &NodeInfo, by: i64) {
    let Some(v) = node.labels.get(&term.topology_key) else {
        return;
    };
    let values = match counts.get_mut(&term.topology_key) {
        Some(values) => values,
        None => counts.entry(term.topology_key.clone()).or_default(),
    };
    match values.get_mut(v) {
        Some(c) => *c += by,
        None => {
            values.insert(v.clone(), by);
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[
            Point::PreFilter,
            Point::Filter,
            Point::PreScore,
            Point::Score,
        ]
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot) -> Status {
        // Each distinct existing anti-affinity term is checked against the pod once, however
        // many pods carry it.
        let existing_anti: Vec<(String, Arc<DomainCounts>)> = snap
            .existing_anti_terms()
            .filter(|(term, counts)| !counts.is_empty() && term.matches(pod))
            .map(|(term, counts)| (term.topology_key.clone(), counts.clone()))
            .collect();
        let own_terms = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        if !own_terms && existing_anti.is_empty() {
            return Status::skip();
        }
        let st = FilterState {
            existing_anti,
            affinity: pod
                .required_affinity
                .iter()
                .map(|t| selected(snap, t))
                .collect(),
            anti: pod
                .required_anti_affinity
                .iter()
                .map(|t| selected(snap, t))
                .collect(),
        };
        state.write(NAME, st);
        Status::success()
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        if st.existing_anti.iter().any(|(key, counts)| {
            node.labels
                .get(key)
                .is_some_and(|v| counts.get(v).is_some_and(|n| *n > 0))
        }) {
            return Status::unschedulable(EXISTING_ANTI_AFFINITY);
        }
        if pod
            .required_anti_affinity
            .iter()
            .zip(&st.anti)
            .any(|(t, counts)| hit(node, &t.topology_key, counts))
        {
            return Status::unschedulable(ANTI_AFFINITY);
        }
        if !pod.required_affinity.is_empty() {
            let all_match = pod
                .required_affinity
                .iter()
                .zip(&st.affinity)
                .all(|(t, counts)| hit(node, &t.topology_key, counts));
            // The first pod of a group that selects itself may go anywhere its topology keys exist;
            // otherwise a self-affine group could never start.
            let nobody_matches = st.affinity.iter().all(Domains::is_empty);
            let self_affine = pod.required_affinity.iter().all(|t| t.matches(pod));
            let has_keys = pod
                .required_affinity
                .iter()
                .all(|t| node.labels.contains_key(&t.topology_key));
            if !(all_match || (nobody_matches && self_affine && has_keys)) {
                return Status {
                    code: Code::UnschedulableAndUnresolvable,
                    reasons: vec![AFFINITY.into()],
                    plugin: "",
                };
            }
        }
        Status::success()
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        _: &[&NodeInfo],
    ) -> Status {
        let mut scores = Counts::new();
        let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        for node in &snap.nodes {
            if !own && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                for t in &pod.preferred_affinity {
                    if t.matches(existing) {
                        bump(&mut scores, t, node, i64::from(t.weight));
                    }
                }
                for t in &pod.preferred_anti_affinity {
                    if t.matches(existing) {
                        bump(&mut scores, t, node, -i64::from(t.weight));
                    }
                }
                // Symmetry: existing pods' preferences about the incoming pod count too.
                for t in &existing.preferred_affinity {
                    if t.matches(pod) {
                        bump(&mut scores, t, node, i64::from(t.weight));
                    }
                }
                for t in &existing.preferred_anti_affinity {
                    if t.matches(pod) {
                        bump(&mut scores, t, node, -i64::from(t.weight));
                    }
                }
            }
        }
        if scores.is_empty() {
            return Status::skip();
        }
        state.write("InterPodAffinity/score", scores);
        Status::success()
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(scores) = state.read::<Counts>("InterPodAffinity/score") else {
            return 0;
        };
        scores
            .keys()
            .filter_map(|key| node.labels.get(key).map(|v| count_in(scores, key, v)))
            .sum()
    }

    fn normalize_score(&self, _: &CycleState, scores: &mut [i64]) {
        normalize_min_max(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn term(app: &str) -> serde_json::Value {
        json!({"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "zone"})
    }

    fn anti(term: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}})
    }

    #[test]
    fn filter_table() {
        let nodes = || {
            vec![
                node("a1", json!({"zone": "a"}), json!({})),
                node("a2", json!({"zone": "a"}), json!({})),
                node("b1", json!({"zone": "b"}), json!({})),
                node("nozone", json!({}), json!({})),
            ]
        };
        let web = pod("web", json!({"app": "web"}), json!({}));
        let guard = pod(
            "guard",
            json!({"app": "guard"}),
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("db")]}}}),
        );
        let snap = snapshot(nodes(), vec![("a1", web.clone()), ("b1", guard)]);
        let cases = vec![
            (
                "plain",
                json!({"app": "x"}),
                json!({}),
                vec!["a1", "a2", "b1", "nozone"],
            ),
            (
                "affinity to web",
                json!({}),
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web")]}}}),
                vec!["a1", "a2"],
            ),
            (
                "anti-affinity to web",
                json!({}),
                json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("web")]}}}),
                vec!["b1", "nozone"],
            ),
            (
                "existing anti-affinity against db",
                json!({"app": "db"}),
                json!({}),
                vec!["a1", "a2", "nozone"],
            ),
            (
                "affinity to nobody",
                json!({}),
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("none")]}}}),
                vec![],
            ),
            (
                "anti-affinity, two requirements (nodes narrowed by one)",
                json!({}),
                anti(json!({"labelSelector": {"matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "app", "operator": "Exists"}]}, "topologyKey": "zone"})),
                vec!["b1", "nozone"],
            ),
            (
                "affinity by `in`",
                json!({}),
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web", "guard"]}]},
                     "topologyKey": "zone"}]}}}),
                vec!["a1", "a2", "b1"],
            ),
            (
                "anti-affinity in every namespace",
                json!({}),
                anti(
                    json!({"labelSelector": {"matchLabels": {"app": "web"}}, "namespaceSelector": {},
                    "topologyKey": "zone"}),
                ),
                vec!["b1", "nozone"],
            ),
            (
                "anti-affinity by `notin` (scanned)",
                json!({}),
                anti(
                    json!({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]},
                    "topologyKey": "zone"}),
                ),
                vec!["a1", "a2", "nozone"],
            ),
            (
                "first of a self-affine group",
                json!({"app": "grp"}),
                json!({"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term("grp")]}}}),
                vec!["a1", "a2", "b1"],
            ),
        ];
        for (name, labels, spec, want) in cases {
            assert_eq!(
                passing(&InterPodAffinity, &pod("p", labels, spec), &snap),
                want,
                "{name}"
            );
        }
        let s = filter_all(
            &InterPodAffinity,
            &pod("db", json!({"app": "db"}), json!({})),
            &snap,
        );
        assert_eq!(s[2].1, Status::unschedulable(EXISTING_ANTI_AFFINITY));
    }

    #[test]
    fn preferred_scores() {
        let snap = snapshot(
            vec![
                node("a1", json!({"zone": "a"}), json!({})),
                node("b1", json!({"zone": "b"}), json!({})),
            ],
            vec![("a1", pod("web", json!({"app": "web"}), json!({})))],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": term("web")}]}}}),
        );
        assert_eq!(
            scores(&InterPodAffinity, &p, &snap),
            vec![("a1".into(), 0), ("b1".into(), 100)]
        );
    }

    #[test]
    fn namespace_selectors_resolve_against_namespace_labels() {
        use std::collections::{BTreeMap, HashMap};
        let mut db = pod("db", json!({"app": "db"}), json!({}));
        db.namespace = "prod".into();
        let snap = snapshot(
            vec![
                node("n1", json!({"zone": "a"}), json!({})),
                node("n2", json!({"zone": "b"}), json!({})),
            ],
            vec![("n1", db)],
        );
        let spec = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "db"}},
            "namespaceSelector": {"matchLabels": {"tier": "prod"}},
            "topologyKey": "zone"
        }]}}});
        let labels: HashMap<String, BTreeMap<String, String>> = HashMap::from([
            (
                "prod".to_owned(),
                BTreeMap::from([("tier".to_owned(), "prod".to_owned())]),
            ),
            ("default".to_owned(), BTreeMap::new()),
        ]);
        // Unresolved, the selector names no namespace yet: nothing to avoid.
        let unresolved = pod("p", json!({}), spec.clone());
        assert!(unresolved.selects_namespaces());
        assert_eq!(passing(&InterPodAffinity, &unresolved, &snap), ["n1", "n2"]);
        // Resolved, `prod` is selected by its label: the db pod's node is avoided.
        let mut resolved = pod("p", json!({}), spec);
        resolved.resolve_namespaces(&labels);
        assert_eq!(passing(&InterPodAffinity, &resolved, &snap), ["n2"]);
    }
}
