//! Pure mapping between rudder's runtime types ([`crate::types`]) and CRI v1 messages: no IO,
//! so every rule is table-tested in `convert/tests.rs`.
//!
//! Two things CRI does not carry back are kept in the sandbox's annotations under
//! [`ANNOTATION_PREFIX`] and stripped again on the way out: the sandbox config fields that
//! `CreateContainer` needs again (CRI wants the whole `PodSandboxConfig` with every container,
//! and a restarted agent has nothing but the runtime's listing), and each container's sandbox id
//! (`ContainerStatus` has none).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_cri::v1 as cri;

use crate::ContainerId;
use crate::types::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStats, ContainerStatus,
    ExitReason, PidNamespace, PodMetadata, SandboxConfig, SandboxId, SandboxState, SandboxStatus,
};

/// Annotations rudder keeps for itself on CRI objects; never shown to the agent.
pub const ANNOTATION_PREFIX: &str = "cri.rudder.io/";
const HOSTNAME: &str = "cri.rudder.io/hostname";
const LOG_DIRECTORY: &str = "cri.rudder.io/log-directory";
const HOST_NETWORK: &str = "cri.rudder.io/host-network";
const SHARE_PID: &str = "cri.rudder.io/share-pid-namespace";
const SANDBOX_ID: &str = "cri.rudder.io/sandbox-id";
/// On a container created with `tty`: CRI `Attach` must say whether the container has a
/// terminal, and `ContainerStatus` does not tell.
pub const TTY: &str = "cri.rudder.io/tty";

/// Where the CRI backend puts what CRI leaves to the kubelet: pod cgroups and logs of sandboxes
/// created without a log directory.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The cgroup (cgroupfs path, no leading slash) every pod's cgroup goes under: `rudder`.
    pub cgroup_root: String,
    /// Log directories for sandboxes that come without one.
    pub log_root: PathBuf,
}

impl Layout {
    /// The pod's cgroup parent, `/<root>/pod<uid>` (the kubelet's cgroupfs shape); containerd puts
    /// the sandbox and each container in a child named by its id. Characters a cgroup name
    /// cannot hold become `_`.
    pub fn cgroup_parent(&self, uid: &str) -> String {
        let uid: String = uid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("/{}/pod{uid}", self.cgroup_root.trim_matches('/'))
    }

    /// The sandbox's log directory: the one given, or `<log_root>/<ns>_<name>_<uid>`.
    pub fn log_directory(&self, config: &SandboxConfig) -> PathBuf {
        config.log_directory.clone().unwrap_or_else(|| {
            let m = &config.metadata;
            self.log_root
                .join(format!("{}_{}_{}", m.namespace, m.name, m.uid))
        })
    }
}

