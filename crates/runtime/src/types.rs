//! Plain data passed across [`crate::ContainerRuntime`]: configs in, statuses and stats out.
//!
//! These mirror CRI's messages (trimmed to what rudder's agent uses) rather than Kubernetes'
//! Pod types, so a CRI backend can map them one to one; the agent translates Pod specs into them.
//! Everything here is serde-serialisable because the embedded runtime keeps it on disk.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::SystemTime;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

/// A sandbox's id: opaque to the caller (the embedded runtime uses 32 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SandboxId(pub String);

/// A container's id: opaque to the caller (the embedded runtime uses 32 hex digits).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerId(pub String);

impl fmt::Display for SandboxId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which pod a sandbox belongs to (CRI `PodSandboxMetadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodMetadata {
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's uid.
    pub uid: String,
    /// How many sandboxes this pod had before this one (0 first).
    pub attempt: u32,
}

/// What [`crate::ContainerRuntime::run_pod_sandbox`] needs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SandboxConfig {
    /// The pod this sandbox is for.
    pub metadata: PodMetadata,
    /// The UTS hostname; the agent passes the pod's name (or `spec.hostname`).
    pub hostname: String,
    /// Where the pod's container logs go (`/var/log/pods/<ns>_<name>_<uid>` in Kubernetes);
    /// `None` keeps them in the runtime's state directory.
    pub log_directory: Option<PathBuf>,
    /// Labels, returned by listings so the agent can find its pods again after a restart.
    pub labels: BTreeMap<String, String>,
    /// Annotations, returned like labels.
    pub annotations: BTreeMap<String, String>,
    /// Share the host's network namespace (`hostNetwork: true`). The CRI backend honours it
    /// (its [`SandboxStatus::netns_path`] is then `None`); the embedded runtime does not yet.
    #[serde(default)]
    pub host_network: bool,
    /// One PID namespace for the whole pod (`shareProcessNamespace: true`, CRI's `POD` mode):
    /// the sandbox's process is its PID 1, as the kubelet's pause is, and containers created
    /// with [`PidNamespace::Pod`] join it.
    #[serde(default)]
    pub share_pid_namespace: bool,
}

/// Whether a sandbox's namespaces are alive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// The namespace-holding process runs.
    Ready,
    /// Stopped, or its process died.
    NotReady,
}

/// A sandbox as [`crate::ContainerRuntime::pod_sandbox_status`] reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxStatus {
    /// Its id.
    pub id: SandboxId,
    /// The pod it is for.
    pub metadata: PodMetadata,
    /// Ready or not.
    pub state: SandboxState,
    /// When it was created.
    pub created_at: SystemTime,
    /// The host pid of the process holding the namespaces, while Ready.
    pub pid: Option<u32>,
    /// The network namespace (`/proc/<pid>/ns/net`) while Ready: where pod networking attaches.
    /// `None` for a host-network sandbox of the CRI backend.
    pub netns_path: Option<PathBuf>,
    /// The pod's address when the runtime set up its network itself (containerd runs CNI);
    /// `None` when the agent attaches the sandbox to the pod network (the embedded runtime).
    #[serde(default)]
    pub ip: Option<String>,
    /// The hostname.
    pub hostname: String,
    /// The log directory given at creation.
    pub log_directory: Option<PathBuf>,
    /// Labels given at creation.
    pub labels: BTreeMap<String, String>,
    /// Annotations given at creation.
    pub annotations: BTreeMap<String, String>,
}

/// Which container of a pod (CRI `ContainerMetadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetadata {
    /// The container's name in the pod spec.
    pub name: String,
    /// Restart count: 0 for the first container of that name in the sandbox.
    pub attempt: u32,
}

/// A bind mount into a container (volumes, `/etc/hosts`, service account tokens, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Absolute path inside the container; created (as a dir or empty file, like the source)
    /// when missing.
    pub container_path: String,
    /// Path on the host: a directory or a file.
    pub host_path: PathBuf,
    /// Mounted read-only.
    pub readonly: bool,
}

