//! The Job decisions added by later upstream releases: the pod-failure back-off (10 s doubling
//! per failure since the last success, at most 6 minutes), `backoffLimitPerIndex` and
//! `maxFailedIndexes` for Indexed Jobs (per-index failure counts carried by the pods'
//! `batch.kubernetes.io/job-index-failure-count` annotation, `status.failedIndexes`), and
//! `successPolicy` rules. Pure; times are Unix seconds.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::SuccessPolicy;
use k8s_openapi::api::core::v1::Pod;

use super::decide::{Failure, parse_indexes};

/// Annotation: how many failures the pod's index had before the pod was created.
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
/// First back-off delay (upstream's DefaultJobPodFailureBackOff).
pub const BACKOFF_BASE_SECONDS: i64 = 10;
/// Longest back-off delay (upstream's MaxJobPodFailureBackOff).
pub const BACKOFF_MAX_SECONDS: i64 = 360;

/// The delay before a new pod after `failures` consecutive failures: none after none, then
/// 10 s, 20 s, 40 s, … capped at 6 minutes.
pub fn backoff_delay(failures: usize) -> i64 {
    if failures == 0 {
        return 0;
    }
    // 2^6 * 10 s already exceeds the cap; larger shifts would only overflow.
    let shift = u32::try_from(failures - 1).unwrap_or(u32::MAX).min(6);
    (BACKOFF_BASE_SECONDS << shift).min(BACKOFF_MAX_SECONDS)
}

/// When a finished pod finished: its containers' last `finishedAt`, else its last condition
/// change, else its creation.
pub fn finished_time(pod: &Pod) -> i64 {
    let status = pod.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0.as_second())
        .max();
    containers
        .or_else(|| {
            status
                .and_then(|s| s.conditions.as_deref())
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.as_second())
                .max()
        })
        .or_else(|| {
            pod.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_second())
        })
        .unwrap_or(0)
}

/// Seconds until a new pod may start, given the finish times of the pods that succeeded and
/// of those whose failure counts: only failures after the last success count.
pub fn backoff_remaining(succeeded: &[i64], failed: &[i64], now: i64) -> i64 {
    let last_success = succeeded.iter().copied().max();
    let after: Vec<i64> = failed
        .iter()
        .copied()
        .filter(|t| last_success.is_none_or(|s| *t > s))
        .collect();
    let Some(last_failure) = after.iter().copied().max() else {
        return 0;
    };
    (last_failure + backoff_delay(after.len()) - now).max(0)
}

