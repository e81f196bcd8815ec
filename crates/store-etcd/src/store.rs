//! [`EtcdStore`]: each [`Store`] operation as one etcd request.
//!
//! Guarded writes are single etcd transactions, so the check and the write are atomic on the
//! server: `create` compares `create_revision == 0`, `update` and guarded `delete` compare
//! `mod_revision`. The else-branch reads the key, so a failed guard comes back with the current
//! value in the same round trip, as the trait's outcomes require.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::proto::{PbRangeResponse, PbTxnOpResponse, PbTxnResponse};
use etcd_client::{
    CompactionOptions, Compare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp, WatchOptions,
};
use futures::StreamExt;
use rudder_store::{
    DeleteOutcome, GetResponse, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store,
    StoreError, WatchStream, WriteOutcome, validate_key, validate_value,
};

use crate::EtcdOptions;
use crate::convert::{
    Keyspace, header_revision, revision, to_etcd_revision, validate_prefix, validate_start,
};
use crate::endpoints::{Endpoints, Retry};
use crate::error::{ErrorClass, classify, malformed, plain};
use crate::watch::{self, WatchParams};

/// How long to wait for etcd to report its compaction revision when filling in a
/// [`StoreError::Compacted`] (see [`EtcdStore::compacted_revision`]).
const COMPACTION_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A [`Store`] backed by an etcd v3 cluster.
///
/// Cloning is cheap and clones share the connections.
#[derive(Clone)]
pub struct EtcdStore {
    endpoints: Arc<Endpoints>,
    keyspace: Keyspace,
    options: EtcdOptions,
    watch_reconnects: Arc<AtomicU64>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Creates a store over the etcd members at `endpoints` (`http://host:port`).
    ///
    /// Connections are made lazily; requests are spread over the members and go around members
    /// that fail (see the `endpoints` module). A request fails with [`StoreError::Unavailable`]
    /// if no member can serve it; call [`Store::current_revision`] to check that the cluster
    /// answers. Requests require the serving member to have a leader, so a member cut off from
    /// the quorum answers "unavailable" instead of stale data.
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<Self> {
        let keyspace = Keyspace::new(&options.namespace)?;
        let endpoints = Arc::new(Endpoints::connect(endpoints, &options).await?);
        Ok(Self {
            endpoints,
            keyspace,
            options,
            watch_reconnects: Arc::default(),
        })
    }

    /// How many times watches of this store re-established themselves after their stream broke
    /// (a member died, a connection was reset). Exposed for metrics and tests.
    pub fn watch_reconnects(&self) -> u64 {
        self.watch_reconnects.load(Ordering::Relaxed)
    }

    /// The options this store was created with.
    pub fn options(&self) -> &EtcdOptions {
        &self.options
    }

    /// Turns a failed request into a [`StoreError`], filling in the revisions etcd's compacted
    /// and future-revision errors do not carry.
    async fn fail(&self, err: etcd_client::Error, requested: Option<Revision>) -> StoreError {
        match (classify(&err), requested) {
            (ErrorClass::Compacted, Some(requested)) => {
                // Best effort: if the probe fails, the smallest value consistent with the error.
                let compacted = match self.compacted_revision().await {
                    Ok(Some(c)) => c,
                    _ => requested + 1,
                };
                StoreError::Compacted {
                    requested,
                    compacted,
                }
            }
            (ErrorClass::FutureRevision, Some(requested)) => {
                let current = self
                    .current_revision()
                    .await
                    .unwrap_or(requested.saturating_sub(1));
                StoreError::FutureRevision { requested, current }
            }
            _ => plain(err),
        }
    }

    /// A range read (or single-key read) with the given options; reads are retried on another
    /// member after transient failures.
    async fn read(
        &self,
        key: Vec<u8>,
        opts: GetOptions,
    ) -> std::result::Result<PbRangeResponse, etcd_client::Error> {
        let resp = self
            .endpoints
            .kv(Retry::Read, |mut kv| {
                let (key, opts) = (key.clone(), opts.clone());
                async move { kv.get(key, Some(opts)).await }
            })
            .await?;
        Ok(resp.0)
    }

    /// A transaction that may write: retried on another member only when it certainly was not
    /// sent, since it may have been applied otherwise.
    async fn write_txn(&self, txn: Txn) -> Result<PbTxnResponse> {
        let resp = self
            .endpoints
            .kv(Retry::Write, |mut kv| {
                let txn = txn.clone();
                async move { kv.txn(txn).await }
            })
            .await;
        match resp {
            Ok(resp) => Ok(resp.0),
            Err(e) => Err(self.fail(e, None).await),
        }
    }

