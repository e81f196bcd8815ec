//! The plugin framework: Kubernetes' extension points as one trait with default methods, the
//! [`Status`] a plugin answers with, and [`CycleState`], what a plugin computes once per pod
//! (PreFilter, PreScore) and reads per node (Filter, Score).
//!
//! "Unschedulable" is a [`Status`] value, never an error: errors are for what went wrong
//! (an API call failed), not for what the cluster cannot offer.

use std::any::Any;
use std::collections::HashMap;

use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

/// Highest score a plugin gives a node (after normalization).
pub const MAX_NODE_SCORE: i64 = 100;

/// The outcome class of a plugin call, as upstream's `framework.Code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    Success,
    /// The node does not fit now, but removing pods (preemption) might help.
    Unschedulable,
    /// The node does not fit, and preemption cannot change that.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (PreFilter, PreScore); its later points skip it.
    Skip,
    /// Something failed that is not about fit.
    Error,
}

/// A plugin's answer: a code, the reasons shown to users, and who said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<String>,
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Whether the pod may go on (success or skip).
    pub fn passes(&self) -> bool {
        matches!(self.code, Code::Success | Code::Skip)
    }

    pub(crate) fn by(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }
}

/// Per-pod scratch space: each plugin stores what its PreFilter/PreScore computed under its
/// name, and reads it back for every node.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
    /// Plugins whose PreFilter said Skip: their Filter is not run.
    pub(crate) skip_filter: Vec<&'static str>,
    pub(crate) skip_score: Vec<&'static str>,
}

impl CycleState {
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.data.insert(key, Box::new(value));
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref())
    }
}

/// The extension points, for configuration (`plugins.<point>` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Point {
    QueueSort,
    PreFilter,
    Filter,
    PostFilter,
    PreScore,
    Score,
    Reserve,
    Permit,
    PreBind,
    Bind,
}

impl Point {
    pub const ALL: [Point; 10] = [
        Point::QueueSort,
        Point::PreFilter,
        Point::Filter,
        Point::PostFilter,
        Point::PreScore,
        Point::Score,
        Point::Reserve,
        Point::Permit,
        Point::PreBind,
        Point::Bind,
    ];

    /// The key in KubeSchedulerConfiguration's `plugins`.
    pub fn config_key(self) -> &'static str {
        match self {
            Point::QueueSort => "queueSort",
            Point::PreFilter => "preFilter",
            Point::Filter => "filter",
            Point::PostFilter => "postFilter",
            Point::PreScore => "preScore",
            Point::Score => "score",
            Point::Reserve => "reserve",
            Point::Permit => "permit",
            Point::PreBind => "preBind",
            Point::Bind => "bind",
        }
    }
}

/// What a Permit plugin says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermitDecision {
    Allow,
    Reject(Status),
}

/// A scheduling plugin. Every method has a default that does nothing, and [`Plugin::points`]
/// says which ones the plugin implements, so the framework calls only those.
///
/// All methods are pure over the snapshot; binding, the only IO point, is done by the
/// scheduler loop for the DefaultBinder (see `scheduler.rs`).
pub trait Plugin: Send + Sync {
    /// The plugin's name in configuration files (`NodeResourcesFit`, …).
    fn name(&self) -> &'static str;

    /// The extension points the plugin implements.
    fn points(&self) -> &'static [Point];

    /// Once per pod before filtering; Skip turns this plugin's Filter off for the pod.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo, _snapshot: &Snapshot) -> Status {
        Status::success()
    }

    /// Whether the pod fits `node`.
    fn filter(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> Status {
        Status::success()
    }

    /// Once per pod before scoring, with the feasible nodes; Skip turns Score off.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
    ) -> Status {
        Status::success()
    }

    /// The node's raw score.
    fn score(&self, _state: &CycleState, _pod: &PodInfo, _node: &NodeInfo) -> i64 {
        0
    }

    /// Rescales raw scores (one per feasible node, in order) to 0..=[`MAX_NODE_SCORE`].
    fn normalize_score(&self, _state: &CycleState, _scores: &mut [i64]) {}

    /// After a node is chosen, before binding.
    fn reserve(&self, _state: &mut CycleState, _pod: &PodInfo, _node: &str) -> Status {
        Status::success()
    }

    /// Approves or rejects the placement.
    fn permit(&self, _state: &CycleState, _pod: &PodInfo, _node: &str) -> PermitDecision {
        PermitDecision::Allow
    }
}

/// Reverses scores so the lowest raw score gets [`MAX_NODE_SCORE`] (used by plugins that count
/// something bad, like untolerated PreferNoSchedule taints).
pub fn normalize_reverse(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if max == 0 {
            MAX_NODE_SCORE
        } else {
            MAX_NODE_SCORE - *s * MAX_NODE_SCORE / max
        };
    }
}

/// Scales scores so the highest becomes [`MAX_NODE_SCORE`] (scores are ≥ 0).
pub fn normalize_max(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max > 0 {
        for s in scores.iter_mut() {
            *s = *s * MAX_NODE_SCORE / max;
        }
    }
}

/// Maps scores from [min, max] onto 0..=[`MAX_NODE_SCORE`] (scores may be negative).
pub fn normalize_min_max(scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    let min = scores.iter().copied().min().unwrap_or(0);
    for s in scores.iter_mut() {
        *s = if max == min {
            0
        } else {
            (*s - min) * MAX_NODE_SCORE / (max - min)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizers() {
        type Case = (&'static str, fn(&mut [i64]), Vec<i64>, Vec<i64>);
        let cases: Vec<Case> = vec![
            (
                "reverse",
                normalize_reverse,
                vec![0, 1, 2],
                vec![100, 50, 0],
            ),
            (
                "reverse all zero",
                normalize_reverse,
                vec![0, 0],
                vec![100, 100],
            ),
            ("max", normalize_max, vec![0, 5, 10], vec![0, 50, 100]),
            ("max all zero", normalize_max, vec![0, 0], vec![0, 0]),
            (
                "min-max",
                normalize_min_max,
                vec![-10, 0, 10],
                vec![0, 50, 100],
            ),
            ("min-max equal", normalize_min_max, vec![3, 3], vec![0, 0]),
        ];
        for (name, f, mut input, want) in cases {
            f(&mut input);
            assert_eq!(input, want, "{name}");
        }
    }
}
