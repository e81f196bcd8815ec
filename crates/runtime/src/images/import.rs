//! Importing image tarballs: OCI image layouts (`oci-layout`, `index.json`, `blobs/`) and
//! docker-archives (`docker save`: `manifest.json`, config JSON, layer tars), plain or gzipped.
//!
//! The outer tar is read once, streaming: blobs go straight into the store (verified against
//! their file names where those are digests); only the small JSON files are kept in memory.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use flate2::read::GzDecoder;
use serde::Deserialize;

use super::blobs;
use super::digest::{Digest, chain_ids};
use super::error::{ImageError, IoContext, Result, json_err};
use super::manifest::{
    AnyManifest, Compression, Descriptor, Index, Manifest, detect_compression, media_type,
    parse_any, select_linux_amd64,
};
use super::reference::Reference;
use super::store::{ImageStore, Pins};

/// JSON files bigger than this are not metadata; refusing them bounds memory use.
const MAX_JSON: u64 = 16 << 20;
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// What the outer tar held, once read.
struct Contents {
    /// Small JSON files by path.
    json: HashMap<String, Vec<u8>>,
    /// Every other file, stored as a blob, by path.
    blobs: HashMap<String, Digest>,
}

impl ImageStore {
    /// Imports the images in the tarball at `path` and unpacks their layers; returns the
    /// normalised references recorded. Blocking.
    pub fn import(&self, path: &Path) -> Result<Vec<String>> {
        let mut file = File::open(path).ctx("open", path)?;
        let mut head = [0u8; 4];
        let n = file.read(&mut head).ctx("read", path)?;
        let chained = io::Cursor::new(head[..n].to_vec()).chain(file);
        let reader: Box<dyn Read> = match detect_compression(&head[..n])? {
            Compression::Gzip => Box::new(GzDecoder::new(chained)),
            Compression::None => Box::new(chained),
        };
        let mut pins = self.pins();
        let contents = self.read_outer(reader, path, &mut pins)?;
        let images = if contents.json.contains_key("manifest.json") {
            self.docker_archive(&contents, &mut pins)?
        } else if contents.json.contains_key("index.json") {
            self.oci_layout(&contents)?
        } else {
            return Err(ImageError::InvalidFormat {
                what: "image archive",
                reason: "neither manifest.json (docker-archive) nor index.json (OCI layout)".into(),
            });
        };
        let mut out = Vec::new();
        for (references, manifest_digest) in images {
            // Unpack before recording, so a layer that cannot be unpacked leaves no reference
            // to a broken image behind.
            let image = self.image_by_digest(&manifest_digest)?;
            for chain in chain_ids(&image.config.rootfs.diff_ids) {
                pins.add(&chain);
            }
            self.unpack(&image)?;
            self.record(&references, &manifest_digest)?;
            out.extend(references.iter().map(ToString::to_string));
        }
        drop(pins);
        Ok(out)
    }

