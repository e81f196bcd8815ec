//! Pod volumes on the node: each volume becomes a directory under the pod's directory, which
//! containers get as bind mounts. ConfigMap, Secret and downward API volumes are written the way
//! the kubelet writes them — files in a timestamped directory behind a `..data` symlink that is
//! swapped atomically — so a container sees an update all at once.
//!
//! `plan_*` functions are pure; [`sync`] and [`cleanup`] do the filesystem work.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use rudder_runtime::Mount;

/// The files of one projected-style volume: relative path → (content, mode).
pub type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// What a volume is on the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A directory of the pod's (`emptyDir`); `memory` means a tmpfs.
    Empty { memory: bool },
    /// A path of the host.
    HostPath(PathBuf),
    /// The path of a bound persistent volume, which the volume's directory links to;
    /// `create` makes the directory if it is missing.
    Persistent { path: PathBuf, create: bool },
    /// Files written by the agent (configMap, secret, downwardAPI, projected).
    Files(Files),
    /// A volume kind the agent does not support yet.
    Unsupported(&'static str),
}

/// Why a volume cannot be set up (the pod waits with `CreateContainerConfigError`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VolumeError {
    /// A referenced ConfigMap or Secret (or key) is missing and not optional.
    #[error("{kind} \"{name}\" not found")]
    Missing { kind: &'static str, name: String },
    /// The volume kind is not supported by this agent.
    #[error("volume \"{volume}\": {kind} volumes are not supported yet")]
    Unsupported { volume: String, kind: &'static str },
    /// A PersistentVolumeClaim is not bound to a volume yet.
    #[error("persistentvolumeclaim \"{0}\" is not bound")]
    Unbound(String),
    /// A mount names a volume the pod does not have.
    #[error("volume \"{0}\" not found in the pod")]
    NoSuchVolume(String),
    /// Filesystem work failed.
    #[error("{0}")]
    Io(String),
}

/// Data of the ConfigMaps, Secrets and claims volumes refer to, fetched by the caller.
#[derive(Clone, Debug, Default)]
pub struct Objects {
    /// ConfigMap name → key → bytes (data and binaryData).
    pub config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Secret name → key → bytes.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// PersistentVolumeClaim name → what it is bound to.
    pub claims: BTreeMap<String, Claim>,
    /// Service-account tokens of projected volumes, by [`token_key`].
    pub tokens: BTreeMap<String, IssuedToken>,
}

/// A service-account token the agent got through TokenRequest, bound to the pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The JWT.
    pub token: String,
    /// When it was obtained, seconds since the epoch.
    pub issued: i64,
    /// When it expires, seconds since the epoch.
    pub expires: i64,
}

/// Lifetime of a projected token that names none (upstream's default).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// The key of a projected token: its audience and lifetime.
pub fn token_key(audience: &str, expiration_seconds: i64) -> String {
    format!("{audience}|{expiration_seconds}")
}

/// The (audience, lifetime) of every service-account token the pod's projected volumes need.
pub fn projected_tokens(pod: &Pod) -> Vec<(String, i64)> {
    let mut out: Vec<(String, i64)> = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(t) = &src.service_account_token {
                let want = (
                    t.audience.clone().unwrap_or_default(),
                    t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
                );
                if !out.contains(&want) {
                    out.push(want);
                }
            }
        }
    }
    out
}

/// Whether a token must be requested again at `now`: past 80% of its lifetime, older than a
/// day, or expired (the kubelet's token manager rule).
pub fn needs_refresh(t: &IssuedToken, now: i64) -> bool {
    let ttl = t.expires - t.issued;
    now >= t.expires || now >= t.issued + ttl * 8 / 10 || now >= t.issued + 24 * 3600
}

/// A PersistentVolumeClaim as the node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Not bound to a volume yet (the pod waits).
    Unbound,
    /// Bound to a volume at a path of this node (`hostPath` or `local`); `create` for
    /// `hostPath` volumes whose type allows creating the directory.
    Path { path: PathBuf, create: bool },
    /// Bound to a volume of a kind the node cannot mount.
    Unsupported(&'static str),
}

fn keyed_files(
    kind: &'static str,
    name: &str,
    data: Option<&BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
    default_mode: u32,
    optional: bool,
) -> Result<Files, VolumeError> {
    let Some(data) = data else {
        return if optional {
            Ok(Files::new())
        } else {
            Err(VolumeError::Missing {
                kind,
                name: name.to_owned(),
            })
        };
    };
    let mut files = Files::new();
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        let mode = it
                            .mode
                            .and_then(|m| u32::try_from(m).ok())
                            .unwrap_or(default_mode);
                        files.insert(it.path.clone(), (v.clone(), mode));
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::Missing {
                            kind,
                            name: format!("{name}/{}", it.key),
                        });
                    }
                }
            }
        }
        _ => {
            for (k, v) in data {
                files.insert(k.clone(), (v.clone(), default_mode));
            }
        }
    }
    Ok(files)
}

