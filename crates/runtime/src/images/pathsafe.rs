//! Path safety for unpacking: cleaning tar entry names, and resolving a path through the stack
//! of layers the way the container will see it, with symlinks confined to the image root.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use super::error::{ImageError, IoContext, Result};
use super::whiteout;

/// How many symlinks one resolution may follow before it is called a loop (Linux's limit).
const MAX_SYMLINKS: usize = 40;

/// Splits a tar entry name into clean components: leading `/` and `.` dropped, `..` applied
/// lexically. A `..` that would climb above the root is an error, not clamped: such an archive
/// is hostile or broken, and refusing it is safer than guessing.
pub fn clean_entry(name: &[u8]) -> Result<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() {
                    return Err(ImageError::PathEscape {
                        entry: String::from_utf8_lossy(name).into_owned(),
                    });
                }
            }
            p => out.push(OsStr::from_bytes(p).to_os_string()),
        }
    }
    Ok(out)
}

/// What a path is in the merged view of a layer stack.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// Absent, or deleted by a whiteout.
    Missing,
    /// A directory, found first in this layer root.
    Dir(PathBuf),
    /// A symlink with this target.
    Symlink(PathBuf),
    /// Anything else (file, device, ...), found first in this layer root.
    Other(PathBuf),
}

/// The stack of layer directories as overlayfs will merge them, topmost (the layer being
/// unpacked) first.
pub struct MergedView<'a> {
    pub layers: Vec<&'a Path>,
}

impl MergedView<'_> {
    /// Looks `rel` up the way overlayfs would: the topmost layer that has it wins, a whiteout
    /// deletes it, and an opaque directory or a non-directory on the way hides the layers below.
    pub fn lookup(&self, rel: &[OsString]) -> Result<Kind> {
        for layer in &self.layers {
            let path = join(layer, rel);
            match fs::symlink_metadata(&path) {
                Ok(meta) if whiteout::is_whiteout(&meta) => return Ok(Kind::Missing),
                Ok(meta) if meta.is_dir() => return Ok(Kind::Dir(layer.to_path_buf())),
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Ok(Kind::Symlink(fs::read_link(&path).ctx("readlink", &path)?));
                }
                Ok(_) => return Ok(Kind::Other(layer.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {}
                Err(e) => return Err(e).ctx("lstat", &path),
            }
            if hides_lower(layer, rel) {
                return Ok(Kind::Missing);
            }
        }
        Ok(Kind::Missing)
    }

    /// Resolves `rel` (already clean) into a path of real directories (or not-yet-existing
    /// names) in the merged view, following every symlink on the way. Symlink targets are
    /// interpreted inside the image root: an absolute target starts again at the root, and `..`
    /// stops at the root, as they would inside the container's chroot.
    pub fn resolve_dir(&self, rel: &[OsString]) -> Result<Vec<OsString>> {
        let mut todo: std::collections::VecDeque<OsString> = rel.iter().cloned().collect();
        let mut done: Vec<OsString> = Vec::new();
        let mut followed = 0;
        while let Some(part) = todo.pop_front() {
            if part == ".." {
                done.pop();
                continue;
            }
            if part.is_empty() || part == "." {
                continue;
            }
            done.push(part);
            match self.lookup(&done)? {
                Kind::Missing | Kind::Dir(_) => {}
                Kind::Symlink(target) => {
                    followed += 1;
                    if followed > MAX_SYMLINKS {
                        return Err(ImageError::InvalidFormat {
                            what: "layer",
                            reason: format!("too many symlinks resolving {}", show(rel)),
                        });
                    }
                    done.pop();
                    if target.is_absolute() {
                        done.clear();
                    }
                    let parts: Vec<OsString> = target
                        .components()
                        .filter_map(|c| match c {
                            Component::Normal(n) => Some(n.to_os_string()),
                            Component::ParentDir => Some("..".into()),
                            _ => None,
                        })
                        .collect();
                    for p in parts.into_iter().rev() {
                        todo.push_front(p);
                    }
                }
                Kind::Other(_) => {
                    return Err(ImageError::InvalidFormat {
                        what: "layer",
                        reason: format!("{} is not a directory", show(&done)),
                    });
                }
            }
        }
        Ok(done)
    }
}

