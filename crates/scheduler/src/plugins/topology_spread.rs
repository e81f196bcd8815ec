//! PodTopologySpread: `topologySpreadConstraints` keep the number of matching pods per domain
//! within `maxSkew` of the emptiest domain (DoNotSchedule), or prefer emptier domains
//! (ScheduleAnyway). PreFilter and PreScore read the snapshot's per-domain counts (`domains.rs`)
//! when every node counts, and scan the nodes when the pod's node affinity or a missing key
//! leaves some out.

use std::collections::HashSet;
use std::sync::Arc;

use rudder_machinery::label_selector::LabelSelector;

use crate::domains::{DomainCounts, Domains, bump};
use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Point, Status};
use crate::plugins::node_affinity::pod_matches_node;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "PodTopologySpread";
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
pub const MISSING_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const SCORE: &str = "PodTopologySpread/score";
/// The topology key whose domains are the nodes themselves.
const HOSTNAME: &str = "kubernetes.io/hostname";
/// Score's raw value for a node that lacks a constraint's key: it takes no part in
/// normalization and scores 0 (upstream's ignored nodes). Real raw scores are ≥ 0.
const IGNORED: i64 = -1;

pub struct PodTopologySpread;

#[derive(Clone)]
struct Constraint {
    max_skew: i64,
    key: String,
    selector: LabelSelector,
    min_domains: usize,
    /// Whether the incoming pod counts itself (its labels match the selector).
    self_match: i64,
}

/// Per constraint: the domains of the eligible nodes, and the matching pods in those of them
/// that have any (a domain missing from `counts` has none).
#[derive(Debug, Clone, PartialEq)]
struct Count {
    counts: Arc<DomainCounts>,
    domains: usize,
}

#[derive(Clone)]
struct State {
    constraints: Vec<Constraint>,
    counts: Vec<Domains>,
    /// Per constraint: the number of domains of the eligible nodes.
    domains: Vec<usize>,
    /// Per constraint: the global minimum the skew is measured from, computed once per pod
    /// (0 when there are fewer domains than `minDomains`, as upstream's minDomains says) —
    /// with a per-node topology key there are as many domains as nodes.
    min: Vec<i64>,
    /// Scoring only, per constraint: what a matching pod in a node's domain weighs,
    /// `ln(domains + 2)` over the feasible nodes (upstream's topology normalizing weight), so
    /// a topology of few domains is not drowned by one of many.
    weights: Vec<f64>,
}

impl State {
    fn new(constraints: Vec<Constraint>, counts: Vec<Count>) -> Self {
        let mut st = State {
            domains: counts.iter().map(|c| c.domains).collect(),
            counts: counts
                .into_iter()
                .map(|c| Domains::new(vec![c.counts]))
                .collect(),
            min: vec![0; constraints.len()],
            weights: Vec::new(),
            constraints,
        };
        for i in 0..st.constraints.len() {
            st.min[i] = st.global_min(i);
        }
        st
    }

    fn global_min(&self, i: usize) -> i64 {
        let (c, counts) = (&self.constraints[i], &self.counts[i]);
        let mut with_pods = 0;
        let mut min = i64::MAX;
        for (_, n) in counts.positive() {
            with_pods += 1;
            min = min.min(n);
        }
        if self.domains[i] < c.min_domains || with_pods < self.domains[i] || with_pods == 0 {
            // Too few domains, or one (or all) without a matching pod.
            0
        } else {
            min
        }
    }

    /// Counts `other` (`by` 1) or no longer counts it (-1) on `node`, as PreFilter would have
    /// had it been there (preemption's dry run).
    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, by: i64) {
        if other.terminating()
            || other.namespace != pod.namespace
            || !self
                .constraints
                .iter()
                .all(|c| node.labels.contains_key(&c.key))
            || !pod_matches_node(pod, node)
        {
            return;
        }
        for i in 0..self.constraints.len() {
            let c = &self.constraints[i];
            if !c.selector.matches(&other.labels) {
                continue;
            }
            let domain = &node.labels[&c.key];
            let before = self.counts[i].get(domain);
            self.counts[i].adjust(domain, by);
            // Removing can only lower the minimum to this domain's new count; adding can
            // raise it only when this domain was at the minimum.
            self.min[i] = if by < 0 {
                self.min[i].min(before + by)
            } else if before == self.min[i] {
                self.global_min(i)
            } else {
                self.min[i]
            };
        }
    }
}

