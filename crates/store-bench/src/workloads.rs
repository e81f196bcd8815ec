//! The measured workloads: concurrent writes, reads, a large range, and watch fan-out delay.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use rand::Rng;
use rudder_store::{RangeRequest, Store, WriteOutcome};

/// Throughput and latency of one workload.
pub struct Measurement {
    pub name: String,
    pub ops: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
}

impl Measurement {
    pub fn per_second(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency quantile in milliseconds.
    pub fn ms(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }
}

fn histogram() -> Histogram<u64> {
    // Microseconds, up to 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("static histogram bounds are valid")
}

fn value(size: usize) -> Bytes {
    Bytes::from(vec![b'v'; size])
}

/// `writers` tasks create distinct keys for `duration`; every write is a durable create.
pub async fn writes(
    store: Arc<dyn Store>,
    writers: usize,
    duration: Duration,
    value_size: usize,
    run: &str,
) -> Result<Measurement> {
    let payload = value(value_size);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let payload = payload.clone();
        let prefix = format!("/bench/{run}/w{writers}/{w}/");
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut i = 0u64;
            while Instant::now() < deadline {
                let key = format!("{prefix}{i:010}");
                let t = Instant::now();
                match store.create(&key, payload.clone()).await? {
                    WriteOutcome::Written(_) => {}
                    other => bail!("unexpected outcome {other:?}"),
                }
                h.record(t.elapsed().as_micros().max(1) as u64)?;
                i += 1;
            }
            Ok::<_, anyhow::Error>((i, h))
        }));
    }
    let mut total = 0;
    let mut latency = histogram();
    for t in tasks {
        let (n, h) = t.await.context("writer task")??;
        total += n;
        latency.add(h)?;
    }
    Ok(Measurement {
        name: format!("write, {writers} concurrent writers"),
        ops: total,
        elapsed: started.elapsed(),
        latency,
    })
}

/// Loads `n` keys under `prefix` with 64 concurrent writers.
pub async fn load(store: &Arc<dyn Store>, prefix: &str, n: usize, value_size: usize) -> Result<()> {
    let payload = value(value_size);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, payload, next, prefix) = (
            store.clone(),
            payload.clone(),
            next.clone(),
            prefix.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                store
                    .create(&format!("{prefix}{i:08}"), payload.clone())
                    .await?;
            }
        }));
    }
    for t in tasks {
        t.await.context("loader task")??;
    }
    Ok(())
}

/// `readers` tasks get random keys among `n` loaded ones for `duration`.
pub async fn reads(
    store: Arc<dyn Store>,
    prefix: &str,
    n: usize,
    readers: usize,
    duration: Duration,
) -> Result<Measurement> {
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..readers {
        let (store, prefix) = (store.clone(), prefix.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut count = 0u64;
            while Instant::now() < deadline {
                let i = rand::rng().random_range(0..n);
                let t = Instant::now();
                let got = store.get(&format!("{prefix}{i:08}"), None).await?;
                h.record(t.elapsed().as_micros().max(1) as u64)?;
                if got.kv.is_none() {
                    bail!("key {i} missing");
                }
                count += 1;
            }
            Ok::<_, anyhow::Error>((count, h))
        }));
    }
    let mut total = 0;
    let mut latency = histogram();
    for t in tasks {
        let (n, h) = t.await.context("reader task")??;
        total += n;
        latency.add(h)?;
    }
    Ok(Measurement {
        name: format!("get, {readers} concurrent readers"),
        ops: total,
        elapsed: started.elapsed(),
        latency,
    })
}

/// Ranges over all `n` keys under `prefix`, `rounds` times.
pub async fn range(
    store: &Arc<dyn Store>,
    prefix: &str,
    n: usize,
    rounds: usize,
) -> Result<Measurement> {
    let mut latency = histogram();
    let started = Instant::now();
    for _ in 0..rounds {
        let t = Instant::now();
        let got = store.range(RangeRequest::prefix(prefix)).await?;
        latency.record(t.elapsed().as_micros().max(1) as u64)?;
        if got.kvs.len() != n {
            bail!("range returned {} keys, expected {n}", got.kvs.len());
        }
    }
    Ok(Measurement {
        name: format!("range of {n} keys"),
        ops: rounds as u64,
        elapsed: started.elapsed(),
        latency,
    })
}

/// `watchers` watches on one prefix; one writer writes `events` keys `interval` apart. The delay
/// is from just before the write call to the moment each watcher receives the event. A warm-up
/// event, delivered to every watcher before measuring starts, keeps set-up out of the figures.
pub async fn watch_delay(
    store: Arc<dyn Store>,
    watchers: usize,
    events: usize,
    interval: Duration,
) -> Result<Measurement> {
    let base = Instant::now();
    let start = store.current_revision().await? + 1;
    let ready = Arc::new(tokio::sync::Semaphore::new(0));
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let mut stream = store.watch("/watchbench/", start).await?;
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let mut h = histogram();
            let mut seen = 0;
            let mut warm = false;
            while seen < events {
                let batch = tokio::time::timeout(Duration::from_secs(60), stream.next())
                    .await
                    .context("watch stalled")?
                    .context("watch ended")??;
                let now = base.elapsed().as_micros() as u64;
                for e in batch {
                    if !warm {
                        warm = true;
                        ready.add_permits(1);
                        continue;
                    }
                    let sent: u64 = std::str::from_utf8(&e.kv.value)?.parse()?;
                    h.record(now.saturating_sub(sent).max(1))?;
                    seen += 1;
                }
            }
            Ok::<_, anyhow::Error>(h)
        }));
    }
    store
        .create("/watchbench/warmup", Bytes::from_static(b"0"))
        .await?;
    let all = u32::try_from(watchers).context("too many watchers")?;
    let _ = tokio::time::timeout(Duration::from_secs(60), ready.acquire_many(all))
        .await
        .context("watchers did not start")?;
    let started = Instant::now();
    for i in 0..events {
        let sent = base.elapsed().as_micros() as u64;
        store
            .create(
                &format!("/watchbench/{i:08}"),
                Bytes::from(sent.to_string()),
            )
            .await?;
        tokio::time::sleep(interval).await;
    }
    let mut latency = histogram();
    for t in tasks {
        latency.add(t.await.context("watcher task")??)?;
    }
    Ok(Measurement {
        name: format!("watch delivery, {watchers} watchers"),
        ops: (watchers * events) as u64,
        elapsed: started.elapsed(),
        latency,
    })
}
