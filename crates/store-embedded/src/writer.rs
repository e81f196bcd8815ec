//! The single writer thread: applies mutations in group-committed redb transactions.
//!
//! redb allows one write transaction at a time and each durable commit costs an fsync. Requests
//! from all callers queue here; the thread takes every request waiting (up to a byte budget),
//! applies them in order in one transaction — each mutation still gets its own revision — commits
//! once, then publishes the events and answers the callers. An answer is sent only after the
//! commit is on disk, so an acknowledged write survives `kill -9`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TransactionError};
use rudder_store::{DeleteOutcome, Event, EventKind, KeyValue, Revision, StoreError, WriteOutcome};
use tokio::sync::{mpsc, oneshot};

use crate::compact::{CompactionJob, compact_chunk};
use crate::schema::{
    HISTORY, LATEST, META, META_COMPACTED, META_REVISION, REVISIONS, Record, backend, version_at,
};
use crate::wal::Wal;
use crate::watch::Hub;

/// Most bytes of values applied in one transaction, so that one commit stays short.
const BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Most requests applied in one transaction.
const BATCH_OPS: usize = 4096;

/// A mutation sent to the writer.
pub(crate) enum Op {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: Revision,
    },
    Delete {
        key: String,
        expected: Option<Revision>,
    },
    Compact {
        revision: Revision,
    },
    /// Sent by the ticker thread so an idle writer still checkpoints; never reaches redb.
    Tick,
    /// Fold the log into redb now (a clean shutdown); answered once done.
    Checkpoint,
}

impl Op {
    fn size(&self) -> usize {
        match self {
            Op::Create { key, value } | Op::Update { key, value, .. } => key.len() + value.len(),
            Op::Delete { key, .. } => key.len(),
            Op::Compact { .. } | Op::Tick | Op::Checkpoint => 0,
        }
    }
}

/// The writer's answer.
pub(crate) enum Reply {
    Write(WriteOutcome),
    Delete(DeleteOutcome),
    Compacted,
    Checkpointed,
}

pub(crate) struct Request {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Reply, StoreError>>,
}

/// State shared between the writer and readers.
pub(crate) struct Shared {
    /// The open database (reopened by the writer after a storage error).
    pub(crate) db: DbSlot,
    /// Latest committed revision.
    pub(crate) committed: AtomicU64,
    /// Reads and watches below this revision fail with `Compacted`.
    pub(crate) compacted: AtomicU64,
    pub(crate) hub: Hub,
}

/// The database, swappable: a storage error (a full disk) latches every later redb operation
/// into an error until the file is reopened, which only the writer thread does. Readers hold the
/// lock only while they begin a transaction (a transaction outlives the guard).
pub(crate) struct DbSlot(RwLock<Option<Database>>);

impl DbSlot {
    pub(crate) fn new(db: Database) -> Self {
        Self(RwLock::new(Some(db)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Option<Database>> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A read transaction, as `Database::begin_read`; while the writer reopens the file, what
    /// redb itself answers on a closed database.
    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction, TransactionError> {
        match &*self.read() {
            Some(db) => db.begin_read(),
            None => Err(TransactionError::Storage(
                redb::StorageError::DatabaseClosed,
            )),
        }
    }

    /// A write transaction, as `Database::begin_write`.
    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction, TransactionError> {
        match &*self.read() {
            Some(db) => db.begin_write(),
            None => Err(TransactionError::Storage(
                redb::StorageError::DatabaseClosed,
            )),
        }
    }

    fn take(&self) -> Option<Database> {
        self.0.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put(&self, db: Database) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(db);
    }
}

/// The log is folded into redb (one durable commit) and emptied when it fills its
/// preallocated file (a smaller log means shorter checkpoint stalls)...
const CHECKPOINT_BYTES: u64 = crate::wal::PREALLOC;
/// ...or when it is this old.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The writer's private state.
pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) wal: Wal,
    revision: Revision,
    last_checkpoint: Instant,
    /// Where the database lives and its cache size, to reopen it after a storage error.
    path: PathBuf,
    cache_bytes: usize,
    /// Set after a storage error (a full disk, an I/O error): redb refuses everything until the
    /// file is reopened, so the writer reopens it and replays the log before the next batch,
    /// and fails batches with this error while that does not succeed.
    broken: Option<String>,
    /// Set when redb and the log may disagree; every later request fails until restart.
    poisoned: Option<String>,
}

impl Writer {
    pub(crate) fn new(shared: Arc<Shared>, wal: Wal, path: PathBuf, cache_bytes: usize) -> Self {
        let revision = shared.committed.load(Ordering::Acquire);
        Self {
            shared,
            wal,
            revision,
            last_checkpoint: Instant::now(),
            path,
            cache_bytes,
            broken: None,
            poisoned: None,
        }
    }

