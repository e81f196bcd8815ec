//! The runtime conformance suite: behavioural cases every [`ContainerRuntime`] must pass, run
//! by `tests/embedded.rs` (the embedded runtime) and `tests/cri_containerd.rs` (containerd +
//! runc through CRI). A case takes a [`Harness`], which owns the runtime's state, knows how to
//! find what the runtime started and checks that removal left nothing behind.
//!
//! Cases run real containers from the offline busybox image; they need root.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::types::*;
use crate::{ContainerRuntime, RuntimeError};

/// What a runtime under test provides to the cases.
#[async_trait]
pub trait Harness: Send + Sync {
    /// A new runtime instance over the harness's state (two calls give two instances, as an
    /// agent restart does).
    async fn runtime(&self) -> Arc<dyn ContainerRuntime>;
    /// The busybox image reference, present in the runtime's image store.
    fn image(&self) -> &str;
    /// A scratch directory for host files the cases mount.
    fn scratch(&self) -> &Path;
    /// Every host pid the runtime runs for this harness now (sandbox holders, containers,
    /// monitors), to check they are gone after removal.
    async fn pids(&self, rt: &dyn ContainerRuntime) -> Vec<u32>;
    /// After everything was removed: no process in `pids`, cgroup, mount or state is left.
    async fn assert_clean(&self, rt: &dyn ContainerRuntime, pids: &[u32]);
}

/// A sandbox config for pod `name` (hostname = name, label `app=name`).
pub fn sandbox_config(name: &str) -> SandboxConfig {
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

/// A container running `sh -c script` from `image`, labelled `container=name`.
pub fn container_config(image: &str, name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: ContainerMetadata {
            name: name.into(),
            attempt: 0,
        },
        image: image.into(),
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

/// Creates and starts a container.
pub async fn run(
    rt: &dyn ContainerRuntime,
    sb: &SandboxId,
    config: ContainerConfig,
) -> ContainerId {
    let id = rt.create_container(sb, config).await.expect("create");
    rt.start_container(&id).await.expect("start");
    id
}

/// Polls until the container has exited (panics after `limit`).
pub async fn wait_exited(
    rt: &dyn ContainerRuntime,
    id: &ContainerId,
    limit: Duration,
) -> ContainerStatus {
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
pub fn cri_lines(path: &Path) -> Vec<(String, String, String)> {
    let text = fs::read_to_string(path).expect("log file");
    text.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let ts = parts.next().unwrap_or("");
            // RFC 3339 with nanoseconds; containerd drops trailing zeros of the fraction.
            assert!(
                ts.len() >= 20 && ts.len() <= 35 && ts.as_bytes()[10] == b'T',
                "bad timestamp in {l:?}"
            );
            let f = |p: Option<&str>| p.unwrap_or("").to_string();
            (f(parts.next()), f(parts.next()), f(parts.next()))
        })
        .collect()
}

/// Removes the sandbox and checks that nothing is left.
pub async fn remove_all(h: &dyn Harness, rt: &dyn ContainerRuntime, sb: &SandboxId) {
    let pids = h.pids(rt).await;
    assert!(!pids.is_empty(), "the harness found no process to check");
    rt.remove_pod_sandbox(sb).await.expect("remove sandbox");
    h.assert_clean(rt, &pids).await;
}

/// Logs (both streams, partial last line), env, working dir, hostname, args replacing the
/// image's Cmd, and a start error.
pub async fn echo_logs_env_workdir_and_args(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("echo-pod"))
        .await
        .expect("sandbox");
    let mut cfg = container_config(
        h.image(),
        "echo",
        "echo hello; echo oops >&2; pwd; echo \"$FOO\"; hostname; printf partial",
    );
    cfg.working_dir = Some("/work/dir".into());
    cfg.env = vec![("FOO".into(), "bar baz".into())];
    let id = run(rt, &sb, cfg).await;
    let st = wait_exited(rt, &id, Duration::from_secs(10)).await;
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
    let mut cfg = container_config(h.image(), "args", "");
    cfg.command = Vec::new();
    cfg.args = vec!["echo".into(), "from-args".into()];
    let id = run(rt, &sb, cfg).await;
    let st = wait_exited(rt, &id, Duration::from_secs(10)).await;
    assert_eq!(st.exit_code, Some(0));
    assert!(cri_lines(&st.log_path).iter().any(|l| l.2 == "from-args"));

    // A bad command fails the start, and the container is Exited with StartError.
    let mut cfg = container_config(h.image(), "bad", "");
    cfg.command = vec!["/no/such/binary".into()];
    cfg.args = Vec::new();
    let id = rt.create_container(&sb, cfg).await.expect("create");
    let err = rt.start_container(&id).await.expect_err("start must fail");
    assert!(err.to_string().contains("/no/such/binary"), "{err}");
    let st = rt.container_status(&id).await.expect("status");
    assert_eq!(st.reason, Some(ExitReason::StartError));
    assert!(rt.start_container(&id).await.is_err(), "started twice");

    remove_all(h, rt, &sb).await;
}

