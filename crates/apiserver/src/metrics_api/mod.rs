//! `metrics.k8s.io/v1beta1`, served by the API server itself so `kubectl top` and the HPA work
//! without installing metrics-server (`docs/metrics.md`, ADR 0020). A scraper reads every
//! Ready node's kubelet `/metrics/resource` over HTTPS each `--metric-resolution` and keeps
//! the latest two points per node and container in memory (`storage.rs`); NodeMetrics and
//! PodMetrics are computed from them when asked for (`serve.rs`). Nothing is stored: metrics
//! are gone after a restart until two scrapes have happened again, as with metrics-server.

mod prom;
mod render;
mod serve;
mod storage;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use crate::cache::WatchCache;
use crate::keys;
use crate::resources::Resource;

pub(crate) use render::GROUP;
pub(crate) use serve::serve;

/// upstream metrics-server's default resolution.
pub const DEFAULT_RESOLUTION: Duration = Duration::from_secs(15);
/// Nodes scraped at once.
const CONCURRENCY: usize = 16;
/// The longest `/metrics/resource` answer read (a node with hundreds of pods is ~100 KiB).
const MAX_BODY: usize = 8 << 20;

/// The points of the latest scrapes, shared by the scraper and the handlers.
#[derive(Debug, Default)]
pub struct Metrics {
    storage: RwLock<storage::Storage>,
}

