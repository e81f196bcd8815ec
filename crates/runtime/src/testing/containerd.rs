//! A private containerd for tests (Debian's containerd + runc + containernetworking-plugins),
//! never the system's: its root, state, sockets, runc root, CNI config dir and IPAM state live in
//! a temp dir, the CRI plugin streams on 127.0.0.1 at a free port, and its pause image is busybox
//! sleeping, built offline and imported with `ctr`. `restrict_oom_score_adj` is set because CI
//! runs in a container without `CAP_SYS_RESOURCE`.
//!
//! [`Containerd::start`] also writes a CNI config of its own (a bridge `rcri<n>` and a private
//! /24) and has runtime tests put pods under a cgroup root of their own; [`Containerd::start_bare`]
//! leaves the CNI dir empty for rudder's agent to fill (`--cni-conf-dir`).
//!
//! Drop cleans up even when the test failed: every sandbox through CRI, then by PID what is left
//! (the processes under its shims and in its cgroups, the shims, which carry its socket on their
//! command line, and containerd itself), then cgroups, the bridge, the mounts under the temp dir
//! and the dir. Nothing is found by name: other containerds may run on the machine.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::TestImage;
use crate::ContainerRuntime;
use crate::cri::{CriOptions, CriRuntime};

/// The pause image every sandbox runs.
pub const PAUSE: &str = "rudder.test/pause:1";
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A running private containerd; stopped and cleaned up on drop.
pub struct Containerd {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    /// The test's own cgroup root and CNI bridge (`start`), none with `start_bare`.
    cgroup_root: Option<String>,
    bridge: Option<String>,
    run_dir_existed: bool,
}

fn other(message: String) -> io::Error {
    io::Error::other(message)
}

/// Fails unless Debian's containerd, runc and CNI plugins are installed and we are root.
fn check_prerequisites() -> io::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Err(other("a private containerd needs root".into()));
    }
    for p in [
        "/usr/bin/containerd",
        "/usr/bin/containerd-shim-runc-v2",
        "/usr/bin/ctr",
        "/usr/sbin/runc",
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/usr/lib/cni/loopback",
    ] {
        if !Path::new(p).exists() {
            return Err(other(format!(
                "{p} is missing: apt-get install containerd runc containernetworking-plugins \
                 (scripts/test does)"
            )));
        }
    }
    Ok(())
}

fn config(r: &str) -> String {
    format!(
        r#"version = 2
root = "{r}/root"
state = "{r}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
]
[grpc]
  address = "{r}/containerd.sock"
[ttrpc]
  address = "{r}/containerd.sock.ttrpc"
[debug]
  address = ""
  level = "warn"
[metrics]
  address = ""
[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{r}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "{PAUSE}"
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"
    disable_apparmor = true
    # Sandboxes ask for oom_score_adj -998; in a container without CAP_SYS_RESOURCE (this
    # project's CI) lowering it fails, so cap it at containerd's own score.
    restrict_oom_score_adj = true
    # Pod network namespaces are bind-mounted here, not in the host's /var/run/netns, so the
    # teardown's unmount of everything under the state dir removes them too.
    netns_mounts_under = "{r}/netns"
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          Root = "{r}/runc"
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "{r}/cni"
"#
    )
}

impl Containerd {
    /// Starts one with a CNI network (bridge `rcri<n>`, host-local on a private /24 of
    /// 10.251.0.0/16) and a cgroup root of its own ([`Containerd::options`]).
    pub fn start() -> io::Result<Containerd> {
        Self::launch(true)
    }

    /// Starts one with an empty CNI config dir ([`Containerd::cni_conf_dir`]): the agent's
    /// `--cni-conf-dir` writes the network there.
    pub fn start_bare() -> io::Result<Containerd> {
        Self::launch(false)
    }