fn constraints(pod: &PodInfo, hard: bool) -> Vec<Constraint> {
    let list = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    list.iter()
        .filter(|c| (c.when_unsatisfiable == "DoNotSchedule") == hard)
        .filter_map(|c| {
            let selector = LabelSelector::from_api(c.label_selector.as_ref()).ok()?;
            Some(Constraint {
                max_skew: i64::from(c.max_skew),
                key: c.topology_key.clone(),
                self_match: i64::from(selector.matches(&pod.labels)),
                selector,
                min_domains: c
                    .min_domains
                    .and_then(|m| usize::try_from(m).ok())
                    .unwrap_or(1),
            })
        })
        .collect()
}

/// Counts matching pods per domain over the nodes that pass the pod's node affinity (the
/// default `nodeAffinityPolicy: Honor`) and carry every constraint's key, by visiting `nodes`.
fn count(pod: &PodInfo, constraints: &[Constraint], nodes: &[&NodeInfo]) -> Vec<Count> {
    let mut counts = vec![DomainCounts::new(); constraints.len()];
    let mut domains: Vec<HashSet<&str>> = vec![HashSet::new(); constraints.len()];
    let namespace: HashSet<String> = [pod.namespace.clone()].into();
    for node in nodes {
        if !constraints.iter().all(|c| node.labels.contains_key(&c.key))
            || !pod_matches_node(pod, node)
        {
            continue;
        }
        for (i, c) in constraints.iter().enumerate() {
            let n = i64::try_from(node.count_matching(Some(&namespace), &c.selector))
                .unwrap_or(i64::MAX);
            let value = &node.labels[&c.key];
            domains[i].insert(value);
            bump(&mut counts[i], value, n);
        }
    }
    counts
        .into_iter()
        .zip(domains)
        .map(|(counts, domains)| Count {
            counts: Arc::new(counts),
            domains: domains.len(),
        })
        .collect()
}

