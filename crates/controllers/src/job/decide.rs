//! The Job decisions, after upstream's `job_controller`: which finished pods to record (the
//! `uncountedTerminatedPods` hand-off that makes counting survive crashes), whether the Job
//! failed (backoffLimit, activeDeadlineSeconds, a podFailurePolicy `FailJob` rule) or completed,
//! how many pods (or which completion indexes) to start, and the compressed index ranges of
//! `status.completedIndexes`. Pure; times are Unix seconds.

use std::collections::BTreeSet;

use k8s_openapi::api::batch::v1::PodFailurePolicy;
use k8s_openapi::api::core::v1::Pod;

/// Annotation and label: an Indexed Job pod's completion index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Finalizer on Job pods until the Job has counted them.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// The index of an Indexed Job's pod.
pub fn pod_index(pod: &Pod) -> Option<i32> {
    let a = pod.metadata.annotations.as_ref()?.get(COMPLETION_INDEX)?;
    a.parse().ok()
}

/// What a failed pod means under the Job's podFailurePolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureVerdict {
    /// Counts toward backoffLimit (no rule matched, or `Count`).
    Count,
    /// Does not count (`Ignore`).
    Ignore,
    /// Fails the Job at once (`FailJob`), with upstream's message.
    FailJob(String),
    /// Fails the pod's index for good (`FailIndex`, Indexed Jobs with `backoffLimitPerIndex`);
    /// counts toward the limits.
    FailIndex,
}

/// Evaluates the podFailurePolicy rules in order for a failed pod.
pub fn failure_verdict(policy: Option<&PodFailurePolicy>, pod: &Pod) -> FailureVerdict {
    let Some(policy) = policy else {
        return FailureVerdict::Count;
    };
    let status = pod.status.as_ref();
    let pod_name = format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default()
    );
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut matched: Option<String> = None;
        if let Some(req) = &rule.on_exit_codes {
            let statuses = status
                .and_then(|s| s.container_statuses.clone())
                .unwrap_or_default();
            for cs in statuses {
                if req.container_name.as_ref().is_some_and(|n| *n != cs.name) {
                    continue;
                }
                let Some(code) = cs
                    .state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| t.exit_code)
                else {
                    continue;
                };
                // Exit code 0 never matches (upstream: successful containers are ignored).
                if code == 0 {
                    continue;
                }
                let inside = req.values.contains(&code);
                if (req.operator == "In") == inside {
                    matched = Some(format!(
                        "Container {} for pod {pod_name} failed with exit code {code} matching {} rule at index {i}",
                        cs.name, rule.action
                    ));
                    break;
                }
            }
        }
        if let Some(patterns) = &rule.on_pod_conditions {
            let conds = status
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default();
            if let Some(c) = patterns.iter().find_map(|p| {
                conds.iter().find(|c| {
                    c.type_ == p.type_
                        && c.status == p.status.clone().unwrap_or_else(|| "True".into())
                })
            }) {
                matched = Some(format!(
                    "Pod {pod_name} has condition {} matching {} rule at index {i}",
                    c.type_, rule.action
                ));
            }
        }
        if let Some(message) = matched {
            return match rule.action.as_str() {
                "FailJob" => FailureVerdict::FailJob(message),
                "Ignore" => FailureVerdict::Ignore,
                "FailIndex" => FailureVerdict::FailIndex,
                _ => FailureVerdict::Count,
            };
        }
    }
    FailureVerdict::Count
}

/// What the Job's spec asks.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub completions: Option<i32>,
    pub parallelism: i32,
    pub backoff_limit: i32,
    pub indexed: bool,
    pub active_deadline: Option<i64>,
    pub suspended: bool,
    /// `backoffLimitPerIndex` (Indexed Jobs).
    pub backoff_limit_per_index: Option<i32>,
    /// `maxFailedIndexes` (with `backoffLimitPerIndex`).
    pub max_failed_indexes: Option<i32>,
}

/// Why a Job failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

