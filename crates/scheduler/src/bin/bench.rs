//! `rudder-scheduler-bench`: scheduler throughput and latency through the real API with
//! simulated nodes. Against a running `rudder server --disable-agent`, it creates Node objects
//! with capacity (nothing runs on them), then pods in batches, and watches them get bound:
//! pods/s from the first create to the last binding, and per-pod create → bound latency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    /// Pods with CPU and memory requests only.
    Basic,
    /// Required pod anti-affinity per hostname within groups of pods.
    AntiAffinity,
    /// A DoNotSchedule topology spread constraint over 10 zones.
    Spread,
    /// Preferred pod anti-affinity per hostname within groups (weight 100), as upstream's
    /// SchedulingPreferredPodAntiAffinity: every placed pod's term also scores the next pod.
    PreferredAntiAffinity,
    /// A ScheduleAnyway topology spread constraint over 10 zones (scored, never filtered).
    SoftSpread,
}

#[derive(Parser, Debug)]
struct Args {
    /// kubeconfig of the server (`rudder server` prints its path).
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    /// Simulated nodes to create (kept between runs).
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pod counts, one run each.
    #[arg(long, value_delimiter = ',', default_value = "10000,30000")]
    pods: Vec<usize>,
    #[arg(long, value_enum, default_value = "basic")]
    workload: Workload,
    /// Creates in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Measure the scheduling algorithm alone, in this process, over a snapshot of the same
    /// nodes (no API server: decisions only, each pod assumed on its node).
    #[arg(long)]
    in_process: bool,
}

const NAMESPACE: &str = "scheduler-bench";

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.in_process {
        for &n in &args.pods {
            in_process(&args, n)?;
        }
        return Ok(());
    }
    let kc = Kubeconfig::read_from(&args.kubeconfig).context("reading kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;
    ensure_namespace(&client).await?;
    create_nodes(&client, args.nodes, args.concurrency).await?;
    for &n in &args.pods {
        run(&client, &args, n).await?;
    }
    Ok(())
}

/// The bench's namespace and its `default` ServiceAccount, which pod admission requires and no
/// controller creates when the server runs with `--disable-controllers`.
async fn ensure_namespace(client: &kube::Client) -> Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}}))?;
    ignore_exists(api.create(&PostParams::default(), &ns).await)?;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "default"}}))?;
    ignore_exists(api.create(&PostParams::default(), &sa).await)
}

fn ignore_exists<T>(result: kube::Result<T>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn create_nodes(client: &kube::Client, count: usize, concurrency: usize) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let started = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let api = api.clone();
            async move {
                let node: Node = serde_json::from_value(node(i))?;
                match api.create(&PostParams::default(), &node).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
                    Err(e) => Err(anyhow::Error::from(e)),
                }
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "{count} nodes ready in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn node(i: usize) -> serde_json::Value {
    let name = format!("bench-node-{i:05}");
    json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "topology.kubernetes.io/zone": format!("zone-{}", i % 10)}},
        "status": {"capacity": {"cpu": "32", "memory": "256Gi", "pods": "110"},
                   "allocatable": {"cpu": "32", "memory": "256Gi", "pods": "110"}},
    })
}

/// The algorithm alone: one decision per pod over a snapshot, the pod then assumed on its node.
fn in_process(args: &Args, count: usize) -> Result<()> {
    use rudder_scheduler::schedule::Algorithm;
    use rudder_scheduler::snapshot::{PodInfo, Snapshot};
    let nodes: Vec<Node> = (0..args.nodes)
        .map(|i| serde_json::from_value(node(i)))
        .collect::<Result<_, _>>()?;
    let mut snap = Snapshot::from_parts(nodes, vec![]);
    let config = rudder_scheduler::config::Config::default();
    let profile = &config.profiles[0];
    let pods: Vec<Arc<Pod>> = (0..count)
        .map(|i| {
            serde_json::from_value(pod(0, i, args.workload)).map(|mut p: Pod| {
                p.metadata.namespace = Some(NAMESPACE.into());
                Arc::new(p)
            })
        })
        .collect::<Result<_, _>>()?;
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut algorithm = Algorithm::default();
    let start = Instant::now();
    let mut failed = 0;
    for p in pods {
        let t = Instant::now();
        let info = Arc::new(PodInfo::new(p, 0));
        match algorithm.schedule(profile, 0, &snap, &info) {
            Ok(placement) => {
                snap.add_pod(&placement.node, info);
            }
            Err(_) => failed += 1,
        }
        hist.record(t.elapsed().as_nanos() as u64)?;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "in-process {:?} nodes={} pods={count}: {:.0} decisions/s ({failed} unschedulable); per decision p50 {:.1} µs, p99 {:.1} µs",
        args.workload,
        args.nodes,
        count as f64 / elapsed,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    );
    Ok(())
}

