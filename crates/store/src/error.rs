//! Errors a store operation can fail with; expected outcomes such as conflicts are not here.

/// Why a store operation failed.
///
/// Guard failures (key exists, revision mismatch, key missing) are reported as outcome values
/// ([`crate::WriteOutcome`], [`crate::DeleteOutcome`]) because callers handle them as ordinary
/// control flow; these variants are the cases a caller cannot proceed from.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The requested revision is older than the last compaction (the API turns this into 410 Gone).
    #[error("required revision {requested} has been compacted (compacted up to {compacted})")]
    Compacted {
        /// The revision the caller asked for.
        requested: u64,
        /// The store's compaction revision: the oldest revision still readable.
        compacted: u64,
    },
    /// The requested revision has not happened yet.
    #[error("revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        /// The revision the caller asked for.
        requested: u64,
        /// The store's current revision.
        current: u64,
    },
    /// The key is empty, too long, or otherwise unusable.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value exceeds [`crate::MAX_VALUE_LEN`].
    #[error("value of {len} bytes exceeds the limit of {max} bytes")]
    ValueTooLarge {
        /// Size of the rejected value.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A watcher fell too far behind and its events can no longer be replayed.
    #[error("watch cancelled: {0}")]
    WatchCancelled(String),
    /// The backend could not be reached or timed out (e.g. etcd unavailable).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Stored bytes could not be decoded: the data on disk is not what this version wrote.
    #[error("corrupt store data: {0}")]
    Corrupt(String),
    /// The store is closed or shutting down.
    #[error("store is closed")]
    Closed,
    /// Any other failure of the underlying engine.
    #[error("store backend error: {0}")]
    Backend(String),
    /// The backend does not offer this (a snapshot of etcd is `etcdctl`'s job), or the data on
    /// disk is in a format this binary does not know; the message says what to do instead.
    #[error("{0}")]
    Unsupported(String),
}
