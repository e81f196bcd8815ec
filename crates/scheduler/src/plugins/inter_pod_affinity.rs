//! InterPodAffinity: required pod affinity and anti-affinity (the pod's own, and existing pods'
//! anti-affinity against it) per topology domain; preferred terms score, and so do existing pods'
//! required affinity terms that select the pod (`hardPodAffinityWeight`). PreFilter and PreScore
//! read the snapshot's per-domain counts and weights (`domains.rs`) instead of visiting every
//! node.

use crate::domains::Domains;
use crate::framework::{CycleState, Plugin, Point, Status, normalize_min_max};
use crate::snapshot::{AffinityTerm, NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "InterPodAffinity";
const SCORE: &str = "InterPodAffinity/score";
pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// The plugin, with its `hardPodAffinityWeight` arg.
pub struct InterPodAffinity {
    /// How much each existing pod whose required affinity selects the incoming pod adds to the
    /// score of nodes in its domain (upstream's default 1; 0 turns it off).
    pub hard_weight: i64,
}

/// Upstream's default `hardPodAffinityWeight`.
pub const DEFAULT_HARD_WEIGHT: i64 = 1;

impl Default for InterPodAffinity {
    fn default() -> Self {
        InterPodAffinity {
            hard_weight: DEFAULT_HARD_WEIGHT,
        }
    }
}

impl InterPodAffinity {
    /// Reads `hardPodAffinityWeight` from the plugin's args (validated by the configuration).
    pub fn new(args: &serde_json::Value) -> Self {
        InterPodAffinity {
            hard_weight: args
                .get("hardPodAffinityWeight")
                .and_then(serde_json::Value::as_i64)
                .unwrap_or(DEFAULT_HARD_WEIGHT),
        }
    }
}

/// What PreScore found: per preferred term that applies, its topology key, the weight each
/// pod counts with, and the pods (or, for existing pods' terms, their weights) per domain. A
/// node's raw score is the sum over the parts of weight × its domain's entry; the counts are
/// shared with the snapshot, never copied.
#[derive(Clone)]
struct ScoreState {
    parts: Vec<(String, i64, Domains)>,
}

/// What PreFilter found, shared with the snapshot's counts (no copy per pod).
#[derive(Clone)]
struct FilterState {
    /// Existing pods' anti-affinity terms that select the incoming pod: their signature, their
    /// topology key and the pods carrying them per domain.
    existing_anti: Vec<(String, String, Domains)>,
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

/// Counts `other` (`by` 1) or no longer counts it (-1) on `node` in PreFilter's state, as the
/// snapshot's index would had it been placed or removed there: its anti-affinity terms that
/// select `pod`, and (unless terminating) `pod`'s own terms that select it.
fn update(state: &mut CycleState, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
    let Some(st) = state.read_mut::<FilterState>(NAME) else {
        return;
    };
    for t in other
        .required_anti_affinity
        .iter()
        .filter(|t| t.matches(pod))
    {
        let Some(domain) = node.labels.get(&t.topology_key) else {
            continue;
        };
        let i = match st
            .existing_anti
            .iter()
            .position(|(sig, ..)| *sig == t.signature)
        {
            Some(i) => i,
            None => {
                let entry = (
                    t.signature.clone(),
                    t.topology_key.clone(),
                    Domains::default(),
                );
                st.existing_anti.push(entry);
                st.existing_anti.len() - 1
            }
        };
        st.existing_anti[i].2.adjust(domain, by);
    }
    if other.terminating() {
        return;
    }
    let own = (pod.required_affinity.iter().zip(&mut st.affinity))
        .chain(pod.required_anti_affinity.iter().zip(&mut st.anti));
    for (t, selected) in own {
        if let Some(domain) = node.labels.get(&t.topology_key)
            && t.matches(other)
        {
            selected.adjust(domain, by);
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
        let existing_anti: Vec<(String, String, Domains)> = snap
            .existing_anti_terms()
            .filter(|(term, counts)| !counts.is_empty() && term.matches(pod))
            .map(|(term, counts)| {
                let carriers = Domains::new(vec![counts.clone()]);
                (term.signature.clone(), term.topology_key.clone(), carriers)
            })
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

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        update(state, pod, victim, node, -1);
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        update(state, pod, victim, node, 1);
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(NAME) else {
            return Status::success();
        };
        if st
            .existing_anti
            .iter()
            .any(|(_, key, carriers)| hit(node, key, carriers))
        {
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
                return Status::unresolvable(AFFINITY);
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
        let mut parts = Vec::new();
        let own = (pod.preferred_affinity.iter().map(|t| (t, 1)))
            .chain(pod.preferred_anti_affinity.iter().map(|t| (t, -1)));
        for (t, sign) in own {
            let pods = selected(snap, t);
            if !pods.is_empty() {
                parts.push((t.topology_key.clone(), sign * i64::from(t.weight), pods));
            }
        }
        // Symmetry: existing pods' preferences about the incoming pod count too, and so do
        // their required affinity terms, by `hardPodAffinityWeight`; each distinct term is
        // matched once, however many pods carry it.
        let hard = (self.hard_weight > 0)
            .then(|| snap.existing_required_affinity_terms())
            .into_iter()
            .flatten()
            .map(|(t, w)| (t, w, self.hard_weight));
        let theirs = snap
            .existing_preferred_terms()
            .map(|(t, w)| (t, w, 1))
            .chain(hard);
        for (t, weights, weight) in theirs {
            if !weights.is_empty() && t.matches(pod) {
                parts.push((
                    t.topology_key.clone(),
                    weight,
                    Domains::new(vec![weights.clone()]),
                ));
            }
        }
        if parts.is_empty() {
            return Status::skip();
        }
        state.write(SCORE, ScoreState { parts });
        Status::success()
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(st) = state.read::<ScoreState>(SCORE) else {
            return 0;
        };
        st.parts
            .iter()
            .filter_map(|(key, weight, per_domain)| {
                node.labels.get(key).map(|v| weight * per_domain.get(v))
            })
            .sum()
    }

    fn normalize_score(&self, _: &CycleState, scores: &mut [i64]) {
        normalize_min_max(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
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
                passing(&InterPodAffinity::default(), &pod("p", labels, spec), &snap),
                want,
                "{name}"
            );
        }
        let s = filter_all(
            &InterPodAffinity::default(),
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
            scores(&InterPodAffinity::default(), &p, &snap),
            vec![("a1".into(), 0), ("b1".into(), 100)]
        );
    }

    /// Existing pods' preferred terms score the incoming pod's nodes (symmetry), netted per
    /// domain, and only when they select it.
    #[test]
    fn existing_preferences_score() {
        let prefer = |kind: &str, app: &str, w: i32| {
            json!({"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": w, "podAffinityTerm": term(app)}]}}})
        };
        let snap = snapshot(
            zone_nodes(),
            vec![
                (
                    "a1",
                    pod("likes", json!({}), prefer("podAffinity", "web", 10)),
                ),
                (
                    "b1",
                    pod("dislikes", json!({}), prefer("podAntiAffinity", "web", 10)),
                ),
                (
                    "b1",
                    pod("likes-too", json!({}), prefer("podAffinity", "web", 4)),
                ),
                (
                    "c1",
                    pod("likes-db", json!({}), prefer("podAffinity", "db", 50)),
                ),
            ],
        );
        // Raw: a 10, b -6, c 0 (the db term does not select web), nozone 0; min-max scaled.
        let web = pod("p", json!({"app": "web"}), json!({}));
        assert_eq!(
            scores(&InterPodAffinity::default(), &web, &snap),
            vec![
                ("a1".into(), 100),
                ("b1".into(), 0),
                ("c1".into(), 37),
                ("nozone".into(), 37)
            ]
        );
        // Nobody's preference selects it: PreScore skips, no node is favoured.
        let other = pod("q", json!({"app": "other"}), json!({}));
        let mut state = CycleState::default();
        let all: Vec<&NodeInfo> = snap.nodes.iter().collect();
        let s = InterPodAffinity::default().pre_score(&mut state, &other, &snap, &all);
        assert_eq!(s.code, Code::Skip);
    }

    /// Existing pods' required affinity for the incoming pod scores by `hardPodAffinityWeight`
    /// per carrier, on top of preferences; weight 0 leaves only the preferences.
    #[test]
    fn existing_required_affinity_scores_by_hard_weight() {
        let require = json!({"affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("web")]}}});
        let prefer = json!({"affinity": {"podAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 3, "podAffinityTerm": term("web")}]}}});
        let snap = snapshot(
            vec![
                node("a1", json!({"zone": "a"}), json!({})),
                node("b1", json!({"zone": "b"}), json!({})),
                node("c1", json!({"zone": "c"}), json!({})),
            ],
            vec![
                ("a1", pod("needs-web", json!({}), require.clone())),
                ("a1", pod("needs-web-too", json!({}), require)),
                ("b1", pod("likes-web", json!({}), prefer)),
            ],
        );
        let web = pod("p", json!({"app": "web"}), json!({}));
        let db = pod("q", json!({"app": "db"}), json!({}));
        // (hardPodAffinityWeight, pod, raw scores a/b/c before min-max scaling → scaled)
        let cases = [
            // Raw a 2, b 3, c 0.
            (1, &web, vec![66, 100, 0]),
            // Raw a 10, b 3, c 0.
            (5, &web, vec![100, 30, 0]),
            // Raw a 0, b 3, c 0.
            (0, &web, vec![0, 100, 0]),
            // Nobody's term selects db: all equal.
            (5, &db, vec![0, 0, 0]),
        ];
        for (hard_weight, p, want) in cases {
            let plugin = InterPodAffinity { hard_weight };
            let got: Vec<i64> = scores(&plugin, p, &snap)
                .into_iter()
                .map(|(_, s)| s)
                .collect();
            assert_eq!(got, want, "hardPodAffinityWeight {hard_weight}, {}", p.name);
        }
        let args = json!({"hardPodAffinityWeight": 7});
        assert_eq!(InterPodAffinity::new(&args).hard_weight, 7);
        assert_eq!(InterPodAffinity::new(&json!(null)).hard_weight, 1);
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
        assert_eq!(
            passing(&InterPodAffinity::default(), &unresolved, &snap),
            ["n1", "n2"]
        );
        // Resolved, `prod` is selected by its label: the db pod's node is avoided.
        let mut resolved = pod("p", json!({}), spec);
        resolved.resolve_namespaces(&labels);
        assert_eq!(
            passing(&InterPodAffinity::default(), &resolved, &snap),
            ["n2"]
        );
    }
}