fn to_hash(map: &BTreeMap<String, String>) -> HashMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The caller's labels or annotations, without rudder's own.
fn from_hash(map: &HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter()
        .filter(|(k, _)| !k.starts_with(ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// CRI nanoseconds since the epoch; 0 (unset) is `None`.
pub fn time(nanos: i64) -> Option<SystemTime> {
    u64::try_from(nanos)
        .ok()
        .filter(|n| *n > 0)
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
}

/// The `PodSandboxConfig` for `config`, every time it is needed (RunPodSandbox and each
/// CreateContainer).
pub fn pod_sandbox_config(config: &SandboxConfig, layout: &Layout) -> cri::PodSandboxConfig {
    let log_directory = layout.log_directory(config);
    let mut annotations = to_hash(&config.annotations);
    annotations.insert(HOSTNAME.into(), config.hostname.clone());
    if let Some(dir) = &config.log_directory {
        annotations.insert(LOG_DIRECTORY.into(), dir.to_string_lossy().into_owned());
    }
    if config.host_network {
        annotations.insert(HOST_NETWORK.into(), "true".into());
    }
    if config.share_pid_namespace {
        annotations.insert(SHARE_PID.into(), "true".into());
    }
    let network = if config.host_network {
        cri::NamespaceMode::Node
    } else {
        cri::NamespaceMode::Pod
    };
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: config.metadata.name.clone(),
            uid: config.metadata.uid.clone(),
            namespace: config.metadata.namespace.clone(),
            attempt: config.metadata.attempt,
        }),
        // A host-network pod has the host's UTS namespace too, whose name runc must not set
        // (the kubelet sends none either); the agent's name stays in the annotation.
        hostname: if config.host_network {
            String::new()
        } else {
            config.hostname.clone()
        },
        log_directory: log_directory.to_string_lossy().into_owned(),
        labels: to_hash(&config.labels),
        annotations,
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: layout.cgroup_parent(&config.metadata.uid),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: network as i32,
                    // The pause container's PID namespace is the pod's when shared (it is its
                    // PID 1); otherwise each container gets its own.
                    pid: if config.share_pid_namespace {
                        cri::NamespaceMode::Pod
                    } else {
                        cri::NamespaceMode::Container
                    } as i32,
                    ipc: cri::NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod_metadata(m: Option<&cri::PodSandboxMetadata>) -> PodMetadata {
    m.map(|m| PodMetadata {
        name: m.name.clone(),
        namespace: m.namespace.clone(),
        uid: m.uid.clone(),
        attempt: m.attempt,
    })
    .unwrap_or_default()
}

/// What containerd's verbose status `info` tells about a sandbox or container's process: its pid
/// and (sandboxes) its network namespace. Both are optional: another CRI runtime may say nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerboseInfo {
    /// The process's host pid.
    pub pid: Option<u32>,
    /// The network namespace path in the OCI spec.
    pub netns: Option<PathBuf>,
}

/// Parses containerd's `info["info"]` JSON (`{"pid": N, "runtimeSpec": {"linux":
/// {"namespaces": [{"type": "network", "path": ...}]}}}`); anything else gives empty info.
pub fn verbose_info(info: &HashMap<String, String>) -> VerboseInfo {
    let Some(v) = info
        .get("info")
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
    else {
        return VerboseInfo::default();
    };
    let pid = v["pid"]
        .as_u64()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0);
    let netns = v["runtimeSpec"]["linux"]["namespaces"]
        .as_array()
        .and_then(|nss| {
            nss.iter()
                .find(|ns| ns["type"] == "network")
                .and_then(|ns| ns["path"].as_str())
        })
        .filter(|p| !p.is_empty())
        .map(PathBuf::from);
    VerboseInfo { pid, netns }
}

/// A CRI sandbox status as rudder's, with the config fields rudder keeps in annotations.
pub fn sandbox_status(s: &cri::PodSandboxStatus, info: &VerboseInfo) -> SandboxStatus {
    let ready = s.state == cri::PodSandboxState::SandboxReady as i32;
    let host_network = s.annotations.get(HOST_NETWORK).is_some_and(|v| v == "true");
    let ip = s
        .network
        .as_ref()
        .map(|n| n.ip.clone())
        .filter(|ip| ready && !ip.is_empty() && !host_network);
    SandboxStatus {
        id: SandboxId(s.id.clone()),
        metadata: pod_metadata(s.metadata.as_ref()),
        state: if ready {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        },
        created_at: time(s.created_at).unwrap_or(UNIX_EPOCH),
        pid: info.pid.filter(|_| ready),
        // A host-network sandbox's spec names no network namespace: `None`, nothing to attach.
        netns_path: info.netns.clone().filter(|_| ready && !host_network),
        ip,
        hostname: s.annotations.get(HOSTNAME).cloned().unwrap_or_default(),
        log_directory: s.annotations.get(LOG_DIRECTORY).map(PathBuf::from),
        labels: from_hash(&s.labels),
        annotations: from_hash(&s.annotations),
    }
}

/// The config a sandbox was created with, as far as CreateContainer needs it again.
pub fn sandbox_config_of(
    status: &SandboxStatus,
    annotations: &HashMap<String, String>,
) -> SandboxConfig {
    SandboxConfig {
        metadata: status.metadata.clone(),
        hostname: status.hostname.clone(),
        log_directory: status.log_directory.clone(),
        labels: status.labels.clone(),
        annotations: status.annotations.clone(),
        host_network: annotations.get(HOST_NETWORK).is_some_and(|v| v == "true"),
        share_pid_namespace: annotations.get(SHARE_PID).is_some_and(|v| v == "true"),
    }
}

/// CRI's PID namespace option for a container: its own, the pod's, or a target container's
/// (named by `target_id`, as the kubelet does for an ephemeral container's target).
pub fn pid_namespace_option(mode: &PidNamespace) -> cri::NamespaceOption {
    let (pid, target_id) = match mode {
        PidNamespace::Container => (cri::NamespaceMode::Container, String::new()),
        PidNamespace::Pod => (cri::NamespaceMode::Pod, String::new()),
        PidNamespace::Target(id) => (cri::NamespaceMode::Target, id.0.clone()),
    };
    cri::NamespaceOption {
        pid: pid as i32,
        target_id,
        ..Default::default()
    }
}

