//! kube-scheduler's Prometheus metrics: attempts and their latency by result and profile,
//! pending pods per sub-queue, preemption attempts. Registered into the process registry
//! (`rudder_metrics`), so `rudder server`'s `/metrics` shows them.

use std::sync::LazyLock;
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rudder_metrics::{HistogramFamily, buckets, prometheus_client};

use crate::queue::Pending;

/// How a scheduling attempt ended (upstream's `result` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Bound to a node.
    Scheduled,
    /// Fits nowhere (preemption may have nominated a node).
    Unschedulable,
    /// Something else failed, such as the binding.
    Error,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Scheduled => "scheduled",
            Outcome::Unschedulable => "unschedulable",
            Outcome::Error => "error",
        }
    }
}

type AttemptLabels = [(&'static str, String); 2];

struct Metrics {
    attempts: Family<AttemptLabels, Counter>,
    duration: HistogramFamily<AttemptLabels>,
    pending: Family<[(&'static str, &'static str); 1], Gauge>,
    preemption: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        attempts: Family::default(),
        duration: rudder_metrics::histogram_family(buckets::SCHEDULING),
        pending: Family::default(),
        preemption: Counter::default(),
    };
    rudder_metrics::register(
        "scheduler_schedule_attempts",
        "Number of attempts to schedule pods, by the result. 'unschedulable' means a pod could not be scheduled, while 'error' means an internal scheduler problem",
        m.attempts.clone(),
    );
    rudder_metrics::register(
        "scheduler_scheduling_attempt_duration_seconds",
        "Scheduling attempt latency in seconds (scheduling algorithm + binding)",
        m.duration.clone(),
    );
    rudder_metrics::register(
        "scheduler_pending_pods",
        "Number of pending pods, by the queue type. 'active' means number of pods in activeQ; 'backoff' means number of pods in backoffQ; 'unschedulable' means number of pods in unschedulablePods",
        m.pending.clone(),
    );
    rudder_metrics::register(
        "scheduler_preemption_attempts",
        "Total preemption attempts in the cluster till now",
        m.preemption.clone(),
    );
    m
});

/// Registers the metrics so they are listed before the first attempt.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// One attempt of `profile` that began at `started` ended with `outcome`.
pub fn attempt(profile: &str, outcome: Outcome, started: Instant) {
    let labels = [
        ("result", outcome.as_str().to_owned()),
        ("profile", profile.to_owned()),
    ];
    METRICS
        .duration
        .get_or_create(&labels)
        .observe(started.elapsed().as_secs_f64());
    METRICS.attempts.get_or_create(&labels).inc();
}

/// Preemption ran for a pod that fits nowhere.
pub fn preemption_attempt() {
    METRICS.preemption.inc();
}

/// The queue's current sizes.
pub fn pending(p: Pending) {
    for (queue, n) in [
        ("active", p.active),
        ("backoff", p.backoff),
        ("unschedulable", p.unschedulable),
    ] {
        METRICS
            .pending
            .get_or_create(&[("queue", queue)])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
    }

    #[test]
    fn attempts_are_counted_and_timed_by_result_and_profile() {
        init();
        let started = Instant::now();
        attempt("metrics-test", Outcome::Scheduled, started);
        attempt("metrics-test", Outcome::Scheduled, started);
        attempt("metrics-test", Outcome::Unschedulable, started);
        pending(Pending {
            active: 3,
            backoff: 2,
            unschedulable: 1,
        });
        let text = rudder_metrics::encode();
        let count = |result: &str| {
            value(
                &text,
                &format!(
                    "scheduler_schedule_attempts_total{{result=\"{result}\",profile=\"metrics-test\"}} "
                ),
            )
        };
        assert_eq!(count("scheduled").as_deref(), Some("2"), "{text}");
        assert_eq!(count("unschedulable").as_deref(), Some("1"));
        assert_eq!(count("error"), None);
        assert_eq!(
            value(&text, "scheduler_scheduling_attempt_duration_seconds_count{result=\"scheduled\",profile=\"metrics-test\"} ").as_deref(),
            Some("2")
        );
        assert_eq!(
            value(&text, "scheduler_pending_pods{queue=\"backoff\"} ").as_deref(),
            Some("2")
        );
        assert!(text.contains("# TYPE scheduler_preemption_attempts counter\n"));
    }
}