impl Metrics {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, storage::Storage> {
        // A panic while holding the lock leaves plain data: keep serving it.
        self.storage
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The two resources of the group, for the resource table (and so for discovery, OpenAPI and
/// authorization, which read it): `get` and `list` only, as metrics-server serves them.
pub fn resources() -> Vec<Resource> {
    let make = |kind: &str, plural: &str, namespaced: bool, schema: Value| Resource {
        group: GROUP.into(),
        version: render::VERSION.into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_lowercase(),
        namespaced,
        short_names: Vec::new(),
        categories: Vec::new(),
        verbs: vec!["get".into(), "list".into()],
        subresources: Vec::new(),
        schema: Some(schema),
        custom: false,
        storage_version: None,
        storage_group: None,
        conversion: rudder_machinery::conversion::Conversion::ApiVersionOnly,
        printer: rudder_printers::Printer::for_kind(GROUP, kind),
    };
    let usage = serde_json::json!({
        "type": "object",
        "description": "The memory and CPU usage.",
        "additionalProperties": {"type": "string", "x-kubernetes-int-or-string": true},
    });
    let common = |extra: (&str, Value)| {
        let mut props = serde_json::json!({
            "timestamp": {"type": "string", "format": "date-time", "description": "The end of the window the usage was measured over."},
            "window": {"type": "string", "description": "The length of the window."},
        });
        props[extra.0] = extra.1;
        serde_json::json!({"type": "object", "properties": props})
    };
    vec![
        make(
            "NodeMetrics",
            "nodes",
            false,
            common(("usage", usage.clone())),
        ),
        make(
            "PodMetrics",
            "pods",
            true,
            common((
                "containers",
                serde_json::json!({
                    "type": "array",
                    "items": {"type": "object", "properties": {"name": {"type": "string"}, "usage": usage}},
                }),
            )),
        ),
    ]
}

/// A node to scrape: its name and where its kubelet listens.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Target {
    name: String,
    address: String,
    hostname: String,
    port: u16,
}

/// The nodes worth scraping: Ready ones whose kubelet port is not 0 (simulated nodes have no
/// endpoint and advertise 0; a missing port means upstream's 10250, as for logs). Pure.
fn targets(nodes: &[Value]) -> Vec<Target> {
    nodes
        .iter()
        .filter_map(|n| {
            let name = n.pointer("/metadata/name")?.as_str()?;
            let ready = n
                .pointer("/status/conditions")?
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let (address, hostname, port) = crate::handlers::kubelet_endpoint(n, name);
            let advertised = n
                .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
                .and_then(Value::as_u64)
                .is_none_or(|p| p != 0);
            (ready && advertised).then(|| Target {
                name: name.to_owned(),
                address,
                hostname,
                port,
            })
        })
        .collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Why one node's scrape failed.
#[derive(Debug, thiserror::Error)]
enum ScrapeError {
    /// Dialling or the TLS handshake failed.
    #[error("{0}")]
    Dial(String),
    /// The HTTP exchange failed or was not a 200.
    #[error("{0}")]
    Http(String),
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
}

async fn fetch(tls: Arc<rustls::ClientConfig>, t: &Target) -> Result<String, ScrapeError> {
    let stream = crate::handlers::connect_node(tls, &t.address, &t.hostname, t.port)
        .await
        .map_err(|e| ScrapeError::Dial(e.to_string()))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| ScrapeError::Http(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get("/metrics/resource")
        .header("host", format!("{}:{}", t.hostname, t.port))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ScrapeError::Http(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| ScrapeError::Http(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Http(format!("status {}", resp.status())));
    }
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ScrapeError::Http(e.to_string()))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// One round: every target at once (bounded), each within `timeout`. Nodes that fail are
/// missing from the round, so their metrics disappear until they answer again.
async fn scrape_round(
    tls: Arc<rustls::ClientConfig>,
    targets: Vec<Target>,
    timeout: Duration,
) -> BTreeMap<String, prom::NodeBatch> {
    futures::stream::iter(targets)
        .map(|t| {
            let tls = tls.clone();
            async move {
                let res = tokio::time::timeout(timeout, fetch(tls, &t))
                    .await
                    .unwrap_or(Err(ScrapeError::Timeout));
                match res {
                    Ok(text) => Some((t.name, prom::decode(&text, now_ms()))),
                    Err(e) => {
                        tracing::debug!(node = %t.name, error = %e, "scraping resource metrics");
                        None
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENCY)
        .filter_map(std::future::ready)
        .collect()
        .await
}

/// Scrapes every `resolution` until the task is aborted.
pub(crate) async fn run(
    metrics: Arc<Metrics>,
    cache: Arc<WatchCache>,
    tls: Arc<rustls::ClientConfig>,
    resolution: Duration,
) {
    let resolution = resolution.max(Duration::from_millis(100));
    // A scrape may take most of a period, never more (metrics-server: 90% of it, at most 10 s).
    let timeout = resolution.mul_f64(0.9).min(Duration::from_secs(10));
    let mut tick = tokio::time::interval(resolution);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let prefix = keys::collection_prefix("", "nodes", None);
        let (nodes, _, _) = cache.list(&prefix, None, 0, |_| true);
        let nodes: Vec<Value> = nodes.iter().filter_map(|n| n.value().ok()).collect();
        let round = scrape_round(tls.clone(), targets(&nodes), timeout).await;
        metrics
            .storage
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .store(round);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, ready: &str, port: Option<u64>, ip: Option<&str>) -> Value {
        let mut n = json!({
            "metadata": {"name": name},
            "status": {
                "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}],
                "addresses": [{"type": "Hostname", "address": format!("{name}.host")}],
            },
        });
        if let Some(ip) = ip {
            n["status"]["addresses"]
                .as_array_mut()
                .expect("addresses")
                .push(json!({"type": "InternalIP", "address": ip}));
        }
        if let Some(p) = port {
            n["status"]["daemonEndpoints"] = json!({"kubeletEndpoint": {"Port": p}});
        }
        n
    }

    #[test]
    fn targets_table() {
        let nodes = [
            node("a", "True", Some(10250), Some("10.0.0.1")),
            node("b", "False", Some(10250), Some("10.0.0.2")),
            node("c", "Unknown", Some(10250), None),
            node("sim", "True", Some(0), None),
            node("d", "True", Some(11250), None),
            node("old", "True", None, None),
            json!({"metadata": {"name": "bare"}}),
        ];
        let got = targets(&nodes);
        assert_eq!(
            got,
            [
                Target {
                    name: "a".into(),
                    address: "10.0.0.1".into(),
                    hostname: "a.host".into(),
                    port: 10250
                },
                Target {
                    name: "d".into(),
                    address: "d.host".into(),
                    hostname: "d.host".into(),
                    port: 11250
                },
                Target {
                    name: "old".into(),
                    address: "old.host".into(),
                    hostname: "old.host".into(),
                    port: 10250
                },
            ]
        );
    }

    #[test]
    fn resources_are_read_only() {
        let rs = resources();
        let names: Vec<(&str, &str, bool)> = rs
            .iter()
            .map(|r| (r.plural.as_str(), r.kind.as_str(), r.namespaced))
            .collect();
        assert_eq!(
            names,
            [
                ("nodes", "NodeMetrics", false),
                ("pods", "PodMetrics", true)
            ]
        );
        assert!(rs.iter().all(|r| r.verbs == ["get", "list"]));
    }
}