    fn read_outer(&self, reader: Box<dyn Read>, path: &Path, pins: &mut Pins) -> Result<Contents> {
        let mut contents = Contents {
            json: HashMap::new(),
            blobs: HashMap::new(),
        };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().ctx("read tar", path)? {
            let mut entry = entry.ctx("read tar entry", path)?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8_lossy(&raw)
                .trim_start_matches("./")
                .to_string();
            let by_digest = name
                .strip_prefix("blobs/sha256/")
                .and_then(|hex| format!("sha256:{hex}").parse::<Digest>().ok());
            let is_json = name.ends_with(".json") || name == "oci-layout";
            if is_json && by_digest.is_none() {
                if entry.size() > MAX_JSON {
                    return Err(ImageError::InvalidFormat {
                        what: "image archive",
                        reason: format!("{name} is larger than {MAX_JSON} bytes"),
                    });
                }
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).ctx("read", path)?;
                contents.json.insert(name, bytes);
                continue;
            }
            if let Some(d) = &by_digest {
                pins.add(d);
            }
            let digest = match by_digest {
                Some(d) if self.blob_path(&d).is_file() => {
                    io::copy(&mut entry, &mut io::sink()).ctx("read", path)?;
                    d
                }
                expected => blobs::write_reader(
                    &self.tmp_dir(),
                    &self.blobs_dir(),
                    &mut entry,
                    expected.as_ref(),
                )?,
            };
            pins.add(&digest);
            contents.blobs.insert(name, digest);
        }
        Ok(contents)
    }

    /// Stores a docker-archive's images as OCI manifests (layer tars are the layers as they
    /// are, so each layer's digest is its diff-id unless it was compressed).
    fn docker_archive(
        &self,
        contents: &Contents,
        pins: &mut Pins,
    ) -> Result<Vec<(Vec<Reference>, Digest)>> {
        let entries: Vec<DockerArchiveEntry> =
            serde_json::from_slice(&contents.json["manifest.json"])
                .map_err(json_err("docker-archive manifest.json"))?;
        let mut out = Vec::new();
        for entry in entries {
            let config_digest = match (
                contents.json.get(&entry.config),
                contents.blobs.get(&entry.config),
            ) {
                (Some(bytes), _) => {
                    blobs::write_bytes(&self.tmp_dir(), &self.blobs_dir(), bytes, None)?
                }
                (None, Some(d)) => d.clone(),
                (None, None) => return Err(missing(&entry.config)),
            };
            pins.add(&config_digest);
            let mut layers = Vec::new();
            for layer in &entry.layers {
                let digest = contents.blobs.get(layer).ok_or_else(|| missing(layer))?;
                layers.push(self.descriptor_for_layer(digest)?);
            }
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(media_type::OCI_MANIFEST.into()),
                config: Descriptor {
                    media_type: media_type::OCI_CONFIG.into(),
                    size: self.blob_size(&config_digest)?,
                    digest: config_digest,
                    platform: None,
                    annotations: Default::default(),
                },
                layers,
            };
            let bytes = serde_json::to_vec(&manifest).map_err(json_err("image manifest"))?;
            let manifest_digest =
                blobs::write_bytes(&self.tmp_dir(), &self.blobs_dir(), &bytes, None)?;
            pins.add(&manifest_digest);
            let mut references = Vec::new();
            for tag in entry.repo_tags.unwrap_or_default() {
                references.push(tag.parse::<Reference>()?);
            }
            if references.is_empty() {
                tracing::warn!(config = %manifest.config.digest, "docker-archive image has no RepoTags; skipped");
                continue;
            }
            out.push((references, manifest_digest));
        }
        Ok(out)
    }

    fn oci_layout(&self, contents: &Contents) -> Result<Vec<(Vec<Reference>, Digest)>> {
        if let Some(layout) = contents.json.get("oci-layout") {
            let v: serde_json::Value =
                serde_json::from_slice(layout).map_err(json_err("oci-layout"))?;
            if v.get("imageLayoutVersion").and_then(|v| v.as_str()) != Some("1.0.0") {
                return Err(ImageError::InvalidFormat {
                    what: "oci-layout",
                    reason: format!("unsupported imageLayoutVersion in {v}"),
                });
            }
        }
        let index: Index =
            serde_json::from_slice(&contents.json["index.json"]).map_err(json_err("index.json"))?;
        let mut out = Vec::new();
        for desc in &index.manifests {
            let name = desc.annotations.get(CONTAINERD_NAME).or_else(|| {
                desc.annotations
                    .get(REF_NAME)
                    .filter(|n| n.contains([':', '/', '@']))
            });
            let Some(name) = name else {
                tracing::warn!(digest = %desc.digest, "OCI layout entry has no full image name; skipped");
                continue;
            };
            let reference: Reference = name.parse()?;
            let manifest_digest = self.platform_manifest(desc, name)?;
            // Fail now, not at container start, if the layout is missing blobs.
            let image = self.image_by_digest(&manifest_digest)?;
            for layer in &image.manifest.layers {
                if !self.blob_path(&layer.digest).is_file() {
                    return Err(ImageError::MissingBlob(layer.digest.to_string()));
                }
            }
            out.push((vec![reference], manifest_digest));
        }
        Ok(out)
    }

    /// Follows an index entry down to the linux/amd64 image manifest.
    fn platform_manifest(&self, desc: &Descriptor, name: &str) -> Result<Digest> {
        let mut digest = desc.digest.clone();
        for _ in 0..4 {
            let bytes = blobs::read_verified(&self.blobs_dir(), &digest)?;
            match parse_any(&bytes, Some(&desc.media_type))? {
                AnyManifest::Image(_) => return Ok(digest),
                AnyManifest::Index(index) => {
                    digest = select_linux_amd64(&index)
                        .ok_or_else(|| ImageError::NoMatchingPlatform(name.to_string()))?
                        .digest
                        .clone();
                }
            }
        }
        Err(ImageError::InvalidFormat {
            what: "image index",
            reason: format!("{name}: indexes nested too deep"),
        })
    }

    fn descriptor_for_layer(&self, digest: &Digest) -> Result<Descriptor> {
        let path = self.blob_path(digest);
        let mut head = [0u8; 4];
        let n = File::open(&path)
            .and_then(|mut f| f.read(&mut head))
            .ctx("read", &path)?;
        let media_type = match detect_compression(&head[..n])? {
            Compression::Gzip => media_type::OCI_LAYER_GZIP,
            Compression::None => media_type::OCI_LAYER,
        };
        Ok(Descriptor {
            media_type: media_type.into(),
            digest: digest.clone(),
            size: self.blob_size(digest)?,
            platform: None,
            annotations: Default::default(),
        })
    }

    pub(crate) fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        Ok(std::fs::metadata(&path).ctx("stat", &path)?.len())
    }
}

fn missing(name: &str) -> ImageError {
    ImageError::InvalidFormat {
        what: "docker-archive",
        reason: format!("{name} is listed in manifest.json but not in the archive"),
    }
}
