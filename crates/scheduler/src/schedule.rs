//! One scheduling decision, pure: PreFilter, Filter over (a sample of) the nodes, PreScore,
//! Score, NormalizeScore and weights, then the best node (ties broken at random). When no node
//! fits, a [`FitError`] records why per node, for the `FailedScheduling` message.
//!
//! A decision may visit every node to find the feasible ones, so rejecting a node must be cheap:
//! its status is kept by the node's position (no name copied, nothing hashed) in a buffer the
//! [`Algorithm`] reuses, and the common reasons are constants (`framework::Reason`). The reasons
//! are only counted into text when the pod fits nowhere.

use std::collections::BTreeMap;

use crate::config::{Enabled, Profile};
use crate::framework::{Code, CycleState, Point, Status};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Why no node fits a pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    /// Per node a Filter rejected: its position in the snapshot's `nodes` (the snapshot the
    /// decision ran over) and the first failing Filter's status, in the order visited.
    pub node_statuses: Vec<(usize, Status)>,
    /// Set when a PreFilter rejected the pod outright (the same status then holds for every
    /// node, and `node_statuses` is empty).
    pub pre_filter: Option<Status>,
}

/// A pod fits no node: everything `FailedScheduling` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    pub num_nodes: usize,
    pub diagnosis: Diagnosis,
    /// What PostFilter (preemption) said, e.g. `preemption: 0/3 nodes are available: …`.
    pub post_filter: Option<String>,
}

/// `3 Insufficient cpu, 1 node(s) had …`: the count of each reason, sorted as text, as upstream.
pub fn reason_histogram<'a>(statuses: impl Iterator<Item = &'a Status>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for s in statuses {
        for r in s.reasons.iter() {
            *counts.entry(r).or_default() += 1;
        }
    }
    let mut lines: Vec<String> = counts
        .into_iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    lines.sort();
    lines.join(", ")
}

impl FitError {
    /// Upstream's message: `0/N nodes are available: <reasons>.` then the PostFilter's message.
    pub fn message(&self) -> String {
        let mut msg = format!("0/{} nodes are available:", self.num_nodes);
        match &self.diagnosis.pre_filter {
            Some(pre) => msg.push_str(&format!(" {}.", pre.reasons.join(", "))),
            None => msg.push_str(&format!(
                " {}.",
                reason_histogram(self.diagnosis.node_statuses.iter().map(|(_, s)| s))
            )),
        }
        if let Some(post) = &self.post_filter {
            msg.push_str(&format!(" {post}."));
        }
        msg
    }
}

/// A successful decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub node: String,
    /// Nodes filtered and found feasible (for logs and benchmarks).
    pub evaluated: usize,
    pub feasible: usize,
}

/// How many feasible nodes to find before scoring, by upstream's adaptive rule: all of a small
/// cluster, then a percentage falling from 50% (at 100 nodes) to 5%, never fewer than 100.
pub fn nodes_to_find(total: usize, percentage: u32) -> usize {
    const MIN: usize = 100;
    if total < MIN || percentage >= 100 {
        return total;
    }
    let pct = if percentage == 0 {
        (50 - (total / 125) as i64).max(5) as usize
    } else {
        percentage as usize
    };
    (total * pct / 100).max(MIN).min(total)
}

/// The scheduling algorithm with its small state: where the next search starts (so nodes are
/// sampled round-robin), a random source for ties, and the buffer rejected nodes' statuses go
/// to (kept between decisions so a decision that succeeds allocates none).
#[derive(Debug)]
pub struct Algorithm {
    next_start: usize,
    rng: u64,
    rejected: Vec<(usize, Status)>,
}

impl Default for Algorithm {
    fn default() -> Self {
        Algorithm {
            next_start: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            rejected: Vec::new(),
        }
    }
}

fn at(e: &Enabled, p: Point) -> bool {
    e.points.contains(&p)
}