/// A capability name as containerd wants it: upper case, no `CAP_` (it adds that itself).
pub fn capability(name: &str) -> String {
    let upper = name.to_ascii_uppercase();
    upper
        .strip_prefix("CAP_")
        .map(str::to_owned)
        .unwrap_or(upper)
}

/// The container's log path relative to the sandbox's log directory.
pub fn log_path(config: &ContainerConfig) -> PathBuf {
    config.log_path.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "{}/{}.log",
            config.metadata.name, config.metadata.attempt
        ))
    })
}

/// The CRI `ContainerConfig` for `config` in sandbox `sandbox`.
pub fn container_config(config: &ContainerConfig, sandbox: &SandboxId) -> cri::ContainerConfig {
    let sec = &config.security;
    let mut annotations = to_hash(&config.annotations);
    annotations.insert(SANDBOX_ID.into(), sandbox.0.clone());
    if config.tty {
        annotations.insert(TTY.into(), "true".into());
    }
    let r = &config.resources;
    let resources = cri::LinuxContainerResources {
        cpu_shares: r
            .cpu_shares
            .and_then(|s| i64::try_from(s).ok())
            .unwrap_or(0),
        cpu_quota: r.cpu_quota_us.unwrap_or(0),
        cpu_period: r
            .cpu_period_us
            .or(r.cpu_quota_us.map(|_| 100_000))
            .and_then(|p| i64::try_from(p).ok())
            .unwrap_or(0),
        // containerd sets swap equal to the limit itself where swap is accounted (no swap
        // beyond the limit, as the embedded runtime does).
        memory_limit_in_bytes: r.memory_limit_bytes.unwrap_or(0),
        ..Default::default()
    };
    // `pids_limit` has no CRI field (the kubelet sets it on the pod cgroup, and `unified` is
    // refused by runc on cgroup v1): the CRI backend does not enforce it.
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: config.metadata.name.clone(),
            attempt: config.metadata.attempt,
        }),
        image: Some(cri::ImageSpec {
            image: config.image.clone(),
            ..Default::default()
        }),
        command: config.command.clone(),
        args: config.args.clone(),
        working_dir: config.working_dir.clone().unwrap_or_default(),
        envs: config
            .env
            .iter()
            .map(|(k, v)| cri::KeyValue {
                key: k.clone(),
                value: v.clone(),
            })
            .collect(),
        mounts: config
            .mounts
            .iter()
            .map(|m| cri::Mount {
                container_path: m.container_path.clone(),
                host_path: m.host_path.to_string_lossy().into_owned(),
                readonly: m.readonly,
                ..Default::default()
            })
            .collect(),
        labels: to_hash(&config.labels),
        annotations,
        log_path: log_path(config).to_string_lossy().into_owned(),
        stdin: config.stdin,
        stdin_once: config.stdin_once,
        tty: config.tty,
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(resources),
            security_context: Some(cri::LinuxContainerSecurityContext {
                capabilities: Some(cri::Capability {
                    add_capabilities: sec.capabilities_add.iter().map(|c| capability(c)).collect(),
                    drop_capabilities: sec
                        .capabilities_drop
                        .iter()
                        .map(|c| capability(c))
                        .collect(),
                    ..Default::default()
                }),
                privileged: sec.privileged,
                namespace_options: Some(pid_namespace_option(&config.pid_namespace)),
                run_as_user: sec.run_as_user.map(|u| cri::Int64Value { value: u.into() }),
                run_as_group: sec
                    .run_as_group
                    .map(|g| cri::Int64Value { value: g.into() }),
                readonly_rootfs: sec.read_only_root_filesystem,
                supplemental_groups: sec
                    .supplemental_groups
                    .iter()
                    .map(|g| (*g).into())
                    .collect(),
                no_new_privs: !sec.allow_privilege_escalation && !sec.privileged,
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

/// Rudder's exit reason for an exited container: CRI runtimes spell Kubernetes' reasons
/// (`Completed`, `Error`, `OOMKilled`, `StartError`); anything else goes by the exit code.
pub fn exit_reason(reason: &str, exit_code: i32) -> ExitReason {
    match reason {
        "Completed" => ExitReason::Completed,
        "OOMKilled" => ExitReason::OomKilled,
        "StartError" => ExitReason::StartError,
        "Error" => ExitReason::Error,
        _ if exit_code == 0 => ExitReason::Completed,
        _ => ExitReason::Error,
    }
}

/// The manifest digest of an image reference (`repo@sha256:...`), or the reference itself.
fn digest_part(image_ref: &str) -> String {
    image_ref
        .rsplit_once('@')
        .map_or(image_ref, |(_, d)| d)
        .to_owned()
}

/// A CRI container status as rudder's. `image_id` is the image's config digest when the caller
/// looked it up (CRI v1 before 1.29 has no `image_id`).
pub fn container_status(
    s: &cri::ContainerStatus,
    info: &VerboseInfo,
    image_id: Option<String>,
) -> ContainerStatus {
    let state = match cri::ContainerState::try_from(s.state) {
        Ok(cri::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(cri::ContainerState::ContainerRunning) => ContainerState::Running,
        _ => ContainerState::Exited,
    };
    let unknown = s.state == cri::ContainerState::ContainerUnknown as i32;
    let exited = state == ContainerState::Exited;
    ContainerStatus {
        id: ContainerId(s.id.clone()),
        sandbox_id: SandboxId(s.annotations.get(SANDBOX_ID).cloned().unwrap_or_default()),
        metadata: s
            .metadata
            .as_ref()
            .map(|m| ContainerMetadata {
                name: m.name.clone(),
                attempt: m.attempt,
            })
            .unwrap_or_default(),
        image: s
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default(),
        image_id: Some(s.image_id.clone())
            .filter(|i| !i.is_empty())
            .or(image_id)
            .unwrap_or_default(),
        image_ref: digest_part(&s.image_ref),
        state,
        pid: info.pid.filter(|_| state == ContainerState::Running),
        created_at: time(s.created_at).unwrap_or(UNIX_EPOCH),
        started_at: time(s.started_at),
        finished_at: time(s.finished_at),
        exit_code: exited.then_some(s.exit_code),
        reason: exited.then(|| {
            if unknown {
                ExitReason::Unknown
            } else {
                exit_reason(&s.reason, s.exit_code)
            }
        }),
        message: Some(s.message.clone()).filter(|m| !m.is_empty()),
        log_path: PathBuf::from(&s.log_path),
        labels: from_hash(&s.labels),
        annotations: from_hash(&s.annotations),
    }
}

/// Container stats from CRI; `None` when the runtime reported no CPU or memory figures.
pub fn container_stats(id: &ContainerId, s: &cri::ContainerStats) -> Option<ContainerStats> {
    let cpu = s.cpu.as_ref()?;
    let mem = s.memory.as_ref()?;
    let value = |v: &Option<cri::UInt64Value>| v.as_ref().map(|v| v.value);
    let working_set = value(&mem.working_set_bytes).unwrap_or(0);
    Some(ContainerStats {
        id: id.clone(),
        timestamp: time(cpu.timestamp.max(mem.timestamp)).unwrap_or_else(SystemTime::now),
        cpu_usage_core_nanoseconds: value(&cpu.usage_core_nano_seconds).unwrap_or(0),
        memory_working_set_bytes: working_set,
        // Older runtimes leave usage out; the working set is a lower bound.
        memory_usage_bytes: value(&mem.usage_bytes).unwrap_or(working_set),
    })
}

/// The exit code in the status a Kubernetes streaming server sends on the error channel:
/// `Success` is 0, `NonZeroExitCode` carries it in an `ExitCode` cause; anything else is an
/// error message (the command could not be run).
pub fn exec_exit_code(status: &[u8]) -> std::result::Result<i32, String> {
    let v: serde_json::Value =
        serde_json::from_slice(status).map_err(|e| format!("bad exec status: {e}"))?;
    if v["status"] == "Success" {
        return Ok(0);
    }
    let code = v["details"]["causes"].as_array().and_then(|causes| {
        causes
            .iter()
            .find(|c| c["reason"] == "ExitCode")
            .and_then(|c| c["message"].as_str())
            .and_then(|m| m.parse::<i32>().ok())
    });
    code.ok_or_else(|| v["message"].as_str().unwrap_or("exec failed").to_owned())
}

/// Whether `path` lies under `root` (logs rudder keeps for the runtime, removed with it).
pub fn under(path: &Path, root: &Path) -> bool {
    path.starts_with(root)
}

#[cfg(test)]
mod tests;
