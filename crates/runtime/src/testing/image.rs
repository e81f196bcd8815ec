//! Building test images from a busybox rootfs: layers, config, manifest, and the two tarball
//! forms `ImageStore::import` reads.

use std::io::{self, Write};
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::images::{Descriptor, Digest, ImageConfig, Manifest, media_type};

/// Where Debian's `busybox-static` installs the binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Applets linked in the test rootfs: enough for a shell, `ls`, `cat`, `sleep` and friends.
const APPLETS: &[&str] = &[
    "sh",
    "ls",
    "cat",
    "echo",
    "sleep",
    "true",
    "false",
    "env",
    "id",
    "ps",
    "mkdir",
    "rm",
    "wget",
    "nc",
    "hostname",
    "test",
    "grep",
    "head",
    "touch",
    "pwd",
    "tar",
    "httpd",
    "tty",
    "stty",
    "od",
    "dd",
    "wc",
    "sed",
    "tail",
    "cp",
    "mv",
    "ln",
    "chmod",
    "date",
    "kill",
    "stat",
    "find",
    "md5sum",
    "sha256sum",
    "uname",
    "whoami",
    "mount",
    "df",
    "du",
    "printf",
    "seq",
    "sort",
    "tr",
    "yes",
];

/// A layer tar under construction (uncompressed). Paths are written without a leading `/`.
pub struct LayerBuilder {
    tar: tar::Builder<Vec<u8>>,
}

impl Default for LayerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerBuilder {
    /// An empty layer.
    pub fn new() -> Self {
        let mut tar = tar::Builder::new(Vec::new());
        tar.mode(tar::HeaderMode::Deterministic);
        LayerBuilder { tar }
    }

    fn header(kind: tar::EntryType, mode: u32, uid: u64, gid: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        h
    }

    fn append(mut self, mut h: tar::Header, path: &str, data: &[u8]) -> io::Result<Self> {
        h.set_size(data.len() as u64);
        self.tar.append_data(&mut h, path, data)?;
        Ok(self)
    }

    /// A directory.
    pub fn dir(self, path: &str, mode: u32) -> io::Result<Self> {
        self.append(
            Self::header(tar::EntryType::Directory, mode, 0, 0),
            path,
            b"",
        )
    }

    /// A regular file owned by root.
    pub fn file(self, path: &str, mode: u32, data: &[u8]) -> io::Result<Self> {
        self.file_owned(path, mode, 0, 0, data)
    }

    /// A regular file with an owner.
    pub fn file_owned(
        self,
        path: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> io::Result<Self> {
        self.append(
            Self::header(tar::EntryType::Regular, mode, uid, gid),
            path,
            data,
        )
    }

    /// A symlink.
    pub fn symlink(mut self, path: &str, target: &str) -> io::Result<Self> {
        let mut h = Self::header(tar::EntryType::Symlink, 0o777, 0, 0);
        self.tar.append_link(&mut h, path, target)?;
        Ok(self)
    }

    /// A hard link to `target` (a path in the image).
    pub fn hardlink(mut self, path: &str, target: &str) -> io::Result<Self> {
        let mut h = Self::header(tar::EntryType::Link, 0o644, 0, 0);
        self.tar.append_link(&mut h, path, target)?;
        Ok(self)
    }

    /// A character device.
    pub fn char_device(self, path: &str, major: u32, minor: u32) -> io::Result<Self> {
        let mut h = Self::header(tar::EntryType::Char, 0o666, 0, 0);
        h.set_device_major(major)?;
        h.set_device_minor(minor)?;
        self.append(h, path, b"")
    }

    /// An OCI whiteout deleting `path` from the layers below.
    pub fn whiteout(self, path: &str) -> io::Result<Self> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let wh = if dir.is_empty() {
            format!(".wh.{name}")
        } else {
            format!("{dir}/.wh.{name}")
        };
        self.file(&wh, 0o644, b"")
    }

    /// Marks directory `dir` opaque: its contents in the layers below are hidden.
    pub fn opaque(self, dir: &str) -> io::Result<Self> {
        self.file(&format!("{dir}/.wh..wh..opq"), 0o644, b"")
    }

    /// Raw entry with an arbitrary (possibly hostile) path, for path-safety tests.
    pub fn raw_file(mut self, path: &[u8], data: &[u8]) -> io::Result<Self> {
        let mut h = Self::header(tar::EntryType::Regular, 0o644, 0, 0);
        h.set_size(data.len() as u64);
        // `append_data` refuses `..`; writing the name bytes directly lets tests build the
        // archives an attacker would.
        let name = &mut h.as_old_mut().name;
        if path.len() > name.len() {
            return Err(io::Error::other("raw path too long"));
        }
        name[..path.len()].copy_from_slice(path);
        h.set_cksum();
        self.tar.append(&h, data)?;
        Ok(self)
    }

    /// The finished, uncompressed tar.
    pub fn finish(self) -> io::Result<Vec<u8>> {
        self.tar.into_inner()
    }
}