/// Runs PreFilter; `Err` is the rejecting status.
pub fn run_pre_filter(
    profile: &Profile,
    state: &mut CycleState,
    pod: &PodInfo,
    snap: &Snapshot,
) -> Result<(), Status> {
    for e in profile.plugins.iter().filter(|e| at(e, Point::PreFilter)) {
        let s = e.plugin.pre_filter(state, pod, snap);
        match s.code {
            Code::Success => {}
            Code::Skip => state.skip_filter.push(e.plugin.name()),
            _ => return Err(s.by(e.plugin.name())),
        }
    }
    Ok(())
}

/// Runs the Filters on one node as upstream's `RunFilterPluginsWithNominatedPods`: when pods
/// of at least this pod's priority are nominated to the node, the node must fit with them on it
/// (their room is reserved) and also without them (they may not come). With them, the
/// PreFilter states that count pods across nodes (anti-affinity, spread) count them too
/// (upstream's `AddPod` extensions on a copy of the state).
pub fn run_filters_with_nominated(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    snap: &Snapshot,
) -> Status {
    let nominated = snap.nominated_for(&node.name, pod);
    if nominated.is_empty() {
        return run_filters(profile, state, pod, node);
    }
    let mut with = node.clone();
    let mut with_state = state.clone();
    for p in nominated {
        with.add_pod(p.clone());
        for e in profile.plugins.iter().filter(|e| at(e, Point::PreFilter)) {
            e.plugin.add_pod(&mut with_state, pod, &p, &with);
        }
    }
    let s = run_filters(profile, &with_state, pod, &with);
    if !s.passes() {
        return s;
    }
    run_filters(profile, state, pod, node)
}

