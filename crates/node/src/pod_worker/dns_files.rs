//! Writing a pod's `/etc/resolv.conf` and `/etc/hosts` (computed by [`crate::pod_dns`]) under its
//! directory, and the bind mounts that put them into each container, as the kubelet does.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};
use rudder_runtime::Mount;

use super::Shared;
use crate::pod_dns;

const RESOLV_CONF: &str = "/etc/resolv.conf";
const HOSTS: &str = "/etc/hosts";

fn resolv_path(root: &Path, uid: &str) -> PathBuf {
    crate::volumes::pod_dir(root, uid).join("resolv.conf")
}

fn hosts_path(root: &Path, uid: &str) -> PathBuf {
    crate::volumes::pod_dir(root, uid).join("etc-hosts")
}

/// Writes `text` to `path` unless it already holds it. In place rather than by rename: running
/// containers have the file bind-mounted, and a rename would leave them the old inode.
fn write_if_changed(path: &Path, text: &str) -> std::io::Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|t| t == text) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
}

/// Writes the pod's two files.
pub(super) async fn write(shared: &Shared, pod: &Pod, pod_ip: &str) -> Result<(), String> {
    let host = tokio::fs::read_to_string(&shared.resolv_conf)
        .await
        .unwrap_or_default();
    let host = pod_dns::ResolvConf::parse(&host);
    let (resolv, cut) = pod_dns::resolv_conf(pod, shared.cluster_dns.as_ref(), &host);
    if cut {
        tracing::warn!(
            pod = ?pod.metadata.name,
            "the pod's DNS settings exceed the resolver's limits; some were left out"
        );
    }
    let domain = shared
        .cluster_dns
        .as_ref()
        .map_or("cluster.local", |c| c.domain.as_str());
    let hosts = pod_dns::hosts_file(pod, pod_ip, domain);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let root = shared.root.clone();
    tokio::task::spawn_blocking(move || {
        write_if_changed(&resolv_path(&root, &uid), &resolv)?;
        write_if_changed(&hosts_path(&root, &uid), &hosts)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("writing the pod's resolv.conf and hosts: {e}"))
}

/// The mounts of the two files into `c`, except where the container mounts a volume there.
pub(super) fn mounts(root: &Path, pod: &Pod, c: &Container) -> Vec<Mount> {
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let taken = |path: &str| {
        c.volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path.trim_end_matches('/') == path)
    };
    [
        (RESOLV_CONF, resolv_path(root, &uid)),
        (HOSTS, hosts_path(root, &uid)),
    ]
    .into_iter()
    .filter(|(path, _)| !taken(path))
    .map(|(path, host_path)| Mount {
        container_path: path.into(),
        host_path,
        readonly: false,
    })
    .collect()
}
