//! A runtime without containers, for simulated ("hollow") nodes: sandboxes and containers are
//! in-memory records, so one process can carry thousands of nodes through the agent's real pod
//! lifecycle (kubemark's hollow kubelet and kwok do the same above a fake runtime).
//!
//! Semantics, chosen so a pod behaves like a long-running service on a healthy node:
//! - every image is present (nothing is pulled) and every config is accepted;
//! - a started container runs until it is stopped, then exits as SIGTERM leaves a process
//!   (code 143, reason `Error`) — or 0 (`Completed`) when its command is modelled to finish,
//!   see [`modelled_exit`];
//! - `exec_sync` succeeds with no output, so exec probes pass as they would for a healthy
//!   program; streaming `exec` and anything that needs a process is
//!   [`RuntimeError::Unsupported`];
//! - stats are synthetic: a steady CPU rate and working set per container (`stats.rs`).
//!
//! Nothing is kept on disk: a restarted agent finds no sandboxes and starts pods afresh.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::error::{Result, RuntimeError};
use crate::runtime::ContainerRuntime;
use crate::types::{
    AttachRequest, Attachment, ContainerConfig, ContainerFilter, ContainerId, ContainerMetadata,
    ContainerState, ContainerStats, ContainerStatus, ExecProcess, ExecRequest, ExecResult,
    ExitForecast, ExitReason, SandboxConfig, SandboxId, SandboxState, SandboxStatus,
};

/// Exit code of a process ended by SIGTERM (128 + 15).
const SIGTERM_EXIT: i32 = 143;

