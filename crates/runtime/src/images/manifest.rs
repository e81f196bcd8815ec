//! OCI and Docker v2 schema 2 manifests, indexes and image configs: the subset of fields the
//! store uses, tolerant of the rest.
//!
//! Docker's schema 2 manifest and manifest list have the same JSON shape as OCI's image manifest
//! and index (OCI was derived from them), so one set of types reads both; only the media types
//! differ, and the raw bytes are kept as they came so their digests still verify.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::digest::Digest;
use super::error::{ImageError, json_err};

/// Media types the store reads and writes.
pub mod media_type {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index (multi-platform).
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI uncompressed layer.
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI gzip layer.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// Docker v2 schema 2 manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker v2 schema 2 manifest list (multi-platform).
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker gzip layer.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}

/// A reference to a blob: its media type, digest and size.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The blob's media type.
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// For index entries: the platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Free-form annotations (`org.opencontainers.image.ref.name` in an OCI layout).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An index entry's platform.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// CPU architecture, GOARCH spelling (`amd64`).
    pub architecture: String,
    /// Operating system, GOOS spelling (`linux`).
    pub os: String,
    /// CPU variant (`v8`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An image manifest (OCI, or Docker v2 schema 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2.
    pub schema_version: u32,
    /// The manifest's own media type (optional in OCI, required by Docker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first.
    pub layers: Vec<Descriptor>,
}

/// An image index or manifest list.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists.
    pub manifests: Vec<Descriptor>,
}

/// An image config blob: what the runtime needs of it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ConfigFile {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// The defaults for a container's process (`null` in some images).
    #[serde(default)]
    pub config: Option<ImageConfig>,
    /// The uncompressed layer digests, bottom first.
    pub rootfs: RootFs,
}

/// The `rootfs` section of an image config.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The sha256 of each layer's uncompressed tar, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// The process defaults an image gives its containers (the image config's `config` section).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImageConfig {
    /// `ENTRYPOINT`; a pod's `command` replaces it.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`; a pod's `args` replaces it.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `ENV`, as `NAME=value` strings.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `WORKDIR`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// `USER`: `uid`, `uid:gid`, `name` or `name:group`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// A manifest blob, classified.
pub enum AnyManifest {
    /// A single-platform image manifest.
    Image(Manifest),
    /// A multi-platform index / manifest list.
    Index(Index),
}

/// Classifies and decodes a manifest by its media type, or by its shape when the media type is
/// absent (OCI allows that).
pub fn parse_any(bytes: &[u8], media_type: Option<&str>) -> Result<AnyManifest, ImageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        schema_version: Option<u32>,
    }
    let probe: Probe = serde_json::from_slice(bytes).map_err(json_err("manifest"))?;
    if probe.schema_version != Some(2) {
        return Err(ImageError::InvalidFormat {
            what: "manifest",
            reason: format!(
                "schemaVersion {:?} (Docker schema 1 is not supported)",
                probe.schema_version
            ),
        });
    }
    let kind = probe.media_type.as_deref().or(media_type);
    let is_index = match kind {
        Some(media_type::OCI_INDEX | media_type::DOCKER_LIST) => true,
        Some(media_type::OCI_MANIFEST | media_type::DOCKER_MANIFEST) => false,
        _ => probe.manifests.is_some(),
    };
    if is_index {
        Ok(AnyManifest::Index(
            serde_json::from_slice(bytes).map_err(json_err("image index"))?,
        ))
    } else {
        Ok(AnyManifest::Image(
            serde_json::from_slice(bytes).map_err(json_err("image manifest"))?,
        ))
    }
}

/// Picks the linux/amd64 manifest of an index (the only platform rudder runs), preferring an
/// entry without a variant, as amd64 variants (`v2`, `v3`) are optional refinements.
pub fn select_linux_amd64(index: &Index) -> Option<&Descriptor> {
    let candidates = || {
        index.manifests.iter().filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
        })
    };
    candidates()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()))
        .or_else(|| candidates().next())
}

/// How a layer blob is compressed, by its first bytes: archives in the wild mislabel layers, the
/// magic number does not lie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
}

/// Detects a layer's compression from its first bytes.
pub fn detect_compression(head: &[u8]) -> Result<Compression, ImageError> {
    match head {
        [0x1f, 0x8b, ..] => Ok(Compression::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Err(ImageError::InvalidFormat {
            what: "layer",
            reason: "zstd-compressed layers are not supported".into(),
        }),
        _ => Ok(Compression::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>, n: u8) -> Descriptor {
        Descriptor {
            media_type: media_type::OCI_MANIFEST.into(),
            digest: Digest::of(&[n]),
            size: 1,
            platform: Some(Platform {
                architecture: arch.into(),
                os: os.into(),
                variant: variant.map(Into::into),
            }),
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn platform_selection() {
        let cases: Vec<(Vec<Descriptor>, Option<u8>)> = vec![
            (
                vec![
                    entry("linux", "arm64", Some("v8"), 1),
                    entry("linux", "amd64", None, 2),
                ],
                Some(2),
            ),
            (
                vec![
                    entry("linux", "amd64", Some("v3"), 1),
                    entry("linux", "amd64", None, 2),
                ],
                Some(2),
            ),
            (vec![entry("linux", "amd64", Some("v3"), 1)], Some(1)),
            (
                vec![
                    entry("windows", "amd64", None, 1),
                    entry("linux", "arm", Some("v7"), 2),
                ],
                None,
            ),
            (vec![], None),
        ];
        for (manifests, want) in cases {
            let index = Index {
                schema_version: 2,
                media_type: None,
                manifests,
            };
            let got = select_linux_amd64(&index).map(|d| d.digest.clone());
            assert_eq!(got, want.map(|n| Digest::of(&[n])));
        }
    }

    #[test]
    fn classifies_manifests() {
        let d = Digest::of(b"x");
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{d}","size":1}},"layers":[]}}"#,
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_CONFIG
        );
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            parse_any(image.as_bytes(), None),
            Ok(AnyManifest::Image(_))
        ));
        assert!(matches!(
            parse_any(index.as_bytes(), None),
            Ok(AnyManifest::Index(_))
        ));
        assert!(parse_any(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(parse_any(b"[]", None).is_err());
    }

    #[test]
    fn compression_by_magic() {
        assert_eq!(
            detect_compression(&[0x1f, 0x8b, 8]).unwrap(),
            Compression::Gzip
        );
        assert_eq!(detect_compression(b"bin/").unwrap(), Compression::None);
        assert_eq!(detect_compression(b"").unwrap(), Compression::None);
        assert!(detect_compression(&[0x28, 0xb5, 0x2f, 0xfd]).is_err());
    }

    #[test]
    fn image_config_uses_docker_field_names() {
        let json = r#"{"rootfs":{"type":"layers","diff_ids":[]},"config":{"Entrypoint":["/bin/sh"],"Cmd":["-c","x"],"Env":["A=1"],"WorkingDir":"/w","User":"1:2"}}"#;
        let c: ConfigFile = serde_json::from_str(json).unwrap();
        let config = c.config.unwrap();
        assert_eq!(
            config.entrypoint.as_deref(),
            Some(&["/bin/sh".to_string()][..])
        );
        assert_eq!(config.user.as_deref(), Some("1:2"));
        assert_eq!(config.working_dir.as_deref(), Some("/w"));
        let null: ConfigFile = serde_json::from_str(r#"{"config":null,"rootfs":{}}"#).unwrap();
        assert!(null.config.is_none());
    }
}