    fn launch(own_network: bool) -> io::Result<Containerd> {
        check_prerequisites()?;
        let dir = tempfile::Builder::new().prefix("rudder-cri-").tempdir()?;
        let root = dir.path().to_owned();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        // Bridge names hold 15 bytes; the subnet only has to differ from concurrent test runs.
        let unique = pid.wrapping_mul(8).wrapping_add(n);
        for d in ["root", "state", "opt", "runc", "cni", "cni-ipam", "logs"] {
            fs::create_dir_all(root.join(d))?;
        }
        fs::write(
            root.join("config.toml"),
            config(&root.display().to_string()),
        )?;
        let (cgroup_root, bridge) = if own_network {
            let bridge = format!("rcri{}", unique % 10_000_000);
            let cni = serde_json::json!({
                "cniVersion": "0.4.0",
                "name": format!("rudder-test-{pid}-{n}"),
                "plugins": [{
                    "type": "bridge",
                    "bridge": bridge,
                    "isGateway": true,
                    "ipMasq": false,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": format!("10.251.{}.0/24", 1 + unique % 250)}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": root.join("cni-ipam"),
                    },
                }],
            });
            fs::write(root.join("cni/10-test.conflist"), cni.to_string())?;
            (Some(format!("rudder-cri-test-{pid}-{n}")), Some(bridge))
        } else {
            (None, None)
        };
        let log = fs::File::create(root.join("containerd.log"))?;
        let run_dir_existed = Path::new("/run/containerd").exists();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(root.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        // From here on Drop cleans up whatever fails.
        let mut me = Containerd {
            dir: Some(dir),
            socket: root.join("containerd.sock"),
            root,
            child: Some(child),
            cgroup_root,
            bridge,
            run_dir_existed,
        };
        me.wait_up()?;
        // The CRI plugin runs the pause image as each sandbox's holder: busybox sleeping.
        let mut pause = TestImage::busybox()?;
        pause.config.cmd = Some(vec!["sleep".into(), "2147483647".into()]);
        me.import(&pause, PAUSE)?;
        Ok(me)
    }

