//! Container cgroups, v1 (one directory per controller hierarchy, as on this machine's hybrid
//! layout) and v2 (one unified directory), at `<parent>/<sandbox>/<container>` below the root of
//! each hierarchy: limits from [`Resources`], the OOM-kill count, and CPU/memory stats.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use super::cgroup_stats::{self, keyed};
use crate::error::{Result, RuntimeError};
use crate::types::Resources;

const ROOT: &str = "/sys/fs/cgroup";
/// v1 controllers a container gets a directory in (those mounted; comounts are deduplicated).
const V1_CONTROLLERS: &[&str] = &["cpu", "cpuacct", "memory", "pids", "devices"];
/// Device rules for unprivileged containers (runc's defaults): nothing but the nodes the runtime
/// creates in `/dev`, plus mknod of anything (useless without access).
const V1_DEVICE_ALLOW: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// Which cgroup layout the machine has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    V1,
    V2,
}

/// Detects v2 by `/sys/fs/cgroup` itself being a cgroup2 mount.
pub(crate) fn detect() -> Mode {
    // f_type's integer type differs between architectures.
    #[allow(clippy::useless_conversion)]
    match rustix::fs::statfs(ROOT) {
        Ok(st) if i64::from(st.f_type) == 0x6367_7270 => Mode::V2,
        _ => Mode::V1,
    }
}

/// A cgroup path relative to the hierarchy roots, e.g. `rudder/<sandbox>/<container>`.
#[derive(Clone, Debug)]
pub(crate) struct Cgroup {
    pub mode: Mode,
    pub rel: PathBuf,
}

