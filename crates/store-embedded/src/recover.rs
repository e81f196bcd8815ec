//! Start-up recovery: replays write-ahead log entries newer than redb's durable state.

use redb::Database;
use rudder_store::{Revision, StoreError};

use crate::schema::{
    HISTORY, LATEST, META, META_COMPACTED, META_REVISION, REVISIONS, Record, backend, meta_get,
};
use crate::wal::Entry;

/// Applies `entries` with a revision above `durable` (and every compaction point above the
/// recorded one) in one durable transaction. Returns how many entries were applied.
pub(crate) fn replay(
    db: &Database,
    durable: Revision,
    entries: &[Entry],
) -> Result<usize, StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    let mut applied = 0;
    {
        let mut history = txn.open_table(HISTORY).map_err(backend)?;
        let mut latest = txn.open_table(LATEST).map_err(backend)?;
        let mut revisions = txn.open_table(REVISIONS).map_err(backend)?;
        let mut meta = txn.open_table(META).map_err(backend)?;
        let mut revision = durable;
        let mut compacted = meta_get(&meta, META_COMPACTED)?.unwrap_or(0);
        for entry in entries {
            match entry {
                Entry::Put {
                    rev,
                    key,
                    create_revision,
                    version,
                    value,
                } if *rev > durable => {
                    let rec = Record::encode_put(*create_revision, *version, value);
                    history
                        .insert((key.as_slice(), *rev), rec.as_slice())
                        .map_err(backend)?;
                    latest.insert(key.as_slice(), *rev).map_err(backend)?;
                    revisions.insert(*rev, key.as_slice()).map_err(backend)?;
                    revision = revision.max(*rev);
                    applied += 1;
                }
                Entry::Delete { rev, key } if *rev > durable => {
                    history
                        .insert(
                            (key.as_slice(), *rev),
                            Record::encode_tombstone().as_slice(),
                        )
                        .map_err(backend)?;
                    latest.remove(key.as_slice()).map_err(backend)?;
                    revisions.insert(*rev, key.as_slice()).map_err(backend)?;
                    revision = revision.max(*rev);
                    applied += 1;
                }
                Entry::Compact { target } if *target > compacted => {
                    compacted = *target;
                    meta.insert(META_COMPACTED, compacted).map_err(backend)?;
                    applied += 1;
                }
                _ => {}
            }
        }
        if revision > durable {
            meta.insert(META_REVISION, revision).map_err(backend)?;
        }
    }
    txn.commit().map_err(backend)?;
    Ok(applied)
}