/// Containers share the sandbox's network and UTS namespaces (and its `netns_path`), not their
/// PID namespaces; exec_sync (output, exit code, timeout), streaming exec, stats, listing.
pub async fn containers_share_the_sandbox_namespaces_and_exec_works(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("shared"))
        .await
        .expect("sandbox");
    let sb_status = rt.pod_sandbox_status(&sb).await.expect("status");
    assert_eq!(sb_status.state, SandboxState::Ready);
    let netns = sb_status.netns_path.expect("netns path");
    let a = run(rt, &sb, container_config(h.image(), "a", "exec sleep 1000")).await;
    let b = run(rt, &sb, container_config(h.image(), "b", "exec sleep 1000")).await;
    let pid = |st: &ContainerStatus| st.pid.expect("running pid");
    let (sa, sbb) = (
        rt.container_status(&a).await.expect("a"),
        rt.container_status(&b).await.expect("b"),
    );
    assert_eq!(sa.state, ContainerState::Running);
    assert_eq!(sa.sandbox_id, sb);
    let ino = |p: String| fs::metadata(p).expect("ns").ino();
    let net_a = ino(format!("/proc/{}/ns/net", pid(&sa)));
    assert_eq!(net_a, ino(format!("/proc/{}/ns/net", pid(&sbb))));
    assert_eq!(net_a, fs::metadata(&netns).expect("netns").ino());
    assert_ne!(net_a, ino("/proc/self/ns/net".into()));
    assert_eq!(
        ino(format!("/proc/{}/ns/uts", pid(&sa))),
        ino(format!("/proc/{}/ns/uts", pid(&sbb)))
    );
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
    let t = Instant::now();
    let err = rt
        .exec_sync(&a, sh("sleep 30"), Duration::from_millis(300))
        .await
        .expect_err("timeout");
    assert!(matches!(err, RuntimeError::Timeout(_)), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // Streaming exec: stdin in, stdout and stderr out, exit code at the end.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut proc = rt
        .exec(
            &a,
            ExecRequest {
                cmd: sh("read line; echo \"got $line\"; echo err >&2; exit 7"),
                stdin: true,
                ..Default::default()
            },
        )
        .await
        .expect("exec");
    let mut stdin = proc.stdin.take().expect("stdin pipe");
    stdin.write_all(b"ping\n").await.expect("write");
    let (mut out, mut err) = (String::new(), String::new());
    let (r1, r2) = tokio::join!(
        proc.stdout.read_to_string(&mut out),
        proc.stderr.read_to_string(&mut err)
    );
    r1.expect("stdout");
    r2.expect("stderr");
    assert_eq!((out.as_str(), err.as_str()), ("got ping\n", "err\n"));
    assert_eq!(proc.wait.await.expect("wait"), 7);
    drop(stdin);

    // Closing stdin reaches the process (EOF): `kubectl exec -i … cat` and `kubectl cp` end.
    let mut proc = rt
        .exec(
            &a,
            ExecRequest {
                cmd: sh("cat; exit 5"),
                stdin: true,
                ..Default::default()
            },
        )
        .await
        .expect("exec");
    let mut stdin = proc.stdin.take().expect("stdin pipe");
    stdin.write_all(b"pong\n").await.expect("write");
    drop(stdin);
    let mut out = String::new();
    proc.stdout.read_to_string(&mut out).await.expect("read");
    assert_eq!(out, "pong\n");
    assert_eq!(proc.wait.await.expect("wait"), 5);

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
    remove_all(h, rt, &sb).await;
}

