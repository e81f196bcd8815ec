//! The CRI backend against containerd + runc from Debian, through the same conformance suite the
//! embedded runtime passes (`rudder_runtime::testing::conformance`), plus its image calls.
//!
//! Each test starts its OWN containerd (root, state, sockets, runc root, CNI config and IPAM
//! state in a temp dir; the CRI plugin's pause image built offline from busybox and imported with
//! `ctr`), never the system's. Pod networking is containerd's CNI: a bridge of the test's own
//! (`rcri<n>`) with host-local addresses from a private /24. The `Containerd` guard's Drop removes
//! every sandbox through CRI, then kills what is left by PID (containers by their cgroups, shims
//! by their socket argument, containerd itself), unmounts what is left under the temp dir, and
//! removes cgroups, the bridge and the dir, even when an assertion failed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rudder_runtime::cri::{CriOptions, CriRuntime};
use rudder_runtime::testing::TestImage;
use rudder_runtime::testing::conformance::{self, Harness};
use rudder_runtime::{ContainerFilter, ContainerRuntime, ImageService};

const IMAGE: &str = "docker.io/library/busybox:runtime-test";
const PAUSE: &str = "rudder.test/pause:1";
static NEXT: AtomicU32 = AtomicU32::new(0);

struct Containerd {
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    socket: PathBuf,
    child: Option<Child>,
    cgroup_root: String,
    bridge: String,
    run_dir_existed: bool,
}

fn need(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing: apt-get install containerd runc containernetworking-plugins \
         (scripts/test does)"
    );
}

