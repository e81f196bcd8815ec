//! Watches: live events from the writer, with replay from the on-disk change log.
//!
//! Each watch first replays committed history from disk, then follows the live
//! broadcast the writer publishes after every commit. A watcher that falls behind the broadcast
//! buffer (a slow consumer) is not cancelled: it goes back to replaying from disk where it left
//! off, so no event is ever dropped while history is retained.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rudder_store::{Event, EventKind, KeyValue, Revision, StoreError, WatchBatch, WatchStream};
use tokio::sync::broadcast;

use crate::schema::{HISTORY, REVISIONS, Record, backend, key_string, version_at};
use crate::writer::Shared;

/// Batches kept for live watchers before a slow one must catch up from disk.
const BROADCAST_CAPACITY: usize = 1024;
/// Change-log entries read per disk transaction while replaying.
const REPLAY_CHUNK: u64 = 1024;

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

/// A watch's position: where it is in history, and its live subscription once caught up.
struct Cursor {
    shared: Arc<Shared>,
    prefix: String,
    /// The next revision owed to the consumer.
    next: Revision,
    /// The live subscription and the head it was taken at; `None` while (re)syncing.
    live: Option<(broadcast::Receiver<Live>, Revision)>,
    failed: bool,
}

/// Returns the stream of a watch. It is driven by the consumer's own polling (no task per
/// watch): with a thousand watchers, each commit wakes a thousand consumers, not two thousand
/// tasks.
pub(crate) fn start(shared: Arc<Shared>, prefix: String, start: Revision) -> WatchStream {
    let cursor = Cursor {
        shared,
        prefix,
        next: start,
        live: None,
        failed: false,
    };
    Box::pin(futures::stream::unfold(cursor, |mut c| async move {
        if c.failed {
            return None;
        }
        match next_batch(&mut c).await {
            Ok(batch) => Some((Ok(batch), c)),
            Err(e) => {
                c.failed = true;
                Some((Err(e), c))
            }
        }
    }))
}

/// Waits for the next non-empty batch: from disk while behind the subscription's head, live
/// after. A watcher that lags behind the live buffer drops its subscription and replays from
/// disk where it left off.
async fn next_batch(c: &mut Cursor) -> Result<WatchBatch, StoreError> {
    loop {
        let head = match &c.live {
            Some((_, head)) => *head,
            None => {
                let (rx, head) = c.shared.hub.subscribe();
                c.live = Some((rx, head));
                head
            }
        };
        if c.next <= head {
            let (from, upto) = (c.next, head.min(c.next + REPLAY_CHUNK - 1));
            let (s, p) = (c.shared.clone(), c.prefix.clone());
            let batch = tokio::task::spawn_blocking(move || replay(&s, &p, from, upto))
                .await
                .map_err(|e| StoreError::Backend(format!("replay task failed: {e}")))??;
            c.next = upto + 1;
            if !batch.is_empty() {
                return Ok(batch);
            }
            continue;
        }
        let Some((rx, _)) = c.live.as_mut() else {
            continue;
        };
        match rx.recv().await {
            Ok(events) => {
                let next = c.next;
                let batch: WatchBatch = events
                    .iter()
                    .filter(|e| e.revision() >= next && e.kv.key.starts_with(&c.prefix))
                    .cloned()
                    .collect();
                if let Some(last) = events.last() {
                    c.next = c.next.max(last.revision() + 1);
                }
                if !batch.is_empty() {
                    return Ok(batch);
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => c.live = None,
            Err(broadcast::error::RecvError::Closed) => return Err(StoreError::Closed),
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
