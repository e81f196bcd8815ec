//! Removing image references and collecting the blobs and unpacked layers no image uses.

use std::collections::HashSet;
use std::fs;

use super::digest::{Digest, chain_ids};
use super::error::{ImageError, IoContext, Result};
use super::reference::Reference;
use super::store::ImageStore;

/// What a collection removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs deleted.
    pub blobs: Vec<Digest>,
    /// Unpacked layers deleted, by ChainID.
    pub layers: Vec<Digest>,
}

impl ImageStore {
    /// Removes `reference` (any spelling that normalises to it), then collects garbage. A bare
    /// manifest digest removes every reference to that manifest. Errors with `NotFound` when
    /// nothing matched.
    pub fn remove(&self, reference: &str) -> Result<GcReport> {
        let removed = self.with_index(|index| {
            let before = index.references.len();
            if let Ok(digest) = reference.parse::<Digest>() {
                index.references.retain(|_, d| *d != digest);
            } else {
                let r: Reference = reference.parse()?;
                index.references.remove(&r.to_string());
            }
            let changed = index.references.len() != before;
            Ok((changed, changed))
        })?;
        if !removed {
            return Err(ImageError::NotFound(reference.to_string()));
        }
        self.gc()
    }

    /// Deletes every blob and unpacked layer that no stored reference reaches (blobs of imports
    /// and pulls still in progress are pinned and kept). Runs under the index lock, so no
    /// reference can be recorded halfway through.
    pub fn gc(&self) -> Result<GcReport> {
        self.with_index(|index| {
            let mut live: HashSet<Digest> = self.pinned().into_iter().collect();
            let manifests: HashSet<Digest> = index.references.values().cloned().collect();
            for digest in manifests {
                live.insert(digest.clone());
                // An unreadable image keeps what it names if it can be read at all; a missing
                // manifest means the reference is already broken and protects nothing.
                let image = match self.image_by_digest(&digest) {
                    Ok(image) => image,
                    Err(e) => {
                        tracing::warn!(%digest, error = %e, "gc: unreadable image manifest");
                        continue;
                    }
                };
                live.insert(image.config_digest.clone());
                live.extend(image.manifest.layers.iter().map(|l| l.digest.clone()));
                live.extend(chain_ids(&image.config.rootfs.diff_ids));
            }
            let mut report = GcReport::default();
            for (dir, out) in [
                (self.blobs_dir(), &mut report.blobs),
                (self.layers_dir(), &mut report.layers),
            ] {
                for entry in fs::read_dir(&dir).ctx("read", &dir)? {
                    let entry = entry.ctx("read", &dir)?;
                    let name = entry.file_name();
                    let Ok(digest) = format!("sha256:{}", name.to_string_lossy()).parse::<Digest>()
                    else {
                        continue;
                    };
                    if live.contains(&digest) {
                        continue;
                    }
                    let path = entry.path();
                    if path.is_dir() {
                        fs::remove_dir_all(&path).ctx("remove", &path)?;
                    } else {
                        fs::remove_file(&path).ctx("remove", &path)?;
                    }
                    out.push(digest);
                }
            }
            report.blobs.sort();
            report.layers.sort();
            Ok((report, false))
        })
    }
}