/// Ids come from one counter per process, so no two simulated nodes' containers share one.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// A sandbox or container id no other runtime of the process has given.
fn new_id() -> String {
    format!("sim{:013x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// The in-memory runtime. Each simulated node gets its own instance, as each hollow kubelet has
/// its own fake runtime: listing and sandbox removal scan the records, so a runtime shared by
/// thousands of nodes made every pod start cost time proportional to all pods of the process.
#[derive(Debug, Default)]
pub struct SimulatedRuntime {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sandboxes: BTreeMap<SandboxId, SandboxStatus>,
    containers: BTreeMap<ContainerId, Record>,
}

#[derive(Debug)]
struct Record {
    status: ContainerStatus,
    /// Exit code and after how long a started container ends by itself, if it does.
    finishes: Option<(i32, Duration)>,
}

/// How a container whose program is `command` + `args` ends on its own, for the few programs
/// that are cheap to model: `true` → 0 at once, `false` → 1 at once, `sleep N` → 0 after N
/// seconds, `exit N` (through `sh -c`) → N at once. Anything else runs until stopped (`None`).
pub fn modelled_exit(command: &[String], args: &[String]) -> Option<(i32, Duration)> {
    let words: Vec<&str> = command
        .iter()
        .chain(args)
        .map(String::as_str)
        .collect::<Vec<_>>();
    // `sh -c "exit 3"` and `/bin/sh -c 'sleep 5'` reduce to the script's words.
    let words: Vec<&str> = match words.as_slice() {
        [sh, "-c", script] if sh.ends_with("sh") => script.split_whitespace().collect(),
        _ => words,
    };
    let program = words.first()?.rsplit('/').next()?;
    match (program, &words[1..]) {
        ("true", []) => Some((0, Duration::ZERO)),
        ("false", []) => Some((1, Duration::ZERO)),
        ("sleep", [n]) => n
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| (0, Duration::from_secs_f64(s))),
        ("exit", [n]) => n.parse::<i32>().ok().map(|c| (c & 0xff, Duration::ZERO)),
        _ => None,
    }
}

impl SimulatedRuntime {
    /// An empty runtime.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Moves a running container to Exited if its modelled program has finished by `now`.
fn settle(record: &mut Record, now: SystemTime) {
    let st = &mut record.status;
    if st.state != ContainerState::Running {
        return;
    }
    let (Some((code, after)), Some(started)) = (record.finishes, st.started_at) else {
        return;
    };
    let ends = started + after;
    if now >= ends {
        exit(st, code, ends);
    }
}

fn exit(st: &mut ContainerStatus, code: i32, at: SystemTime) {
    st.state = ContainerState::Exited;
    st.pid = None;
    st.finished_at = Some(at);
    st.exit_code = Some(code);
    st.reason = Some(if code == 0 {
        ExitReason::Completed
    } else {
        ExitReason::Error
    });
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

#[async_trait]
impl ContainerRuntime for SimulatedRuntime {
    fn name(&self) -> String {
        "simulated://0.1.0".into()
    }

    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<SandboxId> {
        let id = SandboxId(new_id());
        let status = SandboxStatus {
            id: id.clone(),
            metadata: config.metadata,
            state: SandboxState::Ready,
            created_at: SystemTime::now(),
            pid: None,
            netns_path: None,
            ip: None,
            hostname: config.hostname,
            log_directory: config.log_directory,
            labels: config.labels,
            annotations: config.annotations,
        };
        self.lock().sandboxes.insert(id.clone(), status);
        Ok(id)
    }

    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        let now = SystemTime::now();
        let mut state = self.lock();
        if let Some(sb) = state.sandboxes.get_mut(id) {
            sb.state = SandboxState::NotReady;
        }
        for r in state.containers.values_mut() {
            if &r.status.sandbox_id == id && r.status.state == ContainerState::Running {
                exit(&mut r.status, SIGTERM_EXIT, now);
            }
        }
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        let mut state = self.lock();
        state.sandboxes.remove(id);
        state.containers.retain(|_, r| &r.status.sandbox_id != id);
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus> {
        self.lock()
            .sandboxes
            .get(id)
            .cloned()
            .ok_or_else(|| not_found("sandbox", &id.0))
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        Ok(self.lock().sandboxes.values().cloned().collect())
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: ContainerConfig,
    ) -> Result<ContainerId> {
        let id = ContainerId(new_id());
        let mut state = self.lock();
        let sb = state
            .sandboxes
            .get(sandbox)
            .ok_or_else(|| not_found("sandbox", &sandbox.0))?;
        if sb.state != SandboxState::Ready {
            return Err(RuntimeError::InvalidState {
                kind: "sandbox",
                id: sandbox.0.clone(),
                reason: "not ready".into(),
            });
        }
        let log_path = sb.log_directory.clone().unwrap_or_default().join(
            config.log_path.clone().unwrap_or_else(|| {
                format!("{}/{}.log", config.metadata.name, config.metadata.attempt).into()
            }),
        );
        let finishes = modelled_exit(&config.command, &config.args);
        let status = ContainerStatus {
            id: id.clone(),
            sandbox_id: sandbox.clone(),
            metadata: ContainerMetadata {
                name: config.metadata.name,
                attempt: config.metadata.attempt,
            },
            image_id: format!("simulated://{}", config.image),
            image_ref: format!("simulated://{}", config.image),
            image: config.image,
            state: ContainerState::Created,
            pid: None,
            created_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: None,
            message: None,
            log_path,
            labels: config.labels,
            annotations: config.annotations,
        };
        state
            .containers
            .insert(id.clone(), Record { status, finishes });
        Ok(id)
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        let mut state = self.lock();
        let r = state
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("container", &id.0))?;
        if r.status.state != ContainerState::Created {
            return Err(RuntimeError::InvalidState {
                kind: "container",
                id: id.0.clone(),
                reason: "already started".into(),
            });
        }
        r.status.state = ContainerState::Running;
        r.status.started_at = Some(SystemTime::now());
        Ok(())
    }

    async fn stop_container(&self, id: &ContainerId, _grace: Duration) -> Result<()> {
        let now = SystemTime::now();
        if let Some(r) = self.lock().containers.get_mut(id) {
            settle(r, now);
            if r.status.state == ContainerState::Running {
                exit(&mut r.status, SIGTERM_EXIT, now);
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        self.lock().containers.remove(id);
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let now = SystemTime::now();
        let mut state = self.lock();
        let r = state
            .containers
            .get_mut(id)
            .ok_or_else(|| not_found("container", &id.0))?;
        settle(r, now);
        Ok(r.status.clone())
    }

    async fn exit_forecast(&self, id: &ContainerId) -> ExitForecast {
        let state = self.lock();
        let Some(r) = state.containers.get(id) else {
            // Gone: the next status call says so.
            return ExitForecast::Unknown;
        };
        match r.status.state {
            ContainerState::Exited => ExitForecast::At(r.status.finished_at.unwrap_or(UNIX_EPOCH)),
            ContainerState::Running => match (r.status.started_at, r.finishes) {
                (Some(started), Some((_, after))) => ExitForecast::At(started + after),
                _ => ExitForecast::Never,
            },
            // Not started: it cannot exit before it is.
            ContainerState::Created => ExitForecast::Never,
        }
    }

    async fn list_containers(&self, filter: ContainerFilter) -> Result<Vec<ContainerStatus>> {
        let now = SystemTime::now();
        let mut state = self.lock();
        Ok(state
            .containers
            .values_mut()
            .filter_map(|r| {
                settle(r, now);
                let st = &r.status;
                let keep = filter
                    .sandbox_id
                    .as_ref()
                    .is_none_or(|s| s == &st.sandbox_id)
                    && filter.state.is_none_or(|s| s == st.state)
                    && filter
                        .labels
                        .iter()
                        .all(|(k, v)| st.labels.get(k) == Some(v));
                keep.then(|| st.clone())
            })
            .collect())
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        _cmd: Vec<String>,
        _timeout: Duration,
    ) -> Result<ExecResult> {
        let st = self.container_status(id).await?;
        if st.state != ContainerState::Running {
            return Err(RuntimeError::InvalidState {
                kind: "container",
                id: id.0.clone(),
                reason: "not running".into(),
            });
        }
        Ok(ExecResult::default())
    }

    async fn exec(&self, _id: &ContainerId, _request: ExecRequest) -> Result<ExecProcess> {
        Err(RuntimeError::Unsupported(
            "exec is not supported on simulated nodes",
        ))
    }

    async fn attach(&self, _id: &ContainerId, _request: AttachRequest) -> Result<Attachment> {
        Err(RuntimeError::Unsupported(
            "attach is not supported on simulated nodes",
        ))
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let st = self.container_status(id).await?;
        let now = SystemTime::now();
        let (cpu, memory) = stats::usage(&id.0, st.started_at, st.finished_at, now);
        Ok(ContainerStats {
            id: id.clone(),
            timestamp: now,
            cpu_usage_core_nanoseconds: cpu,
            memory_working_set_bytes: memory,
            memory_usage_bytes: memory,
        })
    }
}

mod stats;
#[cfg(test)]
mod tests;
