//! client-go's workqueue metrics for every controller, measured around kube-rs's `applier`
//! (which keeps its scheduler queue to itself): `workqueue_adds_total` counts reconcile
//! requests (triggers) as they enter the applier, `workqueue_depth` the distinct objects
//! requested and not yet being reconciled — upstream's depth, a set, so a burst of triggers
//! for one object counts once — `workqueue_queue_duration_seconds` how long an object waited
//! from its first request to the start of its reconcile, and `workqueue_work_duration_seconds`
//! how long reconciles take. Requeues the controllers ask for themselves (`Action::requeue`)
//! are not requests and do not count, as upstream's delayed adds are not in the depth.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use rudder_metrics::{HistogramFamily, buckets, prometheus_client};

type NameLabel = [(&'static str, &'static str); 1];

struct Families {
    depth: Family<NameLabel, Gauge>,
    adds: Family<NameLabel, Counter>,
    queue_duration: HistogramFamily<NameLabel>,
    work_duration: HistogramFamily<NameLabel>,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let f = Families {
        depth: Family::default(),
        adds: Family::default(),
        queue_duration: rudder_metrics::histogram_family(buckets::WORKQUEUE),
        work_duration: rudder_metrics::histogram_family(buckets::WORKQUEUE),
    };
    rudder_metrics::register(
        "workqueue_depth",
        "Current depth of workqueue",
        f.depth.clone(),
    );
    rudder_metrics::register(
        "workqueue_adds",
        "Total number of adds handled by workqueue",
        f.adds.clone(),
    );
    rudder_metrics::register(
        "workqueue_queue_duration_seconds",
        "How long in seconds an item stays in workqueue before being requested",
        f.queue_duration.clone(),
    );
    rudder_metrics::register(
        "workqueue_work_duration_seconds",
        "How long in seconds processing an item from workqueue takes",
        f.work_duration.clone(),
    );
    f
});

/// One controller's queue metrics.
pub(crate) struct QueueMetrics {
    depth: Gauge,
    adds: Counter,
    queue_duration: Histogram,
    work_duration: Histogram,
    /// Objects requested and not yet started, by a hash of namespace and name (no allocation
    /// per trigger), with when they were first requested.
    waiting: Mutex<HashMap<u64, Instant>>,
    hasher: RandomState,
}

impl QueueMetrics {
    /// The metrics of the controller `name` (upstream's `*-controller` name).
    pub(crate) fn new(name: &'static str) -> Self {
        let label = [("name", name)];
        let f = &*FAMILIES;
        Self {
            depth: f.depth.get_or_create_owned(&label),
            adds: f.adds.get_or_create_owned(&label),
            queue_duration: f.queue_duration.get_or_create_owned(&label),
            work_duration: f.work_duration.get_or_create_owned(&label),
            waiting: Mutex::default(),
            hasher: RandomState::new(),
        }
    }

    fn key(&self, namespace: Option<&str>, name: &str) -> u64 {
        self.hasher.hash_one((namespace, name))
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Instant>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A reconcile of the object was requested.
    pub(crate) fn added(&self, namespace: Option<&str>, name: &str) {
        self.adds.inc();
        let key = self.key(namespace, name);
        let mut waiting = self.waiting();
        waiting.entry(key).or_insert_with(Instant::now);
        self.depth.set(waiting.len() as i64);
    }

    /// The object's reconcile starts; returns its start time for [`Self::finished`].
    pub(crate) fn started(&self, namespace: Option<&str>, name: &str) -> Instant {
        let now = Instant::now();
        let key = self.key(namespace, name);
        let mut waiting = self.waiting();
        if let Some(since) = waiting.remove(&key) {
            self.queue_duration
                .observe(now.duration_since(since).as_secs_f64());
        }
        self.depth.set(waiting.len() as i64);
        now
    }

    /// The reconcile that started at `started` ended.
    pub(crate) fn finished(&self, started: Instant) {
        self.work_duration.observe(started.elapsed().as_secs_f64());
    }

    /// The object was dropped without a reconcile (gone from the cache).
    pub(crate) fn dropped(&self, namespace: Option<&str>, name: &str) {
        let key = self.key(namespace, name);
        let mut waiting = self.waiting();
        waiting.remove(&key);
        self.depth.set(waiting.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(name: &str, controller: &str) -> String {
        let prefix = format!("{name}{{name=\"{controller}\"}} ");
        rudder_metrics::encode()
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
            .unwrap_or_default()
    }

    #[test]
    fn depth_is_the_set_of_objects_waiting() {
        let q = QueueMetrics::new("queue-metrics-test");
        let depth = || value("workqueue_depth", "queue-metrics-test");
        q.added(Some("a"), "x");
        q.added(Some("a"), "x");
        q.added(Some("b"), "x");
        q.added(None, "y");
        assert_eq!(value("workqueue_adds_total", "queue-metrics-test"), "4");
        assert_eq!(depth(), "3");
        let started = q.started(Some("a"), "x");
        assert_eq!(depth(), "2");
        // A request while it runs waits for the next run.
        q.added(Some("a"), "x");
        assert_eq!(depth(), "3");
        q.finished(started);
        q.dropped(Some("b"), "x");
        q.dropped(Some("zz"), "unknown");
        assert_eq!(depth(), "2");
        assert_eq!(
            value(
                "workqueue_work_duration_seconds_count",
                "queue-metrics-test"
            ),
            "1"
        );
        assert_eq!(
            value(
                "workqueue_queue_duration_seconds_count",
                "queue-metrics-test"
            ),
            "1"
        );
    }
}
