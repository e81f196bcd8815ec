//! API calls the scale run times itself while the pods roll out, next to the server's own
//! histogram: a client sees queueing in front of the handler that the server's figure leaves out.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use hdrhistogram::Histogram;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::Mutex;

use super::stats::{histogram, quantiles, record};

/// Client-timed calls: a GET and a PATCH of one ConfigMap every 200 ms (single-object read,
/// mutating), and a LIST of the namespace's pods every 10 s.
pub(super) struct Probes {
    get: Histogram<u64>,
    patch: Histogram<u64>,
    list: Histogram<u64>,
}

impl Probes {
    pub(super) fn new() -> Result<Self> {
        Ok(Self {
            get: histogram()?,
            patch: histogram()?,
            list: histogram()?,
        })
    }

    /// (what, calls, p50 ms, p99 ms, max ms) for each kind of probe.
    pub(super) fn summary(&self) -> Vec<(&'static str, u64, f64, f64, f64)> {
        [
            ("GET configmap", &self.get),
            ("PATCH configmap", &self.patch),
            ("LIST pods (namespace)", &self.list),
        ]
        .into_iter()
        .map(|(what, h)| {
            let [p50, p99, max] = quantiles(h);
            (what, h.len(), p50, p99, max)
        })
        .collect()
    }
}

/// Runs until aborted; a failed call is not timed (the server histogram still counts it).
pub(super) async fn probe(
    client: kube::Client,
    namespace: String,
    probes: Arc<Mutex<Probes>>,
) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "scale-probe"}, "data": {"n": "0"}}))?;
    if cms.get_opt("scale-probe").await?.is_none() {
        cms.create(&PostParams::default(), &cm).await?;
    }
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let mut n = 0u64;
    let mut last_list = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        n += 1;
        let t = SystemTime::now();
        if cms.get("scale-probe").await.is_ok() {
            record(&mut probes.lock().await.get, t, SystemTime::now())?;
        }
        let t = SystemTime::now();
        let patch = Patch::Merge(json!({"data": {"n": n.to_string()}}));
        if cms
            .patch("scale-probe", &PatchParams::default(), &patch)
            .await
            .is_ok()
        {
            record(&mut probes.lock().await.patch, t, SystemTime::now())?;
        }
        if last_list.elapsed() >= Duration::from_secs(10) {
            last_list = Instant::now();
            let t = SystemTime::now();
            if pods.list_metadata(&ListParams::default()).await.is_ok() {
                record(&mut probes.lock().await.list, t, SystemTime::now())?;
            }
        }
    }
}