fn cg_err(path: &Path, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Cgroup {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(|e| cg_err(&path, format!("write {value:?}: {e}")))
}

fn read(dir: &Path, file: &str) -> Option<String> {
    fs::read_to_string(dir.join(file)).ok()
}

impl Cgroup {
    pub fn new(mode: Mode, rel: PathBuf) -> Cgroup {
        Cgroup { mode, rel }
    }

    /// The v1 controller directories present on this machine, deduplicated (`cpu` and
    /// `cpuacct` are often one hierarchy with two symlinks).
    fn v1_roots() -> Vec<(&'static str, PathBuf)> {
        let mut seen: Vec<PathBuf> = Vec::new();
        let mut out = Vec::new();
        for c in V1_CONTROLLERS {
            let root = Path::new(ROOT).join(c);
            let Ok(real) = fs::canonicalize(&root) else {
                continue;
            };
            if !seen.contains(&real) {
                seen.push(real);
                out.push((*c, root));
            }
        }
        out
    }

    /// Every directory of this cgroup (one per v1 hierarchy, or the one v2 directory).
    pub fn dirs(&self) -> Vec<PathBuf> {
        match self.mode {
            Mode::V2 => vec![Path::new(ROOT).join(&self.rel)],
            Mode::V1 => Self::v1_roots()
                .into_iter()
                .map(|(_, root)| root.join(&self.rel))
                .collect(),
        }
    }

    fn controller_dir(&self, controller: &str) -> Option<PathBuf> {
        match self.mode {
            Mode::V2 => Some(Path::new(ROOT).join(&self.rel)),
            Mode::V1 => {
                let dir = Path::new(ROOT).join(controller).join(&self.rel);
                dir.exists().then_some(dir)
            }
        }
    }

    /// The memory controller's directory (for the OOM count).
    pub fn memory_dir(&self) -> Option<PathBuf> {
        match self.mode {
            Mode::V2 => Some(Path::new(ROOT).join(&self.rel)),
            Mode::V1 => Some(Path::new(ROOT).join("memory").join(&self.rel)),
        }
    }

    /// Creates the directories and applies `res`.
    pub fn create(&self, res: &Resources, privileged: bool) -> Result<()> {
        match self.mode {
            Mode::V1 => self.create_v1(res, privileged),
            Mode::V2 => self.create_v2(res),
        }
    }

    fn create_v1(&self, res: &Resources, privileged: bool) -> Result<()> {
        for (controller, root) in Self::v1_roots() {
            let dir = root.join(&self.rel);
            fs::create_dir_all(&dir).map_err(|e| cg_err(&dir, e))?;
            match controller {
                "cpu" => {
                    if let Some(shares) = res.cpu_shares {
                        write(&dir, "cpu.shares", &shares.max(2).to_string())?;
                    }
                    if let Some(quota) = res.cpu_quota_us {
                        let period = res.cpu_period_us.unwrap_or(100_000);
                        write(&dir, "cpu.cfs_period_us", &period.to_string())?;
                        write(&dir, "cpu.cfs_quota_us", &quota.max(1000).to_string())?;
                    }
                }
                "memory" => {
                    if let Some(limit) = res.memory_limit_bytes {
                        write(&dir, "memory.limit_in_bytes", &limit.to_string())?;
                        // Without swap accounting the file is absent and there is no swap to
                        // escape into; with it, swap must not extend the limit (Kubernetes).
                        if dir.join("memory.memsw.limit_in_bytes").exists() {
                            write(&dir, "memory.memsw.limit_in_bytes", &limit.to_string())?;
                        }
                    }
                }
                "pids" => {
                    if let Some(max) = res.pids_limit {
                        write(&dir, "pids.max", &max.to_string())?;
                    }
                }
                "devices" if !privileged => {
                    write(&dir, "devices.deny", "a")?;
                    for rule in V1_DEVICE_ALLOW {
                        write(&dir, "devices.allow", rule)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn create_v2(&self, res: &Resources) -> Result<()> {
        let dir = Path::new(ROOT).join(&self.rel);
        fs::create_dir_all(&dir).map_err(|e| cg_err(&dir, e))?;
        // Controllers must be delegated down every level; a controller the parent lacks simply
        // stays off (the write fails for it alone, so each is enabled separately).
        let mut level = PathBuf::from(ROOT);
        for part in self.rel.parent().into_iter().flat_map(|p| p.components()) {
            for c in ["+cpu", "+memory", "+pids"] {
                let _ = fs::write(level.join("cgroup.subtree_control"), c);
            }
            level.push(part);
        }
        for c in ["+cpu", "+memory", "+pids"] {
            let _ = fs::write(level.join("cgroup.subtree_control"), c);
        }
        for (file, value) in v2_files(res) {
            write(&dir, file, &value)?;
        }
        if res.memory_limit_bytes.is_some() && dir.join("memory.swap.max").exists() {
            write(&dir, "memory.swap.max", "0")?;
        }
        Ok(())
    }

    /// (cpu nanoseconds, memory usage, memory working set), parsed by `cgroup_stats.rs`.
    pub fn stats(&self) -> Result<(u64, u64, u64)> {
        let parsed = match self.mode {
            Mode::V1 => {
                let cpu_dir = self
                    .controller_dir("cpuacct")
                    .ok_or_else(|| cg_err(&self.rel, "no cpuacct hierarchy"))?;
                let mem_dir = self
                    .controller_dir("memory")
                    .ok_or_else(|| cg_err(&self.rel, "no memory hierarchy"))?;
                cgroup_stats::parse_v1(
                    &read(&cpu_dir, "cpuacct.usage").unwrap_or_default(),
                    &read(&mem_dir, "memory.usage_in_bytes").unwrap_or_default(),
                    &read(&mem_dir, "memory.stat").unwrap_or_default(),
                )
                .ok_or_else(|| cg_err(&mem_dir, "unreadable cpuacct.usage or memory usage"))?
            }
            Mode::V2 => {
                let dir = Path::new(ROOT).join(&self.rel);
                cgroup_stats::parse_v2(
                    &read(&dir, "cpu.stat").unwrap_or_default(),
                    &read(&dir, "memory.current").unwrap_or_default(),
                    &read(&dir, "memory.stat").unwrap_or_default(),
                )
                .ok_or_else(|| cg_err(&dir, "unreadable cpu.stat or memory.current"))?
            }
        };
        Ok((
            parsed.cpu_usage_ns,
            parsed.memory_usage_bytes,
            parsed.memory_working_set_bytes,
        ))
    }

    /// Removes the directories. A cgroup stays busy for a moment after its last process is
    /// reaped, so `EBUSY` is retried for up to two seconds; a missing directory is fine.
    pub fn remove(&self) -> Result<()> {
        for dir in self.dirs() {
            remove_dir(&dir)?;
        }
        Ok(())
    }
}

/// The OOM-kill count of a memory cgroup directory.
/// The cgroup v2 interface files and values for `res`: cpu shares onto `cpu.weight` (the
/// conversion runc and the kubelet use: 2..262144 onto 1..10000), the quota as `cpu.max`
/// (`quota period`), `memory.max`, `pids.max`. Pure.
pub(crate) fn v2_files(res: &Resources) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(shares) = res.cpu_shares {
        let weight = 1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
        out.push(("cpu.weight", weight.to_string()));
    }
    if let Some(quota) = res.cpu_quota_us {
        let period = res.cpu_period_us.unwrap_or(100_000);
        out.push(("cpu.max", format!("{} {period}", quota.max(1000))));
    }
    if let Some(limit) = res.memory_limit_bytes {
        out.push(("memory.max", limit.to_string()));
    }
    if let Some(max) = res.pids_limit {
        out.push(("pids.max", max.to_string()));
    }
    out
}

pub(crate) fn oom_kills_at(dir: &Path, v2: bool) -> u64 {
    let file = if v2 {
        "memory.events"
    } else {
        "memory.oom_control"
    };
    read(dir, file)
        .and_then(|s| keyed(&s, "oom_kill"))
        .unwrap_or(0)
}

/// SIGKILLs every process in the cgroups `dirs` (one per v1 hierarchy, or the v2 one) until a
/// reading finds none it has not killed yet: a process killed while forking takes its new child
/// down with it, and a dead one forks no more, so that round is the last.
pub(crate) fn kill_all_in(dirs: &[PathBuf]) {
    let mut killed = std::collections::BTreeSet::new();
    loop {
        let found: Vec<i32> = dirs
            .iter()
            .filter_map(|d| read(d, "cgroup.procs"))
            .flat_map(|s| {
                s.lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect::<Vec<i32>>()
            })
            .filter(|pid| !killed.contains(pid))
            .collect();
        if found.is_empty() {
            return;
        }
        for pid in found {
            if let Some(p) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
            killed.insert(pid);
        }
    }
}

/// rmdir with retries on EBUSY; Ok if absent.
pub(crate) fn remove_dir(dir: &Path) -> Result<()> {
    for attempt in 0..40 {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 39 => {
                sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(cg_err(dir, format!("rmdir: {e}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_settings() {
        let cases: Vec<(Resources, Vec<(&str, &str)>)> = vec![
            (Resources::default(), vec![]),
            // 100m of CPU: shares 102 → weight 4; a 50 ms quota per 100 ms.
            (
                Resources {
                    cpu_shares: Some(102),
                    cpu_quota_us: Some(50_000),
                    cpu_period_us: Some(100_000),
                    ..Default::default()
                },
                vec![("cpu.weight", "4"), ("cpu.max", "50000 100000")],
            ),
            // The extremes of shares; a quota below 1 ms is raised to it.
            (
                Resources {
                    cpu_shares: Some(2),
                    cpu_quota_us: Some(10),
                    ..Default::default()
                },
                vec![("cpu.weight", "1"), ("cpu.max", "1000 100000")],
            ),
            (
                Resources {
                    cpu_shares: Some(1_000_000),
                    memory_limit_bytes: Some(64 << 20),
                    pids_limit: Some(100),
                    ..Default::default()
                },
                vec![
                    ("cpu.weight", "10000"),
                    ("memory.max", "67108864"),
                    ("pids.max", "100"),
                ],
            ),
        ];
        for (res, want) in cases {
            let got = v2_files(&res);
            let got: Vec<(&str, &str)> = got.iter().map(|(f, v)| (*f, v.as_str())).collect();
            assert_eq!(got, want, "{res:?}");
        }
    }
}
