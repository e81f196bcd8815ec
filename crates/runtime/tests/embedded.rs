//! The embedded runtime for real, as root, through the runtime conformance suite
//! (`rudder_runtime::testing::conformance`): sandboxes and containers from an offline busybox
//! image, logs, namespaces, cgroup limits (OOM), stop with grace, exec, adoption by a new runtime
//! instance, and that removal leaves no process, mount, cgroup or state behind.
//!
//! Every test owns a `Fixture` whose Drop kills what the test started (by the pids in the state
//! directory) and removes its cgroups, so a failing assertion leaves nothing running.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use rudder_runtime::ContainerRuntime;
use rudder_runtime::embedded::{EmbeddedRuntime, RuntimeOptions, ShimCommand};
use rudder_runtime::images::ImageStore;
use rudder_runtime::testing::TestImage;
use rudder_runtime::testing::conformance::{self, Harness};

const IMAGE: &str = "docker.io/library/busybox:runtime-test";
static NEXT: AtomicU32 = AtomicU32::new(0);

struct Fixture {
    dir: tempfile::TempDir,
    images: ImageStore,
    cgroup_parent: String,
}

impl Fixture {
    fn new() -> Fixture {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests need root (CI and the dev machines run as root)"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let tarball = dir.path().join("busybox.tar");
        TestImage::busybox()
            .and_then(|i| i.write_oci_layout(&tarball, IMAGE))
            .expect("busybox image (apt-get install busybox-static)");
        let images = ImageStore::open(dir.path().join("images")).expect("image store");
        images.import(&tarball).expect("import");
        let cgroup_parent = format!(
            "rudder-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        Fixture {
            dir,
            images,
            cgroup_parent,
        }
    }

    fn state_root(&self) -> PathBuf {
        self.dir.path().join("containers")
    }

    fn runtime(&self) -> EmbeddedRuntime {
        EmbeddedRuntime::new(
            RuntimeOptions {
                root: self.state_root(),
                shim: ShimCommand {
                    program: env!("CARGO_BIN_EXE_rudder-shim").into(),
                    args: Vec::new(),
                },
                cgroup_parent: self.cgroup_parent.clone(),
            },
            self.images.clone(),
        )
        .expect("runtime")
    }

    /// Every pid the state directory names (sandbox holders, containers, monitors).
    fn pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        for entry in walk(&self.state_root()) {
            let name = entry.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let text = fs::read_to_string(&entry).unwrap_or_default();
            if name == "pid" {
                pids.extend(
                    text.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<u32>().ok()),
                );
            } else if name == "started.json"
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            {
                for k in ["process", "monitor"] {
                    pids.extend(v[k]["pid"].as_u64().map(|p| p as u32));
                }
            }
        }
        pids
    }

    /// This fixture's cgroup directories that exist, deepest first.
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in cgroup_roots() {
            let top = root.join(&self.cgroup_parent);
            if top.exists() {
                let mut dirs: Vec<PathBuf> = walk_dirs(&top);
                dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
                out.extend(dirs);
            }
        }
        out
    }

    /// After everything was removed: nothing of ours is left.
    fn assert_clean(&self, pids: &[u32]) {
        for pid in pids {
            assert!(!alive(*pid), "process {pid} survived removal");
        }
        let leftovers: Vec<PathBuf> = self
            .cgroup_dirs()
            .into_iter()
            .filter(|d| d.components().count() > 6)
            .collect();
        assert!(leftovers.is_empty(), "cgroups left: {leftovers:?}");
        for sub in ["sandboxes", "containers"] {
            let n = fs::read_dir(self.state_root().join(sub))
                .map(|d| d.count())
                .unwrap_or(0);
            assert_eq!(n, 0, "state left in {sub}");
        }
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let ours = self.dir.path().to_string_lossy().into_owned();
        assert!(
            !mountinfo.contains(&ours),
            "mounts left under {ours}:\n{mountinfo}"
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for pid in self.pids() {
            if alive(pid)
                && let Some(p) = rustix::process::Pid::from_raw(pid as i32)
            {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        for dir in self.cgroup_dirs() {
            for _ in 0..20 {
                if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn cgroup_roots() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_owned()];
    }
    ["cpu", "cpuacct", "memory", "pids", "devices"]
        .iter()
        .map(|c| base.join(c))
        .filter(|p| p.exists())
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    // Container root filesystems can be large; the state files sit higher up.
                    if !matches!(
                        p.file_name().and_then(|n| n.to_str()),
                        Some("upper" | "work" | "rootfs")
                    ) {
                        out.extend(walk(&p));
                    }
                }
                _ => out.push(p),
            }
        }
    }
    out
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk_dirs(&e.path()));
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

#[async_trait::async_trait]
impl Harness for Fixture {
    async fn runtime(&self) -> Arc<dyn ContainerRuntime> {
        Arc::new(Fixture::runtime(self))
    }

    fn image(&self) -> &str {
        IMAGE
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }

    async fn pids(&self, _rt: &dyn ContainerRuntime) -> Vec<u32> {
        Fixture::pids(self)
    }

    async fn assert_clean(&self, _rt: &dyn ContainerRuntime, pids: &[u32]) {
        Fixture::assert_clean(self, pids)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_logs_env_workdir_and_args() {
    conformance::echo_logs_env_workdir_and_args(&Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_the_sandbox_namespaces_and_exec_works() {
    conformance::containers_share_the_sandbox_namespaces_and_exec_works(&Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_ends_in_oom_kill() {
    conformance::memory_limit_ends_in_oom_kill(&Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_after_the_grace_period() {
    conformance::stop_kills_after_the_grace_period(&Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_users_capabilities_and_read_only_root() {
    conformance::mounts_users_capabilities_and_read_only_root(&Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_adopts_running_sandboxes_and_containers() {
    conformance::a_new_runtime_adopts_running_sandboxes_and_containers(&Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_on_a_terminal_has_the_clients_size() {
    conformance::exec_on_a_terminal_has_the_clients_size(
        &Fixture::new(),
        conformance::InitialSize::BeforeStart,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_streams_output_and_stdin() {
    rudder_runtime::testing::conformance_attach::attach_streams_output_and_stdin(&Fixture::new())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_terminal() {
    rudder_runtime::testing::conformance_attach::attach_to_a_terminal(&Fixture::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_container_sees_its_targets_processes() {
    rudder_runtime::testing::conformance_pid::a_debug_container_sees_its_targets_processes(
        &Fixture::new(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_one_process_namespace() {
    rudder_runtime::testing::conformance_pid::containers_of_a_pod_share_one_process_namespace(
        &Fixture::new(),
    )
    .await;
}