    /// The store's compaction revision, if there has been a compaction.
    ///
    /// etcd 3.4 exposes it in no cheap request, but a watch from revision 1 is cancelled with
    /// `compact_revision` set whenever history has been compacted, so that is how it is asked.
    async fn compacted_revision(&self) -> Result<Option<Revision>> {
        let key = self.keyspace.key("/");
        let opts = WatchOptions::new().with_start_revision(1);
        let mut stream = self
            .endpoints
            .watch(Retry::Read, |mut client| {
                let (key, opts) = (key.clone(), opts.clone());
                async move { client.watch(key, Some(opts)).await }
            })
            .await
            .map_err(plain)?;
        let deadline = tokio::time::Instant::now() + COMPACTION_PROBE_TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(resp))) => {
                    if resp.0.compact_revision != 0 {
                        return Ok(Some(revision(resp.0.compact_revision)?));
                    }
                    if resp.0.canceled {
                        return Ok(None);
                    }
                }
                Ok(Some(Err(e))) => return Err(plain(e)),
                // Nothing compacted: the watch just stays open. Dropping it cancels it.
                Ok(None) | Err(_) => return Ok(None),
            }
        }
    }

    /// Runs a transaction whose branches are `[put key, get key (keys only)]` on success and
    /// `[get key]` on failure, and turns it into a [`WriteOutcome`].
    async fn guarded_put(
        &self,
        key: &str,
        value: Bytes,
        compares: Vec<Compare>,
        failed: fn(Option<KeyValue>) -> Result<WriteOutcome>,
    ) -> Result<WriteOutcome> {
        let k = self.keyspace.key(key);
        // Reading the key back (without its value, which the caller already has) gets the
        // revisions and version exactly as etcd recorded them.
        let txn = Txn::new()
            .when(compares)
            .and_then([
                TxnOp::put(k.clone(), value.to_vec(), None),
                TxnOp::get(k.clone(), Some(GetOptions::new().with_keys_only())),
            ])
            .or_else([TxnOp::get(k, None)]);
        let resp = self.write_txn(txn).await?;
        let succeeded = resp.succeeded;
        let read = self.first_kv(take_range(resp, if succeeded { 1 } else { 0 })?)?;
        if !succeeded {
            return failed(read);
        }
        let mut kv = read.ok_or_else(|| malformed("written key missing from the transaction"))?;
        kv.value = value;
        Ok(WriteOutcome::Written(kv))
    }

    fn first_kv(&self, range: PbRangeResponse) -> Result<Option<KeyValue>> {
        range
            .kvs
            .into_iter()
            .next()
            .map(|kv| self.keyspace.kv(kv))
            .transpose()
    }
}

/// Takes the range response at `index` out of a transaction response.
fn take_range(resp: PbTxnResponse, index: usize) -> Result<PbRangeResponse> {
    match resp
        .responses
        .into_iter()
        .nth(index)
        .and_then(|op| op.response)
    {
        Some(PbTxnOpResponse::ResponseRange(range)) => Ok(range),
        _ => Err(malformed(
            "transaction response without the expected range result",
        )),
    }
}

