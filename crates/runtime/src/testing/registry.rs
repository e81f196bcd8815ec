//! A throwaway `docker-registry` (Debian's build of distribution) on a free 127.0.0.1 port, with
//! a minimal push client speaking the registry v2 upload API.

use std::io;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::image::TestImage;
use crate::images::{Digest, media_type};

/// A running registry. Dropping it kills the process (by its PID, which only this value owns)
/// and deletes its storage.
pub struct Registry {
    child: Child,
    host: String,
    // Dropped after the process is gone.
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts `docker-registry` with its storage and config in a temp dir and waits until it
    /// answers `/v2/`.
    pub async fn start() -> io::Result<Registry> {
        // reqwest is built without a bundled crypto provider (the workspace uses ring).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        let storage = dir.path().join("storage");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n",
                storage.display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("docker-registry: {e} (apt-get install docker-registry)"),
                )
            })?;
        let mut registry = Registry {
            child,
            host,
            _dir: dir,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = registry.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "docker-registry exited: {status}"
                )));
            }
            let ok = client
                .get(format!("http://{}/v2/", registry.host))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                return Ok(registry);
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(
                    "docker-registry did not become ready in 20s",
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `127.0.0.1:PORT`, to prefix repositories with.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Pushes `image` as `repo:tag` (gzip layers, OCI manifest); returns the manifest digest.
    pub async fn push(&self, repo: &str, tag: &str, image: &TestImage) -> io::Result<Digest> {
        let blobs = image.blobs()?;
        for blob in [&blobs.config].into_iter().chain(&blobs.layers) {
            self.push_blob(repo, blob).await?;
        }
        self.put_manifest(repo, tag, media_type::OCI_MANIFEST, &blobs.manifest)
            .await?;
        Ok(blobs.manifest_digest())
    }

    /// Pushes `amd64` and `arm64` and tags an OCI index listing both as `repo:tag`; returns the
    /// index digest and the amd64 manifest digest.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        amd64: &TestImage,
        arm64: &TestImage,
    ) -> io::Result<(Digest, Digest)> {
        let mut entries = Vec::new();
        for (image, arch) in [(arm64, "arm64"), (amd64, "amd64")] {
            let blobs = image.blobs()?;
            for blob in [&blobs.config].into_iter().chain(&blobs.layers) {
                self.push_blob(repo, blob).await?;
            }
            let digest = blobs.manifest_digest();
            self.put_manifest(
                repo,
                digest.as_str(),
                media_type::OCI_MANIFEST,
                &blobs.manifest,
            )
            .await?;
            entries.push(serde_json::json!({
                "mediaType": media_type::OCI_MANIFEST,
                "digest": digest.to_string(),
                "size": blobs.manifest.len(),
                "platform": {"architecture": arch, "os": "linux"},
            }));
        }
        let amd64_digest = entries[1]["digest"]
            .as_str()
            .and_then(|d| d.parse::<Digest>().ok())
            .ok_or_else(|| io::Error::other("amd64 digest"))?;
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": entries,
        }))
        .map_err(io::Error::other)?;
        self.put_manifest(repo, tag, media_type::OCI_INDEX, &index)
            .await?;
        Ok((Digest::of(&index), amd64_digest))
    }

    /// Monolithic upload: `POST /v2/<repo>/blobs/uploads/`, then `PUT <location>?digest=`.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> io::Result<Digest> {
        let digest = Digest::of(data);
        let client = reqwest::Client::new();
        let base = format!("http://{}", self.host);
        let resp = client
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .map_err(io::Error::other)?;
        if resp.status().as_u16() != 202 {
            return Err(io::Error::other(format!("start upload: {}", resp.status())));
        }
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| io::Error::other("upload without Location"))?
            .to_string();
        let url = if location.starts_with("http") {
            location
        } else {
            format!("{base}{location}")
        };
        let sep = if url.contains('?') { '&' } else { '?' };
        let resp = client
            .put(format!("{url}{sep}digest={digest}"))
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .map_err(io::Error::other)?;
        if resp.status().as_u16() != 201 {
            return Err(io::Error::other(format!(
                "finish upload: {}",
                resp.status()
            )));
        }
        Ok(digest)
    }

    /// `PUT /v2/<repo>/manifests/<reference>`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        content_type: &str,
        body: &[u8],
    ) -> io::Result<()> {
        let resp = reqwest::Client::new()
            .put(format!(
                "http://{}/v2/{repo}/manifests/{reference}",
                self.host
            ))
            .header("content-type", content_type)
            .body(body.to_vec())
            .send()
            .await
            .map_err(io::Error::other)?;
        if resp.status().as_u16() != 201 {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            return Err(io::Error::other(format!("put manifest: {status}: {text}")));
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
