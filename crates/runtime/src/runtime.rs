//! The `ContainerRuntime` trait: the seam between the node agent and whatever runs containers
//! (the embedded runtime in [`crate::embedded`] today, a CRI client later).
//!
//! The shape follows the CRI `RuntimeService` so a containerd backend can implement it too: a pod
//! is a *sandbox* (network, IPC and UTS namespaces held by a long-lived minimal process) into
//! which *containers* are created and started. The data types live in [`crate::types`]; errors in
//! [`crate::error`].
//!
//! Contract for every implementation:
//! - Every call is idempotent where CRI makes it so: stopping a stopped container or sandbox,
//!   and removing one that is already gone, succeed.
//! - State survives the caller: containers and sandboxes keep running when the agent process
//!   exits, and a new runtime instance over the same state directory lists them
//!   ([`ContainerRuntime::list_pod_sandboxes`], [`ContainerRuntime::list_containers`]) with the
//!   labels and annotations they were created with, so the agent can adopt them.
//! - Methods may block on process and filesystem work; implementations move that off the async
//!   executor themselves, callers need not.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::types::{
    AttachRequest, Attachment, ContainerConfig, ContainerFilter, ContainerId, ContainerStats,
    ContainerStatus, ExecProcess, ExecRequest, ExecResult, ExitForecast, SandboxConfig, SandboxId,
    SandboxStatus,
};

/// A container runtime, CRI-shaped. Object-safe: the agent holds it as `Arc<dyn ContainerRuntime>`.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// A short name for logs and the node's `containerRuntimeVersion` (`embedded://0.1.0`).
    fn name(&self) -> String;

    /// Creates a pod sandbox and returns once its namespaces exist: network (loopback up, nothing
    /// else yet: [`SandboxStatus::netns_path`] is where a CNI-like step attaches interfaces), IPC
    /// and UTS (hostname = [`SandboxConfig::hostname`]). The sandbox is Ready until stopped.
    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<SandboxId>;

    /// Stops every container of the sandbox (with their own grace already spent by the caller:
    /// this kills what is left) and the process holding its namespaces. Idempotent.
    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<()>;

    /// Removes a sandbox and its containers (stopping them first if needed), their cgroups and
    /// state. Removing an unknown sandbox succeeds.
    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<()>;

    /// The status of one sandbox. [`crate::RuntimeError::NotFound`] if unknown.
    async fn pod_sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus>;

    /// Every sandbox this runtime knows, ready or not, with labels and annotations.
    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>>;

    /// Creates (does not start) a container in `sandbox`: resolves the image (which must already
    /// be in the image store), the command line, user and mounts, and records them. Errors for an
    /// unknown or stopped sandbox, a missing image, or an invalid config.
    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: ContainerConfig,
    ) -> Result<ContainerId>;

    /// Starts a created container; returns once its process runs the user's program (a bad
    /// path, working dir or mount is an error here, and the container is then Exited with reason
    /// `StartError`).
    async fn start_container(&self, id: &ContainerId) -> Result<()>;

    /// Sends SIGTERM, waits up to `grace` for the container to exit, then SIGKILLs it; returns
    /// once it has exited. A container that is not running is left as it is. Idempotent.
    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<()>;

    /// Removes a container (killing it if it still runs), its cgroups, writable layer and state.
    /// A log file in the sandbox's log directory is kept (the agent rotates and deletes those);
    /// one kept in the runtime's state (no log directory) goes with the container. Removing an
    /// unknown container succeeds.
    async fn remove_container(&self, id: &ContainerId) -> Result<()>;

    /// State, pid, exit code, times and reason of one container.
    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus>;

    /// When container `id` will exit by itself, if the runtime knows. Runtimes of real
    /// processes cannot ([`ExitForecast::Unknown`], the default), so the agent polls them; a
    /// runtime that models its containers can say, and spares the agent looking at a steady pod.
    async fn exit_forecast(&self, id: &ContainerId) -> ExitForecast {
        let _ = id;
        ExitForecast::Unknown
    }

    /// The containers matching `filter` (all with the default filter).
    async fn list_containers(&self, filter: ContainerFilter) -> Result<Vec<ContainerStatus>>;

    /// Runs `cmd` in a running container (its namespaces, cgroups, user and capabilities), waits
    /// up to `timeout`, and returns its exit code and output. On timeout the process is killed
    /// and [`crate::RuntimeError::Timeout`] is returned (an exec probe counts that as failure).
    async fn exec_sync(
        &self,
        id: &ContainerId,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecResult>;

    /// Starts `request.cmd` in a running container with piped stdio and returns at once; the
    /// caller streams the pipes (`kubectl exec`) and awaits [`ExecProcess::wait`].
    async fn exec(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecProcess>;

    /// Connects to the main process of a running container (`kubectl attach`): its stdin if
    /// the container was created with [`ContainerConfig::stdin`], its live output, and its
    /// terminal's size when created with [`ContainerConfig::tty`]. Several attachments may be
    /// open at once; each gets all output. Errors for an unknown or not running container.
    async fn attach(&self, id: &ContainerId, request: AttachRequest) -> Result<Attachment>;

    /// CPU and memory usage of a container, from its cgroups (`kubectl top`, HPA, eviction).
    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats>;
}