    /// Runs the writer loop until every request sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>, resume: Option<CompactionJob>) {
        let mut compaction = resume;
        loop {
            let mut batch = Vec::new();
            if compaction.is_some() {
                // Interleave compaction chunks with writes: never wait while compaction is pending.
                while let Ok(req) = rx.try_recv() {
                    batch.push(req);
                    if batch.len() >= BATCH_OPS {
                        break;
                    }
                }
            } else {
                match recv_soon(&mut rx) {
                    Some(req) => batch.push(req),
                    None => {
                        self.checkpoint();
                        return;
                    }
                }
                let mut bytes = batch[0].op.size();
                while bytes < BATCH_BYTES && batch.len() < BATCH_OPS {
                    match rx.try_recv() {
                        Ok(req) => {
                            bytes += req.op.size();
                            batch.push(req);
                        }
                        Err(_) => break,
                    }
                }
            }
            batch.retain(|r| !matches!(r.op, Op::Tick));
            let (asked, rest): (Vec<Request>, Vec<Request>) = batch
                .into_iter()
                .partition(|r| matches!(r.op, Op::Checkpoint));
            let batch = rest;
            // Ticks come every second, so a broken store retries its reopen at least that often.
            if self.broken.is_some() && self.poisoned.is_none() {
                self.recover();
            }
            if !batch.is_empty() {
                self.apply_batch(batch, &mut compaction);
            }
            if let Some(job) = compaction.take() {
                compaction = step_compaction(&self.shared, job, &mut self.broken);
            }
            if !asked.is_empty()
                || self.wal.len() >= CHECKPOINT_BYTES
                || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
            {
                self.checkpoint();
            }
            for req in asked {
                let outcome = match (&self.poisoned, &self.broken) {
                    (Some(e), _) | (None, Some(e)) => Err(StoreError::Backend(e.clone())),
                    (None, None) => Ok(Reply::Checkpointed),
                };
                let _ = req.reply.send(outcome);
            }
        }
    }

