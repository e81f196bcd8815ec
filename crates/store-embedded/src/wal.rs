//! The write-ahead log: what makes a write durable between redb checkpoints.
//!
//! Every batch the writer applies is appended here as one checksummed record and fdatasync'd
//! before its redb transaction commits (non-durably) and before any caller hears back. redb is
//! made durable only at checkpoints, after which the log is emptied. At open, records newer than
//! redb's durable revision are replayed. A torn record at the tail (a crash mid-append) was never
//! acknowledged and is cut off.
//!
//! The file is preallocated with zeros and overwritten in place (as etcd does with its WAL
//! segments): fdatasync then flushes only data, never a size or extent change, which roughly
//! halves its cost. A zero length ends the log; records left behind a reset are older than
//! redb's durable revision and are skipped by replay.
//!
//! Record: `len u32 (> 0) | crc32 u32 | payload`; payload: a sequence of entries
//! `0 rev key_len key create_rev version val_len value` (put), `1 rev key_len key` (delete),
//! `2 target` (compaction point). Integers are little-endian.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use rudder_store::{Event, EventKind, Revision, StoreError};

const PUT: u8 = 0;
const DELETE: u8 = 1;
const COMPACT: u8 = 2;
/// Records larger than this are treated as corruption (a batch is at most ~16 MiB + headers).
const MAX_RECORD: usize = 64 * 1024 * 1024;
/// Size the log file is preallocated to.
pub(crate) const PREALLOC: u64 = 16 * 1024 * 1024;

/// One logged change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    Put {
        rev: Revision,
        key: Vec<u8>,
        create_revision: Revision,
        version: u64,
        value: Bytes,
    },
    Delete {
        rev: Revision,
        key: Vec<u8>,
    },
    Compact {
        target: Revision,
    },
}

/// Encodes a batch's events and compaction points as one record payload.
pub(crate) fn encode(events: &[Event], compactions: &[Revision]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| 40 + e.kv.key.len() + e.kv.value.len())
        .sum::<usize>()
        + 9 * compactions.len();
    let mut out = Vec::with_capacity(size);
    for e in events {
        let key = e.kv.key.as_bytes();
        match e.kind {
            EventKind::Put => {
                out.push(PUT);
                out.extend_from_slice(&e.kv.mod_revision.to_le_bytes());
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key);
                out.extend_from_slice(&e.kv.create_revision.to_le_bytes());
                out.extend_from_slice(&e.kv.version.to_le_bytes());
                out.extend_from_slice(&(e.kv.value.len() as u32).to_le_bytes());
                out.extend_from_slice(&e.kv.value);
            }
            EventKind::Delete => {
                out.push(DELETE);
                out.extend_from_slice(&e.kv.mod_revision.to_le_bytes());
                out.extend_from_slice(&(key.len() as u32).to_le_bytes());
                out.extend_from_slice(key);
            }
        }
    }
    for target in compactions {
        out.push(COMPACT);
        out.extend_from_slice(&target.to_le_bytes());
    }
    out
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|s| s[0])
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|s| s.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|s| s.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

