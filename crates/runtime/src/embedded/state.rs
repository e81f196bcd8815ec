//! The embedded runtime's on-disk state: one directory per sandbox and per container, written
//! atomically, so that a new runtime instance (after an agent restart) finds everything again.
//!
//! ```text
//! <root>/sandboxes/<id>/sandbox.json    SandboxRecord (config, creation time)
//! <root>/sandboxes/<id>/pid             "<pid> <starttime>" of the namespace holder
//! <root>/sandboxes/<id>/stopped         present once stopped
//! <root>/containers/<id>/container.json ContainerRecord (config + resolved ContainerSpec)
//! <root>/containers/<id>/started.json   StartedRecord, written by the shim once exec succeeded
//! <root>/containers/<id>/exit.json      ExitRecord, written by the shim when the process is reaped
//! <root>/containers/<id>/attach.sock    the monitor's attach socket while the process runs
//! <root>/containers/<id>/{upper,work,rootfs}  overlayfs dirs (rootfs is only mounted inside
//!                                       the container's own mount namespace)
//! ```

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result, RuntimeError};
use crate::types::{ContainerConfig, ExitReason, Mount, SandboxConfig, SandboxId};

/// A process named by pid *and* start time (clock ticks since boot, from `/proc/<pid>/stat`),
/// so a recycled pid is never mistaken for ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcRef {
    pub pid: u32,
    pub start_time: u64,
}

impl ProcRef {
    /// The process with this pid now, if any.
    pub fn of(pid: u32) -> Option<ProcRef> {
        let (start_time, _) = proc_stat(pid)?;
        Some(ProcRef { pid, start_time })
    }

    /// Whether this very process still exists and is not a zombie (our orphans are reaped by
    /// whoever inherits them, which may be slow or never: a zombie counts as dead).
    pub fn alive(&self) -> bool {
        matches!(proc_stat(self.pid), Some((t, state)) if t == self.start_time && state != 'Z' && state != 'X')
    }

    /// Sends `sig` if the process is still this one. The check and the kill race with pid reuse
    /// only within microseconds, and pids are recycled after a full wrap of `pid_max`.
    pub fn signal(&self, sig: rustix::process::Signal) {
        if self.alive()
            && let Some(pid) = rustix::process::Pid::from_raw(self.pid as i32)
        {
            let _ = rustix::process::kill_process(pid, sig);
        }
    }

    /// Parses `"<pid> <starttime>"`.
    pub fn parse(s: &str) -> Option<ProcRef> {
        let mut it = s.split_whitespace();
        let pid = it.next()?.parse().ok()?;
        let start_time = it.next()?.parse().ok()?;
        Some(ProcRef { pid, start_time })
    }

    /// Formats as `"<pid> <starttime>"`.
    pub fn format(&self) -> String {
        format!("{} {}", self.pid, self.start_time)
    }
}

/// Start time and state letter of `pid`, or `None` if it does not exist.
fn proc_stat(pid: u32) -> Option<(u64, char)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields are counted from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = fields.first()?.chars().next()?;
    // Field 22 of stat(5) is starttime; `rest` begins at field 3.
    let start_time = fields.get(19)?.parse().ok()?;
    Some((start_time, state))
}

/// What `sandbox.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub id: SandboxId,
    pub config: SandboxConfig,
    pub created_at: SystemTime,
}

/// Everything the shim needs to start a container, resolved by the runtime at create time.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ContainerSpec {
    /// argv; `argv[0]` is looked up in the container's `PATH` when it has no `/`.
    pub argv: Vec<String>,
    /// `NAME=value` strings.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Capability bit mask kept in the bounding (and, for uid 0, effective/permitted) set.
    pub capabilities: u64,
    pub no_new_privs: bool,
    pub privileged: bool,
    pub read_only_rootfs: bool,
    /// Image layer dirs, topmost first.
    pub lower_dirs: Vec<PathBuf>,
    pub mounts: Vec<Mount>,
    /// Cgroup directories whose `cgroup.procs` the container joins (one per v1 hierarchy).
    pub cgroup_dirs: Vec<PathBuf>,
    /// The memory cgroup, for the OOM-kill count.
    pub memory_cgroup: Option<PathBuf>,
    /// `memory.oom_control` (v1) or `memory.events` (v2) semantics.
    pub cgroup_v2: bool,
    /// The sandbox's namespace holder: the container joins its net, IPC and UTS namespaces.
    pub sandbox: ProcRef,
    /// The process whose PID namespace the container joins (the pod's holder, or a target
    /// container's main process); `None`: a fresh one whose PID 1 is the container's init.
    /// Absent in records written before namespaces could be shared.
    #[serde(default)]
    pub pid_namespace_of: Option<ProcRef>,
    pub log_path: PathBuf,
}

/// What `container.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub id: crate::types::ContainerId,
    pub sandbox_id: SandboxId,
    pub config: ContainerConfig,
    pub image_id: String,
    pub image_ref: String,
    pub created_at: SystemTime,
    pub spec: ContainerSpec,
}

/// What `started.json` holds: the container's main process, as seen from the host.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StartedRecord {
    pub process: ProcRef,
    /// The shim watching it; when it is gone without an `exit.json`, the exit is unknown.
    pub monitor: ProcRef,
    pub started_at: SystemTime,
}

/// What `exit.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    pub exit_code: i32,
    pub reason: ExitReason,
    pub message: Option<String>,
    pub finished_at: SystemTime,
}

/// Writes `value` as JSON to `path` through a temp file and a rename, so readers never see half
/// a file (the shim and the runtime read each other's files at any time).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| RuntimeError::CorruptState {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = fs::File::create(&tmp).ctx("create", &tmp)?;
    f.write_all(bytes).ctx("write", &tmp)?;
    f.sync_all().ctx("fsync", &tmp)?;
    fs::rename(&tmp, path).ctx("rename", path)
}

/// Reads a JSON state file; `Ok(None)` if it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let mut s = String::new();
    match fs::File::open(path) {
        Ok(mut f) => f.read_to_string(&mut s).ctx("read", path)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).ctx("open", path),
    };
    serde_json::from_str(&s)
        .map(Some)
        .map_err(|e| RuntimeError::CorruptState {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// A fresh id: 32 hex digits from the kernel's random pool.
pub(crate) fn new_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    let path = Path::new("/dev/urandom");
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .ctx("read", path)?;
    Ok(hex::encode(bytes))
}

/// Rejects ids that could climb out of the state directory; ids come from callers.
pub(crate) fn checked_id<'a>(kind: &'static str, id: &'a str) -> Result<&'a str> {
    if !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(RuntimeError::NotFound {
            kind,
            id: id.to_owned(),
        })
    }
}

/// Directory names under `dir` (an absent dir is empty).
pub(crate) fn list_dirs(dir: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx("read dir", dir),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.ctx("read dir", dir)?;
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && let Some(name) = entry.file_name().to_str()
            && checked_id("entry", name).is_ok()
        {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procref_roundtrip_and_self() {
        let me = ProcRef::of(std::process::id()).expect("own stat");
        assert!(me.alive());
        assert_eq!(ProcRef::parse(&me.format()), Some(me));
        let other = ProcRef {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!other.alive(), "same pid, different start time is not us");
        assert_eq!(ProcRef::parse("12"), None);
    }

    #[test]
    fn ids_are_checked() {
        assert!(checked_id("sandbox", "abc123").is_ok());
        assert!(checked_id("sandbox", "../x").is_err());
        assert!(checked_id("sandbox", "").is_err());
        assert_eq!(new_id().map(|s| s.len()).ok(), Some(32));
    }
}
