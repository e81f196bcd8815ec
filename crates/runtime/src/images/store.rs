//! The image store itself: its directory layout, the reference index, and turning a stored image
//! into an ordered stack of unpacked layer directories.
//!
//! ```text
//! <root>/blobs/sha256/<hex>     manifests, configs, layer blobs (content-addressed, verified)
//! <root>/layers/sha256/<chain>  each layer unpacked once, keyed by its OCI ChainID
//! <root>/index.json             reference -> manifest digest
//! <root>/tmp/                   temp files and dirs, renamed into place when complete
//! <root>/lock                   flock held while index.json is read-modified-written
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::blobs::{self, sync_dir, temp_name};
use super::digest::{Digest, chain_ids};
use super::error::{ImageError, IoContext, Result, json_err};
use super::manifest::{AnyManifest, ConfigFile, ImageConfig, Manifest, parse_any};
use super::reference::Reference;
use super::unpack::unpack_layer;

/// The on-disk image store of one node. Cheap to clone; clones share locks.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) root: PathBuf,
    pub(crate) is_root: bool,
    /// Serialises index updates and GC inside this process; the flock covers other processes.
    index_lock: Mutex<()>,
    /// Blobs written by imports and pulls that have not yet been recorded under a reference;
    /// GC must not collect them. Counted, as concurrent pulls share layers.
    pins: Mutex<HashMap<Digest, usize>>,
    /// One lock per ChainID being unpacked, so concurrent pulls unpack a layer once.
    unpacking: Mutex<HashMap<Digest, Arc<Mutex<()>>>>,
}

/// The index file: which manifest each reference names.
#[derive(Default, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    pub(crate) version: u32,
    pub(crate) references: BTreeMap<String, Digest>,
}

/// A stored image: its manifest and config.
#[derive(Clone, Debug)]
pub struct Image {
    /// The manifest's digest: the image's identity in the store (`imageID` in pod status is the
    /// config digest, `imageRef` is `name@<this>`).
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// The config blob's digest.
    pub config_digest: Digest,
    /// The decoded config.
    pub config: ConfigFile,
}

/// What the runtime needs to start a container from an image.
#[derive(Clone, Debug)]
pub struct ImageRootfs {
    /// The unpacked layer directories, topmost first: the order of overlayfs' `lowerdir=`
    /// (join with `:`).
    pub lower_dirs: Vec<PathBuf>,
    /// The process defaults (Entrypoint, Cmd, Env, WorkingDir, User).
    pub config: ImageConfig,
    /// The manifest digest.
    pub manifest_digest: Digest,
    /// The config digest (the image ID as Docker and the kubelet show it).
    pub config_digest: Digest,
}

/// Removes a pin when dropped.
pub(crate) struct Pins {
    store: ImageStore,
    digests: Vec<Digest>,
}

