//! The API server's Prometheus metrics (upstream's names and labels): requests by verb and
//! resource, long-running requests (watches), objects in the watch cache, and store latency
//! (`store.rs`). Served at `GET /metrics` together with everything else in the process.
//!
//! `labels.rs` derives a request's labels (pure, table-tested); this file records them. The
//! create path runs thousands of times a second: a request builds its label set once and looks
//! it up twice (histogram, then counter with the code); only a label set's first use allocates
//! inside the family.

mod labels;
mod store;

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use hyper::body::Frame;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use rudder_metrics::{HistogramFamily, buckets, prometheus_client};

use crate::http::Body;

pub use labels::{RequestLabels, request_labels};
pub use store::MeteredStore;

/// Labels of `apiserver_storage_objects`.
type ResourceLabel = [(&'static str, String); 1];

struct Metrics {
    total: Family<RequestLabels, Counter>,
    duration: HistogramFamily<RequestLabels>,
    longrunning: Family<RequestLabels, Gauge>,
    storage_objects: Family<ResourceLabel, Gauge>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        total: Family::default(),
        duration: rudder_metrics::histogram_family(buckets::API_REQUEST),
        longrunning: Family::default(),
        storage_objects: Family::default(),
    };
    rudder_metrics::register(
        "apiserver_request",
        "Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code",
        m.total.clone(),
    );
    rudder_metrics::register(
        "apiserver_request_duration_seconds",
        "Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component",
        m.duration.clone(),
    );
    rudder_metrics::register(
        "apiserver_longrunning_requests",
        "Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component",
        m.longrunning.clone(),
    );
    rudder_metrics::register(
        "apiserver_storage_objects",
        "Number of stored objects at the time of last check split by kind",
        m.storage_objects.clone(),
    );
    store::init();
    m
});

/// Registers the API server's metrics, so `/metrics` lists them before the first request.
pub fn init() {
    LazyLock::force(&METRICS);
}

fn record(labels: &mut RequestLabels, code: u16, started: Instant) {
    let m = &*METRICS;
    labels.code = None;
    m.duration
        .get_or_create(labels)
        .observe(started.elapsed().as_secs_f64());
    labels.code = Some(code);
    m.total.get_or_create(labels).inc();
}

/// Records a finished request. A successful long-running one (a watch) counts in
/// `apiserver_longrunning_requests` until its body is dropped, and is recorded then, as
/// upstream records a watch when it ends.
pub(crate) fn finish(
    mut labels: RequestLabels,
    started: Instant,
    resp: Response<Body>,
) -> Response<Body> {
    let code = resp.status().as_u16();
    if !(labels.is_long_running() && resp.status().is_success()) {
        record(&mut labels, code, started);
        return resp;
    }
    let gauge = METRICS
        .longrunning
        .get_or_create_owned(&labels.long_running());
    gauge.inc();
    let guard = LongRunning {
        gauge,
        labels,
        code,
        started,
    };
    resp.map(|inner| {
        Tracked {
            inner,
            _guard: guard,
        }
        .boxed()
    })
}

/// Sets `apiserver_storage_objects` from the watch cache's counts (at each scrape).
pub(crate) fn set_storage_objects(counts: Vec<(String, i64)>) {
    // A resource whose last object went away must disappear, not keep its old count.
    METRICS.storage_objects.clear();
    for (resource, n) in counts {
        METRICS
            .storage_objects
            .get_or_create(&[("resource", resource)])
            .set(n);
    }
}

/// Held by a long-running response's body: ends the request's accounting when dropped.
struct LongRunning {
    gauge: Gauge,
    labels: RequestLabels,
    code: u16,
    started: Instant,
}

impl Drop for LongRunning {
    fn drop(&mut self) {
        self.gauge.dec();
        record(&mut self.labels, self.code, self.started);
    }
}

/// A response body that carries a [`LongRunning`] guard.
struct Tracked {
    inner: Body,
    /// Only dropped, with the body.
    _guard: LongRunning,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The text answer of `GET /metrics`.
pub(crate) fn exposition() -> Response<Body> {
    init();
    let text = rudder_metrics::encode();
    Response::builder()
        .status(200)
        .header("content-type", rudder_metrics::CONTENT_TYPE)
        .body(crate::http::full(text))
        .unwrap_or_else(|_| Response::new(crate::http::full(Bytes::new())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    #[tokio::test]
    async fn a_watch_is_long_running_until_its_body_drops() {
        let mut labels = request_labels(
            "GET",
            &crate::request_info::Target::Resource(crate::request_info::ResourceRequest {
                group: "metricstest.example".into(),
                version: "v1".into(),
                namespace: None,
                resource: "widgets".into(),
                name: None,
                subresource: None,
                verb: crate::request_info::Verb::Watch,
            }),
            &Default::default(),
            "",
        );
        let gauge_line =
            "apiserver_longrunning_requests{verb=\"WATCH\",group=\"metricstest.example\"";
        let count_line =
            "apiserver_request_total{verb=\"WATCH\",dry_run=\"\",group=\"metricstest.example\"";
        let resp = finish(
            labels.clone(),
            Instant::now(),
            Response::new(crate::http::full("x")),
        );
        let text = rudder_metrics::encode();
        assert_eq!(sample(&text, gauge_line), Some(1.0), "{text}");
        assert_eq!(
            sample(&text, count_line),
            None,
            "recorded when the watch ends"
        );
        drop(resp);
        let text = rudder_metrics::encode();
        assert_eq!(sample(&text, gauge_line), Some(0.0));
        assert_eq!(sample(&text, count_line), Some(1.0));
        // A failed watch is an ordinary request.
        labels.resource = "gadgets".into();
        let mut bad = Response::new(crate::http::full("x"));
        *bad.status_mut() = hyper::StatusCode::GONE;
        drop(finish(labels, Instant::now(), bad));
        let text = rudder_metrics::encode();
        assert!(text.contains("apiserver_request_total{verb=\"WATCH\",dry_run=\"\",group=\"metricstest.example\",version=\"v1\",resource=\"gadgets\",subresource=\"\",scope=\"cluster\",component=\"apiserver\",code=\"410\"} 1\n"), "{text}");
        assert!(!text.contains("apiserver_longrunning_requests{verb=\"WATCH\",group=\"metricstest.example\",version=\"v1\",resource=\"gadgets\""));
    }
}