fn downward_value(pod: &Pod, path: &str) -> Vec<u8> {
    let m = &pod.metadata;
    let map = |v: &Option<BTreeMap<String, String>>| {
        v.iter()
            .flatten()
            .map(|(k, v)| format!("{k}=\"{v}\"\n"))
            .collect::<String>()
    };
    let s = match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "metadata.labels" => map(&m.labels),
        "metadata.annotations" => map(&m.annotations),
        other => other
            .strip_prefix("metadata.labels['")
            .and_then(|k| k.strip_suffix("']"))
            .and_then(|k| m.labels.as_ref()?.get(k).cloned())
            .unwrap_or_default(),
    };
    s.into_bytes()
}

/// What `volume` of `pod` is on the node.
pub fn plan(pod: &Pod, volume: &Volume, objects: &Objects) -> Result<Source, VolumeError> {
    let mode = |m: Option<i32>| m.and_then(|m| u32::try_from(m).ok()).unwrap_or(0o644);
    if let Some(e) = &volume.empty_dir {
        return Ok(Source::Empty {
            memory: e.medium.as_deref() == Some("Memory"),
        });
    }
    if let Some(h) = &volume.host_path {
        return Ok(Source::HostPath(PathBuf::from(&h.path)));
    }
    if let Some(c) = &volume.config_map {
        return keyed_files(
            "configmap",
            &c.name,
            objects.config_maps.get(&c.name),
            c.items.as_ref(),
            mode(c.default_mode),
            c.optional == Some(true),
        )
        .map(Source::Files);
    }
    if let Some(s) = &volume.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        return keyed_files(
            "secret",
            &name,
            objects.secrets.get(&name),
            s.items.as_ref(),
            mode(s.default_mode),
            s.optional == Some(true),
        )
        .map(Source::Files);
    }
    if let Some(d) = &volume.downward_api {
        let mut files = Files::new();
        for it in d.items.iter().flatten() {
            if let Some(f) = &it.field_ref {
                files.insert(
                    it.path.clone(),
                    (
                        downward_value(pod, &f.field_path),
                        mode(it.mode.or(d.default_mode)),
                    ),
                );
            }
        }
        return Ok(Source::Files(files));
    }
    if let Some(p) = &volume.projected {
        let mut files = Files::new();
        for src in p.sources.iter().flatten() {
            if let Some(c) = &src.config_map {
                files.extend(keyed_files(
                    "configmap",
                    &c.name,
                    objects.config_maps.get(&c.name),
                    c.items.as_ref(),
                    mode(p.default_mode),
                    c.optional == Some(true),
                )?);
            }
            if let Some(s) = &src.secret {
                files.extend(keyed_files(
                    "secret",
                    &s.name,
                    objects.secrets.get(&s.name),
                    s.items.as_ref(),
                    mode(p.default_mode),
                    s.optional == Some(true),
                )?);
            }
            if let Some(t) = &src.service_account_token {
                let key = token_key(
                    t.audience.as_deref().unwrap_or(""),
                    t.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
                );
                let Some(issued) = objects.tokens.get(&key) else {
                    return Err(VolumeError::Missing {
                        kind: "service account token for",
                        name: pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.service_account_name.clone())
                            .unwrap_or_else(|| "default".into()),
                    });
                };
                files.insert(
                    t.path.clone(),
                    (issued.token.clone().into_bytes(), mode(p.default_mode)),
                );
            }
            if let Some(d) = &src.downward_api {
                for it in d.items.iter().flatten() {
                    if let Some(f) = &it.field_ref {
                        files.insert(
                            it.path.clone(),
                            (
                                downward_value(pod, &f.field_path),
                                mode(it.mode.or(p.default_mode)),
                            ),
                        );
                    }
                }
            }
        }
        return Ok(Source::Files(files));
    }
    if let Some(c) = &volume.persistent_volume_claim {
        return match objects.claims.get(&c.claim_name) {
            None => Err(VolumeError::Missing {
                kind: "persistentvolumeclaim",
                name: c.claim_name.clone(),
            }),
            Some(Claim::Unbound) => Err(VolumeError::Unbound(c.claim_name.clone())),
            Some(Claim::Path { path, create }) => Ok(Source::Persistent {
                path: path.clone(),
                create: *create,
            }),
            Some(Claim::Unsupported(kind)) => Ok(Source::Unsupported(kind)),
        };
    }
    Ok(Source::Unsupported("this kind of"))
}

/// The pod's directory on the node.
pub fn pod_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("pods").join(uid)
}

/// Where volume `name` lives on the node (for `Empty` and `Files` sources).
pub fn volume_dir(root: &Path, uid: &str, name: &str) -> PathBuf {
    pod_dir(root, uid).join("volumes").join(name)
}