/// Cgroup limits, already converted from Kubernetes quantities by the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU shares (cgroup v1 semantics; 1024 per core) from the CPU request; v2 converts to
    /// `cpu.weight`. `None` leaves the default.
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per [`Resources::cpu_period_us`], from the CPU limit.
    pub cpu_quota_us: Option<i64>,
    /// CFS period in microseconds (100000 when `None`).
    pub cpu_period_us: Option<u64>,
    /// Memory limit in bytes, from the memory limit. Swap is limited to the same amount.
    pub memory_limit_bytes: Option<i64>,
    /// Maximum number of processes (`pids.max`).
    pub pids_limit: Option<i64>,
}

/// Security settings, already resolved from pod and container `securityContext` by the agent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityConfig {
    /// Numeric uid (`runAsUser`); `None` uses the image's `USER` (numeric part) or 0.
    pub run_as_user: Option<u32>,
    /// Numeric gid (`runAsGroup`); `None` uses the image's group or 0.
    pub run_as_group: Option<u32>,
    /// Extra groups (`supplementalGroups`, `fsGroup`).
    pub supplemental_groups: Vec<u32>,
    /// All capabilities, all devices, no `no_new_privs`.
    pub privileged: bool,
    /// Mount the root filesystem read-only.
    pub read_only_root_filesystem: bool,
    /// Capabilities added to Docker's default set, by name with or without `CAP_` (`NET_ADMIN`).
    pub capabilities_add: Vec<String>,
    /// Capabilities removed from it; `ALL` removes every one (then `add` applies).
    pub capabilities_drop: Vec<String>,
    /// Kubernetes' `allowPrivilegeEscalation`. `no_new_privs` is set when this is false and the
    /// container is not privileged. Kubernetes' default is true: the agent passes true when the
    /// field is unset.
    pub allow_privilege_escalation: bool,
}

/// Which PID namespace a container's processes live in (CRI's `NamespaceOption.pid`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PidNamespace {
    /// A namespace of its own, whose PID 1 is the container's main process (CRI `CONTAINER`).
    #[default]
    Container,
    /// The pod's (CRI `POD`): its sandbox must have been created with
    /// [`SandboxConfig::share_pid_namespace`].
    Pod,
    /// That of another running container of the same sandbox (CRI `TARGET`): what
    /// `ephemeralContainers[].targetContainerName` asks for, so a debug container sees the
    /// target's processes.
    Target(ContainerId),
}

/// What [`crate::ContainerRuntime::create_container`] needs.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContainerConfig {
    /// Name and attempt.
    pub metadata: ContainerMetadata,
    /// An image reference already present in the node's image store.
    pub image: String,
    /// Kubernetes `command`: replaces the image's Entrypoint when non-empty (and then the
    /// image's Cmd is ignored too, as in Kubernetes).
    pub command: Vec<String>,
    /// Kubernetes `args`: replaces the image's Cmd when non-empty.
    pub args: Vec<String>,
    /// Working directory; the image's `WorkingDir` (or `/`) when `None`. Created if missing.
    pub working_dir: Option<String>,
    /// Environment, applied over the image's `Env` (same name: this one wins), in order.
    pub env: Vec<(String, String)>,
    /// Bind mounts, applied in order.
    pub mounts: Vec<Mount>,
    /// Cgroup limits.
    pub resources: Resources,
    /// User, capabilities and filesystem restrictions.
    pub security: SecurityConfig,
    /// Where to write the log, relative to the sandbox's log directory (Kubernetes:
    /// `<container>/<attempt>.log`); `None` uses that default.
    pub log_path: Option<PathBuf>,
    /// Labels, returned by listings.
    pub labels: BTreeMap<String, String>,
    /// Annotations, returned by listings.
    pub annotations: BTreeMap<String, String>,
    /// Kubernetes `stdin`: the runtime keeps the main process's stdin open (a pipe, or the
    /// terminal with `tty`) for [`crate::ContainerRuntime::attach`]; otherwise it is `/dev/null`.
    #[serde(default)]
    pub stdin: bool,
    /// Kubernetes `stdinOnce`: the first attach with stdin that ends closes the process's stdin
    /// for good (it sees end of file).
    #[serde(default)]
    pub stdin_once: bool,
    /// Kubernetes `tty`: the main process runs on a pseudo-terminal (stdin, stdout and stderr
    /// are one terminal; `TERM=xterm` unless set).
    #[serde(default)]
    pub tty: bool,
    /// The PID namespace to run in; records written before this field load as
    /// [`PidNamespace::Container`], what every container had then.
    #[serde(default)]
    pub pid_namespace: PidNamespace,
}