    fn wait_up(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = self.socket.exists()
                && Command::new("ctr")
                    .arg("--address")
                    .arg(&self.socket)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success());
            if up {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(other(format!(
                    "containerd exited ({status}): {}",
                    self.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(other(format!("containerd did not start: {}", self.log())));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its temp dir.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Its CRI socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `unix://<socket>`, as `--container-runtime-endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// The CNI config dir its CRI plugin watches.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.root.join("cni")
    }

    /// Options for a [`CriRuntime`] of its own (runtime tests; `start` only has its own cgroup
    /// root, `start_bare` gets the agent's `rudder`).
    pub fn options(&self) -> CriOptions {
        CriOptions {
            endpoint: self.endpoint(),
            cgroup_root: self.cgroup_root.clone().unwrap_or_else(|| "rudder".into()),
            log_root: self.root.join("logs"),
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.root.join("containerd.log")).unwrap_or_default()
    }

    /// Runs `ctr -n k8s.io ARGS` against it; an error unless it succeeds.
    pub fn ctr(&self, args: &[&str]) -> io::Result<Output> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", "k8s.io"])
            .args(args)
            .output()?;
        if !out.status.success() {
            return Err(other(format!(
                "ctr {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(out)
    }

    /// Imports `image` as `name` into its `k8s.io` namespace (what CRI sees).
    pub fn import(&self, image: &TestImage, name: &str) -> io::Result<()> {
        let tar = self.root.join("image.tar");
        image.write_docker_archive(&tar, name)?;
        let res = self.ctr(&["images", "import", &tar.to_string_lossy()]);
        let _ = fs::remove_file(tar);
        res.map(|_| ())
    }

    /// The ids of its containers (sandbox holders included), from `ctr containers ls -q`.
    pub fn container_ids(&self) -> io::Result<Vec<String>> {
        let out = self.ctr(&["containers", "ls", "-q"])?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect())
    }

    /// Pids of the shims it started: they carry its socket on their command line.
    pub fn shim_pids(&self) -> Vec<u32> {
        let want = self.socket.to_string_lossy().into_owned();
        processes()
            .into_iter()
            .filter(|(_, _, cmd)| cmd.contains("containerd-shim") && cmd.contains(&want))
            .map(|(pid, _, _)| pid)
            .collect()
    }

    /// Pids of what runs under its shims (sandbox holders and containers).
    pub fn shim_children(&self) -> Vec<u32> {
        let shims = self.shim_pids();
        processes()
            .into_iter()
            .filter(|(_, ppid, _)| shims.contains(ppid))
            .map(|(pid, _, _)| pid)
            .collect()
    }

    /// Pids in its own cgroup root (`start` only).
    pub fn cgroup_pids(&self) -> Vec<u32> {
        let Some(cg) = &self.cgroup_root else {
            return Vec::new();
        };
        cgroup_dirs(cg).iter().flat_map(|d| procs_of(d)).collect()
    }

    /// Its own cgroup directories below the root, deepest first (`start` only).
    pub fn cgroups_left(&self) -> Vec<PathBuf> {
        let Some(cg) = &self.cgroup_root else {
            return Vec::new();
        };
        cgroup_dirs(cg)
            .into_iter()
            .filter(|d| d.file_name().is_some_and(|n| n != cg.as_str()))
            .collect()
    }

    /// Mount points under its temp dir, deepest first.
    pub fn mounts(&self) -> Vec<String> {
        mounts_under(&self.root)
    }

    /// Removes every sandbox through CRI (network namespaces, CNI allocations, cgroups), on a
    /// thread and runtime of its own: Drop may run inside a test's runtime.
    fn remove_sandboxes(&self) {
        let opts = self.options();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let work = async {
                    let Ok(cri) = CriRuntime::connect(opts).await else {
                        return;
                    };
                    for sb in cri.list_pod_sandboxes().await.unwrap_or_default() {
                        let _ = cri.remove_pod_sandbox(&sb.id).await;
                    }
                };
                let _ = tokio::time::timeout(Duration::from_secs(30), work).await;
            });
        })
        .join();
    }
}

/// Every process: pid, parent pid, command line.
fn processes() -> Vec<(u32, u32, String)> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let stat = fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        // `pid (comm) state ppid …`: comm may hold anything, so split after its last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
        out.push((pid, ppid, String::from_utf8_lossy(&cmd).into_owned()));
    }
    out
}

fn procs_of(cgroup: &Path) -> Vec<u32> {
    fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect()
}

/// The cgroup hierarchies' mount points (one on cgroup v2, one per controller on v1).
fn hierarchies() -> Vec<PathBuf> {
    let base = Path::new("/sys/fs/cgroup");
    if base.join("cgroup.controllers").exists() {
        return vec![base.to_owned()];
    }
    fs::read_dir(base)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// `cgroup_root`'s directories in every hierarchy, deepest first.
fn cgroup_dirs(cgroup_root: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        out.push(d.to_owned());
        for e in fs::read_dir(d).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&e.path(), out);
            }
        }
    }
    let mut out = Vec::new();
    for h in hierarchies() {
        let top = h.join(cgroup_root);
        if top.is_dir() {
            walk(&top, &mut out);
        }
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    out
}

/// The cgroup paths (relative to each hierarchy) process `pid` is in.
fn cgroups_of(pid: u32) -> Vec<String> {
    fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(|p| p.trim_start_matches('/').to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether `pid` runs (zombies do not count).
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next()),
            Some("Z" | "X")
        ),
        Err(_) => false,
    }
}

fn kill(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Mount points under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    let mut out: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out
}

fn remove_cgroup(dir: &Path) {
    for _ in 0..20 {
        if fs::remove_dir(dir).is_ok() || !dir.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The first errors (usually the cause; later ones often repeat a consequence),
            // then the last lines.
            let log = self.log();
            let first: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("level=error"))
                .take(10)
                .collect();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            eprintln!(
                "containerd log, first errors:\n{}\n… last lines, newest first:\n{}",
                first.join("\n"),
                tail.join("\n")
            );
        }
        self.remove_sandboxes();
        // What CRI did not remove: the processes under our shims (each the init of its pid
        // namespace, so the rest go with it), then the shims and containerd. Their cgroups are
        // noted first, to be removed once empty.
        let mut leftovers = self.shim_children();
        leftovers.extend(self.cgroup_pids());
        let cgroups: Vec<String> = leftovers.iter().flat_map(|p| cgroups_of(*p)).collect();
        for pid in leftovers {
            kill(pid);
        }
        for pid in self.shim_pids() {
            kill(pid);
        }
        if let Some(mut child) = self.child.take() {
            if let Some(p) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        std::thread::sleep(Duration::from_millis(200));
        if let Some(cg) = &self.cgroup_root {
            for dir in cgroup_dirs(cg) {
                remove_cgroup(&dir);
            }
        }
        // A container's cgroup and its pod's (`<root>/pod<uid>`), which only it created.
        for path in cgroups {
            for h in hierarchies() {
                let dir = h.join(&path);
                if dir.is_dir() {
                    remove_cgroup(&dir);
                    if let Some(parent) = dir.parent()
                        && parent
                            .file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("pod"))
                    {
                        remove_cgroup(parent);
                    }
                }
            }
        }
        if let Some(bridge) = &self.bridge {
            let _ = Command::new("ip")
                .args(["link", "del", bridge])
                .stderr(Stdio::null())
                .status();
        }
        let mut all_unmounted = true;
        for m in mounts_under(&self.root) {
            let ok = Command::new("umount")
                .arg(&m)
                .status()
                .is_ok_and(|s| s.success())
                || Command::new("umount")
                    .args(["-l", &m])
                    .status()
                    .is_ok_and(|s| s.success());
            all_unmounted &= ok;
        }
        if let Some(dir) = self.dir.take()
            && !all_unmounted
        {
            // Never delete through a mount that is still there.
            eprintln!("leaving {} behind: mounts remain", dir.keep().display());
        }
        if !self.run_dir_existed {
            // containerd 1.6 puts shim sockets under /run/containerd whatever --state says;
            // only empty directories go, in case another containerd started meanwhile.
            let _ = Command::new("find")
                .args([
                    "/run/containerd",
                    "-depth",
                    "-type",
                    "d",
                    "-empty",
                    "-delete",
                ])
                .status();
        }
    }
}
