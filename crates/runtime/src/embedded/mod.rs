//! The embedded container runtime: [`EmbeddedRuntime`] implements [`ContainerRuntime`] with
//! Linux namespaces, cgroups and overlayfs, through a small monitor process per sandbox and per
//! container (the shim, [`shim_main`]) so workloads survive agent restarts.
//!
//! Why hand-written rather than youki's libcontainer, the process model and how adoption works:
//! `docs/adr/0006-embedded-container-runtime.md`. The on-disk layout is in `state.rs`.

mod attach;
mod cgroup_stats;
mod cgroups;
mod init;
mod logs;
mod pid_namespace;
mod process;
mod pty;
mod shim;
mod state;
mod stdio;

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use rustix::process::Signal;

pub use shim::shim_main;

use self::cgroups::{Cgroup, Mode};
use self::state::{
    ContainerRecord, ContainerSpec, ExitRecord, ProcRef, SandboxRecord, StartedRecord, checked_id,
    list_dirs, new_id, read_json, write_atomic, write_json,
};
use crate::error::{IoContext, Result, RuntimeError};
use crate::images::ImageStore;
use crate::runtime::ContainerRuntime;
use crate::types::*;

/// How to start the shim: a program and the arguments that select shim mode (`rudder` with
/// `["shim"]`, or the `rudder-shim` binary with none).
#[derive(Clone, Debug)]
pub struct ShimCommand {
    /// The executable.
    pub program: PathBuf,
    /// Arguments placed before the shim's own (`sandbox DIR`, ...).
    pub args: Vec<OsString>,
}

/// Where an [`EmbeddedRuntime`] keeps its state and how it runs things.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// State directory (`<data-dir>/containers`): sandboxes, containers, writable layers.
    pub root: PathBuf,
    /// The shim to spawn.
    pub shim: ShimCommand,
    /// The cgroup below each hierarchy's root under which pods go (`rudder`).
    pub cgroup_parent: String,
}

/// The embedded runtime. Cheap to clone.
#[derive(Clone)]
pub struct EmbeddedRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    opts: RuntimeOptions,
    images: ImageStore,
    cgroup_mode: Mode,
}

/// Runs blocking runtime work off the async executor.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Shim(format!("runtime task failed: {e}")))?
}

impl EmbeddedRuntime {
    /// A runtime over `opts.root` (created if missing). Sandboxes and containers already there
    /// (from a previous agent) are listed and managed like new ones.
    pub fn new(opts: RuntimeOptions, images: ImageStore) -> Result<EmbeddedRuntime> {
        for sub in ["sandboxes", "containers"] {
            let dir = opts.root.join(sub);
            fs::create_dir_all(&dir).ctx("mkdir", &dir)?;
        }
        Ok(EmbeddedRuntime {
            inner: Arc::new(Inner {
                opts,
                images,
                cgroup_mode: cgroups::detect(),
            }),
        })
    }
}