fn ctr(socket: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("ctr")
        .arg("--address")
        .arg(socket)
        .args(["-n", "k8s.io"])
        .args(args)
        .output()
        .expect("running ctr");
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Containerd {
    fn start() -> Containerd {
        assert!(
            rustix::process::geteuid().is_root(),
            "these tests need root (CI and the dev machines run as root)"
        );
        for p in [
            "/usr/bin/containerd",
            "/usr/bin/containerd-shim-runc-v2",
            "/usr/bin/ctr",
            "/usr/sbin/runc",
            "/usr/lib/cni/bridge",
            "/usr/lib/cni/host-local",
            "/usr/lib/cni/loopback",
        ] {
            need(p);
        }
        let dir = tempfile::Builder::new()
            .prefix("rudder-cri-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().to_owned();
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let cgroup_root = format!("rudder-cri-test-{pid}-{n}");
        // Bridge names hold 15 bytes; the subnet only has to differ from concurrent test runs.
        let bridge = format!("rcri{}", (pid * 8 + n) % 10_000_000);
        let third = 1 + (pid * 8 + n) % 250;
        let socket = root.join("containerd.sock");
        for d in ["root", "state", "opt", "runc", "cni", "cni-ipam", "logs"] {
            fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let r = root.display();
        let config = format!(
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
        );
        fs::write(root.join("config.toml"), config).expect("config");
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
                    "ranges": [[{"subnet": format!("10.251.{third}.0/24")}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": root.join("cni-ipam"),
                },
            }],
        });
        fs::write(root.join("cni/10-test.conflist"), cni.to_string()).expect("cni config");
        let log = fs::File::create(root.join("containerd.log")).expect("log");
        let run_dir_existed = Path::new("/run/containerd").exists();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(root.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning containerd");
        let mut me = Containerd {
            dir: Some(dir),
            root,
            socket,
            child: Some(child),
            cgroup_root,
            bridge,
            run_dir_existed,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = me.socket.exists()
                && Command::new("ctr")
                    .arg("--address")
                    .arg(&me.socket)
                    .arg("version")
                    .output()
                    .is_ok_and(|o| o.status.success());
            if up {
                break;
            }
            if let Some(Ok(Some(status))) = me.child.as_mut().map(|c| c.try_wait()) {
                panic!("containerd exited ({status}): {}", me.log());
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not start: {}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // Images, offline: busybox for the containers, and a pause image (busybox sleeping)
        // that the CRI plugin runs as each sandbox's holder.
        let busybox = TestImage::busybox().expect("busybox image (apt-get install busybox-static)");
        let mut pause = busybox.clone();
        pause.config.cmd = Some(vec!["sleep".into(), "2147483647".into()]);
        for (image, name) in [(&busybox, IMAGE), (&pause, PAUSE)] {
            let tar = me.root.join("image.tar");
            image.write_docker_archive(&tar, name).expect("archive");
            ctr(&me.socket, &["images", "import", &tar.to_string_lossy()]);
            let _ = fs::remove_file(tar);
        }
        me
    }

    fn log(&self) -> String {
        fs::read_to_string(self.root.join("containerd.log")).unwrap_or_default()
    }

    fn options(&self) -> CriOptions {
        CriOptions {
            endpoint: format!("unix://{}", self.socket.display()),
            cgroup_root: self.cgroup_root.clone(),
            log_root: self.root.join("logs"),
        }
    }

    async fn connect(&self) -> CriRuntime {
        CriRuntime::connect(self.options())
            .await
            .expect("connecting to containerd")
    }

    /// Pids of the shims this containerd started: they carry its socket on their command line.
    fn shim_pids(&self) -> Vec<u32> {
        let want = self.socket.to_string_lossy().into_owned();
        let mut out = Vec::new();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            let cmd = fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("containerd-shim") && cmd.contains(&want) {
                out.push(pid);
            }
        }
        out
    }

    /// Pids in this test's cgroups (containers and sandbox holders).
    fn cgroup_pids(&self) -> Vec<u32> {
        cgroup_dirs(&self.cgroup_root)
            .iter()
            .flat_map(|d| {
                fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }
}

/// This test's cgroup directories in every hierarchy, deepest first.
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
    let base = Path::new("/sys/fs/cgroup");
    let roots: Vec<PathBuf> = if base.join("cgroup.controllers").exists() {
        vec![base.to_owned()]
    } else {
        fs::read_dir(base)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    for r in roots {
        let top = r.join(cgroup_root);
        if top.is_dir() {
            walk(&top, &mut out);
        }
    }
    out.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
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

impl Drop for Containerd {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "containerd log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
        // Through CRI first (it removes network namespaces, CNI allocations and cgroups), on a
        // thread of its own: Drop may run inside the test's runtime.
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
        for pid in self.cgroup_pids() {
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
        for dir in cgroup_dirs(&self.cgroup_root) {
            for _ in 0..20 {
                if fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
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

#[async_trait::async_trait]
impl Harness for Containerd {
    async fn runtime(&self) -> Arc<dyn ContainerRuntime> {
        Arc::new(self.connect().await)
    }

    fn image(&self) -> &str {
        IMAGE
    }

    fn scratch(&self) -> &Path {
        &self.root
    }

    async fn pids(&self, rt: &dyn ContainerRuntime) -> Vec<u32> {
        let mut pids: Vec<u32> = rt
            .list_pod_sandboxes()
            .await
            .expect("list sandboxes")
            .iter()
            .filter_map(|s| s.pid)
            .collect();
        for c in rt
            .list_containers(ContainerFilter::default())
            .await
            .expect("list containers")
        {
            pids.extend(c.pid);
        }
        pids.extend(self.cgroup_pids());
        // The shims outlive a stopped sandbox and must go with its removal.
        pids.extend(self.shim_pids());
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    async fn assert_clean(&self, rt: &dyn ContainerRuntime, pids: &[u32]) {
        // Shims and reaped processes go a moment after RemovePodSandbox returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pid in pids {
            assert!(!alive(*pid), "process {pid} survived removal");
        }
        assert!(rt.list_pod_sandboxes().await.expect("list").is_empty());
        let containers = rt
            .list_containers(ContainerFilter::default())
            .await
            .expect("list");
        assert!(containers.is_empty(), "{containers:?}");
        let procs = self.cgroup_pids();
        assert!(procs.is_empty(), "processes left in our cgroups: {procs:?}");
        // The pod cgroups (`<root>/pod<uid>`) are gone; the root itself may stay.
        let left: Vec<PathBuf> = cgroup_dirs(&self.cgroup_root)
            .into_iter()
            .filter(|d| {
                d.file_name()
                    .is_some_and(|n| n != self.cgroup_root.as_str())
            })
            .collect();
        assert!(left.is_empty(), "cgroups left: {left:?}");
        let mounts: Vec<String> = mounts_under(&self.root)
            .into_iter()
            .filter(|m| {
                !m.contains("/io.containerd.snapshotter.v1.overlayfs/snapshots/")
                    || m.ends_with("/rootfs")
            })
            .collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        let logs = fs::read_dir(self.root.join("logs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(logs, 0, "log directories left");
    }

    // v4.channel.k8s.io (all containerd 1.6 serves) cannot carry the end of stdin.
    fn exec_stdin_eof(&self) -> bool {
        false
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_logs_env_workdir_and_args() {
    conformance::echo_logs_env_workdir_and_args(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_the_sandbox_namespaces_and_exec_works() {
    conformance::containers_share_the_sandbox_namespaces_and_exec_works(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_ends_in_oom_kill() {
    conformance::memory_limit_ends_in_oom_kill(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_after_the_grace_period() {
    conformance::stop_kills_after_the_grace_period(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_users_capabilities_and_read_only_root() {
    conformance::mounts_users_capabilities_and_read_only_root(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_adopts_running_sandboxes_and_containers() {
    conformance::a_new_runtime_adopts_running_sandboxes_and_containers(&Containerd::start()).await;
}

/// The CRI image calls against containerd's store, and the sandbox's CNI address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_pod_addresses() {
    let c = Containerd::start();
    let rt = c.connect().await;
    assert!(rt.name().starts_with("containerd://"), "{}", rt.name());
    assert!(rt.image_present(IMAGE).await.expect("status"));
    assert!(
        !rt.image_present("docker.io/library/nothere:1")
            .await
            .expect("status")
    );
    let status = rt
        .image_status(IMAGE)
        .await
        .expect("status")
        .expect("present");
    assert!(status.id.starts_with("sha256:"), "{status:?}");
    assert!(status.repo_tags.iter().any(|t| t == IMAGE), "{status:?}");
    let all = rt.list_images().await.expect("list");
    assert!(all.iter().any(|i| i.id == status.id));
    // containerd refreshes the figure every 10 s, so a fresh one may still say 0.
    rt.image_fs_used_bytes().await.expect("fs info");
    // No registry here: a pull fails with the runtime's error, not a hang or a panic.
    let err = rt
        .pull("127.0.0.1:1/none:1")
        .await
        .expect_err("no registry");
    assert!(err.to_string().contains("PullImage"), "{err}");

    let sb = rt
        .run_pod_sandbox(conformance::sandbox_config("addr"))
        .await
        .expect("sandbox");
    let st = rt.pod_sandbox_status(&sb).await.expect("status");
    let ip = st.ip.expect("CNI gave the pod an address");
    assert!(ip.starts_with("10.251."), "{ip}");
    let id = conformance::run(
        &rt,
        &sb,
        conformance::container_config(IMAGE, "c", "exec sleep 100"),
    )
    .await;
    assert_eq!(
        rt.container_status(&id).await.expect("status").image_id,
        status.id
    );
    rt.remove_pod_sandbox(&sb).await.expect("remove");

    // A host-network sandbox has no namespace of its own and no pod address.
    let mut cfg = conformance::sandbox_config("hostnet");
    cfg.host_network = true;
    let sb = rt.run_pod_sandbox(cfg).await.expect("sandbox");
    let st = rt.pod_sandbox_status(&sb).await.expect("status");
    assert_eq!((st.netns_path, st.ip), (None, None));
    let id = conformance::run(
        &rt,
        &sb,
        conformance::container_config(IMAGE, "h", "exec sleep 100"),
    )
    .await;
    let pid = rt
        .container_status(&id)
        .await
        .expect("status")
        .pid
        .expect("pid");
    let ino = |p: String| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).expect("ns"));
    assert_eq!(
        ino(format!("/proc/{pid}/ns/net")),
        ino("/proc/self/ns/net".into())
    );
    rt.remove_pod_sandbox(&sb).await.expect("remove");

    rt.remove_image(IMAGE).await.expect("remove image");
    assert!(!rt.image_present(IMAGE).await.expect("status"));
    rt.remove_image(IMAGE)
        .await
        .expect("removing twice is fine");
}
