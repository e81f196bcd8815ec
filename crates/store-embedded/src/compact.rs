//! Compaction: removes history older than the compaction revision, a chunk per transaction.
//!
//! The compaction point is committed first (so reads below it fail at once, as in etcd); the
//! superseded versions are then deleted in chunks interleaved with ordinary writes, so a large
//! compaction never stalls the write path. An interrupted compaction resumes at the next open.

use redb::ReadableTable;
use rudder_store::{Revision, StoreError};
use tokio::sync::oneshot;

use crate::schema::{HISTORY, REVISIONS, Record, backend, version_at};
use crate::writer::Reply;

/// Change-log entries handled per transaction.
const CHUNK: usize = 2048;

type Waiter = oneshot::Sender<Result<Reply, StoreError>>;

/// A compaction in progress and the callers waiting for it.
pub(crate) struct CompactionJob {
    target: Revision,
    waiters: Vec<Waiter>,
}

impl CompactionJob {
    pub(crate) fn new(target: Revision, waiter: Waiter) -> Self {
        Self {
            target,
            waiters: vec![waiter],
        }
    }

    /// A job resumed at open, with nobody waiting.
    pub(crate) fn resume(target: Revision) -> Self {
        Self {
            target,
            waiters: Vec::new(),
        }
    }

    pub(crate) fn target(&self) -> Revision {
        self.target
    }

    /// A later compaction request joins the running job and raises its target.
    pub(crate) fn add_waiter(&mut self, target: Revision, waiter: Waiter) {
        self.target = self.target.max(target);
        self.waiters.push(waiter);
    }

    pub(crate) fn finish(self, result: Result<(), StoreError>) {
        for w in self.waiters {
            let reply = match &result {
                Ok(()) => Ok(Reply::Compacted),
                Err(e) => Err(StoreError::Backend(e.to_string())),
            };
            let _ = w.send(reply);
        }
    }
}

/// Deletes one chunk of history below `target`. Returns `true` once nothing is left to delete.
///
/// For every key changed at a revision below `target`, only its newest version below `target`
/// is kept (reads at `target` and the previous value of events at `target` need it), and not even
/// that if it is a tombstone.
pub(crate) fn compact_chunk(
    db: &crate::writer::DbSlot,
    target: Revision,
) -> Result<bool, StoreError> {
    let mut txn = db.begin_write().map_err(backend)?;
    // Like writes, compaction becomes durable at the next checkpoint; if lost in a crash it is
    // resumed at open (the compaction point itself is in the log).
    txn.set_durability(redb::Durability::None)
        .map_err(|e| StoreError::Backend(e.to_string()))?;
    let done;
    {
        let mut revisions = txn.open_table(REVISIONS).map_err(backend)?;
        let mut history = txn.open_table(HISTORY).map_err(backend)?;
        let mut chunk: Vec<(Revision, Vec<u8>)> = Vec::with_capacity(CHUNK);
        for entry in revisions.range(..target).map_err(backend)? {
            let (rev, key) = entry.map_err(backend)?;
            chunk.push((rev.value(), key.value().to_vec()));
            if chunk.len() == CHUNK {
                break;
            }
        }
        done = chunk.len() < CHUNK;
        let mut seen = std::collections::HashSet::new();
        for (rev, key) in &chunk {
            revisions.remove(*rev).map_err(backend)?;
            if !seen.insert(key.clone()) {
                continue;
            }
            let kb = key.as_slice();
            let Some((keep, rec)) = version_at(&history, kb, target - 1)? else {
                continue;
            };
            history
                .retain_in((kb, 0u64)..(kb, keep), |_, _| false)
                .map_err(backend)?;
            if rec == Record::Tombstone {
                history.remove((kb, keep)).map_err(backend)?;
            }
        }
    }
    txn.commit().map_err(backend)?;
    Ok(done)
}