impl Pins {
    pub(crate) fn add(&mut self, digest: &Digest) {
        if let Ok(mut pins) = self.store.inner.pins.lock() {
            *pins.entry(digest.clone()).or_default() += 1;
            self.digests.push(digest.clone());
        }
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        if let Ok(mut pins) = self.store.inner.pins.lock() {
            for d in &self.digests {
                if let Some(n) = pins.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        pins.remove(d);
                    }
                }
            }
        }
    }
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`, e.g. `<data-dir>/images`, and clears
    /// temp files a crash left behind.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        for dir in ["blobs/sha256", "layers/sha256", "tmp"] {
            let p = root.join(dir);
            fs::create_dir_all(&p).ctx("create", &p)?;
        }
        let tmp = root.join("tmp");
        for entry in fs::read_dir(&tmp).ctx("read", &tmp)?.flatten() {
            let p = entry.path();
            let _ = if p.is_dir() {
                fs::remove_dir_all(&p)
            } else {
                fs::remove_file(&p)
            };
        }
        Ok(ImageStore {
            inner: Arc::new(Inner {
                root,
                is_root: rustix::process::geteuid().is_root(),
                index_lock: Mutex::new(()),
                pins: Mutex::new(HashMap::new()),
                unpacking: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.inner.root.join("blobs/sha256")
    }

    pub(crate) fn layers_dir(&self) -> PathBuf {
        self.inner.root.join("layers/sha256")
    }

    pub(crate) fn tmp_dir(&self) -> PathBuf {
        self.inner.root.join("tmp")
    }

    /// Where a blob lives (whether or not it is present).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.hex())
    }

    pub(crate) fn pins(&self) -> Pins {
        Pins {
            store: self.clone(),
            digests: Vec::new(),
        }
    }

    pub(crate) fn pinned(&self) -> Vec<Digest> {
        self.inner
            .pins
            .lock()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs `f` on the index with both the in-process lock and the cross-process flock held,
    /// and writes the index back (temp file, fsync, rename) when `f` says it changed it.
    pub(crate) fn with_index<T>(
        &self,
        f: impl FnOnce(&mut IndexFile) -> Result<(T, bool)>,
    ) -> Result<T> {
        let _guard: MutexGuard<'_, ()> = self
            .inner
            .index_lock
            .lock()
            .map_err(|_| ImageError::Task("index lock poisoned".into()))?;
        let lock_path = self.inner.root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ctx("open", &lock_path)?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(std::io::Error::from)
            .ctx("flock", &lock_path)?;
        let path = self.inner.root.join("index.json");
        let mut index: IndexFile = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(json_err("index.json"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => IndexFile {
                version: 1,
                ..IndexFile::default()
            },
            Err(e) => return Err(e).ctx("read", &path),
        };
        let (out, dirty) = f(&mut index)?;
        if dirty {
            let bytes = serde_json::to_vec_pretty(&index).map_err(json_err("index.json"))?;
            let temp = self.tmp_dir().join(temp_name("index"));
            fs::write(&temp, &bytes).ctx("write", &temp)?;
            File::open(&temp)
                .and_then(|f| f.sync_all())
                .ctx("fsync", &temp)?;
            fs::rename(&temp, &path).ctx("rename", &path)?;
            sync_dir(&self.inner.root)?;
        }
        Ok(out)
    }

    /// Records `references` as naming the manifest `digest`.
    pub(crate) fn record(&self, references: &[Reference], digest: &Digest) -> Result<()> {
        self.with_index(|index| {
            for r in references {
                index.references.insert(r.to_string(), digest.clone());
            }
            Ok(((), true))
        })
    }

    /// Every reference in the store with the manifest it names.
    pub fn list(&self) -> Result<Vec<(String, Digest)>> {
        self.with_index(|index| {
            let all = index
                .references
                .iter()
                .map(|(r, d)| (r.clone(), d.clone()))
                .collect();
            Ok((all, false))
        })
    }

    /// The manifest digest `reference` names, if stored. Accepts any spelling that normalises
    /// to a stored reference (`busybox` finds `docker.io/library/busybox:latest`), a
    /// `name@sha256:...` whose manifest is stored under that name, or a bare manifest digest.
    pub fn resolve(&self, reference: &str) -> Result<Option<Digest>> {
        if let Ok(digest) = reference.parse::<Digest>() {
            return self.with_index(|index| {
                Ok((
                    index.references.values().find(|d| **d == digest).cloned(),
                    false,
                ))
            });
        }
        let r: Reference = reference.parse()?;
        self.with_index(|index| {
            if let Some(d) = index.references.get(&r.to_string()) {
                return Ok((Some(d.clone()), false));
            }
            let found = r.digest().and_then(|want| {
                let prefix = format!("{}:", r.name());
                let prefix_at = format!("{}@", r.name());
                index
                    .references
                    .iter()
                    .find(|(k, d)| {
                        *d == want && (k.starts_with(&prefix) || k.starts_with(&prefix_at))
                    })
                    .map(|(_, d)| d.clone())
            });
            Ok((found, false))
        })
    }

    /// Whether `reference` is stored (for the pull policy).
    pub fn contains(&self, reference: &str) -> Result<bool> {
        Ok(self.resolve(reference)?.is_some())
    }

    /// The stored image `reference` names.
    pub fn image(&self, reference: &str) -> Result<Image> {
        let digest = self
            .resolve(reference)?
            .ok_or_else(|| ImageError::NotFound(reference.to_string()))?;
        self.image_by_digest(&digest)
    }

    pub(crate) fn image_by_digest(&self, digest: &Digest) -> Result<Image> {
        let bytes = blobs::read_verified(&self.blobs_dir(), digest)?;
        let manifest = match parse_any(&bytes, None)? {
            AnyManifest::Image(m) => m,
            AnyManifest::Index(_) => {
                return Err(ImageError::InvalidFormat {
                    what: "image manifest",
                    reason: format!("{digest} is an index, not an image manifest"),
                });
            }
        };
        let config_digest = manifest.config.digest.clone();
        let config_bytes = blobs::read_verified(&self.blobs_dir(), &config_digest)?;
        let config: ConfigFile =
            serde_json::from_slice(&config_bytes).map_err(json_err("image config"))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::InvalidFormat {
                what: "image config",
                reason: format!(
                    "{} diff_ids for {} layers",
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ),
            });
        }
        Ok(Image {
            manifest_digest: digest.clone(),
            manifest,
            config_digest,
            config,
        })
    }

    /// The layer stack and process defaults of `reference`, unpacking layers not yet unpacked.
    /// Blocking: call from `spawn_blocking` in async code.
    pub fn rootfs(&self, reference: &str) -> Result<ImageRootfs> {
        let image = self.image(reference)?;
        let mut lower_dirs = self.unpack(&image)?;
        lower_dirs.reverse();
        Ok(ImageRootfs {
            lower_dirs,
            config: image.config.config.clone().unwrap_or_default(),
            manifest_digest: image.manifest_digest,
            config_digest: image.config_digest,
        })
    }

    /// Unpacks each layer of `image` that is not yet unpacked; returns the dirs bottom first.
    pub(crate) fn unpack(&self, image: &Image) -> Result<Vec<PathBuf>> {
        let chains = chain_ids(&image.config.rootfs.diff_ids);
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(chains.len());
        for (i, chain) in chains.iter().enumerate() {
            let dest = self.layers_dir().join(chain.hex());
            let lock = {
                let mut map = self
                    .inner
                    .unpacking
                    .lock()
                    .map_err(|_| ImageError::Task("unpack lock poisoned".into()))?;
                map.entry(chain.clone()).or_default().clone()
            };
            let guard = lock
                .lock()
                .map_err(|_| ImageError::Task("unpack lock poisoned".into()))?;
            if !dest.is_dir() {
                let layer = &image.manifest.layers[i];
                let blob = self.blob_path(&layer.digest);
                if !blob.is_file() {
                    return Err(ImageError::MissingBlob(layer.digest.to_string()));
                }
                let temp = self.tmp_dir().join(temp_name("layer"));
                fs::create_dir(&temp).ctx("mkdir", &temp)?;
                let mut lowers = dirs.clone();
                lowers.reverse();
                let diff_id = &image.config.rootfs.diff_ids[i];
                tracing::debug!(layer = %layer.digest, chain = %chain, "unpacking layer");
                let result = unpack_layer(&blob, diff_id, &temp, &lowers, self.inner.is_root)
                    .and_then(|()| fs::rename(&temp, &dest).ctx("rename", &dest));
                match result {
                    Ok(()) => sync_dir(&self.layers_dir())?,
                    // Another process finished the same layer first; its copy is identical.
                    Err(_) if dest.is_dir() => {
                        let _ = fs::remove_dir_all(&temp);
                    }
                    Err(e) => {
                        let _ = fs::remove_dir_all(&temp);
                        return Err(e);
                    }
                }
            }
            drop(guard);
            if let Ok(mut map) = self.inner.unpacking.lock()
                && Arc::strong_count(&lock) == 2
            {
                map.remove(chain);
            }
            dirs.push(dest);
        }
        Ok(dirs)
    }
}
