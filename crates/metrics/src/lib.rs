//! rudder's Prometheus plumbing, shared by every component: one [`Registry`] per process (the
//! API server, scheduler, controllers and an in-process node agent all register into it, so
//! `rudder server`'s `/metrics` shows them together), histogram families with upstream's
//! buckets, and the text exposition served at `/metrics`.
//!
//! Components keep their metric handles in a `LazyLock` and call [`register`] once when it is
//! first forced; recording is then a lock-free counter increment or a per-histogram mutex.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use prometheus_client;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry};

/// What `/metrics` answers with: OpenMetrics text, which Prometheus reads natively (counters
/// are declared without `_total` and sampled with it; the body ends in `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn global() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Registry::default()))
}

/// Adds a metric (or family) to this process's registry. Counters are named without `_total`:
/// the encoder appends it; `help` has no final period: the encoder adds one. Call once per name: the caller keeps the handle in a `LazyLock`.
pub fn register(name: &str, help: &str, metric: impl Metric) {
    global()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .register(name, help, metric);
}

/// The whole registry as OpenMetrics text.
pub fn encode() -> String {
    encode_with(None)
}

/// The registry followed by `extra` (metrics computed for this scrape only, such as an agent's
/// running pods), as one OpenMetrics document.
pub fn encode_with(extra: Option<&Registry>) -> String {
    use prometheus_client::encoding::text;
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail; an encoder error would only mean a bug in a label.
    {
        let registry = global().lock().unwrap_or_else(|p| p.into_inner());
        let _ = text::encode_registry(&mut out, &registry);
    }
    if let Some(extra) = extra {
        let _ = text::encode_registry(&mut out, extra);
    }
    let _ = text::encode_eof(&mut out);
    out
}

/// Seconds, as Prometheus wants durations.
pub fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Upstream's bucket boundaries, by the metric that uses them.
pub mod buckets {
    /// `apiserver_request_duration_seconds` and `etcd_request_duration_seconds`.
    pub const API_REQUEST: &[f64] = &[
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
        10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
    ];
    /// `scheduler_scheduling_attempt_duration_seconds`: ExponentialBuckets(0.001, 2, 15).
    pub const SCHEDULING: &[f64] = &[
        0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
        8.192, 16.384,
    ];
    /// `workqueue_work_duration_seconds`: ExponentialBuckets(10e-9, 10, 10).
    pub const WORKQUEUE: &[f64] = &[1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0];
    /// `kubelet_pod_start_duration_seconds`.
    pub const POD_START: &[f64] = &[
        0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0,
        300.0, 360.0, 480.0, 600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
    ];
    /// `kubelet_runtime_operations_duration_seconds`: ExponentialBuckets(0.005, 2.5, 14).
    pub const RUNTIME_OPERATIONS: &[f64] = &[
        0.005,
        0.0125,
        0.03125,
        0.078125,
        0.1953125,
        0.48828125,
        1.220703125,
        3.0517578125,
        7.62939453125,
        19.073486328125,
        47.6837158203125,
        119.20928955078125,
        298.0232238769531,
        745.0580596923828,
    ];
}

/// Makes each new histogram of a family with fixed buckets.
#[derive(Clone, Copy, Debug)]
pub struct Buckets(pub &'static [f64]);

impl MetricConstructor<Histogram> for Buckets {
    fn new_metric(&self) -> Histogram {
        Histogram::new(self.0.iter().copied())
    }
}

/// A histogram family whose members all have `buckets`.
pub type HistogramFamily<L> = Family<L, Histogram, Buckets>;

/// A new histogram family over `buckets` (one of [`buckets`]).
pub fn histogram_family<L>(buckets: &'static [f64]) -> HistogramFamily<L>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    Family::new_with_constructor(Buckets(buckets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn buckets_are_increasing_and_upstream_sized() {
        for (name, b, len) in [
            ("api", buckets::API_REQUEST, 23),
            ("scheduling", buckets::SCHEDULING, 15),
            ("workqueue", buckets::WORKQUEUE, 10),
            ("pod start", buckets::POD_START, 25),
            ("runtime", buckets::RUNTIME_OPERATIONS, 14),
        ] {
            assert_eq!(b.len(), len, "{name}");
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{name}");
        }
        // Exponential ones: each bound is the factor times the previous one.
        for (b, factor) in [
            (buckets::SCHEDULING, 2.0),
            (buckets::WORKQUEUE, 10.0),
            (buckets::RUNTIME_OPERATIONS, 2.5),
        ] {
            for w in b.windows(2) {
                assert!((w[1] / w[0] - factor).abs() < 1e-9, "{w:?}");
            }
        }
    }

    #[test]
    fn encodes_registered_metrics_as_text() {
        let c = Counter::<u64>::default();
        register("rudder_metrics_selftest_events", "Test counter", c.clone());
        let h = histogram_family::<Vec<(String, String)>>(buckets::API_REQUEST);
        register(
            "rudder_metrics_selftest_seconds",
            "Test histogram",
            h.clone(),
        );
        c.inc_by(3);
        h.get_or_create(&vec![("op".into(), "get".into())])
            .observe(0.01);
        let mut extra = Registry::default();
        let g = prometheus_client::metrics::gauge::Gauge::<i64>::default();
        g.set(7);
        extra.register("rudder_metrics_selftest_extra", "Extra gauge", g);
        let text = encode_with(Some(&extra));
        assert!(text.contains("# TYPE rudder_metrics_selftest_events counter\n"));
        assert!(text.contains("\nrudder_metrics_selftest_events_total 3\n"));
        assert!(text.contains("# HELP rudder_metrics_selftest_events Test counter.\n"));
        assert!(
            text.contains("\nrudder_metrics_selftest_seconds_bucket{le=\"0.005\",op=\"get\"} 0\n")
        );
        assert!(
            text.contains("\nrudder_metrics_selftest_seconds_bucket{le=\"0.025\",op=\"get\"} 1\n")
        );
        assert!(text.contains("\nrudder_metrics_selftest_seconds_count{op=\"get\"} 1\n"));
        assert!(text.contains("\nrudder_metrics_selftest_extra 7\n"));
        assert!(text.ends_with("# EOF\n"));
        // The extra registry comes before the end marker, after the process registry.
        assert!(
            text.find("selftest_events").unwrap_or(usize::MAX)
                < text.find("selftest_extra").unwrap_or(0)
        );
    }
}