/// Upstream's failure checks, in its order: a FailJob rule, the backoff limit, the deadline.
pub fn failure(
    spec: &Spec,
    failed: i32,
    fail_job: Option<&str>,
    started: Option<i64>,
    now: i64,
) -> Option<Failure> {
    if let Some(m) = fail_job {
        return Some(Failure {
            reason: "PodFailurePolicy",
            message: m.to_owned(),
        });
    }
    if failed > spec.backoff_limit {
        return Some(Failure {
            reason: "BackoffLimitExceeded",
            message: "Job has reached the specified backoff limit".into(),
        });
    }
    if let (Some(d), Some(s)) = (spec.active_deadline, started)
        && now - s >= d
    {
        return Some(Failure {
            reason: "DeadlineExceeded",
            message: "Job was active longer than specified deadline".into(),
        });
    }
    None
}

/// `podReplacementPolicy: Failed` (explicit, or the default when a `podFailurePolicy` is
/// set): a pod being deleted is replaced only once it has stopped.
pub fn replace_only_failed(spec: Option<&k8s_openapi::api::batch::v1::JobSpec>) -> bool {
    match spec.and_then(|s| s.pod_replacement_policy.as_deref()) {
        Some(p) => p == "Failed",
        None => spec.is_some_and(|s| s.pod_failure_policy.is_some()),
    }
}

/// Whether the Job has succeeded.
pub fn complete(spec: &Spec, succeeded: i32, completed: &BTreeSet<i32>, active: usize) -> bool {
    match (spec.indexed, spec.completions) {
        (true, Some(c)) => completed.len() >= usize::try_from(c).unwrap_or(0),
        (false, Some(c)) => succeeded >= c,
        // A work queue: done when one pod succeeded and none is running.
        (_, None) => succeeded > 0 && active == 0,
    }
}

/// How many pods to run now (non-indexed).
pub fn want_active(spec: &Spec, succeeded: i32) -> i32 {
    if spec.suspended {
        return 0;
    }
    match spec.completions {
        Some(c) => spec.parallelism.min(c - succeeded).max(0),
        None if succeeded > 0 => 0,
        None => spec.parallelism,
    }
}

/// The indexes to start now (Indexed): not completed, not running, not in `skip` (failed for
/// good or backing off), lowest first, up to parallelism.
pub fn indexes_to_start(
    spec: &Spec,
    completed: &BTreeSet<i32>,
    running: &BTreeSet<i32>,
    skip: &BTreeSet<i32>,
) -> Vec<i32> {
    if spec.suspended {
        return vec![];
    }
    let room = usize::try_from(spec.parallelism)
        .unwrap_or(0)
        .saturating_sub(running.len());
    (0..spec.completions.unwrap_or(0))
        .filter(|i| !completed.contains(i) && !running.contains(i) && !skip.contains(i))
        .take(room)
        .collect()
}