/// The bind mounts of container `c`.
pub fn mounts(root: &Path, pod: &Pod, c: &Container) -> Result<Vec<Mount>, VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = volumes
            .iter()
            .find(|v| v.name == m.name)
            .ok_or_else(|| VolumeError::NoSuchVolume(m.name.clone()))?;
        let mut host = match &v.host_path {
            Some(h) => PathBuf::from(&h.path),
            None => volume_dir(root, &uid, &v.name),
        };
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.split('/').any(|p| p == "..") || sub.starts_with('/') {
                return Err(VolumeError::Io(format!(
                    "subPath {sub:?} must be a relative path without '..'"
                )));
            }
            host = host.join(sub);
        }
        out.push(Mount {
            container_path: m.mount_path.clone(),
            host_path: host,
            readonly: m.read_only.unwrap_or(false)
                || v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
                || v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.read_only == Some(true)),
        });
    }
    Ok(out)
}

/// Writes `files` into `dir` atomically: a new `..<timestamp>` directory, the `..data` symlink
/// swapped to it, and one symlink per top-level name (`key -> ..data/key`). Unchanged content
/// writes nothing.
pub fn write_files(dir: &Path, files: &Files) -> Result<(), VolumeError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| VolumeError::Io(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let current = dir.join("..data");
    let unchanged = files.iter().all(|(p, (bytes, _))| {
        std::fs::read(current.join(p)).ok().as_deref() == Some(bytes.as_slice())
    }) && count_files(&current) == files.len();
    if current.exists() && unchanged {
        return Ok(());
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let staged = dir.join(&stamp);
    std::fs::create_dir_all(&staged).map_err(io)?;
    for (path, (bytes, mode)) in files {
        if path.split('/').any(|p| p == ".." || p.is_empty()) || path.starts_with('/') {
            return Err(VolumeError::Io(format!(
                "invalid volume file path {path:?}"
            )));
        }
        let target = staged.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&target, bytes).map_err(io)?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode)).map_err(io)?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link).map_err(io)?;
    let old = std::fs::read_link(&current).ok();
    std::fs::rename(&tmp_link, &current).map_err(io)?;
    let tops: std::collections::BTreeSet<&str> =
        files.keys().filter_map(|p| p.split('/').next()).collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), &link).map_err(io)?;
        }
    }
    // Names no longer present disappear.
    for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(name.as_str()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// Creates or refreshes every volume of `pod` under `root`.
pub fn sync(root: &Path, pod: &Pod, objects: &Objects) -> Result<(), VolumeError> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default()
    {
        let dir = volume_dir(root, &uid, &v.name);
        match plan(pod, &v, objects)? {
            Source::Empty { memory } => {
                if !dir.exists() {
                    std::fs::create_dir_all(&dir).map_err(|e| VolumeError::Io(e.to_string()))?;
                    if memory {
                        rustix::mount::mount(
                            "tmpfs",
                            &dir,
                            "tmpfs",
                            rustix::mount::MountFlags::empty(),
                            Some(c"mode=0777"),
                        )
                        .map_err(|e| VolumeError::Io(format!("tmpfs on {}: {e}", dir.display())))?;
                    }
                }
            }
            Source::HostPath(p) => {
                if !p.exists() {
                    let _ = std::fs::create_dir_all(&p);
                }
            }
            Source::Persistent { path, create } => link_persistent(&dir, &path, create)?,
            Source::Files(files) => write_files(&dir, &files)?,
            Source::Unsupported(kind) => {
                return Err(VolumeError::Unsupported {
                    volume: v.name.clone(),
                    kind,
                });
            }
        }
    }
    Ok(())
}

/// Points the volume's directory at a persistent volume's path (a symlink: the container's
/// bind mount follows it, and removing the pod removes only the link, never the data).
fn link_persistent(dir: &Path, path: &Path, create: bool) -> Result<(), VolumeError> {
    let io = |e: std::io::Error| VolumeError::Io(format!("{}: {e}", path.display()));
    if !path.is_dir() {
        if create {
            std::fs::create_dir_all(path).map_err(io)?;
        } else {
            return Err(VolumeError::Io(format!(
                "the volume's path {} does not exist on this node",
                path.display()
            )));
        }
    }
    if std::fs::read_link(dir).is_ok_and(|p| p == path) {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let _ = std::fs::remove_file(dir);
    std::os::unix::fs::symlink(path, dir).map_err(io)
}

/// Removes the pod's directory, unmounting memory-backed volumes first (never through the
/// links to persistent volumes: those may be mount points of the host).
pub fn cleanup(root: &Path, uid: &str) {
    let volumes = pod_dir(root, uid).join("volumes");
    for entry in std::fs::read_dir(&volumes).into_iter().flatten().flatten() {
        let _ = rustix::mount::unmount(
            entry.path(),
            rustix::mount::UnmountFlags::DETACH | rustix::mount::UnmountFlags::NOFOLLOW,
        );
    }
    let _ = std::fs::remove_dir_all(pod_dir(root, uid));
}

#[cfg(test)]
mod tests;
