//! Reads: single keys and ranges, at the current revision or at a past one.

use std::sync::atomic::Ordering;

use redb::{ReadTransaction, ReadableTable};
use rudder_store::{
    GetResponse, KeyValue, RangeRequest, RangeResponse, Revision, StoreError, prefix_end,
};

use crate::schema::{HISTORY, LATEST, META, META_REVISION, Record, backend, meta_get, version_at};
use crate::writer::Shared;

/// A read transaction together with the revision it shows.
struct Snapshot {
    txn: ReadTransaction,
    revision: Revision,
}

fn snapshot(shared: &Shared) -> Result<Snapshot, StoreError> {
    let txn = shared.db.begin_read().map_err(backend)?;
    let meta = txn.open_table(META).map_err(backend)?;
    let revision = meta_get(&meta, META_REVISION)?.unwrap_or(crate::schema::INITIAL_REVISION);
    Ok(Snapshot { txn, revision })
}

/// Validates a requested read revision against the snapshot and the compaction point.
fn check_revision(shared: &Shared, snap: &Snapshot, requested: Revision) -> Result<(), StoreError> {
    if requested > snap.revision {
        return Err(StoreError::FutureRevision {
            requested,
            current: snap.revision,
        });
    }
    let compacted = shared.compacted.load(Ordering::Acquire);
    if requested < compacted {
        return Err(StoreError::Compacted {
            requested,
            compacted,
        });
    }
    Ok(())
}

pub(crate) fn get(
    shared: &Shared,
    key: &str,
    at: Option<Revision>,
) -> Result<GetResponse, StoreError> {
    let snap = snapshot(shared)?;
    let kb = key.as_bytes();
    let history = snap.txn.open_table(HISTORY).map_err(backend)?;
    let (kv, revision) = match at {
        Some(rev) if rev != snap.revision => {
            check_revision(shared, &snap, rev)?;
            let kv = match version_at(&history, kb, rev)? {
                Some((r, rec)) => rec.into_kv(kb, r)?,
                None => None,
            };
            (kv, rev)
        }
        _ => {
            let latest = snap.txn.open_table(LATEST).map_err(backend)?;
            let kv = match latest.get(kb).map_err(backend)? {
                Some(rev) => current_version(&history, kb, rev.value())?,
                None => None,
            };
            (kv, snap.revision)
        }
    };
    Ok(GetResponse { kv, revision })
}

fn current_version(
    history: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    key: &[u8],
    rev: Revision,
) -> Result<Option<KeyValue>, StoreError> {
    match history.get((key, rev)).map_err(backend)? {
        Some(v) => Record::decode(v.value())?.into_kv(key, rev),
        None => Err(StoreError::Corrupt(format!(
            "latest version of {:?} is missing",
            String::from_utf8_lossy(key)
        ))),
    }
}

pub(crate) fn range(shared: &Shared, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
    let snap = snapshot(shared)?;
    let start = req.start_key().as_bytes();
    let start = if start < req.prefix.as_bytes() {
        req.prefix.as_bytes()
    } else {
        start
    };
    let end = prefix_end(req.prefix.as_bytes());
    let limit = if req.limit == 0 {
        usize::MAX
    } else {
        req.limit
    };
    let history = snap.txn.open_table(HISTORY).map_err(backend)?;
    let mut kvs = Vec::new();
    let mut more = false;
    let revision = match req.revision {
        Some(rev) if rev != snap.revision => {
            check_revision(shared, &snap, rev)?;
            more = range_past(&history, start, end.as_deref(), rev, limit, &mut kvs)?;
            rev
        }
        _ => {
            let latest = snap.txn.open_table(LATEST).map_err(backend)?;
            let iter = match &end {
                Some(end) => latest.range(start..end.as_slice()),
                None => latest.range(start..),
            }
            .map_err(backend)?;
            for entry in iter {
                let (k, rev) = entry.map_err(backend)?;
                if kvs.len() == limit {
                    more = true;
                    break;
                }
                if let Some(kv) = current_version(&history, k.value(), rev.value())? {
                    kvs.push(kv);
                }
            }
            snap.revision
        }
    };
    Ok(RangeResponse {
        kvs,
        more,
        revision,
    })
}

/// The key being scanned by [`range_past`] and its newest version at or before the read
/// revision seen so far.
struct Candidate {
    key: Vec<u8>,
    best: Option<(Revision, Vec<u8>)>,
}

impl Candidate {
    /// Appends the candidate to `out` unless it was deleted at the read revision. Returns `true`
    /// if `out` is already full, i.e. there are more keys than the limit.
    fn emit(self, out: &mut Vec<KeyValue>, limit: usize) -> Result<bool, StoreError> {
        let Some((rev, rec)) = self.best else {
            return Ok(false);
        };
        let Some(kv) = Record::decode(&rec)?.into_kv(&self.key, rev)? else {
            return Ok(false);
        };
        if out.len() == limit {
            return Ok(true);
        }
        out.push(kv);
        Ok(false)
    }
}

/// Scans every stored version in `[start, end)` and keeps, per key, the newest one at or before
/// `rev`. Returns whether more keys remain beyond `limit`.
fn range_past(
    history: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    start: &[u8],
    end: Option<&[u8]>,
    rev: Revision,
    limit: usize,
    out: &mut Vec<KeyValue>,
) -> Result<bool, StoreError> {
    let iter = match end {
        Some(end) => history.range((start, 0u64)..(end, 0u64)),
        None => history.range((start, 0u64)..),
    }
    .map_err(backend)?;
    let mut current: Option<Candidate> = None;
    for entry in iter {
        let (k, v) = entry.map_err(backend)?;
        let (key, r) = k.value();
        let candidate = match current.take() {
            Some(c) if c.key == key => c,
            Some(c) => {
                if c.emit(out, limit)? {
                    return Ok(true);
                }
                Candidate {
                    key: key.to_vec(),
                    best: None,
                }
            }
            None => Candidate {
                key: key.to_vec(),
                best: None,
            },
        };
        let candidate = if r <= rev {
            Candidate {
                best: Some((r, v.value().to_vec())),
                ..candidate
            }
        } else {
            candidate
        };
        current = Some(candidate);
    }
    match current {
        Some(c) => c.emit(out, limit),
        None => Ok(false),
    }
}