/// A revision given as `Some(0)` means "current" in etcd; treat it the same way here.
fn explicit_revision(revision: Option<Revision>) -> Option<Revision> {
    revision.filter(|r| *r > 0)
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        validate_key(key)?;
        let revision = explicit_revision(revision);
        let mut opts = GetOptions::new();
        if let Some(rev) = revision {
            opts = opts.with_revision(to_etcd_revision(rev)?);
        }
        let resp = match self.read(self.keyspace.key(key), opts).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.fail(e, revision).await),
        };
        let served_at = match revision {
            Some(rev) => rev,
            None => header_revision(resp.header.as_ref())?,
        };
        Ok(GetResponse {
            kv: self.first_kv(resp)?,
            revision: served_at,
        })
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        validate_prefix(&req.prefix)?;
        if let Some(start) = &req.start {
            validate_start(start)?;
        }
        let revision = explicit_revision(req.revision);
        let (begin, end) = self
            .keyspace
            .prefix_range(&req.prefix, req.start.as_deref());
        let mut opts = GetOptions::new().with_range(end);
        if req.limit > 0 {
            opts = opts.with_limit(i64::try_from(req.limit).unwrap_or(i64::MAX));
        }
        if let Some(rev) = revision {
            opts = opts.with_revision(to_etcd_revision(rev)?);
        }
        let resp = match self.read(begin, opts).await {
            Ok(resp) => resp,
            Err(e) => return Err(self.fail(e, revision).await),
        };
        let served_at = match revision {
            Some(rev) => rev,
            None => header_revision(resp.header.as_ref())?,
        };
        let kvs = resp
            .kvs
            .into_iter()
            .map(|kv| self.keyspace.kv(kv))
            .collect::<Result<Vec<_>>>()?;
        Ok(RangeResponse {
            kvs,
            more: resp.more,
            revision: served_at,
        })
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<WriteOutcome> {
        validate_key(key)?;
        validate_value(&value)?;
        let absent = Compare::create_revision(self.keyspace.key(key), CompareOp::Equal, 0);
        self.guarded_put(key, value, vec![absent], |current| {
            current
                .map(WriteOutcome::AlreadyExists)
                .ok_or_else(|| malformed("create failed its guard but the key is absent"))
        })
        .await
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<WriteOutcome> {
        validate_key(key)?;
        validate_value(&value)?;
        let k = self.keyspace.key(key);
        // A revision etcd cannot represent matches nothing, so the update reports a conflict.
        let expected = i64::try_from(expected).unwrap_or(-1);
        let compares = vec![
            Compare::mod_revision(k.clone(), CompareOp::Equal, expected),
            // etcd compares a missing key as mod_revision 0; without this, `update(k, v, 0)`
            // would create a missing key instead of reporting `Conflict(None)`.
            Compare::create_revision(k, CompareOp::Greater, 0),
        ];
        self.guarded_put(key, value, compares, |current| {
            Ok(WriteOutcome::Conflict(current))
        })
        .await
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<DeleteOutcome> {
        validate_key(key)?;
        let k = self.keyspace.key(key);
        let del = DeleteOptions::new().with_prev_key();
        let Some(expected) = expected else {
            let resp = self
                .endpoints
                .kv(Retry::Write, |mut kv| {
                    let (k, del) = (k.clone(), del.clone());
                    async move { kv.delete(k, Some(del)).await }
                })
                .await;
            let resp = match resp {
                Ok(resp) => resp.0,
                Err(e) => return Err(self.fail(e, None).await),
            };
            let revision = header_revision(resp.header.as_ref())?;
            return match resp.prev_kvs.into_iter().next() {
                Some(prev) => Ok(DeleteOutcome::Deleted {
                    revision,
                    prev: self.keyspace.kv(prev)?,
                }),
                None => Ok(DeleteOutcome::NotFound),
            };
        };
        let expected = i64::try_from(expected).unwrap_or(-1);
        let txn = Txn::new()
            .when([Compare::mod_revision(k.clone(), CompareOp::Equal, expected)])
            .and_then([TxnOp::delete(k.clone(), Some(del))])
            .or_else([TxnOp::get(k, None)]);
        let resp = self.write_txn(txn).await?;
        let revision = header_revision(resp.header.as_ref())?;
        if !resp.succeeded {
            return match self.first_kv(take_range(resp, 0)?)? {
                Some(current) => Ok(DeleteOutcome::Conflict(current)),
                None => Ok(DeleteOutcome::NotFound),
            };
        }
        let deleted = match resp.responses.into_iter().next().and_then(|op| op.response) {
            Some(PbTxnOpResponse::ResponseDeleteRange(d)) => d,
            _ => return Err(malformed("transaction response without the delete result")),
        };
        // The guard can pass on a missing key only when `expected` is 0; nothing is deleted then.
        match deleted.prev_kvs.into_iter().next() {
            Some(prev) => Ok(DeleteOutcome::Deleted {
                revision,
                prev: self.keyspace.kv(prev)?,
            }),
            None => Ok(DeleteOutcome::NotFound),
        }
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        validate_prefix(prefix)?;
        // Revision 0 would mean "from now" to etcd; in the trait it means "every event", which
        // is the same as starting at the first revision.
        let start = start.max(1);
        // etcd would accept a start in the future and wait for it; the trait allows at most
        // current + 1, and a larger one means the caller saw a revision this cluster has not
        // (wrong cluster, or restored from an older backup).
        let current = self.current_revision().await?;
        if start > current + 1 {
            return Err(StoreError::FutureRevision {
                requested: start,
                current,
            });
        }
        let (key, range_end) = self.keyspace.prefix_range(prefix, None);
        let params = WatchParams {
            endpoints: self.endpoints.clone(),
            keyspace: self.keyspace.clone(),
            key,
            range_end,
            open_timeout: self.options.request_timeout,
            retry_timeout: self.options.watch_retry_timeout,
            reconnects: self.watch_reconnects.clone(),
        };
        watch::start(params, start).await
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        // Physical: return only once the old revisions are really gone, so that a read right
        // after `compact` fails as the trait says.
        let opts = CompactionOptions::new().with_physical();
        let rev = to_etcd_revision(revision)?;
        // Not repeated after an ambiguous failure: a compaction that did happen would then be
        // reported as "compacted", which reads as if the caller asked for too old a revision.
        let resp = self
            .endpoints
            .kv(Retry::Write, |mut kv| {
                let opts = opts.clone();
                async move { kv.compact(rev, Some(opts)).await }
            })
            .await;
        match resp {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(e, Some(revision)).await),
        }
    }

    async fn current_revision(&self) -> Result<Revision> {
        // A linearizable count of one key: the cheapest request whose header carries the
        // cluster's latest revision (Status is served by one member without consensus).
        let opts = GetOptions::new().with_count_only();
        let resp = self
            .read(self.keyspace.key("/"), opts)
            .await
            .map_err(plain)?;
        header_revision(resp.header.as_ref())
    }
}
