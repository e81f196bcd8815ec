//! The content-addressed blob directory: `blobs/sha256/<hex>`, written through a temp file that
//! is hashed, fsynced and renamed into place, so a blob on disk is always complete and correct.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::digest::{Digest, HashingWriter};
use super::error::{ImageError, IoContext, Result};

/// A unique name for a temp file or dir: pid + counter + time, so two processes (or two pulls)
/// sharing the store's `tmp/` never collide.
pub(crate) fn temp_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos}", std::process::id())
}

/// Fsyncs a directory, so a rename into it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
}

/// A blob being written: bytes go to a temp file while being hashed; [`BlobWriter::commit`]
/// checks the digest and moves the file into place.
pub struct BlobWriter {
    // `None` only after `commit` took it.
    out: Option<HashingWriter<File>>,
    temp: PathBuf,
    blobs: PathBuf,
    committed: bool,
}

impl BlobWriter {
    pub(crate) fn create(tmp_dir: &Path, blobs_dir: &Path) -> Result<BlobWriter> {
        let temp = tmp_dir.join(temp_name("blob"));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .ctx("create", &temp)?;
        Ok(BlobWriter {
            out: Some(HashingWriter::new(file)),
            temp,
            blobs: blobs_dir.to_path_buf(),
            committed: false,
        })
    }

    /// Appends bytes.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.out {
            Some(out) => out.write_all(bytes).ctx("write", &self.temp),
            None => Ok(()),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.out.as_ref().map_or(0, HashingWriter::written)
    }

    /// Verifies the content against `expected` (when given), fsyncs it and renames it to its
    /// digest. Another writer having stored the same blob first is success: the content is equal.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest> {
        let Some(out) = self.out.take() else {
            return Err(ImageError::Task("blob writer committed twice".into()));
        };
        let (digest, _, file) = out.finish();
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(ImageError::DigestMismatch {
                expected: expected.to_string(),
                actual: digest.to_string(),
            });
        }
        file.sync_all().ctx("fsync", &self.temp)?;
        drop(file);
        let dest = self.blobs.join(digest.hex());
        fs::rename(&self.temp, &dest).ctx("rename", &dest)?;
        self.committed = true;
        sync_dir(&self.blobs)?;
        Ok(digest)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Stores `bytes` as a blob, checking them against `expected` when given.
pub(crate) fn write_bytes(
    tmp_dir: &Path,
    blobs_dir: &Path,
    bytes: &[u8],
    expected: Option<&Digest>,
) -> Result<Digest> {
    if let Some(d) = expected
        && blobs_dir.join(d.hex()).is_file()
    {
        return Ok(d.clone());
    }
    let mut w = BlobWriter::create(tmp_dir, blobs_dir)?;
    w.write(bytes)?;
    w.commit(expected)
}

/// Copies `reader` into the store as a blob.
pub(crate) fn write_reader(
    tmp_dir: &Path,
    blobs_dir: &Path,
    reader: &mut dyn Read,
    expected: Option<&Digest>,
) -> Result<Digest> {
    let mut w = BlobWriter::create(tmp_dir, blobs_dir)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("read", "blob source"),
        };
        w.write(&buf[..n])?;
    }
    w.commit(expected)
}

/// Reads a small blob (manifest, config) fully, re-checking its digest: these bytes decide what
/// the runtime executes, so a corrupted file must not be trusted.
pub(crate) fn read_verified(blobs_dir: &Path, digest: &Digest) -> Result<Vec<u8>> {
    let path = blobs_dir.join(digest.hex());
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ImageError::MissingBlob(digest.to_string()));
        }
        Err(e) => return Err(e).ctx("read", &path),
    };
    let actual = Digest::of(&bytes);
    if actual != *digest {
        return Err(ImageError::DigestMismatch {
            expected: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_verify_and_are_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, blobs) = (dir.path().join("tmp"), dir.path().join("blobs"));
        fs::create_dir_all(&tmp).unwrap();
        fs::create_dir_all(&blobs).unwrap();
        let d = Digest::of(b"abc");
        assert_eq!(write_bytes(&tmp, &blobs, b"abc", Some(&d)).unwrap(), d);
        assert_eq!(write_bytes(&tmp, &blobs, b"abc", Some(&d)).unwrap(), d);
        assert_eq!(read_verified(&blobs, &d).unwrap(), b"abc");
        let wrong = write_bytes(&tmp, &blobs, b"abd", Some(&Digest::of(b"zzz")));
        assert!(matches!(wrong, Err(ImageError::DigestMismatch { .. })));
        // A failed write leaves no temp file behind.
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
        fs::write(blobs.join(d.hex()), b"tampered").unwrap();
        assert!(matches!(
            read_verified(&blobs, &d),
            Err(ImageError::DigestMismatch { .. })
        ));
    }
}