    /// Makes everything committed so far durable in redb, then empties the log.
    fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if self.wal.len() == 0 || self.poisoned.is_some() || self.broken.is_some() {
            return;
        }
        let result = (|| {
            let txn = self.shared.db.begin_write().map_err(backend)?;
            txn.commit().map_err(backend)?;
            self.wal.reset()
        })();
        if let Err(e) = result {
            // The log still holds everything: reopening redb and replaying it loses nothing.
            tracing::error!(error = %e, "store checkpoint failed; reopening the store");
            self.broken = Some(e.to_string());
        }
    }

    /// Reopens the database after a storage error and replays the log into it, so that redb
    /// holds exactly the acknowledged writes again. On failure (the disk still full) the store
    /// stays broken and the next batch or tick tries again.
    fn recover(&mut self) {
        // Readers now get `Unavailable` instead of redb's latched error; the old handle is
        // closed first because redb holds a lock on its file.
        let old = self.shared.db.take();
        if let Some(old) = old
            && let Err(e) = old.close()
        {
            tracing::debug!(error = %e, "closing the failed store");
        }
        let result = (|| -> Result<Database, StoreError> {
            let db = Database::builder()
                .set_cache_size(self.cache_bytes)
                .create(&self.path)
                .map_err(|e| {
                    StoreError::Backend(format!("reopening {}: {e}", self.path.display()))
                })?;
            let (durable, _) = read_counters(&db)?;
            let entries = self.wal.entries()?;
            crate::recover::replay(&db, durable, &entries)?;
            let (revision, _) = read_counters(&db)?;
            if revision != self.revision {
                return Err(StoreError::Corrupt(format!(
                    "after replaying the log the store is at revision {revision}, not {}",
                    self.revision
                )));
            }
            self.wal.reset()?;
            Ok(db)
        })();
        match result {
            Ok(db) => {
                self.shared.db.put(db);
                tracing::warn!(
                    revision = self.revision,
                    "store reopened after a storage error"
                );
                self.broken = None;
            }
            Err(StoreError::Corrupt(why)) => {
                tracing::error!(error = %why, "store cannot recover; refusing writes until restart");
                self.poisoned = Some(why);
            }
            Err(e) => {
                tracing::warn!(error = %e, "store still failing; retrying");
                self.broken = Some(e.to_string());
            }
        }
    }

    fn apply_batch(&mut self, batch: Vec<Request>, compaction: &mut Option<CompactionJob>) {
        let refusal = match (&self.poisoned, &self.broken) {
            (Some(why), _) => Some(format!("store is failed until restart: {why}")),
            (None, Some(why)) => Some(format!("store is recovering from a storage error: {why}")),
            (None, None) => None,
        };
        if let Some(why) = refusal {
            for req in batch {
                let _ = req.reply.send(Err(StoreError::Backend(why.clone())));
            }
            return;
        }
        let shared = self.shared.clone();
        let revision = &mut self.revision;
        let wal = &mut self.wal;
        let mut poison = None;
        let result = (|| -> Result<_, StoreError> {
            let mut txn = shared.db.begin_write().map_err(backend)?;
            // Durability comes from the log; redb is made durable at checkpoints.
            txn.set_durability(redb::Durability::None)
                .map_err(|e| StoreError::Backend(e.to_string()))?;
            let mut next = *revision;
            let mut replies = Vec::with_capacity(batch.len());
            let mut events = Vec::new();
            let mut compactions = Vec::new();
            let mut floor = shared.compacted.load(Ordering::Acquire);
            {
                // Tables are opened once per transaction: opening one costs a lookup and a
                // write-back of its root at close, far more than an insert.
                let mut tables = Tables {
                    history: txn.open_table(HISTORY).map_err(backend)?,
                    latest: txn.open_table(LATEST).map_err(backend)?,
                    revisions: txn.open_table(REVISIONS).map_err(backend)?,
                    meta: txn.open_table(META).map_err(backend)?,
                };
                for (i, req) in batch.iter().enumerate() {
                    let reply = match &req.op {
                        Op::Compact { revision: target } => {
                            match start_compaction(&mut tables, &mut floor, next, *target) {
                                Ok(()) => {
                                    compactions.push((i, *target));
                                    continue;
                                }
                                Err(e) => Err(e),
                            }
                        }
                        op => apply_op(&mut tables, &mut next, op, &mut events),
                    };
                    replies.push((i, reply));
                }
                if next != *revision {
                    tables.meta.insert(META_REVISION, next).map_err(backend)?;
                }
            }
            let targets: Vec<Revision> = compactions.iter().map(|&(_, t)| t).collect();
            let logged_to = wal.len();
            if !events.is_empty() || !targets.is_empty() {
                // On failure the transaction is dropped uncommitted: nothing of the batch is kept.
                wal.append(&crate::wal::encode(&events, &targets))?;
            }
            if let Err(e) = txn.commit() {
                // The log has the batch but redb does not, and the callers will hear it failed:
                // take the record back out of the log (an in-place write, which needs no new
                // disk space) so that the reopen's replay does not resurrect it. If even that
                // fails, revisions could be reused: stop until a restart.
                let e = backend(e);
                if let Err(cut) = wal.cut(logged_to) {
                    poison = Some(format!("{e}; then {cut}"));
                }
                return Err(e);
            }
            Ok((next, replies, events, compactions))
        })();
        if let Some(why) = poison {
            tracing::error!(error = %why, "store commit failed after logging; refusing writes until restart");
            self.poisoned = Some(why);
        }
        match result {
            Ok((next, replies, events, compactions)) => {
                *revision = next;
                if let Some(&(_, target)) = compactions.last() {
                    shared.compacted.fetch_max(target, Ordering::AcqRel);
                }
                shared.committed.store(next, Ordering::Release);
                shared.hub.publish(next, events);
                let mut batch: Vec<Option<Request>> = batch.into_iter().map(Some).collect();
                for (i, reply) in replies {
                    if let Some(req) = batch[i].take() {
                        let _ = req.reply.send(reply);
                    }
                }
                for (i, target) in compactions {
                    if let Some(req) = batch[i].take() {
                        // Compaction answers once history is gone, not when it starts.
                        match compaction {
                            Some(job) => job.add_waiter(target, req.reply),
                            None => *compaction = Some(CompactionJob::new(target, req.reply)),
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "store commit failed");
                // redb latches a storage error into every later operation: reopen before the
                // next batch (a no-op cost for errors that were not redb's).
                self.broken = Some(e.to_string());
                for req in batch {
                    let _ = req.reply.send(Err(StoreError::Backend(e.to_string())));
                }
            }
        }
    }
}

/// Records a new compaction point in `txn`; the history itself is removed later, in chunks.
fn start_compaction(
    tables: &mut Tables<'_>,
    floor: &mut Revision,
    current: Revision,
    target: Revision,
) -> Result<(), StoreError> {
    if target <= *floor {
        return Err(StoreError::Compacted {
            requested: target,
            compacted: *floor,
        });
    }
    if target > current {
        return Err(StoreError::FutureRevision {
            requested: target,
            current,
        });
    }
    tables
        .meta
        .insert(META_COMPACTED, target)
        .map_err(backend)?;
    *floor = target;
    Ok(())
}

fn step_compaction(
    shared: &Shared,
    job: CompactionJob,
    broken: &mut Option<String>,
) -> Option<CompactionJob> {
    match compact_chunk(&shared.db, job.target()) {
        Ok(true) => {
            job.finish(Ok(()));
            None
        }
        Ok(false) => Some(job),
        Err(e) => {
            tracing::error!(error = %e, "compaction failed");
            // redb latched the error: reopen. History left below the compaction point is
            // unreadable anyway, and the next compaction (a higher target) removes it.
            *broken = Some(e.to_string());
            job.finish(Err(e));
            None
        }
    }
}

/// The tables of one write transaction.
struct Tables<'txn> {
    history: redb::Table<'txn, (&'static [u8], u64), &'static [u8]>,
    latest: redb::Table<'txn, &'static [u8], u64>,
    revisions: redb::Table<'txn, u64, &'static [u8]>,
    meta: redb::Table<'txn, &'static str, u64>,
}

