//! OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) and their overlayfs form (a 0/0 character device,
//! the `trusted.overlay.opaque` xattr).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{FileType, Mode, XattrFlags};

use super::error::{ImageError, IoContext, Result};

const PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to hide a lower layer's directory contents.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What a tar entry's base name means.
#[derive(Debug, PartialEq, Eq)]
pub enum EntryName {
    /// An ordinary file name.
    Plain,
    /// `.wh.NAME`: NAME is deleted from the layers below.
    Whiteout(OsString),
    /// `.wh..wh..opq`: the directory hides everything below it in lower layers.
    Opaque,
    /// Other `.wh..wh.` names: aufs bookkeeping (hard-link dirs), ignored as Docker does.
    AufsMeta,
}

/// Classifies a base name. Pure.
pub fn classify(base: &OsStr) -> EntryName {
    let b = base.as_bytes();
    if b == OPAQUE {
        EntryName::Opaque
    } else if b.starts_with(b".wh..wh.") {
        EntryName::AufsMeta
    } else if let Some(name) = b.strip_prefix(PREFIX) {
        if name.is_empty() || name == b"." || name == b".." {
            EntryName::AufsMeta
        } else {
            EntryName::Whiteout(OsStr::from_bytes(name).to_os_string())
        }
    } else {
        EntryName::Plain
    }
}

/// Creates an overlayfs whiteout at `path`: a character device with number 0/0.
pub fn create_whiteout(path: &Path, is_root: bool) -> Result<()> {
    if !is_root {
        return Err(ImageError::NeedsRoot {
            what: format!("whiteout {}", path.display()),
        });
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        FileType::CharacterDevice,
        Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .map_err(std::io::Error::from)
    .ctx("mknod whiteout", path)
}

/// Marks `dir` opaque for overlayfs.
pub fn set_opaque(dir: &Path, is_root: bool) -> Result<()> {
    if !is_root {
        return Err(ImageError::NeedsRoot {
            what: format!("opaque directory {}", dir.display()),
        });
    }
    rustix::fs::lsetxattr(dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
        .map_err(std::io::Error::from)
        .ctx("set opaque xattr", dir)
}

/// Whether `dir` is marked opaque.
pub fn is_opaque(dir: &Path) -> bool {
    let mut buf = [0u8; 4];
    matches!(rustix::fs::lgetxattr(dir, OPAQUE_XATTR, &mut buf), Ok(1) if buf[0] == b'y')
}

/// Whether `meta` is an overlayfs whiteout (char device 0/0).
pub fn is_whiteout(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    meta.file_type().is_char_device() && meta.rdev() == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let cases: &[(&str, EntryName)] = &[
            ("file", EntryName::Plain),
            (".whatever", EntryName::Plain),
            (".wh.file", EntryName::Whiteout("file".into())),
            (".wh..hidden", EntryName::Whiteout(".hidden".into())),
            (".wh..wh..opq", EntryName::Opaque),
            (".wh..wh.plnk", EntryName::AufsMeta),
            (".wh.", EntryName::AufsMeta),
            (".wh..", EntryName::AufsMeta),
            (".wh...", EntryName::AufsMeta),
        ];
        for (name, want) in cases {
            assert_eq!(&classify(OsStr::new(name)), want, "{name}");
        }
    }

    #[test]
    fn whiteouts_need_root() {
        let dir = tempfile::tempdir().unwrap();
        let err = create_whiteout(&dir.path().join("x"), false).unwrap_err();
        assert!(matches!(err, ImageError::NeedsRoot { .. }), "{err}");
        assert!(matches!(
            set_opaque(dir.path(), false),
            Err(ImageError::NeedsRoot { .. })
        ));
    }

    #[test]
    fn whiteouts_as_root() {
        if !rustix::process::geteuid().is_root() {
            panic!("this test needs root (CI and the dev machines run as root)");
        }
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("gone");
        create_whiteout(&w, true).unwrap();
        assert!(is_whiteout(&std::fs::symlink_metadata(&w).unwrap()));
        assert!(!is_opaque(dir.path()));
        set_opaque(dir.path(), true).unwrap();
        assert!(is_opaque(dir.path()));
    }
}
