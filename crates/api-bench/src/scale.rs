//! The scale workload (issue 10, docs/benchmarks.md "Scale"): Deployments totalling many pods
//! on (simulated) nodes, measured as Kubernetes measures its SLOs — pod startup latency from a
//! pod's creation to the watch showing it Running, API call latency from the server's own
//! request histogram plus probes this client times itself, scheduler throughput from the watch,
//! and the control plane's peak RSS and CPU from `/proc`. Pods are asked for all at once or at
//! a steady rate; a run cut short by its deadline or a signal still reports what it measured.

mod pace;
mod print;
mod probe;
mod process;
mod stats;
mod watch;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use kube::api::Api;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::Mutex;
use tokio::task::AbortHandle;

use crate::prom::{self, CallKind};
pub use pace::{Pace, pods_per_second};
pub use print::print;
use process::{Sampled, process_usage, sample_process};
use stats::{histogram, peak_rate, quantiles, rate, record};
use watch::{Watched, list_rv, watch_pods};

/// What to create.
pub struct Options {
    pub deployments: usize,
    pub replicas: usize,
    pub pace: Pace,
    /// The control plane's process, sampled for RSS and CPU.
    pub pid: Option<u32>,
    /// Stop waiting for pods after this long and report what was measured.
    pub deadline: Duration,
}

/// Why the run stopped waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    AllRunning,
    Deadline,
    Interrupted,
    Terminated,
}

impl End {
    /// The shell's code for a process ended by the signal, so that a script sees the signal.
    pub fn exit_code(self) -> Option<i32> {
        match self {
            Self::Interrupted => Some(130),
            Self::Terminated => Some(143),
            Self::AllRunning | Self::Deadline => None,
        }
    }
}

/// The figures, printed by [`print`].
pub struct Report {
    pub pace: Pace,
    pub deployments: usize,
    pub replicas: usize,
    pub ended: End,
    /// From the first Deployment's creation to the end of waiting.
    pub elapsed: Duration,
    pub deadline: Duration,
    pub pods: usize,
    /// Pods asked for (the sum of the Deployments' replicas), seen by the watch, first seen
    /// bound, and Running.
    pub requested: usize,
    pub created: usize,
    pub bound: usize,
    pub running: usize,
    /// Scale PATCHes that failed and were retried.
    pub failed_patches: usize,
    /// The longest any pod seen but not yet Running had waited since the watch first saw it:
    /// the startup percentiles leave such pods out.
    pub oldest_pending: Option<Duration>,
    /// Pod startup: creationTimestamp → Running (conservative by up to 1 s: the timestamp is
    /// truncated to the second), and first seen → Running, p50/p99/max in ms.
    pub startup_from_timestamp: [f64; 3],
    pub startup_from_seen: [f64; 3],
    /// Pods bound per second from the first binding to the last, and in the busiest 10 s.
    pub scheduled_per_second: f64,
    pub scheduled_peak_per_second: f64,
    /// Server histogram deltas (call kind, count, p99 upper bucket bound in seconds); `None`
    /// when the server's `/metrics` never answered after the start.
    pub server: Option<Vec<(CallKind, u64, Option<f64>)>>,
    /// Set when the server no longer answered at the end, so its figures stop at the last
    /// scrape, this far into the run.
    pub server_until: Option<Duration>,
    /// Probes this client timed: (what, calls, p50 ms, p99 ms, max ms).
    pub probes: Vec<(&'static str, u64, f64, f64, f64)>,
    pub peak_rss_mib: Option<u64>,
    pub cpu_average: Option<f64>,
    pub cpu_peak: Option<f64>,
    pub relists: usize,
}

/// Aborts the run's background tasks however `run` returns.
struct Tasks(Vec<AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

pub async fn run(client: kube::Client, namespace: &str, opts: &Options) -> Result<Report> {
    // Installed before anything is created, so that a signal at any point reports.
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let before = prom::parse(&metrics(&client).await?);
    let watched = Arc::new(Mutex::new(Watched::default()));
    let rv = list_rv(&client, namespace).await?;
    let mut tasks = Tasks(Vec::new());
    let watcher = tokio::spawn(watch_pods(
        client.clone(),
        namespace.to_owned(),
        rv,
        watched.clone(),
    ));
    tasks.0.push(watcher.abort_handle());
    let sampled = Arc::new(Mutex::new(Sampled::default()));
    if let Some(pid) = opts.pid {
        tasks
            .0
            .push(tokio::spawn(sample_process(pid, sampled.clone())).abort_handle());
    }
    let probes = Arc::new(Mutex::new(probe::Probes::new()?));
    let prober = tokio::spawn(probe::probe(
        client.clone(),
        namespace.to_owned(),
        probes.clone(),
    ));
    tasks.0.push(prober.abort_handle());
    let scraped = Arc::new(Mutex::new(None));
    tasks
        .0
        .push(tokio::spawn(scrape(client.clone(), scraped.clone())).abort_handle());

    let start = Instant::now();
    let requested = Arc::new(pace::Requested::default());
    let mut requester = tokio::spawn(pace::request(
        Api::namespaced(client.clone(), namespace),
        opts.pace,
        opts.deployments,
        opts.replicas,
        requested.clone(),
    ));
    tasks.0.push(requester.abort_handle());
    let total = opts.deployments * opts.replicas;
    let mut requesting = true;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_progress = (Instant::now(), opts.pid.and_then(process_usage));
    let ended = loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = interrupt.recv() => break End::Interrupted,
            _ = terminate.recv() => break End::Terminated,
            done = &mut requester, if requesting => {
                requesting = false;
                done.context("the task creating and scaling the Deployments")??;
            }
        }
        let (created, bound, running) = {
            let w = watched.lock().await;
            (w.pods.len(), w.bound, w.running)
        };
        if running >= total {
            break End::AllRunning;
        }
        if start.elapsed() >= opts.deadline {
            break End::Deadline;
        }
        if last_progress.0.elapsed() >= Duration::from_secs(10) {
            let now = (Instant::now(), opts.pid.and_then(process_usage));
            let cpu = match (last_progress.1, now.1) {
                (Some(a), Some(b)) => Some(
                    (b.cpu_seconds - a.cpu_seconds)
                        / now.0.duration_since(last_progress.0).as_secs_f64(),
                ),
                _ => None,
            };
            let counts = print::Counts {
                total,
                requested: requested.pods.load(Ordering::Relaxed),
                created,
                bound,
                running,
            };
            let rss = now.1.map(|u| u.rss_kib / 1024);
            eprintln!(
                "{}",
                print::progress_line(start.elapsed(), &counts, rss, cpu)
            );
            last_progress = now;
        }
    };
    let elapsed = start.elapsed();
    drop(tasks);
    if ended.exit_code().is_some() {
        eprintln!(
            "{ended:?} after {:.0} s: reporting what was measured",
            elapsed.as_secs_f64()
        );
    }

