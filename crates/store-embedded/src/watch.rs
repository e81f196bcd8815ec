//! Watches: live events from the writer, with replay from the on-disk change log.
//!
//! Each watch is a task that first replays committed history from disk, then follows the live
//! broadcast the writer publishes after every commit. A watcher that falls behind the broadcast
//! buffer (a slow consumer) is not cancelled: it goes back to replaying from disk where it left
//! off, so no event is ever dropped while history is retained.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use redb::ReadableDatabase;
use rudder_store::{Event, EventKind, KeyValue, Revision, StoreError, WatchBatch, WatchStream};
use tokio::sync::{broadcast, mpsc};

use crate::schema::{HISTORY, REVISIONS, Record, backend, key_string, version_at};
use crate::writer::Shared;

/// Batches kept for live watchers before a slow one must catch up from disk.
const BROADCAST_CAPACITY: usize = 1024;
/// Change-log entries read per disk transaction while replaying.
const REPLAY_CHUNK: u64 = 1024;
/// Batches buffered between a watch task and its consumer.
const STREAM_BUFFER: usize = 64;

type Live = Arc<Vec<Event>>;

/// Where the writer publishes committed events.
pub(crate) struct Hub {
    inner: Mutex<HubInner>,
}

struct HubInner {
    head: Revision,
    sender: broadcast::Sender<Live>,
}

impl Hub {
    pub(crate) fn new(head: Revision) -> Self {
        let (sender, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: Mutex::new(HubInner { head, sender }),
        }
    }

    /// Publishes the events of one commit whose last revision is `head`.
    pub(crate) fn publish(&self, head: Revision, events: Vec<Event>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.head = head;
        if !events.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = inner.sender.send(Arc::new(events));
        }
    }

    /// A receiver for everything published after `head`, and that `head`. Taken under the same
    /// lock as `publish`, so no commit falls between the disk replay and the live stream.
    fn subscribe(&self) -> (broadcast::Receiver<Live>, Revision) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.sender.subscribe(), inner.head)
    }
}

/// Starts a watch task and returns its stream.
pub(crate) fn start(shared: Arc<Shared>, prefix: String, start: Revision) -> WatchStream {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let result = run(&shared, &prefix, start, &tx).await;
        if let Err(e) = result {
            let _ = tx.send(Err(e)).await;
        }
    });
    Box::pin(tokio_stream_from(rx))
}

fn tokio_stream_from(
    mut rx: mpsc::Receiver<Result<WatchBatch, StoreError>>,
) -> impl futures::Stream<Item = Result<WatchBatch, StoreError>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

type Sink = mpsc::Sender<Result<WatchBatch, StoreError>>;

/// Returns `Ok(())` when the consumer went away, `Err` when the watch must end with an error.
async fn run(
    shared: &Arc<Shared>,
    prefix: &str,
    mut next: Revision,
    tx: &Sink,
) -> Result<(), StoreError> {
    loop {
        let (mut live, head) = shared.hub.subscribe();
        while next <= head {
            let upto = head.min(next + REPLAY_CHUNK - 1);
            let s = shared.clone();
            let p = prefix.to_owned();
            let batch = tokio::task::spawn_blocking(move || replay(&s, &p, next, upto))
                .await
                .map_err(|e| StoreError::Backend(format!("replay task failed: {e}")))??;
            next = upto + 1;
            if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
                return Ok(());
            }
        }
        loop {
            let received = tokio::select! {
                r = live.recv() => r,
                () = tx.closed() => return Ok(()),
            };
            match received {
                Ok(events) => {
                    let batch: WatchBatch = events
                        .iter()
                        .filter(|e| e.revision() >= next && e.kv.key.starts_with(prefix))
                        .cloned()
                        .collect();
                    if let Some(last) = events.last() {
                        next = next.max(last.revision() + 1);
                    }
                    if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
                        return Ok(());
                    }
                }
                // Fell behind the live buffer: catch up from disk from `next`.
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
            }
        }
    }
}

/// Reads the events for revisions `from..=to` under `prefix` from the change log.
fn replay(
    shared: &Shared,
    prefix: &str,
    from: Revision,
    to: Revision,
) -> Result<WatchBatch, StoreError> {
    let compacted = shared.compacted.load(Ordering::Acquire);
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    let txn = shared.db.begin_read().map_err(backend)?;
    let revisions = txn.open_table(REVISIONS).map_err(backend)?;
    let history = txn.open_table(HISTORY).map_err(backend)?;
    let mut out = Vec::new();
    for entry in revisions.range(from..=to).map_err(backend)? {
        let (rev, key) = entry.map_err(backend)?;
        let (rev, key) = (rev.value(), key.value());
        if !key.starts_with(prefix.as_bytes()) {
            continue;
        }
        let prev = match version_at(&history, key, rev - 1)? {
            Some((r, rec)) => rec.into_kv(key, r)?,
            None => None,
        };
        let event = match history.get((key, rev)).map_err(backend)? {
            Some(v) => match Record::decode(v.value())? {
                Record::Tombstone => Event {
                    kind: EventKind::Delete,
                    kv: KeyValue {
                        key: key_string(key)?,
                        value: bytes::Bytes::new(),
                        create_revision: 0,
                        mod_revision: rev,
                        version: 0,
                    },
                    prev,
                },
                Record::Put {
                    create_revision,
                    version,
                    value,
                } => Event {
                    kind: EventKind::Put,
                    kv: KeyValue {
                        key: key_string(key)?,
                        value,
                        create_revision,
                        mod_revision: rev,
                        version,
                    },
                    prev,
                },
            },
            None => {
                return Err(StoreError::Corrupt(format!(
                    "revision {rev} is in the log but not in history"
                )));
            }
        };
        out.push(event);
    }
    // A compaction may have started while we read; what we read is then incomplete.
    let compacted = shared.compacted.load(Ordering::Acquire);
    if from < compacted {
        return Err(StoreError::Compacted {
            requested: from,
            compacted,
        });
    }
    Ok(out)
}
