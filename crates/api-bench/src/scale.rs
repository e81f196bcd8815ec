//! The scale workload (issue 10, docs/benchmarks.md "Scale"): Deployments totalling many pods
//! on (simulated) nodes, measured as Kubernetes measures its SLOs — pod startup latency from a
//! pod's creation to the watch showing it Running, API call latency from the server's own
//! request histogram plus probes this client times itself, scheduler throughput from the watch,
//! and the control plane's peak RSS and CPU from `/proc`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use futures::TryStreamExt;
use hdrhistogram::Histogram;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;

use crate::prom::{self, CallKind};

/// What to create.
pub struct Options {
    pub deployments: usize,
    pub replicas: usize,
    /// The control plane's process, sampled for RSS and CPU.
    pub pid: Option<u32>,
    /// Give up waiting for pods after this long.
    pub timeout: Duration,
}

/// A pod as the watch needs it: parsing only these fields keeps the client's share of the two
/// cores small with 150,000 pods going through three or four updates each.
#[derive(Clone, Debug, Deserialize)]
struct SlimPod {
    metadata: SlimMeta,
    #[serde(default)]
    spec: SlimSpec,
    #[serde(default)]
    status: SlimStatus,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimMeta {
    name: String,
    creation_timestamp: Option<String>,
    resource_version: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimSpec {
    node_name: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct SlimStatus {
    phase: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct SlimList {
    metadata: ListMeta,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: Option<String>,
}

/// When the watch saw each step of one pod.
#[derive(Default)]
struct PodTimes {
    /// `metadata.creationTimestamp` (whole seconds, truncated by the server).
    created: Option<SystemTime>,
    /// First seen by the watch.
    seen: Option<SystemTime>,
    bound: Option<SystemTime>,
    running: Option<SystemTime>,
}

#[derive(Default)]
struct Watched {
    pods: HashMap<String, PodTimes>,
    running: usize,
    relists: usize,
}

/// The figures, printed by `main`.
pub struct Report {
    pub pods: usize,
    pub running: usize,
    pub all_running_after: Option<Duration>,
    /// Pod startup: creationTimestamp → Running (conservative by up to 1 s: the timestamp is
    /// truncated to the second), and first seen → Running, p50/p99/max in ms.
    pub startup_from_timestamp: [f64; 3],
    pub startup_from_seen: [f64; 3],
    /// Pods bound per second from the first binding to the last, and in the busiest 10 s.
    pub scheduled_per_second: f64,
    pub scheduled_peak_per_second: f64,
    /// Server histogram deltas (p99 upper bucket bounds in seconds, call counts).
    pub server: Vec<(CallKind, u64, Option<f64>)>,
    /// Probes this client timed: (what, calls, p50 ms, p99 ms, max ms).
    pub probes: Vec<(&'static str, u64, f64, f64, f64)>,
    pub peak_rss_mib: Option<u64>,
    pub cpu_average: Option<f64>,
    pub cpu_peak: Option<f64>,
    pub relists: usize,
}

pub async fn run(client: kube::Client, namespace: &str, opts: &Options) -> Result<Report> {
    let before = prom::parse(&metrics(&client).await?);
    let watched = Arc::new(Mutex::new(Watched::default()));
    let rv = list_rv(&client, namespace).await?;
    let watcher = tokio::spawn(watch_pods(
        client.clone(),
        namespace.to_owned(),
        rv,
        watched.clone(),
    ));
    let sampler = opts.pid.map(|pid| tokio::spawn(sample_process(pid)));
    let probes = Arc::new(Mutex::new(Probes::new()?));
    let prober = tokio::spawn(probe(client.clone(), namespace.to_owned(), probes.clone()));

    let start = Instant::now();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    for i in 0..opts.deployments {
        deployments
            .create(&PostParams::default(), &deployment(i, opts.replicas)?)
            .await
            .with_context(|| format!("creating deployment scale-{i}"))?;
    }
    let total = opts.deployments * opts.replicas;
    let mut all_running_after = None;
    let mut last_report = Instant::now();
    while start.elapsed() < opts.timeout {
        let running = watched.lock().await.running;
        if running >= total {
            all_running_after = Some(start.elapsed());
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "{:>5.0} s: {running}/{total} pods running",
                start.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    prober.abort();
    watcher.abort();
    let (peak_rss_mib, cpu_average, cpu_peak) = match sampler {
        Some(task) => {
            task.abort();
            let usage = process_usage(opts.pid.unwrap_or_default());
            let peak = PEAK_CPU.lock().await.take();
            (
                usage.as_ref().map(|u| u.peak_rss_kib / 1024),
                usage.map(|u| u.cpu_seconds / start.elapsed().as_secs_f64()),
                peak,
            )
        }
        None => (None, None, None),
    };
    let after = prom::parse(&metrics(&client).await?);
    let calls = after.since(&before);
    let server = [
        CallKind::Mutating,
        CallKind::Read,
        CallKind::ListNamespace,
        CallKind::ListCluster,
    ]
    .into_iter()
    .map(|k| (k, calls.count(k), calls.quantile(k, 0.99)))
    .collect();

    let w = watched.lock().await;
    let mut from_ts = histogram()?;
    let mut from_seen = histogram()?;
    let mut bound: Vec<SystemTime> = Vec::new();
    for t in w.pods.values() {
        if let Some(running) = t.running {
            if let Some(created) = t.created {
                record(&mut from_ts, created, running)?;
            }
            if let Some(seen) = t.seen {
                record(&mut from_seen, seen, running)?;
            }
        }
        bound.extend(t.bound);
    }
    bound.sort();
    let probes = probes.lock().await.summary();
    Ok(Report {
        pods: total,
        running: w.running,
        all_running_after,
        startup_from_timestamp: quantiles(&from_ts),
        startup_from_seen: quantiles(&from_seen),
        scheduled_per_second: rate(&bound),
        scheduled_peak_per_second: peak_rate(&bound, Duration::from_secs(10)),
        server,
        probes,
        peak_rss_mib,
        cpu_average,
        cpu_peak,
        relists: w.relists,
    })
}

fn deployment(i: usize, replicas: usize) -> Result<Deployment> {
    let app = format!("scale-{i}");
    Ok(serde_json::from_value(json!({
        "metadata": {"name": app},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "bench": "scale"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "main",
                        "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }],
                },
            },
        },
    }))?)
}

async fn metrics(client: &kube::Client) -> Result<String> {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .context("metrics request")?;
    client
        .request_text(req)
        .await
        .context("reading the server's /metrics")
}

async fn list_rv(client: &kube::Client, namespace: &str) -> Result<String> {
    let req = http::Request::get(format!("/api/v1/namespaces/{namespace}/pods?limit=1"))
        .body(Vec::new())
        .context("list request")?;
    let list: SlimList = client.request(req).await.context("listing pods")?;
    Ok(list.metadata.resource_version.unwrap_or_default())
}

/// Follows every pod of the namespace, resuming from the last resourceVersion when the server
/// ends a watch, and starting over from a fresh list if that version has expired.
async fn watch_pods(
    client: kube::Client,
    namespace: String,
    mut rv: String,
    watched: Arc<Mutex<Watched>>,
) -> Result<()> {
    loop {
        let params = WatchParams::default().timeout(290).disable_bookmarks();
        let req = kube::core::Request::new(format!("/api/v1/namespaces/{namespace}/pods"))
            .watch(&params, &rv)
            .context("watch request")?;
        let stream = match client.request_events::<SlimPod>(req).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("watch failed ({e}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        futures::pin_mut!(stream);
        loop {
            match stream.try_next().await {
                Ok(Some(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    if let Some(v) = &p.metadata.resource_version {
                        rv.clone_from(v);
                    }
                    observe(&mut *watched.lock().await, &p, SystemTime::now());
                }
                Ok(Some(WatchEvent::Deleted(p))) => {
                    if let Some(v) = &p.metadata.resource_version {
                        rv.clone_from(v);
                    }
                }
                Ok(Some(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                Ok(Some(WatchEvent::Error(e))) => {
                    // 410 Gone: too old; whatever happened meanwhile shows in the relist's
                    // later events only, so count it (the report says how many).
                    eprintln!("watch error {}: {}", e.code, e.message);
                    watched.lock().await.relists += 1;
                    rv = list_rv(&client, &namespace).await?;
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    eprintln!("watch stream failed ({e}); resuming");
                    break;
                }
            }
        }
    }
}

fn observe(w: &mut Watched, p: &SlimPod, now: SystemTime) {
    let t = w.pods.entry(p.metadata.name.clone()).or_default();
    if t.seen.is_none() {
        t.seen = Some(now);
        t.created = p
            .metadata
            .creation_timestamp
            .as_deref()
            .and_then(parse_timestamp);
    }
    if t.bound.is_none() && p.spec.node_name.is_some() {
        t.bound = Some(now);
    }
    if t.running.is_none() && p.status.phase.as_deref() == Some("Running") {
        t.running = Some(now);
        w.running += 1;
    }
}

/// `2026-12-07T18:20:33Z` (the form the API server writes) as a time.
fn parse_timestamp(s: &str) -> Option<SystemTime> {
    let secs = rudder_machinery::timestamp::parse_rfc3339(s)?;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("histogram")
}

fn record(h: &mut Histogram<u64>, from: SystemTime, to: SystemTime) -> Result<()> {
    let micros = to.duration_since(from).unwrap_or_default().as_micros();
    h.record(u64::try_from(micros).unwrap_or(u64::MAX).clamp(1, h.high()))?;
    Ok(())
}

fn quantiles(h: &Histogram<u64>) -> [f64; 3] {
    if h.is_empty() {
        return [f64::NAN; 3];
    }
    [
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    ]
}

/// Events per second from the first to the last (sorted) time.
fn rate(times: &[SystemTime]) -> f64 {
    match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() > 1 => {
            let span = b.duration_since(*a).unwrap_or_default().as_secs_f64();
            if span > 0.0 {
                (times.len() - 1) as f64 / span
            } else {
                f64::NAN
            }
        }
        _ => f64::NAN,
    }
}

/// The most events in any `window` (sorted times), per second.
fn peak_rate(times: &[SystemTime], window: Duration) -> f64 {
    let mut best = 0usize;
    let mut lo = 0usize;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]).unwrap_or_default() > window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as f64 / window.as_secs_f64()
}

/// Client-timed calls made while the pods roll out: a GET and a PATCH of one ConfigMap every
/// 200 ms (single-object read, mutating), and a LIST of the namespace's pods every 10 s.
struct Probes {
    get: Histogram<u64>,
    patch: Histogram<u64>,
    list: Histogram<u64>,
}

impl Probes {
    fn new() -> Result<Self> {
        Ok(Self {
            get: histogram()?,
            patch: histogram()?,
            list: histogram()?,
        })
    }

    fn summary(&self) -> Vec<(&'static str, u64, f64, f64, f64)> {
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

async fn probe(client: kube::Client, namespace: String, probes: Arc<Mutex<Probes>>) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "scale-probe"}, "data": {"n": "0"}}))?;
    if cms.get_opt("scale-probe").await?.is_none() {
        cms.create(&PostParams::default(), &cm).await?;
    }
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
            let pods: Api<k8s_openapi::api::core::v1::Pod> =
                Api::namespaced(client.clone(), &namespace);
            if pods.list_metadata(&ListParams::default()).await.is_ok() {
                record(&mut probes.lock().await.list, t, SystemTime::now())?;
            }
        }
    }
}