fn apply_op(
    tables: &mut Tables<'_>,
    next: &mut Revision,
    op: &Op,
    events: &mut Vec<Event>,
) -> Result<Reply, StoreError> {
    let Tables {
        history,
        latest,
        revisions,
        ..
    } = tables;
    let (key, current_rev) = match op {
        Op::Create { key, .. } | Op::Update { key, .. } | Op::Delete { key, .. } => {
            let rev = latest
                .get(key.as_bytes())
                .map_err(backend)?
                .map(|g| g.value());
            (key, rev)
        }
        Op::Compact { .. } | Op::Tick | Op::Checkpoint => {
            return Err(StoreError::Backend("not a key operation".into()));
        }
    };
    let kb = key.as_bytes();
    let current = match current_rev {
        Some(rev) => match version_at(&*history, kb, rev)? {
            Some((r, rec)) if r == rev => rec.into_kv(kb, rev)?,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "latest version of {key} is missing"
                )));
            }
        },
        None => None,
    };
    // All checks are done above; only inserts follow, so a failure leaves nothing half-applied
    // (and a storage error aborts the whole transaction anyway).
    let revision = *next + 1;
    match (op, current) {
        (Op::Create { .. }, Some(cur)) => Ok(Reply::Write(WriteOutcome::AlreadyExists(cur))),
        (Op::Create { value, .. }, None) => {
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
            };
            write_put(history, latest, revisions, &kv)?;
            *next = revision;
            events.push(Event {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: None,
            });
            Ok(Reply::Write(WriteOutcome::Written(kv)))
        }
        (
            Op::Update {
                expected, value, ..
            },
            Some(cur),
        ) if cur.mod_revision == *expected => {
            let kv = KeyValue {
                key: key.clone(),
                value: value.clone(),
                create_revision: cur.create_revision,
                mod_revision: revision,
                version: cur.version + 1,
            };
            write_put(history, latest, revisions, &kv)?;
            *next = revision;
            events.push(Event {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: Some(cur),
            });
            Ok(Reply::Write(WriteOutcome::Written(kv)))
        }
        (Op::Update { .. }, cur) => Ok(Reply::Write(WriteOutcome::Conflict(cur))),
        (Op::Delete { .. }, None) => Ok(Reply::Delete(DeleteOutcome::NotFound)),
        (
            Op::Delete {
                expected: Some(e), ..
            },
            Some(cur),
        ) if cur.mod_revision != *e => Ok(Reply::Delete(DeleteOutcome::Conflict(cur))),
        (Op::Delete { .. }, Some(cur)) => {
            history
                .insert((kb, revision), Record::encode_tombstone().as_slice())
                .map_err(backend)?;
            latest.remove(kb).map_err(backend)?;
            revisions.insert(revision, kb).map_err(backend)?;
            *next = revision;
            let tombstone = KeyValue {
                key: key.clone(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: revision,
                version: 0,
            };
            events.push(Event {
                kind: EventKind::Delete,
                kv: tombstone,
                prev: Some(cur.clone()),
            });
            Ok(Reply::Delete(DeleteOutcome::Deleted {
                revision,
                prev: cur,
            }))
        }
        (Op::Compact { .. } | Op::Tick | Op::Checkpoint, _) => {
            Err(StoreError::Backend("not a key operation".into()))
        }
    }
}