/// A memory limit ends in an OOM kill, reported as OOMKilled with 137.
pub async fn memory_limit_ends_in_oom_kill(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("oom"))
        .await
        .expect("sandbox");
    let mut cfg = container_config(
        h.image(),
        "hog",
        "x=$(head -c 200m /dev/zero | busybox tr '\\000' a); echo survived",
    );
    cfg.resources.memory_limit_bytes = Some(32 << 20);
    let id = run(rt, &sb, cfg).await;
    let st = wait_exited(rt, &id, Duration::from_secs(30)).await;
    assert_eq!(st.reason, Some(ExitReason::OomKilled), "{st:?}");
    assert_eq!(st.exit_code, Some(137));
    remove_all(h, rt, &sb).await;
}

/// Stop sends SIGTERM, waits the grace period, then kills; idempotent.
pub async fn stop_kills_after_the_grace_period(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("stop"))
        .await
        .expect("sandbox");
    let script = "trap '' TERM; while true; do sleep 1; done";
    let id = run(rt, &sb, container_config(h.image(), "stubborn", script)).await;
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
    let script = "trap 'exit 0' TERM; while true; do sleep 0.1; done";
    let id = run(rt, &sb, container_config(h.image(), "polite", script)).await;
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
    remove_all(h, rt, &sb).await;
}

/// Bind mounts (read-write and read-only), uid/gid, read-only root, capabilities.
pub async fn mounts_users_capabilities_and_read_only_root(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("secure"))
        .await
        .expect("sandbox");
    let (rw, ro) = (h.scratch().join("rw"), h.scratch().join("ro"));
    fs::create_dir_all(&rw).expect("mkdir");
    fs::create_dir_all(&ro).expect("mkdir");
    fs::set_permissions(&rw, std::os::unix::fs::PermissionsExt::from_mode(0o777)).expect("chmod");
    fs::write(ro.join("f"), "from-host").expect("write");
    let mut cfg = container_config(
        h.image(),
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
    let id = run(rt, &sb, cfg).await;
    let st = wait_exited(rt, &id, Duration::from_secs(10)).await;
    let out: Vec<String> = cri_lines(&st.log_path).into_iter().map(|l| l.2).collect();
    assert_eq!(st.exit_code, Some(0), "{out:?}");
    assert_eq!(
        fs::read_to_string(rw.join("copy")).ok().as_deref(),
        Some("from-host")
    );
    assert_eq!(out, ["1000", "1001", "CapEff:\t0000000000000000"]);

    // Root keeps Docker's default set minus what is dropped.
    let mut cfg = container_config(h.image(), "root", "grep CapEff /proc/self/status");
    cfg.security.capabilities_drop = vec!["ALL".into()];
    cfg.security.capabilities_add = vec!["NET_ADMIN".into(), "CHOWN".into()];
    let id = run(rt, &sb, cfg).await;
    let st = wait_exited(rt, &id, Duration::from_secs(10)).await;
    let out: Vec<String> = cri_lines(&st.log_path).into_iter().map(|l| l.2).collect();
    assert_eq!(out, ["CapEff:\t0000000000001001"]);
    remove_all(h, rt, &sb).await;
}

/// A second runtime instance lists, execs in and stops what the first started; removal is
/// idempotent.
pub async fn a_new_runtime_adopts_running_sandboxes_and_containers(h: &dyn Harness) {
    let (sb, id, pid) = {
        let rt = h.runtime().await;
        let sb = rt
            .run_pod_sandbox(sandbox_config("adopt"))
            .await
            .expect("sandbox");
        let id = run(
            &*rt,
            &sb,
            container_config(h.image(), "main", "exec sleep 1000"),
        )
        .await;
        let pid = rt.container_status(&id).await.expect("status").pid;
        assert!(pid.is_some(), "a running container has a pid");
        (sb, id, pid)
    };
    // The first runtime instance is gone (as after an agent restart); the processes are not.
    let rt = h.runtime().await;
    let rt = &*rt;
    let sandboxes = rt.list_pod_sandboxes().await.expect("list");
    assert_eq!(sandboxes.len(), 1);
    assert_eq!(sandboxes[0].id, sb);
    assert_eq!(sandboxes[0].state, SandboxState::Ready);
    assert_eq!(
        sandboxes[0].labels.get("app").map(String::as_str),
        Some("adopt")
    );
    assert_eq!(sandboxes[0].hostname, "adopt");
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
    // Taken while everything runs: stopping may already end the runtime's monitors.
    let pids = h.pids(rt).await;
    assert!(pid.is_some_and(|p| pids.contains(&p)), "{pids:?}");
    rt.stop_pod_sandbox(&sb).await.expect("stop");
    assert_eq!(
        rt.pod_sandbox_status(&sb).await.expect("status").state,
        SandboxState::NotReady
    );
    assert_eq!(
        rt.container_status(&id).await.expect("status").state,
        ContainerState::Exited
    );
    rt.remove_pod_sandbox(&sb).await.expect("remove sandbox");
    h.assert_clean(rt, &pids).await;
    rt.remove_pod_sandbox(&sb)
        .await
        .expect("removing twice is fine");
}