/// The lifecycle state of a container (CRI `ContainerState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Its process runs.
    Running,
    /// Its process has exited (or could not start).
    Exited,
}

/// What a runtime can tell about when a running container will exit by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitForecast {
    /// It cannot tell (a real process may exit at any moment): callers keep polling.
    Unknown,
    /// It runs until it is stopped.
    Never,
    /// It exits at this moment (or has already).
    At(std::time::SystemTime),
}

/// Why a container exited; `as_str` gives the Kubernetes `reason` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitReason {
    /// Exit code 0.
    Completed,
    /// Non-zero exit code or a signal.
    Error,
    /// Killed by the kernel's OOM killer in the container's memory cgroup (exit code 137).
    OomKilled,
    /// The process could not be started (bad command, working dir or mount).
    StartError,
    /// The runtime lost track of the process (its monitor died); the exit code is unknown.
    Unknown,
}

impl ExitReason {
    /// The reason as `ContainerStateTerminated.reason` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Completed => "Completed",
            ExitReason::Error => "Error",
            ExitReason::OomKilled => "OOMKilled",
            ExitReason::StartError => "StartError",
            ExitReason::Unknown => "Unknown",
        }
    }
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A container as [`crate::ContainerRuntime::container_status`] reports it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Its id.
    pub id: ContainerId,
    /// The sandbox it belongs to.
    pub sandbox_id: SandboxId,
    /// Name and attempt.
    pub metadata: ContainerMetadata,
    /// The image reference it was created from.
    pub image: String,
    /// The image's config digest (`imageID`).
    pub image_id: String,
    /// The image's manifest digest (for `imageRef`: `<repo>@<this>`).
    pub image_ref: String,
    /// Created, Running or Exited.
    pub state: ContainerState,
    /// Host pid of the container's main process while Running.
    pub pid: Option<u32>,
    /// When it was created.
    pub created_at: SystemTime,
    /// When its process started.
    pub started_at: Option<SystemTime>,
    /// When its process exited.
    pub finished_at: Option<SystemTime>,
    /// Exit code once Exited: the process's code, or 128 + signal number.
    pub exit_code: Option<i32>,
    /// Why it exited, once Exited.
    pub reason: Option<ExitReason>,
    /// Details for the reason (the start error, ...).
    pub message: Option<String>,
    /// The CRI-format log file of its stdout and stderr.
    pub log_path: PathBuf,
    /// Labels given at creation.
    pub labels: BTreeMap<String, String>,
    /// Annotations given at creation.
    pub annotations: BTreeMap<String, String>,
}

/// Which containers [`crate::ContainerRuntime::list_containers`] returns; all fields must match.
#[derive(Clone, Debug, Default)]
pub struct ContainerFilter {
    /// Only containers of this sandbox.
    pub sandbox_id: Option<SandboxId>,
    /// Only containers in this state.
    pub state: Option<ContainerState>,
    /// Only containers carrying all these labels.
    pub labels: BTreeMap<String, String>,
}

/// Output and exit code of [`crate::ContainerRuntime::exec_sync`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecResult {
    /// The process's exit code (128 + signal if killed by a signal).
    pub exit_code: i32,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// What [`crate::ContainerRuntime::exec`] runs.