/// `1,3-5,7` from a set of indexes.
pub fn format_indexes(set: &BTreeSet<i32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut it = set.iter().copied().peekable();
    while let Some(start) = it.next() {
        let mut end = start;
        while it.peek() == Some(&(end + 1)) {
            end += 1;
            it.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out.join(",")
}

/// The set written by [`format_indexes`].
pub fn parse_indexes(s: &str) -> BTreeSet<i32> {
    let mut set = BTreeSet::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<i32>(), b.parse::<i32>()) {
                    set.extend(a..=b);
                }
            }
            None => {
                if let Ok(v) = part.parse() {
                    set.insert(v);
                }
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::pod;
    use k8s_openapi::api::batch::v1::{
        PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
    };
    use k8s_openapi::api::core::v1::{ContainerState, ContainerStateTerminated, ContainerStatus};

    fn spec(completions: Option<i32>, parallelism: i32) -> Spec {
        Spec {
            completions,
            parallelism,
            backoff_limit: 2,
            ..Default::default()
        }
    }

    #[test]
    fn active_and_completion() {
        assert_eq!(want_active(&spec(Some(5), 2), 0), 2);
        assert_eq!(want_active(&spec(Some(5), 2), 4), 1);
        assert_eq!(want_active(&spec(Some(5), 2), 5), 0);
        assert_eq!(want_active(&spec(None, 3), 0), 3);
        assert_eq!(want_active(&spec(None, 3), 1), 0);
        let mut s = spec(Some(2), 2);
        s.suspended = true;
        assert_eq!(want_active(&s, 0), 0);
        let none = BTreeSet::new();
        assert!(complete(&spec(Some(2), 1), 2, &none, 0));
        assert!(!complete(&spec(None, 2), 1, &none, 1));
        assert!(complete(&spec(None, 2), 1, &none, 0));
    }

    #[test]
    fn indexed_jobs_start_missing_indexes() {
        let mut s = spec(Some(5), 2);
        s.indexed = true;
        let done: BTreeSet<i32> = [0, 2].into();
        let running: BTreeSet<i32> = [1].into();
        assert_eq!(
            indexes_to_start(&s, &done, &running, &BTreeSet::new()),
            vec![3]
        );
        let skip: BTreeSet<i32> = [3].into();
        assert_eq!(indexes_to_start(&s, &done, &running, &skip), vec![4]);
        assert!(!complete(&s, 0, &done, 1));
        assert!(complete(&s, 0, &(0..5).collect(), 0));
    }

    #[test]
    fn failures_in_upstream_order() {
        let s = Spec {
            backoff_limit: 1,
            active_deadline: Some(10),
            ..spec(Some(1), 1)
        };
        assert_eq!(failure(&s, 1, None, Some(0), 5), None);
        assert_eq!(
            failure(&s, 2, None, Some(0), 5).map(|f| f.reason),
            Some("BackoffLimitExceeded")
        );
        assert_eq!(
            failure(&s, 0, None, Some(0), 10).map(|f| f.reason),
            Some("DeadlineExceeded")
        );
        assert_eq!(
            failure(&s, 2, Some("m"), Some(0), 5).map(|f| f.reason),
            Some("PodFailurePolicy")
        );
    }

    #[test]
    fn index_ranges() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format_indexes(&set), "0-2,4,6-7");
        assert_eq!(parse_indexes("0-2,4,6-7"), set);
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn pod_failure_policy_rules() {
        let mut p = pod("p", "a", 1);
        p.status.get_or_insert_default().container_statuses = Some(vec![ContainerStatus {
            name: "main".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 42,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let rule = |action: &str, op: &str, values: Vec<i32>| PodFailurePolicyRule {
            action: action.into(),
            on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                container_name: None,
                operator: op.into(),
                values,
            }),
            on_pod_conditions: None,
        };
        let policy = PodFailurePolicy {
            rules: vec![
                rule("Ignore", "In", vec![1]),
                rule("FailJob", "In", vec![42]),
            ],
        };
        assert_eq!(
            failure_verdict(Some(&policy), &p),
            FailureVerdict::FailJob("Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1".into())
        );
        let ignore = PodFailurePolicy {
            rules: vec![rule("Ignore", "NotIn", vec![1])],
        };
        assert_eq!(failure_verdict(Some(&ignore), &p), FailureVerdict::Ignore);
        let fail_index = PodFailurePolicy {
            rules: vec![rule("FailIndex", "In", vec![42])],
        };
        assert_eq!(
            failure_verdict(Some(&fail_index), &p),
            FailureVerdict::FailIndex
        );
        assert_eq!(failure_verdict(None, &p), FailureVerdict::Count);
    }

    #[test]
    fn replacement_policy_defaults_follow_the_failure_policy() {
        use k8s_openapi::api::batch::v1::{JobSpec, PodFailurePolicy};
        let with = |policy: Option<&str>, failure_policy: bool| JobSpec {
            pod_replacement_policy: policy.map(str::to_owned),
            pod_failure_policy: failure_policy.then(PodFailurePolicy::default),
            ..Default::default()
        };
        assert!(!replace_only_failed(None));
        assert!(!replace_only_failed(Some(&with(None, false))));
        assert!(replace_only_failed(Some(&with(None, true))));
        assert!(replace_only_failed(Some(&with(Some("Failed"), false))));
        assert!(!replace_only_failed(Some(&with(
            Some("TerminatingOrFailed"),
            true
        ))));
    }
}