/// The same counts over every node, from the snapshot's per-domain index — when every node is
/// eligible: the pod has no node selector or required node affinity, and every node carrying
/// one constraint's key carries all of them (one key, or keys every node has). `None` otherwise.
fn count_indexed(pod: &PodInfo, constraints: &[Constraint], snap: &Snapshot) -> Option<Vec<Count>> {
    let spec = pod.pod.spec.as_ref();
    let node_selector = spec
        .and_then(|s| s.node_selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    let node_affinity = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .is_some_and(|a| {
            a.required_during_scheduling_ignored_during_execution
                .is_some()
        });
    if node_selector || node_affinity {
        return None;
    }
    let first = constraints.first()?;
    let one_key = constraints.iter().all(|c| c.key == first.key);
    if !one_key
        && !constraints
            .iter()
            .all(|c| snap.nodes_with_key(&c.key) == snap.nodes.len())
    {
        return None;
    }
    let namespace: HashSet<String> = [pod.namespace.clone()].into();
    Some(
        constraints
            .iter()
            .map(|c| Count {
                counts: snap
                    .pods_per_domain(Some(&namespace), &c.selector, &c.key)
                    .merged(),
                domains: snap.domain_count(&c.key),
            })
            .collect(),
    )
}

/// The counts over every eligible node: from the index when it can answer, else by a scan.
fn count_all(pod: &PodInfo, constraints: &[Constraint], snap: &Snapshot) -> Vec<Count> {
    count_indexed(pod, constraints, snap).unwrap_or_else(|| {
        let nodes: Vec<&NodeInfo> = snap.nodes.iter().collect();
        count(pod, constraints, &nodes)
    })
}

/// Per constraint, `ln(size + 2)` where size is the number of domains among the feasible nodes
/// that carry every constraint's key (for the hostname key, the number of those nodes).
fn normalizing_weights(constraints: &[Constraint], feasible: &[&NodeInfo]) -> Vec<f64> {
    let scored: Vec<&&NodeInfo> = feasible
        .iter()
        .filter(|n| constraints.iter().all(|c| n.labels.contains_key(&c.key)))
        .collect();
    constraints
        .iter()
        .map(|c| {
            let size = if c.key == HOSTNAME {
                scored.len()
            } else {
                let values: std::collections::HashSet<&String> =
                    scored.iter().filter_map(|n| n.labels.get(&c.key)).collect();
                values.len()
            };
            (size as f64 + 2.0).ln()
        })
        .collect()
}

impl Plugin for PodTopologySpread {
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
        let cs = constraints(pod, true);
        if cs.is_empty() {
            return Status::skip();
        }
        let counts = count_all(pod, &cs, snap);
        state.write(NAME, State::new(cs, counts));
        Status::success()
    }

    fn remove_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<State>(NAME) {
            st.update(pod, victim, node, -1);
        }
    }

    fn add_pod(&self, state: &mut CycleState, pod: &PodInfo, victim: &PodInfo, node: &NodeInfo) {
        if let Some(st) = state.read_mut::<State>(NAME) {
            st.update(pod, victim, node, 1);
        }
    }

    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<State>(NAME) else {
            return Status::success();
        };
        for ((c, counts), min) in st.constraints.iter().zip(&st.counts).zip(&st.min) {
            let Some(value) = node.labels.get(&c.key) else {
                return Status::unresolvable(MISSING_LABEL);
            };
            let min = *min;
            let here = counts.get(value);
            if here + c.self_match - min > c.max_skew {
                return Status::unschedulable(REASON);
            }
        }
        Status::success()
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        feasible: &[&NodeInfo],
    ) -> Status {
        let cs = constraints(pod, false);
        if cs.is_empty() {
            return Status::skip();
        }
        // As upstream, the pods counted are those on every eligible node, not only on the
        // feasible ones (a sample of the cluster): a feasible node's domain is scored by all of
        // its pods.
        let counts = count_all(pod, &cs, snap);
        let mut st = State::new(cs, counts);
        st.weights = normalizing_weights(&st.constraints, feasible);
        state.write(SCORE, st);
        Status::success()
    }

    /// Per constraint, the matching pods in the node's domain times the constraint's weight,
    /// plus `maxSkew - 1` (which waters down small differences), rounded (upstream's score).
    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> i64 {
        let Some(st) = state.read::<State>(SCORE) else {
            return 0;
        };
        let mut total = 0.0;
        for ((c, counts), w) in st.constraints.iter().zip(&st.counts).zip(&st.weights) {
            let Some(value) = node.labels.get(&c.key) else {
                return IGNORED;
            };
            total += counts.get(value) as f64 * w + (c.max_skew - 1) as f64;
        }
        total.round() as i64
    }

    /// Fewer matching pods is better: the emptiest domain gets [`MAX_NODE_SCORE`]; a node
    /// without the constraints' keys gets 0.
    fn normalize_score(&self, _: &CycleState, scores: &mut [i64]) {
        let counted = || scores.iter().copied().filter(|s| *s != IGNORED);
        let max = counted().max().unwrap_or(0);
        let min = counted().min().unwrap_or(0);
        for s in scores.iter_mut() {
            *s = if *s == IGNORED {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn spread(skew: i32, when: &str) -> serde_json::Value {
        json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": "zone", "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}}]})
    }

    /// Zone a: 2 web pods, zone b: 1, zone c: 0; `nozone` has no zone.
    fn web_in_zones() -> Snapshot {
        let web = |n: &str| pod(n, json!({"app": "web"}), json!({}));
        snapshot(
            zone_nodes(),
            vec![("a1", web("w1")), ("a1", web("w2")), ("b1", web("w3"))],
        )
    }

    #[test]
    fn filter_table() {
        let snap = web_in_zones();
        let cases = vec![
            (
                "skew 1",
                json!({"app": "web"}),
                spread(1, "DoNotSchedule"),
                vec!["c1"],
            ),
            (
                "skew 2",
                json!({"app": "web"}),
                spread(2, "DoNotSchedule"),
                vec!["b1", "c1"],
            ),
            (
                "not self-matching",
                json!({"app": "other"}),
                spread(1, "DoNotSchedule"),
                vec!["b1", "c1"],
            ),
            (
                "soft constraint does not filter",
                json!({"app": "web"}),
                spread(1, "ScheduleAnyway"),
                vec!["a1", "b1", "c1", "nozone"],
            ),
        ];
        for (name, labels, spec, want) in cases {
            assert_eq!(
                passing(&PodTopologySpread, &pod("p", labels, spec), &snap),
                want,
                "{name}"
            );
        }
        let s = filter_all(
            &PodTopologySpread,
            &pod("p", json!({"app": "web"}), spread(1, "DoNotSchedule")),
            &snap,
        );
        assert_eq!(s[3].1.reasons, vec![MISSING_LABEL]);
        assert_eq!(s[0].1.reasons, vec![REASON]);
        let soft = scores(
            &PodTopologySpread,
            &pod("p", json!({"app": "web"}), spread(1, "ScheduleAnyway")),
            &snap,
        );
        assert!(soft[2].1 > soft[1].1 && soft[1].1 > soft[0].1, "{soft:?}");
        // A node without the key is not measured (upstream's ignored nodes): the lowest score,
        // and it does not stretch the others' range.
        assert_eq!(soft[3], ("nozone".into(), 0), "{soft:?}");
    }

    /// Upstream's soft score: matching pods in the domain × ln(domains + 2) + maxSkew − 1,
    /// rounded, then fewer-is-better scaled against the highest; a node without the key is 0.
    #[test]
    fn soft_scores_weigh_counts_by_the_number_of_domains() {
        let snap = web_in_zones();
        // Three zones: each pod weighs ln 5 ≈ 1.61.
        let cases = [
            // Raw a round(3.22) = 3, b round(1.61) = 2, c 0.
            (1, vec![0, 33, 100, 0]),
            // Raw a round(5.22) = 5, b round(3.61) = 4, c 2.
            (3, vec![40, 60, 100, 0]),
        ];
        for (skew, want) in cases {
            let got: Vec<i64> = scores(
                &PodTopologySpread,
                &pod("p", json!({"app": "web"}), spread(skew, "ScheduleAnyway")),
                &snap,
            )
            .into_iter()
            .map(|(_, s)| s)
            .collect();
            assert_eq!(got, want, "maxSkew {skew}");
        }
    }

    /// The index's counts equal the scan's wherever the index is used, and it is not used
    /// where some nodes are not eligible.
    #[test]
    fn index_and_scan_agree() {
        let p = |name: &str, labels: serde_json::Value, ns: &str| {
            let mut p = pod(name, labels, json!({}));
            p.namespace = ns.into();
            p
        };
        let snap = snapshot(
            vec![
                node(
                    "a1",
                    json!({"zone": "a", "host": "a1", "disk": "ssd"}),
                    json!({}),
                ),
                node("a2", json!({"zone": "a", "host": "a2"}), json!({})),
                node("b1", json!({"zone": "b", "host": "b1"}), json!({})),
                node("c1", json!({"zone": "c", "host": "c1"}), json!({})),
                node("nozone", json!({"host": "nozone"}), json!({})),
            ],
            vec![
                ("a1", p("w1", json!({"app": "web", "tier": "1"}), "default")),
                ("a1", p("w2", json!({"app": "web"}), "default")),
                ("a2", p("w3", json!({"app": "web", "tier": "1"}), "default")),
                ("b1", p("d1", json!({"app": "db"}), "default")),
                ("nozone", p("w4", json!({"app": "web"}), "default")),
                ("c1", p("w5", json!({"app": "web"}), "other")),
            ],
        );
        let constraint = |key: &str, selector: serde_json::Value| {
            json!({"maxSkew": 1, "topologyKey": key, "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": selector, "minDomains": 2})
        };
        let web = json!({"matchLabels": {"app": "web"}});
        let cases = vec![
            (
                "one zone constraint",
                json!({"topologySpreadConstraints": [constraint("zone", web.clone())]}),
                true,
            ),
            (
                "two requirements",
                json!({"topologySpreadConstraints": [constraint("zone", json!({"matchLabels": {"app": "web", "tier": "1"}}))]}),
                true,
            ),
            (
                "negative selector",
                json!({"topologySpreadConstraints": [constraint("zone",
                json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["db"]}]}))]}),
                true,
            ),
            (
                "same key twice",
                json!({"topologySpreadConstraints": [constraint("zone", web.clone()),
                constraint("zone", json!({"matchLabels": {"app": "db"}}))]}),
                true,
            ),
            (
                "keys every node has",
                json!({"topologySpreadConstraints": [constraint("host", web.clone()),
                constraint("host", json!({}))]}),
                true,
            ),
            (
                "a key some nodes lack",
                json!({"topologySpreadConstraints": [constraint("zone", web.clone()),
                constraint("host", web.clone())]}),
                false,
            ),
            (
                "node selector",
                json!({"nodeSelector": {"disk": "ssd"},
                "topologySpreadConstraints": [constraint("zone", web.clone())]}),
                false,
            ),
            (
                "required node affinity",
                json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
                "topologySpreadConstraints": [constraint("zone", web.clone())]}),
                false,
            ),
        ];
        let all: Vec<&NodeInfo> = snap.nodes.iter().collect();
        for (name, spec, indexed) in cases {
            let pod = pod("p", json!({"app": "web"}), spec);
            let cs = constraints(&pod, true);
            let scan = count(&pod, &cs, &all);
            match count_indexed(&pod, &cs, &snap) {
                Some(got) => {
                    assert!(indexed, "{name}: indexed");
                    assert_eq!(got, scan, "{name}");
                }
                None => assert!(!indexed, "{name}: not indexed"),
            }
        }
    }
}
