//! DefaultPreemption, pure: when no node fits, find the node where evicting lower-priority pods
//! makes room with the least harm — fewest PodDisruptionBudget violations, then the lowest
//! highest-victim priority, the smallest priority sum, the fewest victims. Borg's prod/non-prod:
//! production work evicts batch work, never the reverse.

use std::sync::Arc;

use rudder_machinery::label_selector::LabelSelector;

use crate::config::Profile;
use crate::framework::{Code, CycleState, Point};
use crate::schedule::{FitError, reason_histogram, run_filters_with_nominated, run_pre_filter};
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// A PodDisruptionBudget as preemption needs it.
#[derive(Debug, Clone)]
pub struct Budget {
    pub namespace: String,
    pub selector: LabelSelector,
    /// `status.disruptionsAllowed`.
    pub allowed: i32,
}

/// Where to preempt and whom.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub node: String,
    pub victims: Vec<Arc<PodInfo>>,
    pub pdb_violations: usize,
}

/// Why preemption did not find a candidate: the PostFilter message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoCandidate(pub String);

/// Whether the pod may preempt at all: not with `preemptionPolicy: Never`, and not while pods it
/// already evicted on its nominated node are still terminating (it waits for those instead).
pub fn eligible(pod: &PodInfo, snap: &Snapshot) -> Result<(), NoCandidate> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Err(NoCandidate(
            "preemption: not eligible due to preemptionPolicy=Never".into(),
        ));
    }
    let nominated = pod
        .pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    if let Some(node) = nominated.and_then(|n| snap.node(n))
        && node
            .pods
            .iter()
            .any(|p| p.terminating() && p.priority < pod.priority)
    {
        return Err(NoCandidate(
            "preemption: not eligible due to a terminating pod on the nominated node".into(),
        ));
    }
    Ok(())
}

fn violates(pod: &PodInfo, budgets: &mut [Budget]) -> bool {
    let mut violated = false;
    for b in budgets
        .iter_mut()
        .filter(|b| b.namespace == pod.namespace && b.selector.matches(&pod.labels))
    {
        b.allowed -= 1;
        if b.allowed < 0 {
            violated = true;
        }
    }
    violated
}

/// Finds the victims on one node, or `None` if even evicting every lower-priority pod does not
/// make the pod fit. Victims are reprieved greedily from the most important down, PDB-protected
/// pods first, so only the pods that must go go. Every fit check counts the pods nominated to
/// the node with at least the pod's priority as placed there (upstream's dry run runs the
/// filters with nominated pods): room already promised to one preemptor is not taken again by
/// the next. The victims leave PreFilter's state as well as the node (each plugin's
/// `remove_pod`/`add_pod` on a copy of `state`): anti-affinity and spread count pods across
/// nodes, and a victim that was the reason the pod did not fit must stop counting.
fn select_victims(
    profile: &Profile,
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
    snap: &Snapshot,
    budgets: &[Budget],
) -> Option<Candidate> {
    let fits = |state: &CycleState, trial: &NodeInfo| {
        run_filters_with_nominated(profile, state, pod, trial, snap).passes()
    };
    let mut trial = node.clone();
    let mut lower: Vec<Arc<PodInfo>> = node
        .pods
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    let mut state = state.clone();
    for p in &lower {
        trial.remove_pod(&p.namespace, &p.name);
        update_state(profile, &mut state, pod, p, node, false);
    }
    if !fits(&state, &trial) {
        return None;
    }
    lower.sort_by_key(|p| std::cmp::Reverse(p.priority));
    let mut scratch = budgets.to_vec();
    let (violating, fine): (Vec<_>, Vec<_>) =
        lower.into_iter().partition(|p| violates(p, &mut scratch));
    let mut victims = Vec::new();
    let mut pdb_violations = 0;
    for (group, is_violating) in [(violating, true), (fine, false)] {
        for p in group {
            trial.add_pod(p.clone());
            update_state(profile, &mut state, pod, &p, node, true);
            if !fits(&state, &trial) {
                trial.remove_pod(&p.namespace, &p.name);
                update_state(profile, &mut state, pod, &p, node, false);
                if is_violating {
                    pdb_violations += 1;
                }
                victims.push(p);
            }
        }
    }
    Some(Candidate {
        node: node.name.clone(),
        victims,
        pdb_violations,
    })
}