/// A busybox rootfs layer: `/bin/busybox` with applet symlinks, `/etc/passwd`, `/etc/group`,
/// `/tmp`, `/root`. Errors if busybox-static is not installed.
pub fn busybox_layer() -> io::Result<Vec<u8>> {
    let busybox = std::fs::read(BUSYBOX).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{BUSYBOX}: {e} (apt-get install busybox-static)"),
        )
    })?;
    let mut layer = LayerBuilder::new()
        .dir("bin", 0o755)?
        .file("bin/busybox", 0o755, &busybox)?;
    for applet in APPLETS {
        layer = layer.symlink(&format!("bin/{applet}"), "busybox")?;
    }
    layer
        .dir("etc", 0o755)?
        .file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )?
        .file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n")?
        .dir("tmp", 0o1777)?
        .dir("root", 0o700)?
        .finish()
}

/// A test image: layers (uncompressed tars, bottom first) and process defaults.
#[derive(Clone)]
pub struct TestImage {
    /// The layers, bottom first, as uncompressed tars.
    pub layers: Vec<Vec<u8>>,
    /// Entrypoint, Cmd, Env, WorkingDir, User.
    pub config: ImageConfig,
    /// Architecture recorded in the config (`amd64`).
    pub architecture: String,
}

/// The blobs of a [`TestImage`], as a registry or an OCI layout holds them.
pub struct Blobs {
    /// The config JSON.
    pub config: Vec<u8>,
    /// The layers, gzip-compressed, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// The OCI manifest JSON.
    pub manifest: Vec<u8>,
}

impl Blobs {
    /// The manifest's digest.
    pub fn manifest_digest(&self) -> Digest {
        Digest::of(&self.manifest)
    }
}

impl TestImage {
    /// The busybox rootfs, running `sh` by default.
    pub fn busybox() -> io::Result<TestImage> {
        Ok(TestImage {
            layers: vec![busybox_layer()?],
            config: ImageConfig {
                entrypoint: None,
                cmd: Some(vec!["sh".into()]),
                env: Some(vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                ]),
                working_dir: Some("/".into()),
                user: None,
            },
            architecture: "amd64".into(),
        })
    }

    /// Adds a layer on top.
    pub fn with_layer(mut self, layer: Vec<u8>) -> TestImage {
        self.layers.push(layer);
        self
    }

    /// The config JSON.
    pub fn config_json(&self) -> io::Result<Vec<u8>> {
        let diff_ids: Vec<String> = self
            .layers
            .iter()
            .map(|l| Digest::of(l).to_string())
            .collect();
        let v = serde_json::json!({
            "architecture": self.architecture,
            "os": "linux",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        });
        serde_json::to_vec(&v).map_err(io::Error::other)
    }

    /// Config, gzip layers and OCI manifest.
    pub fn blobs(&self) -> io::Result<Blobs> {
        let config = self.config_json()?;
        let mut layers = Vec::new();
        for l in &self.layers {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(l)?;
            layers.push(gz.finish()?);
        }
        let descriptor = |media_type: &str, data: &[u8]| Descriptor {
            media_type: media_type.into(),
            digest: Digest::of(data),
            size: data.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media_type::OCI_MANIFEST.into()),
            config: descriptor(media_type::OCI_CONFIG, &config),
            layers: layers
                .iter()
                .map(|l| descriptor(media_type::OCI_LAYER_GZIP, l))
                .collect(),
        };
        let manifest = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
        Ok(Blobs {
            config,
            layers,
            manifest,
        })
    }

    /// Writes an OCI image layout tarball naming the image `name` (a full reference such as
    /// `docker.io/library/busybox:test`).
    pub fn write_oci_layout(&self, out: &Path, name: &str) -> io::Result<()> {
        let blobs = self.blobs()?;
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [{
                "mediaType": media_type::OCI_MANIFEST,
                "digest": blobs.manifest_digest().to_string(),
                "size": blobs.manifest.len(),
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit_once(':').map_or("latest", |(_, t)| t),
                },
            }],
        });
        let mut tar = tar::Builder::new(std::fs::File::create(out)?);
        let mut add = |path: &str, data: &[u8]| -> io::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, path, data)
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        add(
            "index.json",
            &serde_json::to_vec(&index).map_err(io::Error::other)?,
        )?;
        for blob in [&blobs.config, &blobs.manifest]
            .into_iter()
            .chain(&blobs.layers)
        {
            add(&format!("blobs/sha256/{}", Digest::of(blob).hex()), blob)?;
        }
        tar.into_inner()?.sync_all()
    }

    /// Writes a docker-archive (`docker save` layout: `manifest.json`, `<id>.json`,
    /// `<id>/layer.tar`) tagging the image `name`.
    pub fn write_docker_archive(&self, out: &Path, name: &str) -> io::Result<()> {
        let config = self.config_json()?;
        let config_name = format!("{}.json", Digest::of(&config).hex());
        let layer_names: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("{}/layer.tar", Digest::of(l).hex()))
            .collect();
        let manifest = serde_json::json!([{
            "Config": config_name,
            "RepoTags": [name],
            "Layers": layer_names,
        }]);
        let mut tar = tar::Builder::new(std::fs::File::create(out)?);
        let mut add = |path: &str, data: &[u8]| -> io::Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, path, data)
        };
        add(&config_name, &config)?;
        for (layer, path) in self.layers.iter().zip(&layer_names) {
            add(path, layer)?;
        }
        add(
            "manifest.json",
            &serde_json::to_vec(&manifest).map_err(io::Error::other)?,
        )?;
        tar.into_inner()?.sync_all()
    }
}
