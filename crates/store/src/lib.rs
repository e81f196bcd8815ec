//! The storage seam of rudder: a `Store` trait with the etcd v3 semantics the API server relies on.
//!
//! Every backend (embedded, etcd) implements [`Store`] and runs the [`conformance`] suite, so the
//! API server can treat them as interchangeable. The trait is deliberately small: the API server
//! only ever needs get, range, create-if-absent, compare-and-swap update/delete, watch and
//! compaction (the same subset kube-apiserver uses of etcd).

pub mod conformance;
mod error;
mod key;
mod types;

pub use error::StoreError;
pub use key::{MAX_KEY_LEN, MAX_VALUE_LEN, prefix_end, validate_key, validate_value};
pub use types::{
    DeleteOutcome, Event, EventKind, GetResponse, KeyValue, RangeRequest, RangeResponse, Revision,
    WatchBatch, WatchStream, WriteOutcome,
};

use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

/// The bytes of a store snapshot, in the backend's own format (see [`Store::snapshot`]).
pub type SnapshotStream = Pin<Box<dyn Stream<Item = Result<Bytes, StoreError>> + Send>>;

/// Result alias for store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A multi-version key/value store with a single global revision counter.
///
/// Semantics (shared by every backend and checked by [`conformance`]):
/// - every successful mutation gets the next global revision; revisions never go backwards;
/// - reads can be served at the current revision or at any revision not yet compacted;
/// - `create` succeeds only if the key is absent; `update`/`delete` succeed only if the key's
///   current `mod_revision` equals the caller's expectation. A failed guard is an *outcome*
///   ([`WriteOutcome::Conflict`], …), not an error;
/// - a watch delivers every event on its prefix with revision `>= start`, in revision order,
///   with the previous value attached to deletes and updates;
/// - after `compact(c)`, reads and watches that need revisions `< c` fail with
///   [`StoreError::Compacted`].
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Reads one key, at the current revision or at `revision` if given.
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse>;

    /// Reads keys under a prefix, in key order, at one revision (see [`RangeRequest`]).
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse>;

    /// Creates `key` if it does not exist.
    async fn create(&self, key: &str, value: Bytes) -> Result<WriteOutcome>;

    /// Replaces `key`'s value if its current `mod_revision` is `expected`.
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<WriteOutcome>;

    /// Deletes `key`, only if its `mod_revision` is `expected` when one is given.
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<DeleteOutcome>;

    /// Watches every key starting with `prefix`, delivering events with revision `>= start`.
    ///
    /// `start` may be in the past (events are replayed from history) or `current + 1`.
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream>;

    /// Discards history before `revision`; the current value of every key is kept.
    async fn compact(&self, revision: Revision) -> Result<()>;

    /// The revision of the latest committed mutation.
    async fn current_revision(&self) -> Result<Revision>;

    /// A consistent copy of the whole store at one revision, for backups, produced while the
    /// store keeps serving. The format is the backend's own and must carry its own integrity
    /// check (the embedded store's is `rudder_store_embedded::snapshot`). Backends that have
    /// their own tool for this refuse with [`StoreError::Unsupported`]: etcd's is
    /// `etcdctl snapshot save`.
    async fn snapshot(&self) -> Result<SnapshotStream> {
        Err(StoreError::Unsupported(
            "this store has no built-in snapshot; back it up with its own tools \
             (etcd: `etcdctl snapshot save`, see docs/operations.md)"
                .into(),
        ))
    }
}

/// A shared store is a store: lets components hold `Arc<dyn Store>` and pass it on.
#[async_trait]
impl<S: Store + ?Sized> Store for std::sync::Arc<S> {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        (**self).get(key, revision).await
    }
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        (**self).range(req).await
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<WriteOutcome> {
        (**self).create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<WriteOutcome> {
        (**self).update(key, value, expected).await
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<DeleteOutcome> {
        (**self).delete(key, expected).await
    }
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        (**self).watch(prefix, start).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        (**self).compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision> {
        (**self).current_revision().await
    }
    async fn snapshot(&self) -> Result<SnapshotStream> {
        (**self).snapshot().await
    }
}
