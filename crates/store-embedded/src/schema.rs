//! The on-disk layout: redb tables, the record encoding, and the format version.
//!
//! Layout (one redb file):
//! - `history`: `(key, revision)` → record. Every version of every key since the last
//!   compaction; a delete writes a tombstone record. Reads at a past revision look here.
//! - `latest`: `key` → `mod_revision` of the live version. Current reads and compare-and-swap
//!   guards use it; deleted keys are absent.
//! - `revisions`: `revision` → `key`. The change log watches replay from, in revision order.
//! - `meta`: named counters: format version, current revision, compaction revision.

use bytes::Bytes;
use redb::{ReadableTable, TableDefinition};
use rudder_store::{KeyValue, Revision, StoreError};

pub(crate) const HISTORY: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("history");
pub(crate) const LATEST: TableDefinition<&[u8], u64> = TableDefinition::new("latest");
pub(crate) const REVISIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("revisions");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub(crate) const META_FORMAT: &str = "format";
pub(crate) const META_REVISION: &str = "revision";
pub(crate) const META_COMPACTED: &str = "compacted";

/// Version of the layout above. A newer binary must keep opening every older version; a data
/// directory from a newer binary is refused rather than misread.
pub const FORMAT_VERSION: u64 = 1;

/// The revision of an empty store, as in etcd: the first write gets revision 2.
pub(crate) const INITIAL_REVISION: Revision = 1;

const KIND_PUT: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;
const PUT_HEADER: usize = 1 + 8 + 8;

/// A decoded `history` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Put {
        create_revision: Revision,
        version: u64,
        value: Bytes,
    },
    Tombstone,
}

impl Record {
    pub(crate) fn encode_put(create_revision: Revision, version: u64, value: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(PUT_HEADER + value.len());
        out.push(KIND_PUT);
        out.extend_from_slice(&create_revision.to_le_bytes());
        out.extend_from_slice(&version.to_le_bytes());
        out.extend_from_slice(value);
        out
    }

    pub(crate) fn encode_tombstone() -> Vec<u8> {
        vec![KIND_TOMBSTONE]
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Record, StoreError> {
        match bytes.first() {
            Some(&KIND_TOMBSTONE) if bytes.len() == 1 => Ok(Record::Tombstone),
            Some(&KIND_PUT) if bytes.len() >= PUT_HEADER => {
                let u64_at = |i: usize| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&bytes[i..i + 8]);
                    u64::from_le_bytes(b)
                };
                Ok(Record::Put {
                    create_revision: u64_at(1),
                    version: u64_at(9),
                    value: Bytes::copy_from_slice(&bytes[PUT_HEADER..]),
                })
            }
            _ => Err(StoreError::Corrupt(format!(
                "history record of {} bytes has an unknown layout",
                bytes.len()
            ))),
        }
    }

    /// The key/value this record describes at `mod_revision`, or `None` for a tombstone.
    pub(crate) fn into_kv(
        self,
        key: &[u8],
        mod_revision: Revision,
    ) -> Result<Option<KeyValue>, StoreError> {
        match self {
            Record::Tombstone => Ok(None),
            Record::Put {
                create_revision,
                version,
                value,
            } => Ok(Some(KeyValue {
                key: key_string(key)?,
                value,
                create_revision,
                mod_revision,
                version,
            })),
        }
    }
}

pub(crate) fn key_string(key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec())
        .map_err(|_| StoreError::Corrupt("stored key is not UTF-8".into()))
}

/// Maps any redb failure to the store's error type.
pub(crate) fn backend(e: impl Into<redb::Error>) -> StoreError {
    let e: redb::Error = e.into();
    StoreError::Backend(e.to_string())
}

/// The newest version of `key` at or before `revision`, as `(mod_revision, record)`.
pub(crate) fn version_at(
    history: &impl ReadableTable<(&'static [u8], u64), &'static [u8]>,
    key: &[u8],
    revision: Revision,
) -> Result<Option<(Revision, Record)>, StoreError> {
    let mut range = history
        .range((key, 0u64)..=(key, revision))
        .map_err(backend)?;
    match range.next_back() {
        None => Ok(None),
        Some(entry) => {
            let (k, v) = entry.map_err(backend)?;
            Ok(Some((k.value().1, Record::decode(v.value())?)))
        }
    }
}

/// Reads a named counter from `meta`.
pub(crate) fn meta_get(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<Option<u64>, StoreError> {
    Ok(meta.get(name).map_err(backend)?.map(|g| g.value()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_table() {
        let cases = [
            Record::Put {
                create_revision: 7,
                version: 3,
                value: Bytes::from_static(b"hello"),
            },
            Record::Put {
                create_revision: u64::MAX,
                version: 1,
                value: Bytes::new(),
            },
            Record::Tombstone,
        ];
        for rec in cases {
            let bytes = match &rec {
                Record::Put {
                    create_revision,
                    version,
                    value,
                } => Record::encode_put(*create_revision, *version, value),
                Record::Tombstone => Record::encode_tombstone(),
            };
            assert_eq!(Record::decode(&bytes).expect("decode"), rec);
        }
    }

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        for bad in [
            &b""[..],
            &[9u8][..],
            &[KIND_PUT, 1, 2][..],
            &[KIND_TOMBSTONE, 0][..],
        ] {
            assert!(
                matches!(Record::decode(bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }
}
