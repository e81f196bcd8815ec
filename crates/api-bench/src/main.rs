//! `rudder-api-bench`: drives a running API server through kube-rs (as controllers and tools
//! do) and prints Markdown tables for `docs/benchmarks.md`: pod creation throughput and latency
//! at several concurrencies and at a fixed rate, LIST of many pods, watch fan-out delay, and the
//! scale run (Deployments of many pods measured against upstream's SLOs).

mod prom;
mod scale;
mod workloads;

use std::io::Write;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    Create,
    Rate,
    List,
    Watch,
    /// Pod startup on a real node: create → Running (the image must already be on the node).
    PodStartup,
    /// Deployments totalling many pods on (simulated) nodes, measured as upstream's SLOs are.
    Scale,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmark a running rudder (or any Kubernetes) API server")]
struct Args {
    /// kubeconfig of the server (`rudder server` prints its path).
    #[arg(long)]
    kubeconfig: std::path::PathBuf,
    /// Namespace the benchmark creates and fills.
    #[arg(long, default_value = "bench")]
    namespace: String,
    /// Seconds each create workload runs.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent client counts for the create workload.
    #[arg(long, value_delimiter = ',', default_value = "1,32,256")]
    clients: Vec<usize>,
    /// Writes per second for the fixed-rate workload.
    #[arg(long, default_value_t = 1000)]
    rate: u64,
    /// Pod counts to LIST (pods are added until the namespace holds each count).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    list_sizes: Vec<usize>,
    /// Concurrent watchers for the fan-out workload.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Pods for the pod-startup workload.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Node the pod-startup pods are bound to (default: the first node).
    #[arg(long)]
    node: Option<String>,
    /// Image of the pod-startup pods.
    #[arg(long, default_value = "busybox:1.36")]
    image: String,
    /// Deployments the scale workload creates.
    #[arg(long, default_value_t = 150)]
    deployments: usize,
    /// Replicas of each of them.
    #[arg(long, default_value_t = 1000)]
    replicas: usize,
    /// The control plane's PID (`rudder server`), sampled for peak RSS and CPU by the scale run.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Seconds after which the scale run stops waiting for pods and prints what it measured so
    /// far, labelled as partial (a SIGTERM or SIGINT does the same).
    #[arg(long, alias = "scale-timeout", default_value_t = 1800)]
    deadline: u64,
    /// Ask for at most this many pods per second in the scale run: Deployments are created with
    /// 0 replicas and scaled up step by step (default: every pod asked for at once).
    #[arg(long, value_parser = scale::pods_per_second)]
    pods_per_second: Option<f64>,
    /// Run only these workloads (default: all but pod-startup and scale, which need nodes).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
}

async fn client(path: &std::path::Path) -> Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path).context("reading kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("kubeconfig")?;
    kube::Client::try_from(config).context("client")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let wants = |w: Workload| {
        if args.only.is_empty() {
            w != Workload::PodStartup && w != Workload::Scale
        } else {
            args.only.contains(&w)
        }
    };
    let bench = workloads::Bench::new(client(&args.kubeconfig).await?, &args.namespace).await?;
    if wants(Workload::Scale) {
        let opts = scale::Options {
            deployments: args.deployments,
            replicas: args.replicas,
            pace: args
                .pods_per_second
                .map_or(scale::Pace::AllAtOnce, scale::Pace::PerSecond),
            pid: args.server_pid,
            deadline: std::time::Duration::from_secs(args.deadline),
        };
        let report = scale::run(client(&args.kubeconfig).await?, &args.namespace, &opts).await?;
        scale::print(&report);
        if let Some(code) = report.ended.exit_code() {
            // Stopped by a signal: the partial tables are out; nothing else is to run.
            std::io::stdout().flush().context("stdout")?;
            std::process::exit(code);
        }
    }
    if wants(Workload::Create) {
        println!("| concurrent clients | creates/s | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        for &c in &args.clients {
            let m = bench
                .create(c, std::time::Duration::from_secs(args.seconds))
                .await?;
            println!(
                "| {c} | {:.0} | {:.2} | {:.2} | {:.2} |",
                m.per_second, m.p50_ms, m.p99_ms, m.max_ms
            );
        }
        println!();
    }
    if wants(Workload::Rate) {
        let m = bench
            .at_rate(args.rate, std::time::Duration::from_secs(args.seconds))
            .await?;
        println!("| target writes/s | achieved writes/s | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} |",
            args.rate, m.per_second, m.p50_ms, m.p99_ms, m.max_ms
        );
        println!();
    }
    if wants(Workload::List) {
        println!("| pods | LIST (cache) ms | LIST items | bytes |");
        println!("|---|---|---|---|");
        for &n in &args.list_sizes {
            let l = bench.list(n).await?;
            println!("| {n} | {:.0} | {} | {} |", l.millis, l.items, l.bytes);
        }
        println!();
    }
    if wants(Workload::PodStartup) {
        let m = bench
            .pod_startup(args.pods, args.node.as_deref(), &args.image)
            .await?;
        println!("| pods | running | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        println!(
            "| {} | {} | {:.0} | {:.0} | {:.0} |",
            args.pods, m.delivered, m.p50_ms, m.p99_ms, m.max_ms
        );
        println!();
    }
    if wants(Workload::Watch) {
        let m = bench.watch_fan_out(args.watchers).await?;
        println!("| watchers | delivered | p50 ms | p99 ms | max ms |");
        println!("|---|---|---|---|---|");
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} |",
            args.watchers, m.delivered, m.p50_ms, m.p99_ms, m.max_ms
        );
    }
    Ok(())
}