/// Tells the PreFilter plugins (those whose PreFilter did not skip) that `victim` left `node`
/// or came back.
fn update_state(
    profile: &Profile,
    state: &mut CycleState,
    pod: &PodInfo,
    victim: &PodInfo,
    node: &NodeInfo,
    back: bool,
) {
    for e in &profile.plugins {
        let name = e.plugin.name();
        if !e.points.contains(&Point::PreFilter) || state.skip_filter.contains(&name) {
            continue;
        }
        if back {
            e.plugin.add_pod(state, pod, victim, node);
        } else {
            e.plugin.remove_pod(state, pod, victim, node);
        }
    }
}

/// Orders candidates by upstream's rules; the first is the one to use.
fn better(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    let top = |c: &Candidate| {
        c.victims
            .iter()
            .map(|v| v.priority)
            .max()
            .unwrap_or(i32::MIN)
    };
    let sum = |c: &Candidate| {
        c.victims
            .iter()
            .map(|v| i64::from(v.priority) + i64::from(i32::MAX) + 1)
            .sum::<i64>()
    };
    a.pdb_violations
        .cmp(&b.pdb_violations)
        .then(top(a).cmp(&top(b)))
        .then(sum(a).cmp(&sum(b)))
        .then(a.victims.len().cmp(&b.victims.len()))
}

