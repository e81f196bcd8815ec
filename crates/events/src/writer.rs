//! The recorder's IO half: a bounded queue in front of one correlating task, which writes through
//! a few lanes so that writes of different events overlap while each event's create and its later
//! bumps stay in order.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::correlate::{self, Correlator, Draft, Write};

/// Events waiting to be correlated; more are dropped (upstream's broadcaster queues 1,000).
const QUEUE: usize = 1000;
/// Writes in flight at once, one per lane.
const LANES: usize = 8;
/// Correlated writes waiting per lane.
const LANE_QUEUE: usize = 128;

/// Records events in the background; cheap to clone. Dropping every clone stops the writer once
/// it has written what was queued.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Draft>,
    dropped: Arc<AtomicU64>,
}

impl Recorder {
    /// Starts the writer on the current Tokio runtime.
    pub fn new(client: Client) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(correlate_loop(client, rx));
        Recorder {
            queue,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Queues `draft`; never waits. A full queue drops the event, as upstream does.
    pub fn record(&self, draft: Draft) {
        if self.queue.try_send(draft).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "event queue full; events dropped");
            }
        }
    }

    /// Events dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn correlate_loop(client: Client, mut rx: mpsc::Receiver<Draft>) {
    let mut lanes = Vec::with_capacity(LANES);
    for _ in 0..LANES {
        let (tx, lane_rx) = mpsc::channel(LANE_QUEUE);
        tokio::spawn(write_loop(client.clone(), lane_rx));
        lanes.push(tx);
    }
    let mut correlator = Correlator::new();
    while let Some(draft) = rx.recv().await {
        let Some(write) = correlator.observe(&draft, Timestamp::now()) else {
            tracing::debug!(reason = %draft.reason, "event dropped by the spam filter");
            continue;
        };
        let lane = lane_of(&write.name);
        if lanes[lane].send((draft, write)).await.is_err() {
            return;
        }
    }
}

fn lane_of(name: &str) -> usize {
    let mut h = DefaultHasher::new();
    name.hash(&mut h);
    usize::try_from(h.finish() % LANES as u64).unwrap_or(0)
}

async fn write_loop(client: Client, mut rx: mpsc::Receiver<(Draft, Write)>) {
    while let Some((draft, write)) = rx.recv().await {
        let api: Api<Event> = Api::namespaced(client.clone(), correlate::namespace(&draft));
        let event = correlate::event(&draft, &write);
        let result = if write.is_new() {
            api.create(&PostParams::default(), &event).await.map(drop)
        } else {
            let patch = serde_json::json!({
                "count": write.count,
                "lastTimestamp": event.last_timestamp,
                "message": write.message,
            });
            match api
                .patch(&write.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                // The first write was lost or the event expired: write it whole.
                Err(kube::Error::Api(s)) if s.code == 404 => {
                    api.create(&PostParams::default(), &event).await.map(drop)
                }
                other => other.map(drop),
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, reason = %draft.reason, "writing an event failed");
        }
    }
}