/// A process's CPU time so far and its peak RSS (`VmHWM`).
struct Usage {
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

/// The kernel's clock tick for `/proc/PID/stat` times: USER_HZ, 100 on every Linux target.
const TICKS_PER_SECOND: f64 = 100.0;

fn process_usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start at `state`; utime and stime are
    // the 14th and 15th fields overall.
    let after = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(Usage {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        peak_rss_kib,
    })
}

static PEAK_CPU: Mutex<Option<f64>> = Mutex::const_new(None);

/// Tracks the busiest 5 s of CPU (in cores) until aborted.
async fn sample_process(pid: u32) {
    let mut last = process_usage(pid).map(|u| (Instant::now(), u.cpu_seconds));
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let Some(now) = process_usage(pid) else {
            return;
        };
        if let Some((at, cpu)) = last {
            let cores = (now.cpu_seconds - cpu) / at.elapsed().as_secs_f64();
            let mut peak = PEAK_CPU.lock().await;
            *peak = Some(peak.map_or(cores, |p| p.max(cores)));
        }
        last = Some((Instant::now(), now.cpu_seconds));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_as_the_server_writes_them() {
        let cases = [
            ("1970-01-01T00:00:00Z", Some(0)),
            ("2000-03-01T00:00:00Z", Some(951_868_800)),
            ("2026-12-07T18:20:33Z", Some(1_796_667_633)),
            ("2024-02-29T23:59:59Z", Some(1_709_251_199)),
            ("2026-13-07T18:20:33Z", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_timestamp(text)
                .map(|t| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs());
            assert_eq!(got, want, "{text}");
        }
    }

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn rates_over_the_whole_run_and_the_busiest_window() {
        // 11 bindings 100 ms apart, then one 10 s later.
        let mut times: Vec<SystemTime> = (0..11).map(|i| at(i * 100)).collect();
        times.push(at(11_000));
        assert!((rate(&times) - 1.0).abs() < 1e-9);
        assert!((peak_rate(&times, Duration::from_secs(1)) - 11.0).abs() < 1e-9);
        assert!(rate(&[at(5)]).is_nan());
        assert_eq!(peak_rate(&[], Duration::from_secs(1)), 0.0);
    }

    fn slim(name: &str, node: Option<&str>, phase: Option<&str>) -> SlimPod {
        SlimPod {
            metadata: SlimMeta {
                name: name.into(),
                creation_timestamp: Some("2026-12-07T18:20:33Z".into()),
                resource_version: Some("5".into()),
            },
            spec: SlimSpec {
                node_name: node.map(Into::into),
            },
            status: SlimStatus {
                phase: phase.map(Into::into),
            },
        }
    }

    #[test]
    fn each_step_is_recorded_once() {
        let mut w = Watched::default();
        observe(&mut w, &slim("a", None, Some("Pending")), at(1));
        observe(&mut w, &slim("a", Some("n1"), Some("Pending")), at(2));
        observe(&mut w, &slim("a", Some("n1"), Some("Running")), at(3));
        observe(&mut w, &slim("a", Some("n1"), Some("Running")), at(4));
        let t = &w.pods["a"];
        assert_eq!(
            (t.seen, t.bound, t.running),
            (Some(at(1)), Some(at(2)), Some(at(3)))
        );
        assert_eq!(t.created, parse_timestamp("2026-12-07T18:20:33Z"));
        assert_eq!(w.running, 1);
    }
}
