//! The values that flow through the [`crate::Store`] trait.

use std::pin::Pin;

use bytes::Bytes;
use futures::Stream;

use crate::StoreError;

/// A global store revision. Every mutation increments it by one; `resourceVersion` in the API is
/// this number as a string.
pub type Revision = u64;

/// One key with its value and revisions, as etcd reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value; empty in delete events.
    pub value: Bytes,
    /// Revision at which the key was (last) created.
    pub create_revision: Revision,
    /// Revision of the last modification.
    pub mod_revision: Revision,
    /// Number of modifications since creation, starting at 1.
    pub version: u64,
}

/// Answer to [`crate::Store::get`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetResponse {
    /// The key's value at the read revision, if it existed then.
    pub kv: Option<KeyValue>,
    /// The revision the read was served at.
    pub revision: Revision,
}

/// A range read under a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// Only keys starting with this prefix are returned.
    pub prefix: String,
    /// Start at this key (inclusive) instead of at `prefix`. Used for continuation: pass
    /// [`RangeResponse::continue_key`] of the previous page.
    pub start: Option<String>,
    /// At most this many keys; 0 means no limit.
    pub limit: usize,
    /// Read at this revision instead of the current one. Continuation pages must pass the first
    /// page's [`RangeResponse::revision`] so that all pages show one consistent state.
    pub revision: Option<Revision>,
}

impl RangeRequest {
    /// A range over every key under `prefix`, at the current revision, without limit.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// Sets the page size.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Sets the read revision.
    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = Some(revision);
        self
    }

    /// The first key of the range: `start` if given, else the prefix itself.
    pub fn start_key(&self) -> &str {
        self.start.as_deref().unwrap_or(&self.prefix)
    }
}

/// Answer to [`crate::Store::range`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeResponse {
    /// Keys in ascending byte order.
    pub kvs: Vec<KeyValue>,
    /// Whether keys beyond the limit remain.
    pub more: bool,
    /// The revision the range was read at.
    pub revision: Revision,
}

impl RangeResponse {
    /// Where the next page starts, if there is one: just after the last returned key.
    pub fn continue_key(&self) -> Option<String> {
        if !self.more {
            return None;
        }
        // Keys never contain NUL, so `last + "\0"` is the immediate successor of `last`.
        self.kvs.last().map(|kv| format!("{}\0", kv.key))
    }
}

/// Result of `create` and `update`: either the write happened, or its guard failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The write was committed; this is the new value.
    Written(KeyValue),
    /// `create` found the key already present; this is its current value.
    AlreadyExists(KeyValue),
    /// `update` found a different `mod_revision` (or no key: `None`).
    Conflict(Option<KeyValue>),
}

/// Result of `delete`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The key was deleted at `revision`; `prev` is the value it had.
    Deleted {
        /// Revision of the delete.
        revision: Revision,
        /// The deleted value.
        prev: KeyValue,
    },
    /// The key's `mod_revision` did not match; this is its current value.
    Conflict(KeyValue),
    /// The key did not exist.
    NotFound,
}

/// Kind of a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change, as delivered by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The key after the change. For deletes the value is empty, `mod_revision` is the revision
    /// of the delete, and `create_revision`/`version` are 0.
    pub kv: KeyValue,
    /// The value before the change: set for updates and deletes, `None` for creations.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of this event.
    pub fn revision(&self) -> Revision {
        self.kv.mod_revision
    }
}

/// A batch of events in revision order. Batches are a delivery unit only.
pub type WatchBatch = Vec<Event>;

/// The stream a watch returns. It ends after yielding an error.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchBatch, StoreError>> + Send>>;