#[derive(Clone, Debug, Default)]
pub struct ExecRequest {
    /// The command line; `cmd[0]` is looked up in the container's `PATH`.
    pub cmd: Vec<String>,
    /// Give the process a stdin pipe ([`ExecProcess::stdin`]); otherwise stdin is `/dev/null`.
    pub stdin: bool,
    /// Run the process on a terminal: its stdin, stdout and stderr are one pseudo-terminal,
    /// so [`ExecProcess::stdout`] carries both outputs, [`ExecProcess::stderr`] is empty and
    /// [`ExecProcess::resize`] changes the window size.
    pub tty: bool,
    /// With `tty`: the terminal's size (columns, rows) before the process starts, so that its
    /// first look at the window is right.
    pub terminal_size: Option<(u16, u16)>,
}

/// Sets the window size (columns, rows) of an exec'd process's terminal.
pub type ResizeFn = Box<dyn Fn(u16, u16) -> std::io::Result<()> + Send + Sync>;

/// A boxed reader of an exec'd process's output.
pub type ExecReader = Pin<Box<dyn AsyncRead + Send>>;
/// A boxed writer to an exec'd process's stdin.
pub type ExecWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// A process started by [`crate::ContainerRuntime::exec`]. Dropping the pipes closes them;
/// dropping `wait` before it resolves kills the process (a client that went away).
pub struct ExecProcess {
    /// Its stdin, if [`ExecRequest::stdin`] was set.
    pub stdin: Option<ExecWriter>,
    /// Its stdout.
    pub stdout: ExecReader,
    /// Its stderr.
    pub stderr: ExecReader,
    /// Resolves to the exit code (128 + signal if killed by a signal).
    pub wait: BoxFuture<'static, crate::error::Result<i32>>,
    /// With [`ExecRequest::tty`]: resizes the terminal (`kubectl exec -it` follows the user's
    /// window).
    pub resize: Option<ResizeFn>,
}

impl fmt::Debug for ExecProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecProcess")
            .field("stdin", &self.stdin.is_some())
            .field("tty", &self.resize.is_some())
            .finish_non_exhaustive()
    }
}

/// What [`crate::ContainerRuntime::attach`] connects to. Whether the container runs on a
/// terminal is the container's own setting ([`ContainerConfig::tty`]), not the caller's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachRequest {
    /// Pass input to the main process (ignored when the container was created without stdin).
    pub stdin: bool,
    /// Receive its stdout (on a terminal: all of its output).
    pub stdout: bool,
    /// Receive its stderr (never on a terminal).
    pub stderr: bool,
}

/// A connection to a running container's main process ([`crate::ContainerRuntime::attach`]).
/// Output is live: what the process writes while attached (it also goes to the log). Dropping
/// it detaches; the process keeps running.
pub struct Attachment {
    /// Input to the process, when asked for and the container has stdin. Shutting it down
    /// (end of input) detaches, except for a `stdin_once` container without a terminal, where
    /// it closes the process's stdin and output goes on until it exits.
    pub stdin: Option<ExecWriter>,
    /// Its stdout (both outputs when on a terminal); empty unless asked for.
    pub stdout: ExecReader,
    /// Its stderr; empty unless asked for, or on a terminal.
    pub stderr: ExecReader,
    /// Whether the container runs on a terminal.
    pub tty: bool,
    /// On a terminal: resizes it (columns, rows).
    pub resize: Option<ResizeFn>,
    /// Resolves once the attachment ended: the process exited, or the runtime detached (end
    /// of input). An error is a runtime failure while attached.
    pub done: BoxFuture<'static, crate::error::Result<()>>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("stdin", &self.stdin.is_some())
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

/// Resource usage of a container, from its cgroups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Its id.
    pub id: ContainerId,
    /// When the numbers were read.
    pub timestamp: SystemTime,
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_core_nanoseconds: u64,
    /// Memory in use minus inactive file cache: what the kubelet reports and evicts on.
    pub memory_working_set_bytes: u64,
    /// Memory in use including all cache.
    pub memory_usage_bytes: u64,
}
