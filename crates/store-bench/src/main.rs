//! `rudder-store-bench`: runs the same workloads against the embedded store and a real etcd on
//! this machine, and prints a Markdown table for `docs/benchmarks.md`.

mod workloads;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use rudder_store::Store;
use rudder_store_embedded::EmbeddedStore;
use rudder_store_etcd::{EtcdOptions, EtcdStore, testing::EtcdProcess};
use workloads::Measurement;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Embedded,
    Etcd,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Workload {
    Writes,
    Reads,
    Range,
    Watch,
}

#[derive(Parser, Debug)]
#[command(about = "Benchmark rudder's Store backends side by side")]
struct Args {
    /// Which backend(s) to measure.
    #[arg(long, value_enum, default_value = "both")]
    backend: Backend,
    /// Seconds each write and read workload runs.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Size of each written value in bytes (a typical Kubernetes object is 1-4 KiB).
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Concurrent writer counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,256")]
    writers: Vec<usize>,
    /// Number of watchers for the delivery-delay workload.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Directory for the embedded store (default: a temp dir; the started etcd also uses the
    /// system temp dir, so both sit on the same disk).
    #[arg(long)]
    data_dir: Option<std::path::PathBuf>,
    /// Run only these workloads (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Workload>,
    /// Use this running etcd instead of starting one (comma-separated client URLs).
    #[arg(long, value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tmp = match &args.data_dir {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .context("creating the data directory")?;
    let mut results: Vec<(&str, Vec<Measurement>)> = Vec::new();
    if matches!(args.backend, Backend::Embedded | Backend::Both) {
        eprintln!("== embedded (redb) in {}", tmp.path().display());
        let store: Arc<dyn Store> =
            Arc::new(EmbeddedStore::open(tmp.path().join("embedded/store.redb"))?);
        results.push(("embedded", suite(store, &args).await?));
    }
    if matches!(args.backend, Backend::Etcd | Backend::Both) {
        let (_etcd, endpoints) = if args.etcd_endpoints.is_empty() {
            let etcd = EtcdProcess::start().await?;
            let endpoints = etcd.endpoints();
            (Some(etcd), endpoints)
        } else {
            (None, args.etcd_endpoints.clone())
        };
        eprintln!("== etcd at {}", endpoints.join(","));
        let store: Arc<dyn Store> =
            Arc::new(EtcdStore::connect(&endpoints, EtcdOptions::default()).await?);
        results.push(("etcd", suite(store, &args).await?));
    }
    print_table(&results);
    Ok(())
}

async fn suite(store: Arc<dyn Store>, args: &Args) -> Result<Vec<Measurement>> {
    let wanted = |w| args.only.is_empty() || args.only.contains(&w);
    let secs = Duration::from_secs(args.seconds);
    let mut out = Vec::new();
    if wanted(Workload::Writes) {
        for &w in &args.writers {
            let m = workloads::writes(store.clone(), w, secs, args.value_size, "w").await?;
            report(&m);
            out.push(m);
        }
    }
    const N: usize = 10_000;
    if wanted(Workload::Reads) || wanted(Workload::Range) {
        workloads::load(&store, "/bench/range/", N, args.value_size).await?;
    }
    if wanted(Workload::Reads) {
        let m = workloads::reads(store.clone(), "/bench/range/", N, 16, secs).await?;
        report(&m);
        out.push(m);
    }
    if wanted(Workload::Range) {
        let m = workloads::range(&store, "/bench/range/", N, 20).await?;
        report(&m);
        out.push(m);
    }
    if wanted(Workload::Watch) {
        let m =
            workloads::watch_delay(store.clone(), args.watchers, 200, Duration::from_millis(10))
                .await?;
        report(&m);
        out.push(m);
    }
    Ok(out)
}

fn report(m: &Measurement) {
    eprintln!(
        "  {:<40} {:>10.0}/s  p50 {:>8.2} ms  p99 {:>8.2} ms",
        m.name,
        m.per_second(),
        m.ms(0.5),
        m.ms(0.99)
    );
}

fn print_table(results: &[(&str, Vec<Measurement>)]) {
    print!("| workload |");
    for (name, _) in results {
        print!(" {name} ops/s | {name} p50 ms | {name} p99 ms |");
    }
    println!();
    print!("|---|");
    for _ in results {
        print!("---:|---:|---:|");
    }
    println!();
    let Some((_, first)) = results.first() else {
        return;
    };
    for (i, m) in first.iter().enumerate() {
        print!("| {} |", m.name);
        for (_, ms) in results {
            match ms.get(i) {
                Some(m) => print!(
                    " {:.0} | {:.2} | {:.2} |",
                    m.per_second(),
                    m.ms(0.5),
                    m.ms(0.99)
                ),
                None => print!(" | | |"),
            }
        }
        println!();
    }
}
