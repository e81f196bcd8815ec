//! Snapshots: a consistent copy of the whole store at one revision, taken while it serves, and
//! its restore into a new store file (`rudder snapshot save` / `restore`, docs/operations.md).
//!
//! A snapshot is one redb read transaction copied out table by table: it sees exactly the
//! batches committed before it began (each of which is already in the write-ahead log, so
//! nothing unacknowledged is copied) and never blocks the writer. It carries the history, the
//! change log and the revision and compaction counters, so a restored store continues at the
//! same revision: resourceVersions never go backwards, as with etcd's snapshot restore.
//!
//! File layout (integers little-endian):
//! - header: `RUDSNAP\0` | layout `u32` (1) | data format `u64` | revision `u64` | compacted `u64`
//! - records, in table order:
//!   `H` key_len `u32` key revision `u64` record_len `u32` record (a `history` entry, encoded in
//!   the header's data format); `R` revision `u64` key_len `u32` key (a `revisions` entry);
//!   `L` key_len `u32` key revision `u64` (a `latest` entry)
//! - trailer: `E` | history count `u64` | revisions count `u64` | latest count `u64` |
//!   SHA-256 of every byte before it. A file without a valid trailer is refused whole.

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use redb::{Database, ReadableTable};
use rudder_store::{MAX_KEY_LEN, MAX_VALUE_LEN, Revision, SnapshotStream, StoreError};
use sha2::{Digest, Sha256};

use crate::schema::{
    FORMAT_VERSION, HISTORY, INITIAL_REVISION, LATEST, META, META_COMPACTED, META_FORMAT,
    META_REVISION, REVISIONS, backend, meta_get,
};
use crate::writer::Shared;

const MAGIC: &[u8; 8] = b"RUDSNAP\0";
/// Version of the file layout above (not of the store's data format, which the header names).
pub const LAYOUT_VERSION: u32 = 1;
const TAG_HISTORY: u8 = b'H';
const TAG_REVISION: u8 = b'R';
const TAG_LATEST: u8 = b'L';
const TAG_END: u8 = b'E';
/// A history record is a value plus its 17-byte header; anything longer is corruption.
const MAX_RECORD: usize = MAX_VALUE_LEN + 64;
/// Bytes of chunks handed to the stream.
const CHUNK: usize = 256 * 1024;
/// Bytes of records restored per (non-durable) transaction, so a large restore does not hold
/// every dirty page at once; the last transaction is durable and makes all of them so.
const RESTORE_BATCH: usize = 64 * 1024 * 1024;

