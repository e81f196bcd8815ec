//! rudder's default store: MVCC on one redb file, group-committed, durable across `kill -9`.
//!
//! See `docs/adr/0002-embedded-store-engine.md` for why redb, and [`schema`] for the layout.
//! Writes funnel through one writer thread ([`writer`]) that commits many callers' mutations in
//! one fsync; reads open redb snapshots concurrently; watches replay the on-disk change log and
//! then follow the writer's live broadcast ([`watch`]).

mod compact;
mod format;
mod read;
mod recover;
pub mod schema;
pub mod snapshot;
mod wal;
mod watch;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use redb::Database;
use rudder_store::{
    DeleteOutcome, GetResponse, RangeRequest, RangeResponse, Revision, SnapshotStream, Store,
    StoreError, WatchStream, WriteOutcome, validate_key, validate_value,
};
use tokio::sync::{mpsc, oneshot};

use crate::writer::{Op, Reply, Request, Shared};

/// Requests queued for the writer before callers wait for room.
const QUEUE: usize = 16 * 1024;

/// Tuning knobs for [`EmbeddedStore::open_with`].
#[derive(Clone, Debug)]
pub struct Options {
    /// Bytes of redb page cache.
    pub cache_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            cache_bytes: 256 * 1024 * 1024,
        }
    }
}

/// The embedded [`Store`]. Cheap to clone; all clones share one database and writer.
#[derive(Clone)]
pub struct EmbeddedStore {
    shared: Arc<Shared>,
    writer: mpsc::Sender<Request>,
    path: PathBuf,
}

impl EmbeddedStore {
    /// Opens (or creates) the store file at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, Options::default())
    }

    /// Opens (or creates) the store file at `path`. Must be called inside a Tokio runtime.
    pub fn open_with(path: impl AsRef<Path>, options: Options) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Backend(format!("creating {}: {e}", dir.display())))?;
        }
        let db = Database::builder()
            .set_cache_size(options.cache_bytes)
            .create(&path)
            .map_err(|e| StoreError::Backend(format!("opening {}: {e}", path.display())))?;
        let found = format::open(&db)?;
        if found != schema::FORMAT_VERSION {
            tracing::info!(
                from = found,
                to = schema::FORMAT_VERSION,
                "store data format migrated"
            );
        }
        let (durable, _) = writer::read_counters(&db)?;
        let (mut wal, entries) = wal::Wal::open(&wal_path(&path))?;
        if !entries.is_empty() {
            let applied = recover::replay(&db, durable, &entries)?;
            tracing::info!(applied, "replayed the write-ahead log");
            wal.reset()?;
        }
        let (revision, compacted) = writer::read_counters(&db)?;
        let resume = if writer::compaction_unfinished(&db, compacted)? {
            tracing::info!(compacted, "resuming an interrupted compaction");
            Some(compact::CompactionJob::resume(compacted))
        } else {
            None
        };
        let shared = Arc::new(Shared {
            db: writer::DbSlot::new(db),
            committed: AtomicU64::new(revision),
            compacted: AtomicU64::new(compacted),
            hub: watch::Hub::new(revision),
        });
        let (tx, rx) = mpsc::channel(QUEUE);
        let w = writer::Writer::new(shared.clone(), wal, path.clone(), options.cache_bytes);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || w.run(rx, resume))
            .map_err(|e| StoreError::Backend(format!("starting the writer thread: {e}")))?;
        writer::start_ticker(&tx)
            .map_err(|e| StoreError::Backend(format!("starting the checkpoint ticker: {e}")))?;
        tracing::debug!(path = %path.display(), revision, compacted, "embedded store open");
        Ok(Self {
            shared,
            writer: tx,
            path,
        })
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folds the write-ahead log into the redb file now, as a clean shutdown does: afterwards
    /// the file alone holds every acknowledged write. Writes are durable without this (the log
    /// is replayed at open); it only spares the next start the replay.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        match self.submit(Op::Checkpoint).await? {
            Reply::Checkpointed => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn submit(&self, op: Op) -> Result<Reply, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(Request { op, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Shared) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || f(&shared))
            .await
            .map_err(|e| StoreError::Backend(format!("read task failed: {e}")))?
    }
}

/// The write-ahead log lives next to the redb file.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".wal");
    db.with_file_name(name)
}

fn unexpected(reply: Reply) -> StoreError {
    let what = match reply {
        Reply::Write(_) => "write",
        Reply::Delete(_) => "delete",
        Reply::Compacted => "compaction",
        Reply::Checkpointed => "checkpoint",
    };
    StoreError::Backend(format!("writer answered with an unexpected {what} reply"))
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse, StoreError> {
        validate_key(key)?;
        let key = key.to_owned();
        self.blocking(move |s| read::get(s, &key, revision)).await
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        self.blocking(move |s| read::range(s, &req)).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<WriteOutcome, StoreError> {
        validate_key(key)?;
        validate_value(&value)?;
        match self
            .submit(Op::Create {
                key: key.to_owned(),
                value,
            })
            .await?
        {
            Reply::Write(w) => Ok(w),
            other => Err(unexpected(other)),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected: Revision,
    ) -> Result<WriteOutcome, StoreError> {
        validate_key(key)?;
        validate_value(&value)?;
        match self
            .submit(Op::Update {
                key: key.to_owned(),
                value,
                expected,
            })
            .await?
        {
            Reply::Write(w) => Ok(w),
            other => Err(unexpected(other)),
        }
    }

    async fn delete(
        &self,
        key: &str,
        expected: Option<Revision>,
    ) -> Result<DeleteOutcome, StoreError> {
        validate_key(key)?;
        match self
            .submit(Op::Delete {
                key: key.to_owned(),
                expected,
            })
            .await?
        {
            Reply::Delete(d) => Ok(d),
            other => Err(unexpected(other)),
        }
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream, StoreError> {
        let compacted = self.shared.compacted.load(Ordering::Acquire);
        if start < compacted {
            return Err(StoreError::Compacted {
                requested: start,
                compacted,
            });
        }
        Ok(watch::start(self.shared.clone(), prefix.to_owned(), start))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        match self.submit(Op::Compact { revision }).await? {
            Reply::Compacted => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    async fn current_revision(&self) -> Result<Revision, StoreError> {
        Ok(self.shared.committed.load(Ordering::Acquire))
    }

    async fn snapshot(&self) -> Result<SnapshotStream, StoreError> {
        Ok(snapshot::stream(self.shared.clone()))
    }
}
