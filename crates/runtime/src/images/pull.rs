//! Pulling images from an OCI / Docker v2 registry (through `oci-client`) into the store.

use std::sync::Arc;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;

use super::auth::Credentials;
use super::blobs::{self, BlobWriter};
use super::digest::{Digest, chain_ids};
use super::error::{ImageError, Result};
use super::manifest::{AnyManifest, Descriptor, media_type, parse_any, select_linux_amd64};
use super::reference::Reference;
use super::store::ImageStore;

/// A layer download's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// The image being pulled.
    pub image: String,
    /// The layer blob.
    pub layer: Digest,
    /// Bytes received so far (all of them when the layer was already stored).
    pub done: u64,
    /// The layer's size from the manifest.
    pub total: u64,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How to pull.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Basic-auth credentials (from a pull secret, see [`super::DockerConfig`]); anonymous
    /// when `None`. Registries with token auth get them exchanged for a token.
    pub credentials: Option<Credentials>,
    /// Called as layer bytes arrive; progress is also logged at `debug` level.
    pub progress: Option<ProgressFn>,
}

/// A finished pull.
#[derive(Clone, Debug)]
pub struct Pulled {
    /// The normalised reference recorded.
    pub reference: String,
    /// The manifest digest it names.
    pub manifest_digest: Digest,
}

const ACCEPT: &[&str] = &[
    media_type::OCI_MANIFEST,
    media_type::DOCKER_MANIFEST,
    media_type::OCI_INDEX,
    media_type::DOCKER_LIST,
];

impl ImageStore {
    /// Pulls `reference` (linux/amd64 from a multi-platform index), stores its blobs, records
    /// the reference and unpacks its layers. Layers already stored are not downloaded again.
    /// Registries on 127.0.0.1 / localhost / [::1] are spoken to over plain HTTP, others over
    /// HTTPS.
    pub async fn pull(&self, reference: &str, options: &PullOptions) -> Result<Pulled> {
        let reference: Reference = reference.parse()?;
        let name = reference.to_string();
        let registry_err = |e: oci_client::errors::OciDistributionError| ImageError::Registry {
            reference: name.clone(),
            source: Box::new(e),
        };
        // The workspace builds rustls with ring only; install it unless someone already did.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = oci_client::Client::new(ClientConfig {
            protocol: if reference.is_local_registry() {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            ..ClientConfig::default()
        });
        let auth = match &options.credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let oref: oci_client::Reference =
            name.parse().map_err(|_| ImageError::InvalidReference {
                reference: name.clone(),
                reason: "not accepted by the registry client",
            })?;

        let mut pins = self.pins();
        let (mut bytes, _) = client
            .pull_manifest_raw(&oref, &auth, ACCEPT)
            .await
            .map_err(registry_err)?;
        let mut digest = verified(&bytes, reference.digest())?;
        let manifest = loop {
            match parse_any(&bytes, None)? {
                AnyManifest::Image(m) => break m,
                AnyManifest::Index(index) => {
                    let pick = select_linux_amd64(&index)
                        .ok_or_else(|| ImageError::NoMatchingPlatform(name.clone()))?
                        .digest
                        .clone();
                    tracing::debug!(image = %name, manifest = %pick, "index: picked linux/amd64");
                    let by_digest: oci_client::Reference = reference
                        .with_digest(pick.clone())
                        .to_string()
                        .parse()
                        .map_err(|_| ImageError::InvalidReference {
                            reference: name.clone(),
                            reason: "not accepted by the registry client",
                        })?;
                    bytes = client
                        .pull_manifest_raw(&by_digest, &auth, ACCEPT)
                        .await
                        .map_err(registry_err)?
                        .0;
                    digest = verified(&bytes, Some(&pick))?;
                }
            }
        };
        pins.add(&digest);
        pins.add(&manifest.config.digest);
        for layer in &manifest.layers {
            pins.add(&layer.digest);
        }

        if !self.blob_path(&manifest.config.digest).is_file() {
            let mut config = Vec::new();
            client
                .pull_blob(&oref, manifest.config.digest.as_str(), &mut config)
                .await
                .map_err(registry_err)?;
            self.blocking_write(config, manifest.config.digest.clone())
                .await?;
        }
        let downloads = manifest
            .layers
            .iter()
            .map(|layer| self.pull_layer(&client, &oref, &name, layer, options, &registry_err));
        futures::future::try_join_all(downloads).await?;
        // The manifest last: a stored manifest promises its blobs are there.
        self.blocking_write(bytes.to_vec(), digest.clone()).await?;

        let store = self.clone();
        let recorded = reference.clone();
        let manifest_digest = digest.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let image = store.image_by_digest(&manifest_digest)?;
            for chain in chain_ids(&image.config.rootfs.diff_ids) {
                pins.add(&chain);
            }
            store.unpack(&image)?;
            store.record(std::slice::from_ref(&recorded), &manifest_digest)?;
            drop(pins);
            Ok(())
        })
        .await
        .map_err(|e| ImageError::Task(e.to_string()))??;
        tracing::info!(image = %name, manifest = %digest, "pulled");
        Ok(Pulled {
            reference: name,
            manifest_digest: digest,
        })
    }

    async fn pull_layer(
        &self,
        client: &oci_client::Client,
        oref: &oci_client::Reference,
        image: &str,
        layer: &Descriptor,
        options: &PullOptions,
        registry_err: &impl Fn(oci_client::errors::OciDistributionError) -> ImageError,
    ) -> Result<()> {
        let report = |done: u64| {
            let p = Progress {
                image: image.to_string(),
                layer: layer.digest.clone(),
                done,
                total: layer.size,
            };
            tracing::debug!(image, layer = %p.layer, done, total = p.total, "layer progress");
            if let Some(cb) = &options.progress {
                cb(&p);
            }
        };
        if self.blob_path(&layer.digest).is_file() {
            report(layer.size);
            return Ok(());
        }
        let mut stream = client
            .pull_blob_stream(oref, layer.digest.as_str())
            .await
            .map_err(registry_err)?;
        let mut writer = BlobWriter::create(&self.tmp_dir(), &self.blobs_dir())?;
        report(0);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ImageError::Io {
                op: "download",
                path: layer.digest.to_string().into(),
                source: e,
            })?;
            writer.write(&chunk)?;
            if writer.written() > layer.size {
                break;
            }
            report(writer.written());
        }
        if writer.written() != layer.size {
            return Err(ImageError::SizeMismatch {
                digest: layer.digest.to_string(),
                expected: layer.size,
                actual: writer.written(),
            });
        }
        let expected = layer.digest.clone();
        tokio::task::spawn_blocking(move || writer.commit(Some(&expected)))
            .await
            .map_err(|e| ImageError::Task(e.to_string()))??;
        Ok(())
    }

    async fn blocking_write(&self, bytes: Vec<u8>, digest: Digest) -> Result<()> {
        let (tmp, dir) = (self.tmp_dir(), self.blobs_dir());
        tokio::task::spawn_blocking(move || blobs::write_bytes(&tmp, &dir, &bytes, Some(&digest)))
            .await
            .map_err(|e| ImageError::Task(e.to_string()))?
            .map(drop)
    }
}

/// The digest of a manifest received, checked against the one asked for (a registry or a man
/// in the middle must not substitute content for a pinned digest).
fn verified(bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
    let actual = Digest::of(bytes);
    match expected {
        Some(e) if *e != actual => Err(ImageError::DigestMismatch {
            expected: e.to_string(),
            actual: actual.to_string(),
        }),
        _ => Ok(actual),
    }
}