/// Runs preemption for a pod that fits nowhere (`fit` says why per node).
pub fn preempt(
    profile: &Profile,
    snap: &Snapshot,
    pod: &PodInfo,
    fit: &FitError,
    budgets: &[Budget],
) -> Result<Candidate, NoCandidate> {
    eligible(pod, snap)?;
    let mut state = CycleState::default();
    if run_pre_filter(profile, &mut state, pod, snap).is_err() {
        let msg = format!(
            "preemption: 0/{} nodes are available: {} {NOT_HELPFUL}",
            snap.nodes.len(),
            snap.nodes.len()
        );
        return Err(NoCandidate(msg));
    }
    let mut outcomes = Vec::new();
    let mut candidates = Vec::new();
    // Filter's codes by node position (the diagnosis keeps them in visiting order).
    let mut codes = vec![None; snap.nodes.len()];
    for (i, s) in &fit.diagnosis.node_statuses {
        if let Some(slot) = codes.get_mut(*i) {
            *slot = Some(s.code);
        }
    }
    for (node, code) in snap.nodes.iter().zip(codes) {
        let helpful = code.is_none_or(|c| c == Code::Unschedulable);
        if !helpful {
            outcomes.push(crate::framework::Status::unresolvable(NOT_HELPFUL));
            continue;
        }
        match select_victims(profile, &state, pod, node, snap, budgets) {
            Some(c) => candidates.push(c),
            None => outcomes.push(crate::framework::Status::unschedulable(NO_VICTIMS)),
        }
    }
    candidates.sort_by(better);
    candidates.into_iter().next().ok_or_else(|| {
        NoCandidate(format!(
            "preemption: 0/{} nodes are available: {}",
            snap.nodes.len(),
            reason_histogram(outcomes.iter())
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::plugins::testing::*;
    use crate::schedule::Algorithm;
    use serde_json::json;

    fn cpu(name: &str, millis: u32, priority: i32, labels: serde_json::Value) -> PodInfo {
        pod(
            name,
            labels,
            json!({"priority": priority, "containers": [{"name": "c", "resources": {"requests": {"cpu": format!("{millis}m")}}}]}),
        )
    }

    fn run(
        snap: &Snapshot,
        p: &PodInfo,
        budgets: &[Budget],
    ) -> Result<(String, Vec<String>), String> {
        let config = Config::default();
        let profile = &config.profiles[0];
        let fit = Algorithm::default()
            .schedule(profile, 0, snap, p)
            .expect_err("must not fit");
        preempt(profile, snap, p, &fit, budgets)
            .map(|c| {
                let mut v: Vec<String> = c.victims.iter().map(|v| v.name.clone()).collect();
                v.sort();
                (c.node, v)
            })
            .map_err(|e| e.0)
    }

    #[test]
    fn table() {
        let taint = json!({"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}});
        // n1: two low pods (1 + 2 CPUs) and one of priority 50; n2: one pod of priority 100 (3 CPUs).
        let snap = snapshot(
            vec![
                node("n1", json!({}), json!({})),
                node("n2", json!({}), json!({})),
                node("tainted", json!({}), taint),
            ],
            vec![
                ("n1", cpu("low-a", 1000, 0, json!({"app": "a"}))),
                ("n1", cpu("low-b", 2000, 0, json!({"app": "b"}))),
                ("n1", cpu("mid", 1000, 50, json!({}))),
                ("n2", cpu("high", 3000, 100, json!({}))),
            ],
        );
        let no_budgets: Vec<Budget> = vec![];
        let protect_b = vec![Budget {
            namespace: "default".into(),
            selector: LabelSelector::parse("app=b").expect("sel"),
            allowed: 0,
        }];
        type Case<'a> = (
            &'static str,
            PodInfo,
            &'a [Budget],
            Result<(String, Vec<String>), String>,
        );
        let cases: Vec<Case> = vec![
            ("evicts the fewest low pods", cpu("p", 2000, 1000, json!({})), &no_budgets, Ok(("n1".into(), vec!["low-b".into()]))),
            ("needs both low pods", cpu("p", 3000, 60, json!({})), &no_budgets, Ok(("n1".into(), vec!["low-a".into(), "low-b".into()]))),
            ("prefers lower victims over fewer", cpu("p", 3000, 1000, json!({})), &no_budgets, Ok(("n1".into(), vec!["low-a".into(), "low-b".into()]))),
            ("avoids PDB violations", cpu("p", 1500, 1000, json!({})), &protect_b, Ok(("n1".into(), vec!["low-a".into(), "mid".into()]))),
            ("nobody lower", cpu("p", 2000, 0, json!({})), &no_budgets,
                Err("preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod".into())),
            ("policy Never", pod("p", json!({}), json!({"priority": 1000, "preemptionPolicy": "Never", "containers": [{"name": "c", "resources": {"requests": {"cpu": "2"}}}]})),
                &no_budgets, Err("preemption: not eligible due to preemptionPolicy=Never".into())),
        ];
        for (name, p, budgets, want) in cases {
            assert_eq!(run(&snap, &p, budgets), want, "{name}");
        }
    }

    /// Victims leave PreFilter's cross-node counts too: a pod kept off a node by anti-affinity
    /// or topology spread preempts the pods that are the reason, and only as many as needed.
    #[test]
    fn victims_leave_affinity_and_spread_counts() {
        let host = |n: &str, zone: &str| {
            node(
                n,
                json!({"kubernetes.io/hostname": n, "zone": zone}),
                json!({}),
            )
        };
        let anti = |app: &str, key: &str| {
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}})
        };
        let with = |name: &str, prio: i32, labels: serde_json::Value, extra: serde_json::Value| {
            let mut spec = json!({"priority": prio, "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]});
            if let (Some(s), serde_json::Value::Object(e)) = (spec.as_object_mut(), extra) {
                s.extend(e);
            }
            pod(name, labels, spec)
        };
        let spread = |skew: i32| {
            json!({"topologySpreadConstraints": [{"maxSkew": skew, "topologyKey": "zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]})
        };
        // n2 is full with a pod nobody may evict, so n1 is the only candidate.
        let full = || {
            with(
                "top",
                2000,
                json!({}),
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "4"}}}]}),
            )
        };
        type Case = (
            &'static str,
            Vec<PodInfo>,
            PodInfo,
            Result<(String, Vec<String>), String>,
        );
        let cases: Vec<Case> = vec![
            ("own anti-affinity: the web pod goes",
                vec![with("web", 0, json!({"app": "web"}), json!({})), with("other", 0, json!({}), json!({}))],
                with("p", 1000, json!({}), json!({"affinity": anti("web", "kubernetes.io/hostname")})),
                Ok(("n1".into(), vec!["web".into()]))),
            ("existing anti-affinity: the pod that repels it goes",
                vec![with("guard", 0, json!({}), json!({"affinity": anti("p", "zone")})), with("other", 0, json!({}), json!({}))],
                with("p", 1000, json!({"app": "p"}), json!({})),
                Ok(("n1".into(), vec!["guard".into()]))),
            ("anti-affinity against a higher pod: nothing to do",
                vec![with("web", 2000, json!({"app": "web"}), json!({})), with("other", 0, json!({}), json!({}))],
                with("p", 1000, json!({}), json!({"affinity": anti("web", "kubernetes.io/hostname")})),
                Err("preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod".into())),
            ("spread, maxSkew 2: one of the two web pods goes",
                vec![with("w-high", 10, json!({"app": "web"}), json!({})), with("w-low", 0, json!({"app": "web"}), json!({}))],
                with("p", 1000, json!({"app": "web"}), spread(2)),
                Ok(("n1".into(), vec!["w-low".into()]))),
            ("spread, maxSkew 1: both go",
                vec![with("w-high", 10, json!({"app": "web"}), json!({})), with("w-low", 0, json!({"app": "web"}), json!({}))],
                with("p", 1000, json!({"app": "web"}), spread(1)),
                Ok(("n1".into(), vec!["w-high".into(), "w-low".into()]))),
        ];
        for (name, residents, p, want) in cases {
            let mut placed: Vec<(&str, PodInfo)> =
                residents.into_iter().map(|r| ("n1", r)).collect();
            placed.push(("n2", full()));
            let snap = snapshot(vec![host("n1", "a"), host("n2", "b")], placed);
            assert_eq!(run(&snap, &p, &[]), want, "{name}");
        }
    }

    /// Pods nominated to a node with at least the preemptor's priority hold their room in the
    /// dry run; those of lower priority do not.
    #[test]
    fn nominated_pods_hold_their_room() {
        // n1: 4 CPUs, one low pod of 2; n2: 4 CPUs, a pod of 3 at priority 2000 (no victims).
        let base = || {
            snapshot(
                vec![
                    node("n1", json!({}), json!({})),
                    node("n2", json!({}), json!({})),
                ],
                vec![
                    ("n1", cpu("low", 2000, 0, json!({}))),
                    ("n2", cpu("top", 3000, 2000, json!({}))),
                ],
            )
        };
        let no_budgets: Vec<Budget> = vec![];
        // (case, nominated to n1 as (name, millis, priority), preemptor (millis, priority), want)
        type Case = (
            &'static str,
            Vec<(&'static str, u32, i32)>,
            (u32, i32),
            Result<(String, Vec<String>), String>,
        );
        let cases: Vec<Case> = vec![
            ("nobody nominated: the low pod makes room", vec![], (3000, 1000),
                Ok(("n1".into(), vec!["low".into()]))),
            ("an equal nominee keeps its 2 CPUs: the low pod must go", vec![("a", 2000, 1000)], (2000, 1000),
                Ok(("n1".into(), vec!["low".into()]))),
            ("a higher nominee leaves too little even after evicting", vec![("a", 2000, 1500)], (3000, 1000),
                Err("preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod".into())),
            ("a lower nominee does not count", vec![("a", 2000, 500)], (3000, 1000),
                Ok(("n1".into(), vec!["low".into()]))),
            ("the preemptor's own nomination does not count against it", vec![("p", 3000, 1000)], (3000, 1000),
                Ok(("n1".into(), vec!["low".into()]))),
        ];
        for (name, nominees, (millis, priority), want) in cases {
            let mut snap = base();
            for (n, m, prio) in nominees {
                snap.nominate("n1", Arc::new(cpu(n, m, prio, json!({}))));
            }
            let p = cpu("p", millis, priority, json!({}));
            assert_eq!(run(&snap, &p, &no_budgets), want, "{name}");
        }
    }
}