/// Reads `out` until what it produced contains `needle` (panics after 20 s or at its end);
/// returns everything read.
async fn read_until(out: &mut ExecReader, needle: &str) -> String {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let n = tokio::time::timeout_at(deadline.into(), out.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {needle:?} in time: {:?}",
                    String::from_utf8_lossy(&seen)
                )
            })
            .expect("read");
        assert!(
            n > 0,
            "ended without {needle:?}: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// When a runtime gives an exec's terminal the size of [`ExecRequest::terminal_size`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitialSize {
    /// Before the process starts: its very first look (`stty size` as the first command)
    /// sees it. The embedded runtime sizes the pseudo-terminal when it makes it.
    BeforeStart,
    /// Right after the process started. CRI's `ExecRequest` has no field for a size, so the
    /// size goes as the first message on the resize stream, and containerd (1.6 to 2.x, like
    /// the kubelet in front of it upstream) applies resizes only once `Start` has returned: a
    /// look in the first milliseconds sees a terminal without a size.
    AfterStart,
}

/// A shell script (for `sh -c`) that waits up to 10 s for its terminal to be `rows cols`,
/// then prints `label: ` and what `stty size` says.
fn await_size(label: &str, rows: u16, cols: u16) -> String {
    format!(
        "i=0; until [ \"$(stty size 2>/dev/null)\" = \"{rows} {cols}\" ] || [ $i -ge 100 ]; \
         do i=$((i+1)); sleep 0.1; done; echo \"{label}: $(stty size 2>&1)\""
    )
}

/// An exec on a terminal: the process gets the size asked for (from its first look, or right
/// after it started: `initial`), a resize reaches it, its stdin and both outputs are the
/// terminal, and its exit code arrives.
pub async fn exec_on_a_terminal_has_the_clients_size(h: &dyn Harness, initial: InitialSize) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("tty"))
        .await
        .expect("sandbox");
    let id = run(
        rt,
        &sb,
        container_config(h.image(), "main", "exec sleep 1000"),
    )
    .await;
    let script = format!(
        "echo \"first: $(stty size 2>&1)\"; {}; tty; read x; {}; echo err >&2; exit 4",
        await_size("sized", 17, 91),
        await_size("resized", 40, 120),
    );
    let mut proc = rt
        .exec(
            &id,
            ExecRequest {
                cmd: vec!["sh".into(), "-c".into(), script],
                stdin: true,
                tty: true,
                terminal_size: Some((91, 17)),
            },
        )
        .await
        .expect("exec");
    let start = read_until(&mut proc.stdout, "/dev/pts/").await;
    if initial == InitialSize::BeforeStart {
        assert!(start.contains("first: 17 91\r\n"), "{start:?}");
    }
    assert!(start.contains("sized: 17 91\r\n"), "{start:?}");
    let resize = proc.resize.take().expect("a terminal can be resized");
    resize(120, 40).expect("resize");
    let mut stdin = proc.stdin.take().expect("stdin");
    stdin.write_all(b"go\n").await.expect("stdin");
    let rest = read_until(&mut proc.stdout, "err").await;
    assert!(rest.contains("resized: 40 120\r\n"), "{rest:?}");
    let mut tail = Vec::new();
    proc.stdout.read_to_end(&mut tail).await.expect("stdout");
    let mut err = Vec::new();
    proc.stderr.read_to_end(&mut err).await.expect("stderr");
    assert!(err.is_empty(), "a terminal has one output: {err:?}");
    assert_eq!(proc.wait.await.expect("exit code"), 4);
    drop(stdin);
    remove_all(h, rt, &sb).await;
}
