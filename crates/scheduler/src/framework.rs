//! The plugin framework: Kubernetes' extension points as one trait with default methods, the
//! [`Status`] a plugin answers with, and [`CycleState`], what a plugin computes once per pod
//! (PreFilter, PreScore) and reads per node (Filter, Score).
//!
//! "Unschedulable" is a [`Status`] value, never an error: errors are for what went wrong
//! (an API call failed), not for what the cluster cannot offer.

use std::any::Any;
use std::sync::Arc;

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

/// One reason a node does not fit, as shown to users. Filter may reject every node of a
/// decision, so the common reasons are constants (`Static`) and a node's taint reasons are built
/// once per node and shared (`Shared`): rejecting a node allocates nothing. Rarer reasons that
/// name something (a claim, an extended resource) are built (`Owned`).
#[derive(Debug, Clone)]
pub enum Reason {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl Reason {
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Static(s) => s,
            Reason::Shared(s) => s,
            Reason::Owned(s) => s,
        }
    }
}

/// Equal text is the same reason, however it is held.
impl PartialEq for Reason {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Reason {}

impl From<&'static str> for Reason {
    fn from(s: &'static str) -> Self {
        Reason::Static(s)
    }
}

impl From<String> for Reason {
    fn from(s: String) -> Self {
        Reason::Owned(s)
    }
}

impl From<Arc<str>> for Reason {
    fn from(s: Arc<str>) -> Self {
        Reason::Shared(s)
    }
}

/// A status's reasons. Filter runs on up to every node per decision and most rejections give
/// one or two reasons, so those are kept inline: a `Vec` would allocate once per rejected node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reasons {
    inline: [Option<Reason>; 2],
    more: Vec<Reason>,
}

impl Reasons {
    /// One reason.
    pub fn one(reason: impl Into<Reason>) -> Self {
        Reasons {
            inline: [Some(reason.into()), None],
            more: Vec::new(),
        }
    }

    pub fn push(&mut self, reason: impl Into<Reason>) {
        let reason = reason.into();
        match self.inline.iter_mut().find(|r| r.is_none()) {
            Some(slot) => *slot = Some(reason),
            None => self.more.push(reason),
        }
    }

    /// The reasons in the order they were given.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.inline
            .iter()
            .flatten()
            .chain(&self.more)
            .map(Reason::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.inline[0].is_none()
    }

    /// The reasons joined by `sep`.
    pub fn join(&self, sep: &str) -> String {
        self.iter().collect::<Vec<_>>().join(sep)
    }
}

impl PartialEq<Vec<&str>> for Reasons {
    fn eq(&self, other: &Vec<&str>) -> bool {
        self.iter().eq(other.iter().copied())
    }
}

/// A plugin's answer: a code, the reasons shown to users, and who said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Reasons,
    pub plugin: &'static str,
}

impl Status {
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Reasons::default(),
            plugin: "",
        }
    }

    pub fn skip() -> Self {
        Status {
            code: Code::Skip,
            reasons: Reasons::default(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<Reason>) -> Self {
        Status {
            code,
            reasons: Reasons::one(reason),
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<Reason>) -> Self {
        Status::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<Reason>) -> Self {
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

/// What a plugin keeps in [`CycleState`]: any value that can be cloned, so preemption's dry run
/// can change a copy per candidate node (see [`Plugin::remove_pod`]).
pub trait StateData: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn StateData>;
}

impl<T: Any + Clone + Send + Sync> StateData for T {
    fn clone_box(&self) -> Box<dyn StateData> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn StateData> {
    fn clone(&self) -> Self {
        (**self).clone_box()
    }
}

/// Per-pod scratch space: each plugin stores what its PreFilter/PreScore computed under its
/// name, and reads it back for every node. A handful of entries, read once per plugin per node
/// visited: a list searched by name is cheaper there than hashing the name each time.
#[derive(Default, Clone)]
pub struct CycleState {
    data: Vec<(&'static str, Box<dyn StateData>)>,
    /// Plugins whose PreFilter said Skip: their Filter is not run.
    pub(crate) skip_filter: Vec<&'static str>,
    pub(crate) skip_score: Vec<&'static str>,
}

impl CycleState {
    pub fn write<T: StateData>(&mut self, key: &'static str, value: T) {
        let value: Box<dyn StateData> = Box::new(value);
        match self.data.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.data.push((key, value)),
        }
    }

    pub fn read<T: Any>(&self, key: &'static str) -> Option<&T> {
        self.data
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| (&**v as &dyn Any).downcast_ref())
    }

    pub fn read_mut<T: Any>(&mut self, key: &'static str) -> Option<&mut T> {
        self.data
            .iter_mut()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| (&mut **v as &mut dyn Any).downcast_mut())
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

    /// Preemption's dry run took `victim` off `node` (upstream's PreFilterExtensions
    /// `RemovePod`): a plugin whose PreFilter counted pods across nodes brings `state` up to
    /// date, so its Filter sees the cluster without the victim.
    fn remove_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _victim: &PodInfo,
        _node: &NodeInfo,
    ) {
    }

    /// The dry run put `victim` back on `node` (`AddPod`): undoes [`Plugin::remove_pod`].
    fn add_pod(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _victim: &PodInfo,
        _node: &NodeInfo,
    ) {
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
    fn reasons_keep_order_past_the_inline_ones() {
        let mut r = Reasons::default();
        assert!(r.is_empty());
        r.push("a");
        r.push(String::from("b"));
        r.push("c");
        assert!(!r.is_empty());
        assert_eq!(r, vec!["a", "b", "c"]);
        let shared: Arc<str> = Arc::from("d");
        r.push(shared);
        assert_eq!(r, vec!["a", "b", "c", "d"]);
        assert_eq!(Reasons::one(String::from("x")), Reasons::one("x"));
        assert_eq!(r.join(", "), "a, b, c, d");
        assert_eq!(Reasons::one("x"), vec!["x"]);
        assert_ne!(Reasons::one("x"), vec!["x", "y"]);
    }

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