/// The failure count a pod's index had when the pod was created.
pub fn index_failure_count(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_FAILURE_COUNT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One failed pod of an Indexed Job, as the per-index decisions see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedPod {
    /// Its completion index.
    pub index: i32,
    /// Its `job-index-failure-count` annotation.
    pub prior_failures: i32,
    /// Whether the failure counts (podFailurePolicy did not say `Ignore`).
    pub counts: bool,
    /// Whether a podFailurePolicy `FailIndex` rule matched.
    pub fail_index: bool,
    /// When it finished.
    pub finished: i64,
}

/// Per index: the failures so far and when the last one happened.
pub fn index_failures(failed: &[FailedPod]) -> BTreeMap<i32, (i32, i64)> {
    let mut out: BTreeMap<i32, (i32, i64)> = BTreeMap::new();
    for p in failed {
        let count = p.prior_failures + i32::from(p.counts);
        let e = out.entry(p.index).or_insert((0, 0));
        e.0 = e.0.max(count);
        e.1 = e.1.max(p.finished);
    }
    out
}

/// The failed indexes: those recorded before (`recorded`), those whose failures exceed
/// `limit`, and those a `FailIndex` rule failed.
pub fn failed_indexes(recorded: &str, failed: &[FailedPod], limit: i32) -> BTreeSet<i32> {
    let mut out = parse_indexes(recorded);
    out.extend(
        index_failures(failed)
            .into_iter()
            .filter(|(_, (count, _))| *count > limit)
            .map(|(i, _)| i),
    );
    out.extend(failed.iter().filter(|p| p.fail_index).map(|p| p.index));
    out
}

/// Indexes still backing off at `now`: failed before, not failed for good, and whose last
/// failure is more recent than the back-off for its failure count.
pub fn indexes_backing_off(
    failed: &[FailedPod],
    failed_for_good: &BTreeSet<i32>,
    now: i64,
) -> BTreeMap<i32, i64> {
    index_failures(failed)
        .into_iter()
        .filter(|(i, _)| !failed_for_good.contains(i))
        .filter_map(|(i, (count, last))| {
            let left = last + backoff_delay(usize::try_from(count).unwrap_or(0)) - now;
            (left > 0).then_some((i, left))
        })
        .collect()
}

/// Upstream's per-index verdicts: more failed indexes than `maxFailedIndexes`, or every index
/// finished with at least one failed.
pub fn index_failure(
    completions: i32,
    max_failed: Option<i32>,
    failed: &BTreeSet<i32>,
    succeeded: &BTreeSet<i32>,
) -> Option<Failure> {
    let total = i32::try_from(failed.len()).unwrap_or(i32::MAX);
    if max_failed.is_some_and(|m| total > m) {
        return Some(Failure {
            reason: "MaxFailedIndexesExceeded",
            message: "Job has exceeded the specified maximal number of failed indexes".into(),
        });
    }
    let finished = failed.union(succeeded).count();
    if total > 0 && finished >= usize::try_from(completions).unwrap_or(0) {
        return Some(Failure {
            reason: "FailedIndexes",
            message: "Job has failed indexes".into(),
        });
    }
    None
}

/// The first successPolicy rule the succeeded indexes satisfy: all of `succeededIndexes`,
/// at least `succeededCount` indexes, or at least `succeededCount` of `succeededIndexes`.
pub fn success_rule(policy: &SuccessPolicy, succeeded: &BTreeSet<i32>) -> Option<usize> {
    policy.rules.iter().position(|rule| {
        let among: Option<BTreeSet<i32>> = rule.succeeded_indexes.as_deref().map(parse_indexes);
        let hits = among
            .as_ref()
            .map_or(succeeded.len(), |set| set.intersection(succeeded).count());
        match (&among, rule.succeeded_count) {
            (_, Some(n)) => hits >= usize::try_from(n).unwrap_or(usize::MAX),
            (Some(set), None) => !set.is_empty() && hits == set.len(),
            (None, None) => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::SuccessPolicyRule;

    #[test]
    fn backoff_doubles_to_the_cap() {
        let delays: Vec<i64> = (0..10).map(backoff_delay).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 320, 360, 360, 360]);
        assert_eq!(backoff_delay(usize::MAX), 360);
    }

    #[test]
    fn backoff_counts_failures_after_the_last_success() {
        // (succeeded, failed, now, remaining)
        let cases: Vec<(&[i64], &[i64], i64, i64)> = vec![
            (&[], &[], 100, 0),
            (&[], &[100], 100, 10),
            (&[], &[100], 105, 5),
            (&[], &[100], 115, 0),
            (&[], &[90, 100], 100, 20),
            (&[], &[80, 90, 100], 130, 10),
            // A success resets the count; only the failure after it counts.
            (&[95], &[80, 90, 100], 100, 10),
            (&[101], &[80, 90, 100], 101, 0),
        ];
        for (ok, failed, now, want) in cases {
            assert_eq!(
                backoff_remaining(ok, failed, now),
                want,
                "{ok:?} {failed:?} {now}"
            );
        }
    }

    fn failed(index: i32, prior: i32, counts: bool, fail_index: bool, finished: i64) -> FailedPod {
        FailedPod {
            index,
            prior_failures: prior,
            counts,
            fail_index,
            finished,
        }
    }

    #[test]
    fn per_index_failures_and_back_off() {
        let pods = [
            failed(0, 0, true, false, 100),
            failed(0, 1, true, false, 130),
            failed(1, 0, true, false, 120),
            failed(2, 0, false, false, 125),
            failed(3, 0, true, true, 90),
        ];
        assert_eq!(
            index_failures(&pods),
            BTreeMap::from([(0, (2, 130)), (1, (1, 120)), (2, (0, 125)), (3, (1, 90))])
        );
        // Limit 1: index 0 failed twice; index 3 by a FailIndex rule; "5" was recorded.
        let gone = failed_indexes("5", &pods, 1);
        assert_eq!(gone, BTreeSet::from([0, 3, 5]));
        // Index 1 failed once at 120: 10 s of back-off. Index 2's failure was ignored.
        assert_eq!(
            indexes_backing_off(&pods, &gone, 125),
            BTreeMap::from([(1, 5)])
        );
        assert!(indexes_backing_off(&pods, &gone, 130).is_empty());
        // A higher limit keeps index 0 running, after 20 s.
        let gone = failed_indexes("", &pods, 2);
        assert_eq!(gone, BTreeSet::from([3]));
        assert_eq!(
            indexes_backing_off(&pods, &gone, 131),
            BTreeMap::from([(0, 19)])
        );
    }

    #[test]
    fn index_failure_verdicts() {
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        let reason =
            |c, m, f: &[i32], s: &[i32]| index_failure(c, m, &set(f), &set(s)).map(|f| f.reason);
        assert_eq!(reason(3, None, &[], &[0, 1, 2]), None);
        assert_eq!(reason(3, None, &[1], &[0]), None);
        assert_eq!(reason(3, None, &[1], &[0, 2]), Some("FailedIndexes"));
        assert_eq!(reason(3, Some(1), &[1], &[0]), None);
        assert_eq!(
            reason(3, Some(1), &[0, 1], &[]),
            Some("MaxFailedIndexesExceeded")
        );
        assert_eq!(
            reason(3, Some(0), &[2], &[0, 1]),
            Some("MaxFailedIndexesExceeded")
        );
    }

    #[test]
    fn success_policy_rules() {
        let rule = |indexes: Option<&str>, count: Option<i32>| SuccessPolicyRule {
            succeeded_indexes: indexes.map(str::to_owned),
            succeeded_count: count,
        };
        let policy = |rules| SuccessPolicy { rules };
        let set = |v: &[i32]| v.iter().copied().collect::<BTreeSet<i32>>();
        let cases: Vec<(SuccessPolicy, &[i32], Option<usize>)> = vec![
            (policy(vec![rule(Some("0"), None)]), &[1, 2], None),
            (policy(vec![rule(Some("0"), None)]), &[0], Some(0)),
            (policy(vec![rule(Some("0-2"), None)]), &[0, 2], None),
            (policy(vec![rule(Some("0-2"), None)]), &[0, 1, 2], Some(0)),
            (policy(vec![rule(None, Some(2))]), &[3], None),
            (policy(vec![rule(None, Some(2))]), &[3, 7], Some(0)),
            (policy(vec![rule(Some("0-3"), Some(2))]), &[0, 7], None),
            (
                policy(vec![rule(Some("0-3"), Some(2))]),
                &[0, 3, 7],
                Some(0),
            ),
            (
                policy(vec![rule(Some("9"), None), rule(None, Some(1))]),
                &[4],
                Some(1),
            ),
        ];
        for (p, ok, want) in cases {
            assert_eq!(success_rule(&p, &set(ok)), want, "{p:?} {ok:?}");
        }
    }
}