fn pod(run: u64, i: usize, workload: Workload) -> serde_json::Value {
    let group = format!("g{}", i % 10);
    let mut spec = json!({
        "terminationGracePeriodSeconds": 0,
        "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"},
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists"}],
        "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}],
    });
    let selector = json!({"matchLabels": {"group": group}});
    match workload {
        Workload::Basic => {}
        Workload::AntiAffinity => {
            spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}]}});
        }
        Workload::Spread => {
            spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "DoNotSchedule", "labelSelector": selector}]);
        }
        Workload::PreferredAntiAffinity => {
            spec["affinity"] = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {"labelSelector": selector, "topologyKey": "kubernetes.io/hostname"}}]}});
        }
        Workload::SoftSpread => {
            spec["topologySpreadConstraints"] = json!([{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": selector}]);
        }
    }
    json!({"metadata": {"name": format!("p{run}-{i:06}"), "labels": {"group": group}}, "spec": spec})
}

async fn run(client: &kube::Client, args: &Args, count: usize) -> Result<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    // Names unique per run, so a run never meets the previous run's pods still being deleted.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let prefix = format!("p{run}-");
    // The watch records when each pod is first seen with a node.
    let watch = {
        let (api, bound, prefix) = (api.clone(), bound.clone(), prefix.clone());
        tokio::spawn(async move {
            let stream = watcher::watcher(api, watcher::Config::default());
            futures::pin_mut!(stream);
            while let Some(ev) = stream.next().await {
                let pod = match ev {
                    Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                    _ => continue,
                };
                if pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_ref())
                    .is_some_and(|n| !n.is_empty())
                {
                    let name = pod.metadata.name.unwrap_or_default();
                    if !name.starts_with(&prefix) {
                        continue;
                    }
                    let mut b = bound
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    b.entry(name).or_insert_with(Instant::now);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    futures::stream::iter(0..count)
        .map(|i| {
            let (api, created) = (api.clone(), created.clone());
            async move {
                let p: Pod = serde_json::from_value(pod(run, i, args.workload))?;
                let name = p.metadata.name.clone().unwrap_or_default();
                let t = Instant::now();
                api.create(&PostParams::default(), &p).await?;
                created
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(name, t);
                anyhow::Ok(())
            }
        })
        .buffer_unordered(args.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    let created_in = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    loop {
        let n = bound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len();
        if n >= count || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watch.abort();
    let (created, bound) = (
        created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
        bound
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone(),
    );
    let mut hist = hdrhistogram::Histogram::<u64>::new(3)?;
    let mut last = start;
    for (name, t) in &bound {
        if let Some(c) = created.get(name) {
            hist.record(t.saturating_duration_since(*c).as_micros() as u64)?;
            last = last.max(*t);
        }
    }
    let elapsed = last.duration_since(start).as_secs_f64();
    println!(
        "{:?} nodes={} pods={count}: bound {} in {elapsed:.2}s = {:.0} pods/s (creates took {:.2}s); create→bound p50 {:.1} ms, p99 {:.1} ms",
        args.workload,
        args.nodes,
        bound.len(),
        bound.len() as f64 / elapsed.max(1e-9),
        created_in.as_secs_f64(),
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    );
    // Clean up: immediate deletion (no node agent runs these pods).
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    api.delete_collection(&dp, &ListParams::default()).await?;
    Ok(())
}