fn write_put(
    history: &mut redb::Table<(&'static [u8], u64), &'static [u8]>,
    latest: &mut redb::Table<&'static [u8], u64>,
    revisions: &mut redb::Table<u64, &'static [u8]>,
    kv: &KeyValue,
) -> Result<(), StoreError> {
    let kb = kv.key.as_bytes();
    let rec = Record::encode_put(kv.create_revision, kv.version, &kv.value);
    history
        .insert((kb, kv.mod_revision), rec.as_slice())
        .map_err(backend)?;
    latest.insert(kb, kv.mod_revision).map_err(backend)?;
    revisions.insert(kv.mod_revision, kb).map_err(backend)?;
    Ok(())
}

/// Reads the committed revision and compaction point at open.
pub(crate) fn read_counters(db: &Database) -> Result<(Revision, Revision), StoreError> {
    let txn = db.begin_read().map_err(backend)?;
    let meta = txn.open_table(META).map_err(backend)?;
    let rev =
        crate::schema::meta_get(&meta, META_REVISION)?.unwrap_or(crate::schema::INITIAL_REVISION);
    let compacted = crate::schema::meta_get(&meta, META_COMPACTED)?.unwrap_or(0);
    Ok((rev, compacted))
}

/// True if `revisions` still holds entries below `compacted` (a compaction was interrupted).
pub(crate) fn compaction_unfinished(
    db: &Database,
    compacted: Revision,
) -> Result<bool, StoreError> {
    let txn = db.begin_read().map_err(backend)?;
    let revisions = txn.open_table(REVISIONS).map_err(backend)?;
    let first = revisions.first().map_err(backend)?.map(|(k, _)| k.value());
    Ok(matches!(first, Some(r) if r < compacted))
}

/// Wakes the writer once per checkpoint interval so an idle store still folds its log into redb.
/// Holds only a weak sender: when the store is dropped, the ticker ends.
pub(crate) fn start_ticker(writer: &mpsc::Sender<Request>) -> std::io::Result<()> {
    let weak = writer.downgrade();
    std::thread::Builder::new()
        .name("store-ticker".into())
        .spawn(move || {
            loop {
                std::thread::sleep(CHECKPOINT_EVERY);
                let Some(tx) = weak.upgrade() else { return };
                let (reply, _) = oneshot::channel();
                // A full queue means the writer is busy and will checkpoint anyway.
                let _ = tx.try_send(Request {
                    op: Op::Tick,
                    reply,
                });
            }
        })?;
    Ok(())
}

/// How long the writer polls for the next request before parking. A caller that just got its
/// answer usually sends again within tens of microseconds; catching that without a park/unpark
/// round trip through the scheduler saves about as much as the request itself costs.
const SPIN: Duration = Duration::from_micros(50);

fn recv_soon(rx: &mut mpsc::Receiver<Request>) -> Option<Request> {
    let start = Instant::now();
    while start.elapsed() < SPIN {
        match rx.try_recv() {
            Ok(req) => return Some(req),
            Err(mpsc::error::TryRecvError::Disconnected) => return None,
            Err(mpsc::error::TryRecvError::Empty) => std::hint::spin_loop(),
        }
    }
    rx.blocking_recv()
}