/// Decodes a record payload written by [`encode`].
pub(crate) fn decode(payload: &[u8]) -> Result<Vec<Entry>, StoreError> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
    };
    let mut out = Vec::new();
    let bad = || StoreError::Corrupt("write-ahead log record is malformed".into());
    while c.pos < payload.len() {
        match c.u8().ok_or_else(bad)? {
            PUT => {
                let rev = c.u64().ok_or_else(bad)?;
                let klen = c.u32().ok_or_else(bad)? as usize;
                let key = c.take(klen).ok_or_else(bad)?.to_vec();
                let create_revision = c.u64().ok_or_else(bad)?;
                let version = c.u64().ok_or_else(bad)?;
                let vlen = c.u32().ok_or_else(bad)? as usize;
                let value = Bytes::copy_from_slice(c.take(vlen).ok_or_else(bad)?);
                out.push(Entry::Put {
                    rev,
                    key,
                    create_revision,
                    version,
                    value,
                });
            }
            DELETE => {
                let rev = c.u64().ok_or_else(bad)?;
                let klen = c.u32().ok_or_else(bad)? as usize;
                let key = c.take(klen).ok_or_else(bad)?.to_vec();
                out.push(Entry::Delete { rev, key });
            }
            COMPACT => out.push(Entry::Compact {
                target: c.u64().ok_or_else(bad)?,
            }),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{what} {}: {e}", path.display()))
}

/// Every complete record's entries in `buf`, and where the last of them ends. Stops at a zero
/// length (the end of the log) and at a torn or corrupt record.
fn parse(buf: &[u8]) -> Result<(Vec<Entry>, usize), StoreError> {
    let mut entries = Vec::new();
    let mut good = 0usize;
    let mut c = Cursor { buf, pos: 0 };
    while let (Some(len), Some(crc)) = (c.u32(), c.u32()) {
        let len = len as usize;
        if len == 0 || len > MAX_RECORD {
            break;
        }
        let Some(payload) = c.take(len) else { break };
        if crc32fast::hash(payload) != crc {
            break;
        }
        entries.extend(decode(payload)?);
        good = c.pos;
    }
    Ok((entries, good))
}

/// The open log file.
pub(crate) struct Wal {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Wal {
    /// Opens the log, returning it and every complete record's entries. Reading stops at a torn
    /// or corrupt record (a crash mid-append: it was never acknowledged); the next append
    /// overwrites it.
    pub(crate) fn open(path: &Path) -> Result<(Self, Vec<Entry>), StoreError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| io("opening", path, e))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| io("reading", path, e))?;
        let (entries, good) = parse(&buf)?;
        if good < buf.len() && buf[good..].iter().any(|&b| b != 0) {
            tracing::info!(path = %path.display(), kept = good, "write-ahead log ends before the file does");
        }
        let wal = Self {
            file,
            path: path.to_path_buf(),
            len: good as u64,
        };
        wal.preallocate(buf.len() as u64)?;
        Ok((wal, entries))
    }

    /// Fills the file with zeros up to [`PREALLOC`] so later writes never change its size.
    fn preallocate(&self, current: u64) -> Result<(), StoreError> {
        if current >= PREALLOC {
            return Ok(());
        }
        let zeros = vec![0u8; 1024 * 1024];
        let mut at = current;
        while at < PREALLOC {
            let n = zeros.len().min((PREALLOC - at) as usize);
            self.file
                .write_all_at(&zeros[..n], at)
                .map_err(|e| io("preallocating", &self.path, e))?;
            at += n as u64;
        }
        self.file
            .sync_all()
            .map_err(|e| io("syncing", &self.path, e))
    }

    /// Bytes in the log.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The entries of every record in the log (what a replay after reopening redb applies).
    pub(crate) fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let mut buf = vec![0u8; self.len as usize];
        self.file
            .read_exact_at(&mut buf, 0)
            .map_err(|e| io("reading", &self.path, e))?;
        Ok(parse(&buf)?.0)
    }

    /// Takes back every record from `len` on (ones whose batch did not commit): the length
    /// there is zeroed, which ends the log for replays. An overwrite in place, so it needs no
    /// free disk space.
    pub(crate) fn cut(&mut self, len: u64) -> Result<(), StoreError> {
        self.file
            .write_all_at(&[0u8; 8], len)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io("cutting", &self.path, e))?;
        self.len = len;
        Ok(())
    }

    /// Appends one record and waits until it is on disk. On failure the logical end stays
    /// where it was: the next record overwrites whatever part of this one reached the file.
    pub(crate) fn append(&mut self, payload: &[u8]) -> Result<(), StoreError> {
        let mut record = Vec::with_capacity(payload.len() + 8);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        self.file
            .write_all_at(&record, self.len)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io("appending to", &self.path, e))?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Empties the log once everything in it is durable in redb: the next record is written at
    /// the start again, and the first record's length is zeroed so that nothing stale follows.
    pub(crate) fn reset(&mut self) -> Result<(), StoreError> {
        self.file
            .write_all_at(&[0u8; 8], 0)
            .map_err(|e| io("resetting", &self.path, e))?;
        self.file
            .sync_data()
            .map_err(|e| io("syncing", &self.path, e))?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rudder_store::KeyValue;

    fn put(rev: u64, key: &str, value: &str) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.into(),
                value: Bytes::copy_from_slice(value.as_bytes()),
                create_revision: rev - 1,
                mod_revision: rev,
                version: 2,
            },
            prev: None,
        }
    }

    fn del(rev: u64, key: &str) -> Event {
        Event {
            kind: EventKind::Delete,
            kv: KeyValue {
                key: key.into(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: rev,
                version: 0,
            },
            prev: None,
        }
    }

    #[test]
    fn encode_decode_table() {
        let cases: Vec<(Vec<Event>, Vec<u64>)> = vec![
            (vec![put(5, "/a", "x")], vec![]),
            (vec![put(5, "/a", ""), del(6, "/a")], vec![3]),
            (vec![], vec![7, 9]),
        ];
        for (events, compactions) in cases {
            let entries = decode(&encode(&events, &compactions)).expect("decode");
            assert_eq!(entries.len(), events.len() + compactions.len());
        }
        let got = decode(&encode(&[put(5, "/k", "v")], &[])).expect("decode");
        assert_eq!(
            got,
            vec![Entry::Put {
                rev: 5,
                key: b"/k".to_vec(),
                create_revision: 4,
                version: 2,
                value: Bytes::from_static(b"v")
            }]
        );
    }

    #[test]
    fn torn_tail_is_cut_and_earlier_records_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("wal");
        {
            let (mut wal, entries) = Wal::open(&path).expect("open");
            assert!(entries.is_empty());
            wal.append(&encode(&[put(2, "/a", "1")], &[]))
                .expect("append");
            wal.append(&encode(&[put(3, "/b", "2")], &[]))
                .expect("append");
        }
        let mut full = std::fs::read(&path).expect("read");
        let end = full.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        full.truncate(end);
        // Every possible crash point inside the second record keeps exactly the first.
        let first_len = full.len() / 2;
        for cut in [first_len + 1, first_len + 8, full.len() - 1] {
            std::fs::write(&path, &full[..cut]).expect("write");
            let (wal, entries) = Wal::open(&path).expect("reopen");
            assert_eq!(entries.len(), 1, "cut at {cut}");
            assert_eq!(wal.len(), first_len as u64);
        }
        // A flipped bit in the payload is caught by the checksum.
        let mut corrupt = full.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 1;
        corrupt.resize(PREALLOC as usize, 0);
        std::fs::write(&path, &corrupt).expect("write");
        let (_, entries) = Wal::open(&path).expect("reopen");
        assert_eq!(entries.len(), 1);
    }

    #[test]
    fn garbage_payload_is_an_error_not_a_panic() {
        for bad in [&[9u8][..], &[PUT, 1, 2][..], &[DELETE][..]] {
            assert!(decode(bad).is_err());
        }
    }
}