    let (peak_rss_mib, cpu_average, cpu_peak) = {
        let mut s = sampled.lock().await;
        if let Some(u) = opts.pid.and_then(process_usage) {
            s.last = Some((Instant::now(), u));
        }
        (
            s.last.map(|(_, u)| u.peak_rss_kib / 1024),
            s.cpu_average(),
            s.peak_cpu,
        )
    };
    // A server stopped by the same signal no longer answers: fall back to the last scrape.
    let (after, server_until) =
        match tokio::time::timeout(Duration::from_secs(5), metrics(&client)).await {
            Ok(Ok(text)) => (Some(prom::parse(&text)), None),
            _ => match scraped.lock().await.take() {
                Some((at, buckets)) => (Some(buckets), Some(at.duration_since(start))),
                None => (None, None),
            },
        };
    let server = after.map(|after| {
        let calls = after.since(&before);
        [
            CallKind::Mutating,
            CallKind::Read,
            CallKind::ListNamespace,
            CallKind::ListCluster,
        ]
        .into_iter()
        .map(|k| (k, calls.count(k), calls.quantile(k, 0.99)))
        .collect()
    });

    let w = watched.lock().await;
    let now = SystemTime::now();
    let mut from_ts = histogram()?;
    let mut from_seen = histogram()?;
    let mut bound: Vec<SystemTime> = Vec::new();
    let mut oldest_pending = None;
    for t in w.pods.values() {
        match (t.running, t.seen) {
            (Some(running), seen) => {
                if let Some(created) = t.created {
                    record(&mut from_ts, created, running)?;
                }
                if let Some(seen) = seen {
                    record(&mut from_seen, seen, running)?;
                }
            }
            (None, Some(seen)) => {
                let waited = now.duration_since(seen).unwrap_or_default();
                oldest_pending = oldest_pending.max(Some(waited));
            }
            (None, None) => {}
        }
        bound.extend(t.bound);
    }
    bound.sort();
    let probes = probes.lock().await.summary();
    Ok(Report {
        pace: opts.pace,
        deployments: opts.deployments,
        replicas: opts.replicas,
        ended,
        elapsed,
        deadline: opts.deadline,
        pods: total,
        requested: requested.pods.load(Ordering::Relaxed),
        created: w.pods.len(),
        bound: w.bound,
        running: w.running,
        failed_patches: requested.failed.load(Ordering::Relaxed),
        oldest_pending,
        startup_from_timestamp: quantiles(&from_ts),
        startup_from_seen: quantiles(&from_seen),
        scheduled_per_second: rate(&bound),
        scheduled_peak_per_second: peak_rate(&bound, Duration::from_secs(10)),
        server,
        server_until,
        probes,
        peak_rss_mib,
        cpu_average,
        cpu_peak,
        relists: w.relists,
    })
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

/// Keeps the server's latest request histogram every 10 s, for a run whose server is gone by
/// the time it reports.
async fn scrape(client: kube::Client, latest: Arc<Mutex<Option<(Instant, prom::Buckets)>>>) {
    loop {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if let Ok(text) = metrics(&client).await {
            *latest.lock().await = Some((Instant::now(), prom::parse(&text)));
        }
    }
}