impl Inner {
    fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.opts.root.join("sandboxes").join(id)
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.opts.root.join("containers").join(id)
    }

    fn pod_cgroup(&self, sandbox: &str) -> Cgroup {
        Cgroup::new(
            self.cgroup_mode,
            Path::new(&self.opts.cgroup_parent).join(sandbox),
        )
    }

    fn container_cgroup(&self, sandbox: &str, container: &str) -> Cgroup {
        Cgroup::new(
            self.cgroup_mode,
            Path::new(&self.opts.cgroup_parent)
                .join(sandbox)
                .join(container),
        )
    }

    /// Runs the shim to completion (it daemonizes); its stdout on success, its stderr as error.
    fn run_shim(&self, args: &[&str]) -> std::result::Result<String, String> {
        let out = std::process::Command::new(&self.opts.shim.program)
            .args(&self.opts.shim.args)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("spawn {}: {e}", self.opts.shim.program.display()))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    fn sandbox_record(&self, id: &str) -> Result<SandboxRecord> {
        let id = checked_id("sandbox", id)?;
        read_json(&self.sandbox_dir(id).join("sandbox.json"))?.ok_or_else(|| {
            RuntimeError::NotFound {
                kind: "sandbox",
                id: id.to_owned(),
            }
        })
    }

    fn sandbox_proc(&self, id: &str) -> Option<ProcRef> {
        let text = fs::read_to_string(self.sandbox_dir(id).join("pid")).ok()?;
        ProcRef::parse(&text)
    }

    fn sandbox_status(&self, id: &str) -> Result<SandboxStatus> {
        let record = self.sandbox_record(id)?;
        let stopped = self.sandbox_dir(id).join("stopped").exists();
        let proc_ref = self.sandbox_proc(id).filter(|p| !stopped && p.alive());
        Ok(SandboxStatus {
            id: record.id,
            metadata: record.config.metadata,
            state: if proc_ref.is_some() {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            created_at: record.created_at,
            pid: proc_ref.map(|p| p.pid),
            netns_path: proc_ref.map(|p| PathBuf::from(format!("/proc/{}/ns/net", p.pid))),
            // The agent attaches the sandbox to the pod network itself.
            ip: None,
            hostname: record.config.hostname,
            log_directory: record.config.log_directory,
            labels: record.config.labels,
            annotations: record.config.annotations,
        })
    }

    fn run_sandbox(&self, config: SandboxConfig) -> Result<SandboxId> {
        if config.hostname.is_empty() || config.hostname.len() > 64 {
            return Err(RuntimeError::InvalidConfig(format!(
                "hostname {:?} must be 1 to 64 bytes",
                config.hostname
            )));
        }
        let id = new_id()?;
        let dir = self.sandbox_dir(&id);
        fs::create_dir_all(&dir).ctx("mkdir", &dir)?;
        let record = SandboxRecord {
            id: SandboxId(id.clone()),
            config,
            created_at: SystemTime::now(),
        };
        let started = write_json(&dir.join("sandbox.json"), &record).and_then(|()| {
            let dir_s = dir.to_string_lossy().into_owned();
            self.run_shim(&["sandbox", &dir_s])
                .map_err(RuntimeError::Shim)
        });
        if let Err(e) = started {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(SandboxId(id))
    }

    fn container_ids_of(&self, sandbox: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for id in list_dirs(&self.opts.root.join("containers"))? {
            if let Ok(r) = self.container_record(&id)
                && r.sandbox_id.0 == sandbox
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn stop_sandbox(&self, id: &str) -> Result<()> {
        self.sandbox_record(id)?;
        for c in self.container_ids_of(id)? {
            self.stop(&c, Duration::ZERO)?;
        }
        if let Some(p) = self.sandbox_proc(id) {
            p.signal(Signal::KILL);
            wait_until(Duration::from_secs(10), || !p.alive())?;
        }
        write_atomic(&self.sandbox_dir(id).join("stopped"), b"")
    }

    fn remove_sandbox(&self, id: &str) -> Result<()> {
        match self.stop_sandbox(id) {
            Err(RuntimeError::NotFound { .. }) => {}
            other => other?,
        }
        for c in self.container_ids_of(id)? {
            self.remove(&c)?;
        }
        self.pod_cgroup(id).remove()?;
        let dir = self.sandbox_dir(checked_id("sandbox", id)?);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx("remove", &dir),
            _ => Ok(()),
        }
    }

    fn container_record(&self, id: &str) -> Result<ContainerRecord> {
        let id = checked_id("container", id)?;
        read_json(&self.container_dir(id).join("container.json"))?.ok_or_else(|| {
            RuntimeError::NotFound {
                kind: "container",
                id: id.to_owned(),
            }
        })
    }

    fn create(&self, sandbox: &SandboxId, config: ContainerConfig) -> Result<ContainerId> {
        let sb = self.sandbox_status(&sandbox.0)?;
        let sb_proc = self
            .sandbox_proc(&sandbox.0)
            .filter(|_| sb.state == SandboxState::Ready)
            .ok_or_else(|| RuntimeError::InvalidState {
                kind: "sandbox",
                id: sandbox.0.clone(),
                reason: "not ready".into(),
            })?;
        for m in &config.mounts {
            if !m.container_path.starts_with('/') || m.container_path.contains('\0') {
                return Err(RuntimeError::InvalidConfig(format!(
                    "mount path {:?} is not absolute",
                    m.container_path
                )));
            }
        }
        let rootfs = self.images.rootfs(&config.image)?;
        if let Some(bad) = rootfs
            .lower_dirs
            .iter()
            .find(|d| d.to_string_lossy().contains([':', ',']))
        {
            return Err(RuntimeError::InvalidConfig(format!(
                "layer dir {} cannot be an overlayfs lowerdir",
                bad.display()
            )));
        }
        let image = &rootfs.config;
        // The image's own files, top layer first, for user and group names.
        let read = |name: &str| {
            rootfs
                .lower_dirs
                .iter()
                .find_map(|d| fs::read_to_string(d.join(name)).ok())
        };
        let (uid, gid) = process::user(&config.security, image, &read)?;
        let pid_namespace_of = self.pid_namespace_of(sandbox, sb_proc, &config.pid_namespace)?;
        let sec = &config.security;
        let id = new_id()?;
        let dir = self.container_dir(&id);
        let log_rel = config.log_path.clone().unwrap_or_else(|| {
            PathBuf::from(&config.metadata.name).join(format!("{}.log", config.metadata.attempt))
        });
        let log_path = match &sb.log_directory {
            Some(d) => d.join(log_rel),
            None => dir.join("container.log"),
        };
        let cgroup = self.container_cgroup(&sandbox.0, &id);
        let spec = ContainerSpec {
            argv: process::argv(&config, image)?,
            env: process::env(&config, image, &sb.hostname),
            cwd: process::cwd(&config, image)?,
            uid,
            gid,
            groups: sec.supplemental_groups.clone(),
            capabilities: process::capabilities(sec)?,
            no_new_privs: !sec.privileged && !sec.allow_privilege_escalation,
            privileged: sec.privileged,
            read_only_rootfs: sec.read_only_root_filesystem,
            lower_dirs: rootfs.lower_dirs.clone(),
            mounts: config.mounts.clone(),
            cgroup_dirs: cgroup.dirs(),
            memory_cgroup: cgroup.memory_dir(),
            cgroup_v2: self.cgroup_mode == Mode::V2,
            sandbox: sb_proc,
            pid_namespace_of,
            log_path,
        };
        let record = ContainerRecord {
            id: ContainerId(id.clone()),
            sandbox_id: sandbox.clone(),
            config,
            image_id: rootfs.config_digest.to_string(),
            image_ref: rootfs.manifest_digest.to_string(),
            created_at: SystemTime::now(),
            spec,
        };
        let made = (|| {
            for sub in ["upper", "work", "rootfs"] {
                fs::create_dir_all(dir.join(sub)).ctx("mkdir", dir.join(sub))?;
            }
            cgroup.create(&record.config.resources, record.spec.privileged)?;
            write_json(&dir.join("container.json"), &record)
        })();
        if let Err(e) = made {
            let _ = cgroup.remove();
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        Ok(ContainerId(id))
    }

    fn start(&self, id: &str) -> Result<()> {
        let status = self.status(id)?;
        if status.state != ContainerState::Created
            || self.container_dir(id).join("exit.json").exists()
        {
            return Err(RuntimeError::InvalidState {
                kind: "container",
                id: id.to_owned(),
                reason: format!("is {:?}, not Created", status.state),
            });
        }
        // Two concurrent starts must not spawn two monitors: the first to create the marker wins.
        let marker = self.container_dir(id).join("starting");
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&marker)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::InvalidState {
                    kind: "container",
                    id: id.to_owned(),
                    reason: "already being started".into(),
                });
            }
            Err(e) => return Err(e).ctx("create", &marker),
        }
        let dir = self.container_dir(id).to_string_lossy().into_owned();
        self.run_shim(&["container", &dir])
            .map(|_| ())
            .map_err(RuntimeError::StartFailed)
    }

    fn status(&self, id: &str) -> Result<ContainerStatus> {
        let record = self.container_record(id)?;
        let dir = self.container_dir(id);
        let started: Option<StartedRecord> = read_json(&dir.join("started.json"))?;
        let exit: Option<ExitRecord> = read_json(&dir.join("exit.json"))?;
        let mut st = ContainerStatus {
            id: record.id,
            sandbox_id: record.sandbox_id,
            metadata: record.config.metadata,
            image: record.config.image,
            image_id: record.image_id,
            image_ref: record.image_ref,
            state: ContainerState::Created,
            pid: None,
            created_at: record.created_at,
            started_at: started.as_ref().map(|s| s.started_at),
            finished_at: None,
            exit_code: None,
            reason: None,
            message: None,
            log_path: record.spec.log_path,
            labels: record.config.labels,
            annotations: record.config.annotations,
        };
        match (exit, started) {
            (Some(exit), _) => {
                st.state = ContainerState::Exited;
                st.exit_code = Some(exit.exit_code);
                st.reason = Some(exit.reason);
                st.message = exit.message;
                st.finished_at = Some(exit.finished_at);
            }
            // The monitor writes exit.json right after reaping: while it lives, so does the
            // container as far as anyone can tell.
            (None, Some(s)) if s.process.alive() || s.monitor.alive() => {
                st.state = ContainerState::Running;
                st.pid = Some(s.process.pid);
            }
            (None, Some(_)) => {
                st.state = ContainerState::Exited;
                st.exit_code = Some(255);
                st.reason = Some(ExitReason::Unknown);
                let log = fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                let tail = &log[log.floor_char_boundary(log.len().saturating_sub(500))..];
                st.message = Some(format!(
                    "the container's monitor died before recording its exit; its log: {tail}"
                ));
            }
            (None, None) => {}
        }
        Ok(st)
    }

    fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let dir = self.container_dir(checked_id("container", id)?);
        let Some(started) = read_json::<StartedRecord>(&dir.join("started.json"))? else {
            return Ok(());
        };
        let exited = || {
            dir.join("exit.json").exists() || (!started.process.alive() && !started.monitor.alive())
        };
        if exited() {
            return Ok(());
        }
        if !grace.is_zero() {
            started.process.signal(Signal::TERM);
            if wait_until(grace, exited).is_ok() {
                return Ok(());
            }
        }
        started.process.signal(Signal::KILL);
        wait_until(Duration::from_secs(10), exited)
    }

    fn remove(&self, id: &str) -> Result<()> {
        let record = match self.container_record(id) {
            Ok(r) => r,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        self.stop(id, Duration::ZERO)?;
        self.container_cgroup(&record.sandbox_id.0, id).remove()?;
        let dir = self.container_dir(id);
        fs::remove_dir_all(&dir).ctx("remove", &dir)
    }

    fn list(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStatus>> {
        let mut out = Vec::new();
        for id in list_dirs(&self.opts.root.join("containers"))? {
            let st = match self.status(&id) {
                Ok(st) => st,
                // Half-created (no container.json yet) or removed meanwhile.
                Err(RuntimeError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            let keep = filter
                .sandbox_id
                .as_ref()
                .is_none_or(|s| *s == st.sandbox_id)
                && filter.state.is_none_or(|s| s == st.state)
                && filter
                    .labels
                    .iter()
                    .all(|(k, v)| st.labels.get(k) == Some(v));
            if keep {
                out.push(st);
            }
        }
        Ok(out)
    }

    /// The shim `exec` command for a running container.
    fn exec_command(&self, id: &str, cmd: &[String], tty: bool) -> Result<tokio::process::Command> {
        let st = self.status(id)?;
        if st.state != ContainerState::Running {
            return Err(RuntimeError::InvalidState {
                kind: "container",
                id: id.to_owned(),
                reason: "not running".into(),
            });
        }
        if cmd.is_empty() {
            return Err(RuntimeError::InvalidConfig("empty exec command".into()));
        }
        let mut c = tokio::process::Command::new(&self.opts.shim.program);
        c.args(&self.opts.shim.args)
            .arg("exec")
            .arg(self.container_dir(id))
            .args(tty.then_some("--tty"))
            .arg("--")
            .args(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(c)
    }
}

/// Starts an exec helper whose stdio is a new pseudo-terminal; the caller gets the master side
/// as stdin and stdout (stderr is empty: a terminal has one output).
fn exec_on_terminal(
    mut command: tokio::process::Command,
    program: PathBuf,
    ptmx: &Path,
    size: Option<(u16, u16)>,
) -> Result<ExecProcess> {
    let terminal = pty::open(ptmx).ctx("open", ptmx)?;
    if let Some((columns, rows)) = size {
        pty::resize(&terminal.master, columns, rows).ctx("resize", ptmx)?;
    }
    let slave = |fd: &std::os::fd::OwnedFd| fd.try_clone().map(Stdio::from);
    command
        .stdin(slave(&terminal.slave).ctx("dup", "pty")?)
        .stdout(slave(&terminal.slave).ctx("dup", "pty")?)
        .stderr(slave(&terminal.slave).ctx("dup", "pty")?);
    let mut child = command.spawn().ctx("spawn", program.clone())?;
    // The process must hold the only copies of the terminal's slave side, so that reading the
    // master ends (EIO) once it and its children exit.
    drop(command);
    drop(terminal.slave);
    let master = Arc::new(terminal.master);
    let file = |fd: &std::os::fd::OwnedFd| {
        fd.try_clone()
            .map(|fd| tokio::fs::File::from_std(std::fs::File::from(fd)))
    };
    let reader = file(&master).ctx("dup", "pty")?;
    let writer = file(&master).ctx("dup", "pty")?;
    let resize_fd = master.clone();
    Ok(ExecProcess {
        stdin: Some(Box::pin(writer)),
        stdout: Box::pin(pty::TerminalReader::new(reader)),
        stderr: Box::pin(tokio::io::empty()),
        wait: Box::pin(async move {
            let status = child.wait().await.ctx("wait", program)?;
            Ok(exit_code_of(status))
        }),
        resize: Some(Box::new(move |columns, rows| {
            pty::resize(&*resize_fd, columns, rows)
        })),
    })
}

/// Polls `done` every 20 ms for up to `limit`.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(RuntimeError::Timeout(format!(
                "process still running after {limit:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255)
}

#[async_trait]
impl ContainerRuntime for EmbeddedRuntime {
    fn name(&self) -> String {
        format!("embedded://{}", env!("CARGO_PKG_VERSION"))
    }

    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<SandboxId> {
        let inner = self.inner.clone();
        blocking(move || inner.run_sandbox(config)).await
    }

    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || inner.stop_sandbox(&id)).await
    }

    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || inner.remove_sandbox(&id)).await
    }

    async fn pod_sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || inner.sandbox_status(&id)).await
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        let inner = self.inner.clone();
        blocking(move || {
            let mut out = Vec::new();
            for id in list_dirs(&inner.opts.root.join("sandboxes"))? {
                match inner.sandbox_status(&id) {
                    Ok(s) => out.push(s),
                    Err(RuntimeError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: ContainerConfig,
    ) -> Result<ContainerId> {
        let (inner, sandbox) = (self.inner.clone(), sandbox.clone());
        blocking(move || inner.create(&sandbox, config)).await
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || inner.start(&id)).await
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || inner.stop(&id, grace)).await
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || inner.remove(&id)).await
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || inner.status(&id)).await
    }

    async fn list_containers(&self, filter: ContainerFilter) -> Result<Vec<ContainerStatus>> {
        let inner = self.inner.clone();
        blocking(move || inner.list(&filter)).await
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecResult> {
        let (inner, id2) = (self.inner.clone(), id.0.clone());
        let mut command = blocking(move || inner.exec_command(&id2, &cmd, false)).await?;
        let child = command
            .spawn()
            .ctx("spawn", self.inner.opts.shim.program.clone())?;
        // On timeout the future, and with it the child, is dropped: kill_on_drop kills the
        // helper, and its parent-death signal kills the command inside the container.
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(out) => {
                let out = out.ctx("wait", self.inner.opts.shim.program.clone())?;
                Ok(ExecResult {
                    exit_code: exit_code_of(out.status),
                    stdout: out.stdout,
                    stderr: out.stderr,
                })
            }
            Err(_) => Err(RuntimeError::Timeout(format!(
                "exec in {id} did not finish within {timeout:?}"
            ))),
        }
    }

    async fn exec(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecProcess> {
        let (inner, id2, cmd) = (self.inner.clone(), id.0.clone(), request.cmd.clone());
        let tty = request.tty;
        let (inner2, id3) = (self.inner.clone(), id.0.clone());
        let mut command = blocking(move || inner.exec_command(&id2, &cmd, tty)).await?;
        let program = self.inner.opts.shim.program.clone();
        if tty {
            let pid = blocking(move || inner2.status(&id3))
                .await?
                .pid
                .ok_or_else(|| RuntimeError::InvalidState {
                    kind: "container",
                    id: id.0.clone(),
                    reason: "not running".into(),
                })?;
            let ptmx = PathBuf::from(format!("/proc/{pid}/root/dev/pts/ptmx"));
            return exec_on_terminal(command, program, &ptmx, request.terminal_size);
        }
        if request.stdin {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().ctx("spawn", program.clone())?;
        let pipe_err = || RuntimeError::Shim("exec pipes missing".into());
        let stdout = child.stdout.take().ok_or_else(pipe_err)?;
        let stderr = child.stderr.take().ok_or_else(pipe_err)?;
        let stdin = child
            .stdin
            .take()
            .map(|s| Box::pin(s) as crate::types::ExecWriter);
        Ok(ExecProcess {
            stdin,
            stdout: Box::pin(stdout),
            stderr: Box::pin(stderr),
            wait: Box::pin(async move {
                let status = child.wait().await.ctx("wait", program)?;
                Ok(exit_code_of(status))
            }),
            resize: None,
        })
    }

    async fn attach(&self, id: &ContainerId, request: AttachRequest) -> Result<Attachment> {
        let (inner, id2) = (self.inner.clone(), id.0.clone());
        let (dir, config) = blocking(move || {
            let st = inner.status(&id2)?;
            if st.state != ContainerState::Running {
                return Err(RuntimeError::InvalidState {
                    kind: "container",
                    id: id2,
                    reason: "not running".into(),
                });
            }
            let record = inner.container_record(&id2)?;
            Ok((inner.container_dir(&id2), record.config))
        })
        .await?;
        attach::connect(&dir, request, config.tty, config.stdin).await
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let (inner, id) = (self.inner.clone(), id.0.clone());
        blocking(move || {
            let record = inner.container_record(&id)?;
            let (cpu, usage, ws) = inner.container_cgroup(&record.sandbox_id.0, &id).stats()?;
            Ok(ContainerStats {
                id: record.id,
                timestamp: SystemTime::now(),
                cpu_usage_core_nanoseconds: cpu,
                memory_working_set_bytes: ws,
                memory_usage_bytes: usage,
            })
        })
        .await
    }
}