/// Why a snapshot could not be written, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a rudder snapshot (the file does not start with rudder's snapshot header)")]
    NotASnapshot,
    #[error(
        "the snapshot's layout version {0} is newer than this binary understands ({LAYOUT_VERSION}); use a newer rudder"
    )]
    Layout(u32),
    #[error(
        "the snapshot holds data format {found}, newer than this binary's {supported}; restore it with a newer rudder"
    )]
    Format { found: u64, supported: u64 },
    #[error("the snapshot is truncated: it ends after {at} bytes, inside {what}")]
    Truncated { at: u64, what: &'static str },
    #[error(
        "the snapshot is corrupt: its checksum does not match (sha256 {computed} computed, {recorded} recorded)"
    )]
    Checksum { computed: String, recorded: String },
    #[error("the snapshot is corrupt: {0}")]
    Malformed(String),
    #[error("{} already exists: restore into a new data directory", .0.display())]
    Exists(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a snapshot holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The store's data format the records are in.
    pub format: u64,
    /// The revision the snapshot was taken at: the restored store continues from it.
    pub revision: Revision,
    /// The compaction point: reads below it fail in the restored store as they did before.
    pub compacted: Revision,
    /// `history` entries (every version kept since the last compaction).
    pub history: u64,
    /// `revisions` entries (the change log).
    pub revisions: u64,
    /// Live keys.
    pub keys: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// Streams a snapshot of the store behind `shared`, produced on a blocking thread.
pub(crate) fn stream(shared: Arc<Shared>) -> SnapshotStream {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, StoreError>>(4);
    tokio::task::spawn_blocking(move || {
        let out = ChannelWriter { tx: tx.clone() };
        let taken = shared
            .db
            .begin_read()
            .map_err(|e| SnapshotError::Store(backend(e)))
            .and_then(|txn| write(txn, out));
        match taken {
            Ok(info) => tracing::info!(
                revision = info.revision,
                keys = info.keys,
                bytes = info.bytes,
                "store snapshot taken"
            ),
            // The reader went away (a client disconnected): nobody to tell.
            Err(_) if tx.is_closed() => tracing::info!("store snapshot abandoned by its reader"),
            Err(e) => {
                tracing::error!(error = %e, "store snapshot failed");
                let _ = tx.blocking_send(Err(StoreError::Backend(e.to_string())));
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Hands written bytes to the stream's channel, a chunk per write (a `BufWriter` in front makes
/// the chunks [`CHUNK`] bytes).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, StoreError>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "reader gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W: Write> {
    out: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Hashing<W> {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.hasher.update(bytes);
        self.bytes += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn put_len(&mut self, len: usize) -> std::io::Result<()> {
        // Keys and records are bounded far below 4 GiB (MAX_KEY_LEN, MAX_VALUE_LEN).
        self.put(&(len as u32).to_le_bytes())
    }
}

/// Writes the snapshot `txn` sees to `out`.
pub(crate) fn write(
    txn: redb::ReadTransaction,
    out: impl Write,
) -> Result<SnapshotInfo, SnapshotError> {
    let meta = txn.open_table(META).map_err(backend)?;
    let mut info = SnapshotInfo {
        format: meta_get(&meta, META_FORMAT)?.unwrap_or(FORMAT_VERSION),
        revision: meta_get(&meta, META_REVISION)?.unwrap_or(INITIAL_REVISION),
        compacted: meta_get(&meta, META_COMPACTED)?.unwrap_or(0),
        ..Default::default()
    };
    let mut w = Hashing {
        out: BufWriter::with_capacity(CHUNK, out),
        hasher: Sha256::new(),
        bytes: 0,
    };
    w.put(MAGIC)?;
    w.put(&LAYOUT_VERSION.to_le_bytes())?;
    w.put(&info.format.to_le_bytes())?;
    w.put(&info.revision.to_le_bytes())?;
    w.put(&info.compacted.to_le_bytes())?;

    let history = txn.open_table(HISTORY).map_err(backend)?;
    for entry in history.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let ((key, rev), record) = (k.value(), v.value());
        w.put(&[TAG_HISTORY])?;
        w.put_len(key.len())?;
        w.put(key)?;
        w.put(&rev.to_le_bytes())?;
        w.put_len(record.len())?;
        w.put(record)?;
        info.history += 1;
    }
    let revisions = txn.open_table(REVISIONS).map_err(backend)?;
    for entry in revisions.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let (rev, key) = (k.value(), v.value());
        w.put(&[TAG_REVISION])?;
        w.put(&rev.to_le_bytes())?;
        w.put_len(key.len())?;
        w.put(key)?;
        info.revisions += 1;
    }
    let latest = txn.open_table(LATEST).map_err(backend)?;
    for entry in latest.iter().map_err(backend)? {
        let (k, v) = entry.map_err(backend)?;
        let (key, rev) = (k.value(), v.value());
        w.put(&[TAG_LATEST])?;
        w.put_len(key.len())?;
        w.put(key)?;
        w.put(&rev.to_le_bytes())?;
        info.keys += 1;
    }
    w.put(&[TAG_END])?;
    for n in [info.history, info.revisions, info.keys] {
        w.put(&n.to_le_bytes())?;
    }
    let digest = w.hasher.clone().finalize();
    w.out.write_all(&digest)?;
    w.out.flush()?;
    info.bytes = w.bytes + digest.len() as u64;
    Ok(info)
}

/// A reader that hashes and counts what it reads, and names truncation.
struct Reader<R: Read> {
    input: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> Reader<R> {
    fn new(input: R) -> Self {
        Self {
            input,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    fn exact(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), SnapshotError> {
        match self.input.read_exact(buf) {
            Ok(()) => {
                self.hasher.update(&*buf);
                self.bytes += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(SnapshotError::Truncated {
                    at: self.bytes,
                    what,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, SnapshotError> {
        let mut b = [0u8; 1];
        self.exact(&mut b, what)?;
        Ok(b[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.exact(&mut b, what)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, SnapshotError> {
        let mut b = [0u8; 8];
        self.exact(&mut b, what)?;
        Ok(u64::from_le_bytes(b))
    }

    /// A length-prefixed byte string of at most `max` bytes (a larger length is corruption,
    /// refused before allocating).
    fn blob(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, SnapshotError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(SnapshotError::Malformed(format!(
                "{what} of {len} bytes at offset {} exceeds the limit of {max}",
                self.bytes
            )));
        }
        let mut buf = vec![0u8; len];
        self.exact(&mut buf, what)?;
        Ok(buf)
    }
}

/// One record of the file.
enum Entry {
    History(Vec<u8>, Revision, Vec<u8>),
    Revision(Revision, Vec<u8>),
    Latest(Vec<u8>, Revision),
}

fn header<R: Read>(r: &mut Reader<R>) -> Result<SnapshotInfo, SnapshotError> {
    let mut magic = [0u8; 8];
    match r.exact(&mut magic, "the header") {
        Ok(()) if &magic == MAGIC => {}
        Ok(()) => return Err(SnapshotError::NotASnapshot),
        Err(e) => return Err(e),
    }
    let layout = r.u32("the header")?;
    if layout != LAYOUT_VERSION {
        return Err(SnapshotError::Layout(layout));
    }
    let info = SnapshotInfo {
        format: r.u64("the header")?,
        revision: r.u64("the header")?,
        compacted: r.u64("the header")?,
        ..Default::default()
    };
    if info.format == 0 || info.format > FORMAT_VERSION {
        return Err(SnapshotError::Format {
            found: info.format,
            supported: FORMAT_VERSION,
        });
    }
    if info.compacted > info.revision {
        return Err(SnapshotError::Malformed(format!(
            "compaction point {} is after the revision {}",
            info.compacted, info.revision
        )));
    }
    Ok(info)
}

/// The next record, or `None` at the trailer (which [`trailer`] then reads).
fn next<R: Read>(r: &mut Reader<R>, info: &SnapshotInfo) -> Result<Option<Entry>, SnapshotError> {
    let tag = r.u8("a record")?;
    let entry = match tag {
        TAG_HISTORY => {
            let key = r.blob(MAX_KEY_LEN, "a history key")?;
            let rev = r.u64("a history record")?;
            let record = r.blob(MAX_RECORD, "a history record")?;
            Entry::History(key, rev, record)
        }
        TAG_REVISION => {
            let rev = r.u64("a change-log record")?;
            Entry::Revision(rev, r.blob(MAX_KEY_LEN, "a change-log key")?)
        }
        TAG_LATEST => {
            let key = r.blob(MAX_KEY_LEN, "a key")?;
            Entry::Latest(key, r.u64("a key's revision")?)
        }
        TAG_END => return Ok(None),
        other => {
            return Err(SnapshotError::Malformed(format!(
                "unknown record tag {other:#04x} at offset {}",
                r.bytes - 1
            )));
        }
    };
    let rev = match &entry {
        Entry::History(_, rev, _) | Entry::Revision(rev, _) | Entry::Latest(_, rev) => *rev,
    };
    if rev > info.revision {
        return Err(SnapshotError::Malformed(format!(
            "a record at revision {rev} is newer than the snapshot's revision {}",
            info.revision
        )));
    }
    Ok(Some(entry))
}

/// Reads the trailer: the counts must match what was read, the checksum every byte before it,
/// and nothing may follow.
fn trailer<R: Read>(r: &mut Reader<R>, info: &mut SnapshotInfo) -> Result<(), SnapshotError> {
    let counts = [
        r.u64("the trailer")?,
        r.u64("the trailer")?,
        r.u64("the trailer")?,
    ];
    let computed = r.hasher.clone().finalize();
    let mut recorded = [0u8; 32];
    r.exact(&mut recorded, "the checksum")?;
    if computed.as_slice() != recorded {
        return Err(SnapshotError::Checksum {
            computed: hex(&computed),
            recorded: hex(&recorded),
        });
    }
    if counts != [info.history, info.revisions, info.keys] {
        return Err(SnapshotError::Malformed(format!(
            "the trailer counts {counts:?} records, the file holds {:?}",
            [info.history, info.revisions, info.keys]
        )));
    }
    let mut extra = [0u8; 1];
    if r.input.read(&mut extra)? != 0 {
        return Err(SnapshotError::Malformed(format!(
            "bytes follow the trailer at offset {}",
            r.bytes
        )));
    }
    info.bytes = r.bytes;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a whole snapshot and checks it (layout, counts, checksum) without writing anything.
pub fn verify(input: impl Read) -> Result<SnapshotInfo, SnapshotError> {
    let mut r = Reader::new(input);
    let mut info = header(&mut r)?;
    while let Some(entry) = next(&mut r, &info)? {
        match entry {
            Entry::History(..) => info.history += 1,
            Entry::Revision(..) => info.revisions += 1,
            Entry::Latest(..) => info.keys += 1,
        }
    }
    trailer(&mut r, &mut info)?;
    Ok(info)
}

/// Restores a snapshot into a new store file at `store_file`, which must not exist. The store is
/// built beside it and renamed into place only once the whole snapshot has been read and its
/// checksum matched, so a refused snapshot leaves nothing behind.
pub fn restore(input: impl Read, store_file: &Path) -> Result<SnapshotInfo, SnapshotError> {
    if store_file.exists() {
        return Err(SnapshotError::Exists(store_file.to_path_buf()));
    }
    let dir = store_file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut name = store_file.file_name().unwrap_or_default().to_os_string();
    name.push(".restoring");
    let partial = store_file.with_file_name(name);
    // A leftover from an interrupted restore is ours to replace.
    match std::fs::remove_file(&partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    match restore_into(input, &partial) {
        Ok(info) => {
            std::fs::rename(&partial, store_file)?;
            std::fs::File::open(dir)?.sync_all()?;
            Ok(info)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

fn restore_into(input: impl Read, path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    let db = Database::create(path).map_err(backend)?;
    let mut r = Reader::new(input);
    let mut info = header(&mut r)?;
    loop {
        let mut txn = db.begin_write().map_err(backend)?;
        // Only the last transaction needs to reach the disk: it is durable, and a crash before
        // it leaves a partial file that is never renamed into place.
        txn.set_durability(redb::Durability::None)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut batch = 0usize;
        let done = {
            let mut history = txn.open_table(HISTORY).map_err(backend)?;
            let mut revisions = txn.open_table(REVISIONS).map_err(backend)?;
            let mut latest = txn.open_table(LATEST).map_err(backend)?;
            loop {
                match next(&mut r, &info)? {
                    None => break true,
                    Some(Entry::History(key, rev, record)) => {
                        // Older formats are checked by their migration at the first open.
                        if info.format == FORMAT_VERSION {
                            crate::schema::Record::decode(&record)?;
                        }
                        history
                            .insert((key.as_slice(), rev), record.as_slice())
                            .map_err(backend)?;
                        info.history += 1;
                        batch += key.len() + record.len();
                    }
                    Some(Entry::Revision(rev, key)) => {
                        revisions.insert(rev, key.as_slice()).map_err(backend)?;
                        info.revisions += 1;
                        batch += key.len();
                    }
                    Some(Entry::Latest(key, rev)) => {
                        latest.insert(key.as_slice(), rev).map_err(backend)?;
                        info.keys += 1;
                        batch += key.len();
                    }
                }
                if batch >= RESTORE_BATCH {
                    break false;
                }
            }
        };
        txn.commit().map_err(backend)?;
        if done {
            break;
        }
    }
    trailer(&mut r, &mut info)?;
    let txn = db.begin_write().map_err(backend)?;
    {
        let mut meta = txn.open_table(META).map_err(backend)?;
        meta.insert(META_FORMAT, info.format).map_err(backend)?;
        meta.insert(META_REVISION, info.revision).map_err(backend)?;
        meta.insert(META_COMPACTED, info.compacted)
            .map_err(backend)?;
    }
    txn.commit().map_err(backend)?;
    Ok(info)
}