/// Runs the Filters on one node and returns the first failure (or success).
pub fn run_filters(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Status {
    for e in profile.plugins.iter().filter(|e| at(e, Point::Filter)) {
        if state.skip_filter.contains(&e.plugin.name()) {
            continue;
        }
        let s = e.plugin.filter(state, pod, node);
        if !s.passes() {
            return s.by(e.plugin.name());
        }
    }
    Status::success()
}

impl Algorithm {
    fn random(&mut self) -> u64 {
        // xorshift64: ties only need to be unbiased, not unpredictable.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Decides where `pod` goes, or why it cannot go anywhere.
    pub fn schedule(
        &mut self,
        profile: &Profile,
        percentage: u32,
        snap: &Snapshot,
        pod: &PodInfo,
    ) -> Result<Placement, Box<FitError>> {
        let total = snap.nodes.len();
        let fail = |diagnosis| {
            Box::new(FitError {
                num_nodes: total,
                diagnosis,
                post_filter: None,
            })
        };
        if total == 0 {
            return Err(fail(Diagnosis::default()));
        }
        let mut state = CycleState::default();
        if let Err(s) = run_pre_filter(profile, &mut state, pod, snap) {
            return Err(fail(Diagnosis {
                node_statuses: Vec::new(),
                pre_filter: Some(s),
            }));
        }
        let want = nodes_to_find(total, percentage);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(total));
        self.rejected.clear();
        let start = self.next_start % total;
        let mut visited = 0;
        while visited < total && feasible.len() < want {
            let i = (start + visited) % total;
            let node = &snap.nodes[i];
            visited += 1;
            let s = run_filters_with_nominated(profile, &state, pod, node, snap);
            if s.passes() {
                feasible.push(node);
            } else {
                self.rejected.push((i, s));
            }
        }
        self.next_start = (start + visited) % total;
        if feasible.is_empty() {
            return Err(fail(Diagnosis {
                node_statuses: std::mem::take(&mut self.rejected),
                pre_filter: None,
            }));
        }
        // Statuses hold no allocation in the common case; dropping them now keeps the buffer's
        // capacity for the next decision.
        self.rejected.clear();
        let evaluated = visited;
        if feasible.len() == 1 {
            return Ok(Placement {
                node: feasible[0].name.clone(),
                evaluated,
                feasible: 1,
            });
        }
        let totals = self.score(profile, &mut state, pod, snap, &feasible);
        let best = totals.iter().copied().max().unwrap_or(0);
        // Reservoir sampling over the best nodes: each tie equally likely.
        let (mut chosen, mut seen) = (0, 0u64);
        for (i, t) in totals.iter().enumerate() {
            if *t == best {
                seen += 1;
                if self.random().is_multiple_of(seen) {
                    chosen = i;
                }
            }
        }
        Ok(Placement {
            node: feasible[chosen].name.clone(),
            evaluated,
            feasible: feasible.len(),
        })
    }

    /// Weighted sum of normalized scores, one per feasible node.
    fn score(
        &self,
        profile: &Profile,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        feasible: &[&NodeInfo],
    ) -> Vec<i64> {
        let mut totals = vec![0i64; feasible.len()];
        let scorers: Vec<&Enabled> = profile
            .plugins
            .iter()
            .filter(|e| at(e, Point::Score) && e.weight > 0)
            .collect();
        for e in &scorers {
            if at(e, Point::PreScore)
                && e.plugin.pre_score(state, pod, snap, feasible).code == Code::Skip
            {
                state.skip_score.push(e.plugin.name());
            }
        }
        let mut scores = vec![0i64; feasible.len()];
        for e in scorers {
            if state.skip_score.contains(&e.plugin.name()) {
                continue;
            }
            for (s, n) in scores.iter_mut().zip(feasible) {
                *s = e.plugin.score(state, pod, n);
            }
            e.plugin.normalize_score(state, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s * e.weight;
            }
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn nodes_to_find_table() {
        for (total, pct, want) in [
            (50, 0, 50),
            (100, 0, 100),
            (1000, 0, 420),
            (5000, 0, 500),
            (5000, 10, 500),
            (200, 0, 100),
            (300, 100, 300),
        ] {
            assert_eq!(nodes_to_find(total, pct), want, "{total} {pct}");
        }
    }

    #[test]
    fn fit_error_message_counts_reasons() {
        let cp = json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        let snap = snapshot(
            vec![
                node("cp", json!({}), cp),
                node("w1", json!({}), json!({})),
                node("w2", json!({}), json!({})),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "8"}}}]}),
        );
        let config = Config::default();
        let mut fit = Algorithm::default()
            .schedule(&config.profiles[0], 0, &snap, &p)
            .expect_err("unschedulable");
        assert_eq!(
            fit.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu."
        );
        // Several reasons on one node (more than a status keeps inline), one constant and
        // some built: each counted, the text unchanged.
        let greedy = pod(
            "g",
            json!({}),
            json!({"containers": [{"name": "c", "resources": {"requests":
                {"cpu": "8", "memory": "16Gi", "example.com/gpu": "1"}}}]}),
        );
        let greedy_fit = Algorithm::default()
            .schedule(&config.profiles[0], 0, &snap, &greedy)
            .expect_err("unschedulable");
        assert_eq!(
            greedy_fit.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, 2 Insufficient cpu, 2 Insufficient example.com/gpu, 2 Insufficient memory."
        );
        fit.post_filter = Some("preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod".into());
        assert!(fit.message().ends_with("2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."));
    }

    #[test]
    fn picks_the_best_node() {
        let snap = snapshot(
            vec![
                node("busy", json!({"disk": "ssd"}), json!({})),
                node("idle", json!({"disk": "ssd"}), json!({})),
                node("hdd", json!({}), json!({})),
            ],
            vec![(
                "busy",
                pod(
                    "x",
                    json!({}),
                    json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3", "memory": "6Gi"}}}]}),
                ),
            )],
        );
        let config = Config::default();
        let p = pod("p", json!({}), json!({"nodeSelector": {"disk": "ssd"}}));
        let mut alg = Algorithm::default();
        for _ in 0..5 {
            assert_eq!(
                alg.schedule(&config.profiles[0], 0, &snap, &p)
                    .expect("placed")
                    .node,
                "idle"
            );
        }
        let missing_pvc = pod(
            "v",
            json!({}),
            json!({"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "gone"}}]}),
        );
        let e = alg
            .schedule(&config.profiles[0], 0, &snap, &missing_pvc)
            .expect_err("no pvc");
        assert_eq!(
            e.message(),
            "0/3 nodes are available: persistentvolumeclaim \"gone\" not found."
        );
    }

    #[test]
    fn nominated_pods_count_in_anti_affinity_and_spread() {
        let host = |n: &str| node(n, json!({"kubernetes.io/hostname": n}), json!({}));
        // `b` has no room for another CPU: only `a` is left, where `web` (priority 100) is
        // nominated.
        let hog = pod(
            "hog",
            json!({}),
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "4"}}}]}),
        );
        let mut snap = snapshot(vec![host("a"), host("b")], vec![("b", hog)]);
        let web = pod("web", json!({"app": "web"}), json!({"priority": 100}));
        snap.nominate("a", std::sync::Arc::new(web));
        let one_cpu =
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]});
        let away_from_web = json!({"affinity": {"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [{
                "labelSelector": {"matchLabels": {"app": "web"}},
                "topologyKey": "kubernetes.io/hostname"}]}}});
        let spread_web = json!({"topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}}]});
        let config = Config::default();
        let profile = &config.profiles[0];
        let mut alg = Algorithm::default();
        // (pod, priority, spec, where it goes or None when it fits nowhere)
        let cases = [
            // The nominated pod counts for pods of at most its priority...
            ("anti-low", 10, away_from_web.clone(), None),
            ("spread-low", 10, spread_web.clone(), None),
            // ...not for higher ones (they may preempt it in turn).
            ("anti-high", 1000, away_from_web, Some("a")),
            ("spread-high", 1000, spread_web, Some("a")),
        ];
        for (name, prio, extra, want) in cases {
            let mut spec = one_cpu.clone();
            crate::plugins::testing::merge(&mut spec, extra);
            spec["priority"] = json!(prio);
            let labels = if name.starts_with("spread") {
                json!({"app": "web"})
            } else {
                json!({})
            };
            let got = alg
                .schedule(profile, 0, &snap, &pod(name, labels, spec))
                .ok()
                .map(|p| p.node);
            assert_eq!(got.as_deref(), want, "{name}");
        }
    }

    #[test]
    fn nominated_pods_hold_their_room_against_lower_priorities() {
        let cpu = |n: &str, prio: i32| {
            pod(
                n,
                json!({}),
                json!({"priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}}}]}),
            )
        };
        let mut snap = snapshot(
            vec![
                node("a", json!({}), json!({})),
                node("b", json!({}), json!({})),
            ],
            vec![("b", cpu("resident", 0))],
        );
        // A preemptor of priority 100 was nominated to `a` (4 CPUs, 3 promised).
        snap.nominate("a", std::sync::Arc::new(cpu("preemptor", 100)));
        let config = Config::default();
        let profile = &config.profiles[0];
        let mut alg = Algorithm::default();
        // (pod, priority, where it goes or None when it fits nowhere)
        let cases = [
            ("low", 10, None),
            ("equal", 100, None),
            ("higher", 1000, Some("a")),
        ];
        for (name, prio, want) in cases {
            let got = alg
                .schedule(profile, 0, &snap, &cpu(name, prio))
                .ok()
                .map(|p| p.node);
            assert_eq!(got.as_deref(), want, "{name}");
        }
        // The preemptor itself is not held back by its own nomination.
        let own = alg.schedule(profile, 0, &snap, &cpu("preemptor", 100));
        assert_eq!(own.map(|p| p.node).ok().as_deref(), Some("a"));
        // Once the nomination is gone, the room is free again.
        snap.clear_nomination("default/preemptor");
        let low = alg.schedule(profile, 0, &snap, &cpu("low", 10));
        assert_eq!(low.map(|p| p.node).ok().as_deref(), Some("a"));
    }
}
