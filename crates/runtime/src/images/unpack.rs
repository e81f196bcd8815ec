//! Unpacking one layer tar into its own directory, as the upper layer over the already unpacked
//! layers below it, producing what overlayfs expects of a lower dir.
//!
//! Paths are resolved through the merged view of the stack (as containerd does on a mounted
//! snapshot), so `lib/x` under a lower layer's `lib -> usr/lib` lands in `usr/lib/x` instead of
//! shadowing the symlink with a directory. Nothing is ever written outside the layer directory.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, XattrFlags};
use tar::EntryType;

use super::digest::{Digest, HashingReader};
use super::error::{ImageError, IoContext, Result};
use super::manifest::{Compression, detect_compression};
use super::pathsafe::{self, Kind, MergedView};
use super::whiteout::{self, EntryName};

/// Unpacks the layer blob at `blob` into `dest` (an empty directory) over `lowers` (topmost
/// first), checking that the uncompressed tar hashes to `diff_id`.
pub fn unpack_layer(
    blob: &Path,
    diff_id: &Digest,
    dest: &Path,
    lowers: &[PathBuf],
    is_root: bool,
) -> Result<()> {
    let mut file = File::open(blob).ctx("open", blob)?;
    let mut head = [0u8; 4];
    let n = read_up_to(&mut file, &mut head).ctx("read", blob)?;
    let file = io::Cursor::new(head[..n].to_vec()).chain(file);
    let reader: Box<dyn Read> = match detect_compression(&head[..n])? {
        Compression::Gzip => Box::new(GzDecoder::new(file)),
        Compression::None => Box::new(file),
    };
    let mut hashing = HashingReader::new(reader);
    let mut layers: Vec<&Path> = vec![dest];
    layers.extend(lowers.iter().map(PathBuf::as_path));
    let mut unpacker = Unpacker {
        view: MergedView { layers },
        dest,
        is_root,
        dir_times: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        let entries = archive.entries().ctx("read tar", blob)?;
        for entry in entries {
            let entry = entry.ctx("read tar entry", blob)?;
            unpacker.entry(entry)?;
        }
    }
    // The tar reader stops at the end-of-archive blocks; the diff-id covers the padding after.
    io::copy(&mut hashing, &mut io::sink()).ctx("read", blob)?;
    let actual = hashing.digest();
    if actual != *diff_id {
        return Err(ImageError::DigestMismatch {
            expected: diff_id.to_string(),
            actual: actual.to_string(),
        });
    }
    // Directory times last: creating children changed them.
    for (path, mtime) in unpacker.dir_times.iter().rev() {
        set_mtime(path, *mtime)?;
    }
    Ok(())
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Unpacker<'a> {
    view: MergedView<'a>,
    dest: &'a Path,
    is_root: bool,
    dir_times: Vec<(PathBuf, u64)>,
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let mut rel = pathsafe::clean_entry(&raw)?;
        let kind = entry.header().entry_type();
        let Some(base) = rel.pop() else {
            // `./`: the layer root's own metadata.
            if kind == EntryType::Directory {
                self.metadata(&mut entry, self.dest)?;
            }
            return Ok(());
        };
        let parent = self.view.resolve_dir(&rel)?;
        let parent_path = self.ensure_dirs(&parent)?;
        match whiteout::classify(&base) {
            EntryName::Opaque => return whiteout::set_opaque(&parent_path, self.is_root),
            EntryName::Whiteout(name) => {
                let target = parent_path.join(name);
                remove_any(&target)?;
                return whiteout::create_whiteout(&target, self.is_root);
            }
            EntryName::AufsMeta => return Ok(()),
            EntryName::Plain => {}
        }
        let path = parent_path.join(&base);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        remove_any(&path)?;
                        fs::create_dir(&path).ctx("mkdir", &path)?;
                    }
                }
                self.metadata(&mut entry, &path)?;
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_any(&path)?;
                let mut out = File::options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .ctx("create", &path)?;
                io::copy(&mut entry, &mut out).ctx("write", &path)?;
                self.metadata(&mut entry, &path)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .ctx("read link name", &path)?
                    .ok_or_else(|| bad(&raw, "symlink without target"))?
                    .into_owned();
                remove_any(&path)?;
                symlink(&target, &path).ctx("symlink", &path)?;
                self.metadata(&mut entry, &path)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(&raw, "hard link without target"))?
                    .into_owned();
                self.hard_link(&target, &path)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if file_type != FileType::Fifo && !self.is_root {
                    // Without CAP_MKNOD the node cannot exist; containers get /dev from the
                    // runtime anyway, so an image's device nodes are skipped, not fatal.
                    tracing::warn!(path = %path.display(), "skipping device node: not root");
                    return Ok(());
                }
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                remove_any(&path)?;
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &path,
                    file_type,
                    Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(io::Error::from)
                .ctx("mknod", &path)?;
                self.metadata(&mut entry, &path)?;
            }
            other => {
                tracing::debug!(entry = %String::from_utf8_lossy(&raw), ?other, "skipping tar entry type");
            }
        }
        Ok(())
    }

    /// Makes every directory of `parent` exist in this layer, copying mode and owner from the
    /// directory a lower layer shows there, as overlayfs' copy-up would.
    fn ensure_dirs(&self, parent: &[OsString]) -> Result<PathBuf> {
        let mut path = self.dest.to_path_buf();
        for i in 0..parent.len() {
            path.push(&parent[i]);
            let existing = fs::symlink_metadata(&path);
            if matches!(&existing, Ok(m) if m.is_dir()) {
                continue;
            }
            // A whiteout (or file) of this layer is replaced; the new directory must still hide
            // what the whiteout deleted below, so it becomes opaque.
            let replaced_whiteout = existing.is_ok();
            remove_any(&path)?;
            fs::create_dir(&path).ctx("mkdir", &path)?;
            if replaced_whiteout {
                whiteout::set_opaque(&path, self.is_root)?;
                continue;
            }
            let lower = self.view.layers[1..].iter().find_map(|l| {
                let p = pathsafe::join(l, &parent[..=i]);
                fs::symlink_metadata(&p).ok().filter(|m| m.is_dir())
            });
            if let Some(meta) = lower {
                use std::os::unix::fs::MetadataExt;
                fs::set_permissions(&path, fs::Permissions::from_mode(meta.mode() & 0o7777))
                    .ctx("chmod", &path)?;
                if self.is_root {
                    chown(&path, meta.uid(), meta.gid())?;
                }
            }
        }
        Ok(path)
    }

    fn hard_link(&self, target: &[u8], path: &Path) -> Result<()> {
        let mut rel = pathsafe::clean_entry(target)?;
        let base = rel
            .pop()
            .ok_or_else(|| bad(target, "hard link to the root"))?;
        let mut parent = self.view.resolve_dir(&rel)?;
        parent.push(base);
        remove_any(path)?;
        let own = pathsafe::join(self.dest, &parent);
        if fs::symlink_metadata(&own).is_ok_and(|m| !m.is_dir() && !whiteout::is_whiteout(&m)) {
            return fs::hard_link(&own, path).ctx("link", path);
        }
        match self.view.lookup(&parent)? {
            Kind::Other(layer) => {
                // The target lives in a lower layer; overlayfs would copy it up before linking,
                // so the link's contents are a copy.
                let src = pathsafe::join(&layer, &parent);
                fs::copy(&src, path).ctx("copy", path).map(drop)
            }
            _ => Err(bad(target, "hard link target is missing or a directory")),
        }
    }

    fn metadata<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, path: &Path) -> Result<()> {
        let header = entry.header();
        let kind = header.entry_type();
        let uid = header
            .uid()
            .ok()
            .and_then(|u| u32::try_from(u).ok())
            .unwrap_or(0);
        let gid = header
            .gid()
            .ok()
            .and_then(|g| u32::try_from(g).ok())
            .unwrap_or(0);
        let mode = header.mode().ctx("read mode", path)? & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        // Order matters: chown clears set-id bits and file capabilities, so it goes first.
        if self.is_root {
            chown(path, uid, gid)?;
            self.xattrs(entry, path)?;
        }
        if kind != EntryType::Symlink {
            fs::set_permissions(path, fs::Permissions::from_mode(mode)).ctx("chmod", path)?;
        }
        if kind == EntryType::Directory {
            self.dir_times.push((path.to_path_buf(), mtime));
        } else {
            set_mtime(path, mtime)?;
        }
        Ok(())
    }

    /// Applies `SCHILY.xattr.*` PAX records (file capabilities, mostly). `trusted.*` is refused:
    /// an image must not be able to forge overlayfs' own metadata.
    fn xattrs<R: Read>(&self, entry: &mut tar::Entry<'_, R>, path: &Path) -> Result<()> {
        let Ok(Some(exts)) = entry.pax_extensions() else {
            return Ok(());
        };
        for ext in exts.flatten() {
            let Ok(key) = ext.key() else { continue };
            let Some(name) = key.strip_prefix("SCHILY.xattr.") else {
                continue;
            };
            if name.starts_with("trusted.") {
                continue;
            }
            rustix::fs::lsetxattr(path, name, ext.value_bytes(), XattrFlags::empty())
                .map_err(io::Error::from)
                .ctx("setxattr", path)?;
        }
        Ok(())
    }
}

fn remove_any(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).ctx("remove", path),
        Ok(_) => fs::remove_file(path).ctx("remove", path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).ctx("lstat", path),
    }
}

fn chown(path: &Path, uid: u32, gid: u32) -> Result<()> {
    let (uid, gid) = (
        rustix::fs::Uid::from_raw(uid),
        rustix::fs::Gid::from_raw(gid),
    );
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(uid),
        Some(gid),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
    .ctx("chown", path)
}

fn set_mtime(path: &Path, secs: u64) -> Result<()> {
    let t = Timespec {
        tv_sec: i64::try_from(secs).unwrap_or(0),
        tv_nsec: 0,
    };
    let times = Timestamps {
        last_access: t,
        last_modification: t,
    };
    rustix::fs::utimensat(rustix::fs::CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io::Error::from)
        .ctx("utimensat", path)
}

fn bad(entry: &[u8], reason: &str) -> ImageError {
    ImageError::InvalidFormat {
        what: "layer",
        reason: format!("{}: {reason}", String::from_utf8_lossy(entry)),
    }
}
