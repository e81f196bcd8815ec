//! The embedded runtime for real, as root: sandboxes and containers from an offline busybox
//! image, logs, namespaces, cgroup limits (OOM), stop with grace, exec, adoption by a new runtime
//! instance, and that removal leaves no process, mount, cgroup or state behind.
//!
//! Every test owns a `Fixture` whose Drop kills what the test started (by the pids in the state
//! directory) and removes its cgroups, so a failing assertion leaves nothing running.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rudder_runtime::embedded::{EmbeddedRuntime, RuntimeOptions, ShimCommand};
use rudder_runtime::images::ImageStore;
use rudder_runtime::testing::TestImage;
use rudder_runtime::*;

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

fn sandbox_config(name: &str) -> SandboxConfig {
    SandboxConfig {
        metadata: PodMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            attempt: 0,
        },
        hostname: name.into(),
        labels: BTreeMap::from([("app".to_string(), name.to_string())]),
        ..Default::default()
    }
}

fn container_config(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: ContainerMetadata {
            name: name.into(),
            attempt: 0,
        },
        image: IMAGE.into(),
        command: vec!["sh".into(), "-c".into()],
        args: vec![script.into()],
        labels: BTreeMap::from([("container".to_string(), name.to_string())]),
        security: SecurityConfig {
            allow_privilege_escalation: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn run(rt: &EmbeddedRuntime, sb: &SandboxId, config: ContainerConfig) -> ContainerId {
    let id = rt.create_container(sb, config).await.expect("create");
    rt.start_container(&id).await.expect("start");
    id
}

async fn wait_exited(rt: &EmbeddedRuntime, id: &ContainerId, limit: Duration) -> ContainerStatus {
    let deadline = Instant::now() + limit;
    loop {
        let st = rt.container_status(id).await.expect("status");
        if st.state == ContainerState::Exited {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "still {:?} after {limit:?}",
            st.state
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `(stream, tag, text)` of each CRI log line, checking the timestamp's shape.
fn cri_lines(path: &Path) -> Vec<(String, String, String)> {
    let text = fs::read_to_string(path).expect("log file");
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next().unwrap_or("");
            assert!(
                ts.len() == 30 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
                "bad timestamp in {l:?}"
            );
            let f = |p: Option<&str>| p.unwrap_or("").to_string();
            (f(parts.next()), f(parts.next()), f(parts.next()))
        })
        .collect()
}

async fn remove_all(rt: &EmbeddedRuntime, f: &Fixture, sb: &SandboxId) {
    let pids = f.pids();
    rt.remove_pod_sandbox(sb).await.expect("remove sandbox");
    f.assert_clean(&pids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_logs_env_workdir_and_args() {
    let f = Fixture::new();
    let rt = f.runtime();
    let sb = rt
        .run_pod_sandbox(sandbox_config("echo-pod"))
        .await
        .expect("sandbox");
    let mut cfg = container_config(
        "echo",
        "echo hello; echo oops >&2; pwd; echo \"$FOO\"; hostname; printf partial",
    );
    cfg.working_dir = Some("/work/dir".into());
    cfg.env = vec![("FOO".into(), "bar baz".into())];
    let id = run(&rt, &sb, cfg).await;
    let st = wait_exited(&rt, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, Some(0), "{st:?}");
    assert_eq!(st.reason, Some(ExitReason::Completed));
    assert!(st.started_at.is_some() && st.finished_at.is_some());
    let lines = cri_lines(&st.log_path);
    let has =
        |s: &str, tag: &str, t: &str| lines.iter().any(|(a, b, c)| a == s && b == tag && c == t);
    assert!(has("stdout", "F", "hello"), "{lines:?}");
    assert!(has("stderr", "F", "oops"), "{lines:?}");
    assert!(has("stdout", "F", "/work/dir"), "{lines:?}");
    assert!(has("stdout", "F", "bar baz"), "{lines:?}");
    assert!(has("stdout", "F", "echo-pod"), "{lines:?}");
    assert!(has("stdout", "P", "partial"), "{lines:?}");

    // args alone replace the image's Cmd (`sh`), keeping its (empty) Entrypoint.
    let mut cfg = container_config("args", "");
    cfg.command = Vec::new();
    cfg.args = vec!["echo".into(), "from-args".into()];
    let id = run(&rt, &sb, cfg).await;
    let st = wait_exited(&rt, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, Some(0));
    assert!(cri_lines(&st.log_path).iter().any(|l| l.2 == "from-args"));

    // A bad command fails the start, and the container is Exited with StartError.
    let mut cfg = container_config("bad", "");
    cfg.command = vec!["/no/such/binary".into()];
    cfg.args = Vec::new();
    let id = rt.create_container(&sb, cfg).await.expect("create");
    let err = rt.start_container(&id).await.expect_err("start must fail");
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    let st = rt.container_status(&id).await.expect("status");
    assert_eq!(st.reason, Some(ExitReason::StartError));
    assert!(rt.start_container(&id).await.is_err(), "started twice");

    remove_all(&rt, &f, &sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_the_sandbox_namespaces_and_exec_works() {
    let f = Fixture::new();
    let rt = f.runtime();
    let sb = rt
        .run_pod_sandbox(sandbox_config("shared"))
        .await
        .expect("sandbox");
    let sb_status = rt.pod_sandbox_status(&sb).await.expect("status");
    assert_eq!(sb_status.state, SandboxState::Ready);
    let netns = sb_status.netns_path.expect("netns path");
    let a = run(&rt, &sb, container_config("a", "exec sleep 1000")).await;
    let b = run(&rt, &sb, container_config("b", "exec sleep 1000")).await;
    let pid = |st: &ContainerStatus| st.pid.expect("running pid");
    let (sa, sbb) = (
        rt.container_status(&a).await.expect("a"),
        rt.container_status(&b).await.expect("b"),
    );
    assert_eq!(sa.state, ContainerState::Running);
    let ino = |p: String| fs::metadata(p).expect("ns").ino();
    let net_a = ino(format!("/proc/{}/ns/net", pid(&sa)));
    assert_eq!(net_a, ino(format!("/proc/{}/ns/net", pid(&sbb))));
    assert_eq!(net_a, fs::metadata(&netns).expect("netns").ino());
    assert_ne!(net_a, ino("/proc/self/ns/net".into()));
    assert_eq!(
        ino(format!("/proc/{}/ns/uts", pid(&sa))),
        ino(format!("/proc/{}/ns/uts", pid(&sbb)))
    );
    // Each container has its own PID namespace.
    assert_ne!(
        ino(format!("/proc/{}/ns/pid", pid(&sa))),
        ino(format!("/proc/{}/ns/pid", pid(&sbb)))
    );

    let sh = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
    let out = rt
        .exec_sync(
            &a,
            sh("hostname; cat /proc/1/cmdline; echo e >&2; exit 3"),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 3);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "shared\nsleep\x001000\x00"
    );
    assert_eq!(out.stderr, b"e\n");
    let out = rt
        .exec_sync(
            &b,
            sh("readlink /proc/self/ns/net || busybox readlink /proc/self/ns/net"),
            Duration::from_secs(10),
        )
        .await
        .expect("exec");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("net:[{net_a}]")
    );
    let err = rt
        .exec_sync(&a, sh("sleep 30"), Duration::from_millis(300))
        .await
        .expect_err("timeout");
    assert!(matches!(err, RuntimeError::Timeout(_)), "{err}");

    // Streaming exec: stdin in, stdout out, exit code at the end.
    let mut proc = rt
        .exec(
            &a,
            ExecRequest {
                cmd: sh("cat; exit 7"),
                stdin: true,
                ..Default::default()
            },
        )
        .await
        .expect("exec");
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stdin = proc.stdin.take().expect("stdin pipe");
        stdin.write_all(b"ping\n").await.expect("write");
        drop(stdin);
        let mut out = String::new();
        proc.stdout.read_to_string(&mut out).await.expect("read");
        assert_eq!(out, "ping\n");
    }
    assert_eq!(proc.wait.await.expect("wait"), 7);

    let stats = rt.container_stats(&a).await.expect("stats");
    assert!(stats.memory_usage_bytes > 0 && stats.cpu_usage_core_nanoseconds > 0);

    let listed = rt
        .list_containers(ContainerFilter {
            sandbox_id: Some(sb.clone()),
            state: Some(ContainerState::Running),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(listed.len(), 2);
    remove_all(&rt, &f, &sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_ends_in_oom_kill() {
    let f = Fixture::new();
    let rt = f.runtime();
    let sb = rt
        .run_pod_sandbox(sandbox_config("oom"))
        .await
        .expect("sandbox");
    let mut cfg = container_config(
        "hog",
        "x=$(head -c 200m /dev/zero | busybox tr '\\000' a); echo survived",
    );
    cfg.resources.memory_limit_bytes = Some(32 << 20);
    let id = run(&rt, &sb, cfg).await;
    let st = wait_exited(&rt, &id, Duration::from_secs(30)).await;
    assert_eq!(st.reason, Some(ExitReason::OomKilled), "{st:?}");
    assert_eq!(st.exit_code, Some(137));
    remove_all(&rt, &f, &sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_after_the_grace_period() {
    let f = Fixture::new();
    let rt = f.runtime();
    let sb = rt
        .run_pod_sandbox(sandbox_config("stop"))
        .await
        .expect("sandbox");
    let id = run(
        &rt,
        &sb,
        container_config("stubborn", "trap '' TERM; while true; do sleep 1; done"),
    )
    .await;
    let t = Instant::now();
    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .expect("stop");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_secs(1),
        "killed before the grace: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let st = rt.container_status(&id).await.expect("status");
    assert_eq!(
        (st.state, st.exit_code),
        (ContainerState::Exited, Some(137))
    );

    // One that honours SIGTERM exits within the grace period, with its own code.
    let id = run(
        &rt,
        &sb,
        container_config(
            "polite",
            "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        ),
    )
    .await;
    let t = Instant::now();
    rt.stop_container(&id, Duration::from_secs(10))
        .await
        .expect("stop");
    assert!(t.elapsed() < Duration::from_secs(5));
    let st = rt.container_status(&id).await.expect("status");
    assert_eq!(st.exit_code, Some(0));
    rt.stop_container(&id, Duration::from_secs(1))
        .await
        .expect("idempotent");
    remove_all(&rt, &f, &sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_users_capabilities_and_read_only_root() {
    let f = Fixture::new();
    let rt = f.runtime();
    let sb = rt
        .run_pod_sandbox(sandbox_config("secure"))
        .await
        .expect("sandbox");
    let (rw, ro) = (f.dir.path().join("rw"), f.dir.path().join("ro"));
    fs::create_dir_all(&rw).expect("mkdir");
    fs::create_dir_all(&ro).expect("mkdir");
    fs::set_permissions(&rw, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    fs::write(ro.join("f"), "from-host").expect("write");
    let mut cfg = container_config(
        "secure",
        "cat /in/f > /out/copy; touch /in/x 2>/dev/null && echo ro-broken; \
         touch /x 2>/dev/null && echo root-broken; id -u; id -g; grep CapEff /proc/self/status",
    );
    cfg.mounts = vec![
        Mount {
            container_path: "/out".into(),
            host_path: rw.clone(),
            readonly: false,
        },
        Mount {
            container_path: "/in".into(),
            host_path: ro.clone(),
            readonly: true,
        },
    ];
    cfg.security.run_as_user = Some(1000);
    cfg.security.run_as_group = Some(1001);
    cfg.security.read_only_root_filesystem = true;
    let id = run(&rt, &sb, cfg).await;
    let st = wait_exited(&rt, &id, Duration::from_secs(10)).await;
    let out: Vec<String> = cri_lines(&st.log_path).into_iter().map(|l| l.2).collect();
    assert_eq!(st.exit_code, Some(0), "{out:?}");
    assert_eq!(
        fs::read_to_string(rw.join("copy")).ok().as_deref(),
        Some("from-host")
    );
    assert_eq!(out, ["1000", "1001", "CapEff:\t0000000000000000"]);

    // Root keeps Docker's default set minus what is dropped.
    let mut cfg = container_config("root", "grep CapEff /proc/self/status");
    cfg.security.capabilities_drop = vec!["ALL".into()];
    cfg.security.capabilities_add = vec!["NET_ADMIN".into(), "CHOWN".into()];
    let id = run(&rt, &sb, cfg).await;
    let st = wait_exited(&rt, &id, Duration::from_secs(10)).await;
    let out: Vec<String> = cri_lines(&st.log_path).into_iter().map(|l| l.2).collect();
    assert_eq!(out, ["CapEff:\t0000000000001001"]);
    remove_all(&rt, &f, &sb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_adopts_running_sandboxes_and_containers() {
    let f = Fixture::new();
    let (sb, id, pid) = {
        let rt = f.runtime();
        let sb = rt
            .run_pod_sandbox(sandbox_config("adopt"))
            .await
            .expect("sandbox");
        let id = run(&rt, &sb, container_config("main", "exec sleep 1000")).await;
        let pid = rt.container_status(&id).await.expect("status").pid;
        (sb, id, pid)
    };
    // The first runtime instance is gone (as after an agent restart); the processes are not.
    let rt = f.runtime();
    let sandboxes = rt.list_pod_sandboxes().await.expect("list");
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].id, sb);
    assert_eq!(sandboxes[0].state, SandboxState::Ready);
    assert_eq!(
        sandboxes[0].labels.get("app").map(String::as_str),
        Some("adopt")
    );
    let containers = rt
        .list_containers(ContainerFilter {
            labels: BTreeMap::from([("container".to_string(), "main".to_string())]),
            ..Default::default()
        })
        .await
        .expect("list");
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0].id, id);
    assert_eq!(containers[0].state, ContainerState::Running);
    assert_eq!(containers[0].pid, pid);
    let out = rt
        .exec_sync(&id, vec!["hostname".into()], Duration::from_secs(10))
        .await
        .expect("exec");
    assert_eq!(out.stdout, b"adopt\n");
    rt.stop_pod_sandbox(&sb).await.expect("stop");
    assert_eq!(
        rt.pod_sandbox_status(&sb).await.expect("status").state,
        SandboxState::NotReady
    );
    assert_eq!(
        rt.container_status(&id).await.expect("status").state,
        ContainerState::Exited
    );
    remove_all(&rt, &f, &sb).await;
    rt.remove_pod_sandbox(&sb)
        .await
        .expect("removing twice is fine");
}