/// Whether some ancestor of `rel` in `layer` stops lookups from reaching lower layers: an
/// opaque directory, or a non-directory such as a whiteout. Called only when `rel` itself is
/// absent from `layer`.
fn hides_lower(layer: &Path, rel: &[OsString]) -> bool {
    let mut path = layer.to_path_buf();
    for part in rel.iter().take(rel.len().saturating_sub(1)) {
        path.push(part);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                if whiteout::is_opaque(&path) {
                    return true;
                }
            }
            Ok(_) => return true,
            Err(_) => return false,
        }
    }
    false
}

/// `root` joined with clean components.
pub fn join(root: &Path, rel: &[OsString]) -> PathBuf {
    let mut p = root.to_path_buf();
    p.extend(rel);
    p
}

fn show(rel: &[OsString]) -> String {
    format!("/{}", join(Path::new(""), rel).display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn parts(s: &str) -> Vec<OsString> {
        s.split('/')
            .filter(|p| !p.is_empty())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn cleaning_entry_names() {
        let cases: &[(&str, Option<&str>)] = &[
            ("bin/sh", Some("bin/sh")),
            ("./bin/sh", Some("bin/sh")),
            ("/bin/sh", Some("bin/sh")),
            ("bin//./sh/", Some("bin/sh")),
            ("a/../b", Some("b")),
            ("./", Some("")),
            ("../etc/passwd", None),
            ("a/../../etc", None),
            ("/..", None),
        ];
        for (input, want) in cases {
            let got = clean_entry(input.as_bytes()).ok().map(|v| {
                v.iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            });
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn symlinks_resolve_inside_root() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        let l = lower.path();
        fs::create_dir_all(l.join("usr/lib")).unwrap();
        symlink("usr/lib", l.join("lib")).unwrap();
        symlink("/etc", l.join("abs")).unwrap();
        symlink("../../../../etc", l.join("up")).unwrap();
        symlink("loop2", l.join("loop1")).unwrap();
        symlink("loop1", l.join("loop2")).unwrap();
        fs::write(l.join("file"), b"").unwrap();
        fs::create_dir(upper.path().join("own")).unwrap();
        symlink("/usr", upper.path().join("own/u")).unwrap();
        let view = MergedView {
            layers: vec![upper.path(), l],
        };
        let cases: &[(&str, Option<&str>)] = &[
            ("lib/x", Some("usr/lib/x")),
            ("abs/passwd", Some("etc/passwd")),
            ("up/passwd", Some("etc/passwd")),
            ("own/u/lib", Some("usr/lib")),
            ("new/dir", Some("new/dir")),
            ("loop1/x", None),
            ("file/x", None),
        ];
        for (input, want) in cases {
            let got = view.resolve_dir(&parts(input)).ok().map(|v| {
                v.iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/")
            });
            assert_eq!(got.as_deref(), *want, "{input}");
        }
    }

    #[test]
    fn whiteouts_and_opaque_dirs_hide_lower_layers() {
        let lower = tempfile::tempdir().unwrap();
        let upper = tempfile::tempdir().unwrap();
        fs::create_dir_all(lower.path().join("d/sub")).unwrap();
        fs::create_dir_all(lower.path().join("gone/sub")).unwrap();
        fs::create_dir(upper.path().join("d")).unwrap();
        whiteout::create_whiteout(&upper.path().join("gone"), true).unwrap();
        let view = MergedView {
            layers: vec![upper.path(), lower.path()],
        };
        assert_eq!(
            view.lookup(&parts("d/sub")).unwrap(),
            Kind::Dir(lower.path().into())
        );
        assert_eq!(view.lookup(&parts("gone")).unwrap(), Kind::Missing);
        assert_eq!(view.lookup(&parts("gone/sub")).unwrap(), Kind::Missing);
        whiteout::set_opaque(&upper.path().join("d"), true).unwrap();
        assert_eq!(
            view.lookup(&parts("d")).unwrap(),
            Kind::Dir(upper.path().into())
        );
        assert_eq!(view.lookup(&parts("d/sub")).unwrap(), Kind::Missing);
    }
}
