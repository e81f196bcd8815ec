//! The benchmark workloads, each against a fresh part of one namespace.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use hdrhistogram::Histogram;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::sync::Mutex;

/// Latency and throughput of a write workload.
pub struct Measurement {
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// A LIST timing.
pub struct ListTiming {
    pub millis: f64,
    pub items: usize,
    pub bytes: usize,
}

/// Watch fan-out delays.
pub struct FanOut {
    pub delivered: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub struct Bench {
    client: kube::Client,
    namespace: String,
    next: AtomicUsize,
}

fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]},
    }))?)
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

impl Bench {
    pub async fn new(client: kube::Client, namespace: &str) -> Result<Self> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if namespaces.get_opt(namespace).await?.is_none() {
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": namespace}}))?;
            namespaces.create(&PostParams::default(), &ns).await?;
        }
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let existing = pods
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        Ok(Self {
            client,
            namespace: namespace.to_owned(),
            next: AtomicUsize::new(existing),
        })
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn name(&self) -> String {
        format!("bench-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// `clients` loops creating pods back to back for `length`.
    pub async fn create(&self, clients: usize, length: Duration) -> Result<Measurement> {
        let hist = Arc::new(Mutex::new(histogram()?));
        let start = Instant::now();
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (api, hist, done) = (self.pods(), hist.clone(), done.clone());
            let names: Vec<String> = (0..200_000 / clients.max(1)).map(|_| self.name()).collect();
            tasks.push(tokio::spawn(async move {
                let mut local = histogram()?;
                for name in names {
                    if start.elapsed() >= length {
                        break;
                    }
                    let t = Instant::now();
                    api.create(&PostParams::default(), &pod(&name)?).await?;
                    local.record(t.elapsed().as_micros() as u64)?;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                hist.lock().await.add(&local)?;
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        let secs = start.elapsed().as_secs_f64();
        let h = hist.lock().await;
        Ok(Measurement {
            per_second: done.load(Ordering::Relaxed) as f64 / secs,
            p50_ms: ms(&h, 0.5),
            p99_ms: ms(&h, 0.99),
            max_ms: h.max() as f64 / 1000.0,
        })
    }

    /// Creates pods at a fixed rate (open loop: latency includes any queueing at the server).
    pub async fn at_rate(&self, rate: u64, length: Duration) -> Result<Measurement> {
        let total = rate * length.as_secs();
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(total as usize);
        for _ in 0..total {
            ticker.tick().await;
            let (api, name) = (self.pods(), self.name());
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                api.create(&PostParams::default(), &pod(&name)?).await?;
                anyhow::Ok(t.elapsed().as_micros() as u64)
            }));
        }
        let mut h = histogram()?;
        for t in tasks {
            h.record(t.await??)?;
        }
        let secs = start.elapsed().as_secs_f64();
        Ok(Measurement {
            per_second: total as f64 / secs,
            p50_ms: ms(&h, 0.5),
            p99_ms: ms(&h, 0.99),
            max_ms: h.max() as f64 / 1000.0,
        })
    }

    /// Fills the namespace to `count` pods, then times a full LIST (median of 3).
    pub async fn list(&self, count: usize) -> Result<ListTiming> {
        let have = self
            .pods()
            .list_metadata(&ListParams::default())
            .await?
            .items
            .len();
        if have < count {
            let missing = count - have;
            let per = missing.div_ceil(64);
            let mut tasks = Vec::new();
            for chunk in 0..64 {
                let names: Vec<String> = (0..per.min(missing.saturating_sub(chunk * per)))
                    .map(|_| self.name())
                    .collect();
                let api = self.pods();
                tasks.push(tokio::spawn(async move {
                    for name in names {
                        api.create(&PostParams::default(), &pod(&name)?).await?;
                    }
                    anyhow::Ok(())
                }));
            }
            for t in tasks {
                t.await??;
            }
        }
        let mut times = Vec::new();
        let mut items = 0;
        let mut bytes = 0;
        for _ in 0..3 {
            let t = Instant::now();
            let req = http_list(&self.namespace);
            let body: String = self.client.request_text(req).await?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            let parsed: serde_json::Value = serde_json::from_str(&body)?;
            items = parsed["items"].as_array().map_or(0, Vec::len);
            bytes = body.len();
        }
        times.sort_by(f64::total_cmp);
        Ok(ListTiming {
            millis: times[1],
            items,
            bytes,
        })
    }

    /// Opens `watchers` watches on one ConfigMap, writes it once, and measures how long each
    /// watcher waits for the event after the write is acknowledged.
    pub async fn watch_fan_out(&self, watchers: usize) -> Result<FanOut> {
        let cms: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = format!("fanout-{}", self.next.fetch_add(1, Ordering::Relaxed));
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": name}, "data": {"v": "0"}}))?;
        let created = cms.create(&PostParams::default(), &cm).await?;
        let rv = created
            .metadata
            .resource_version
            .clone()
            .unwrap_or_default();
        let acked: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let ready = Arc::new(tokio::sync::Barrier::new(watchers + 1));
        let mut tasks = Vec::new();
        for _ in 0..watchers {
            let (cms, rv, name, ready, acked) = (
                cms.clone(),
                rv.clone(),
                name.clone(),
                ready.clone(),
                acked.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let params = WatchParams::default()
                    .fields(&format!("metadata.name={name}"))
                    .timeout(60);
                let mut stream = cms.watch(&params, &rv).await?.boxed();
                ready.wait().await;
                while let Some(ev) = stream.try_next().await? {
                    if let WatchEvent::Modified(_) = ev {
                        let at = Instant::now();
                        let sent = acked
                            .lock()
                            .await
                            .context("event before the write was acknowledged")?;
                        return anyhow::Ok(Some(at.saturating_duration_since(sent)));
                    }
                }
                Ok(None)
            }));
        }
        ready.wait().await;
        // Let every watch request reach the server before writing.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut guard = acked.lock().await;
        let patch = json!({"data": {"v": "1"}});
        cms.patch(
            &name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await?;
        *guard = Some(Instant::now());
        drop(guard);
        let mut h = histogram()?;
        let mut delivered = 0;
        for t in tasks {
            if let Some(d) = t.await?? {
                h.record(d.as_micros().max(1) as u64)?;
                delivered += 1;
            }
        }
        Ok(FanOut {
            delivered,
            p50_ms: ms(&h, 0.5),
            p99_ms: ms(&h, 0.99),
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}

impl Bench {
    /// Creates `count` pods bound to `node` one after another and measures, for each, the time
    /// from the create request to the watch event showing it Running (then deletes them).
    pub async fn pod_startup(
        &self,
        count: usize,
        node: Option<&str>,
        image: &str,
    ) -> Result<FanOut> {
        let node = match node {
            Some(n) => n.to_owned(),
            None => {
                let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(self.client.clone());
                nodes
                    .list(&ListParams::default())
                    .await?
                    .items
                    .first()
                    .and_then(|n| n.metadata.name.clone())
                    .context("no node to run pods on")?
            }
        };
        let pods = self.pods();
        let rv = pods
            .list_metadata(&ListParams::default().limit(1))
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut events = pods
            .watch(&WatchParams::default().labels("bench=startup"), &rv)
            .await?
            .boxed();
        let mut started: std::collections::HashMap<String, Instant> =
            std::collections::HashMap::new();
        let mut h = histogram()?;
        let mut running = 0;
        let mut names = Vec::new();
        for _ in 0..count {
            let name = self.name();
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": {"bench": "startup"}},
                "spec": {
                    "nodeName": node,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}],
                },
            }))?;
            started.insert(name.clone(), Instant::now());
            pods.create(&PostParams::default(), &p).await?;
            names.push(name);
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while running < count && Instant::now() < deadline {
            let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(5), events.try_next())
                .await
                .unwrap_or(Ok(None))
            else {
                continue;
            };
            if let WatchEvent::Modified(p) = ev {
                let name = p.metadata.name.clone().unwrap_or_default();
                let is_running =
                    p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if is_running && let Some(t) = started.remove(&name) {
                    h.record(t.elapsed().as_micros().max(1) as u64)?;
                    running += 1;
                }
            }
        }
        for name in names {
            let _ = pods
                .delete(&name, &kube::api::DeleteParams::default())
                .await;
        }
        Ok(FanOut {
            delivered: running,
            p50_ms: ms(&h, 0.5),
            p99_ms: ms(&h, 0.99),
            max_ms: h.max() as f64 / 1000.0,
        })
    }
}

fn http_list(namespace: &str) -> http::Request<Vec<u8>> {
    http::Request::get(format!("/api/v1/namespaces/{namespace}/pods"))
        .body(Vec::new())
        .unwrap_or_default()
}
