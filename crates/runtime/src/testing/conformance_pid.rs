//! Conformance cases for shared PID namespaces: a debug container in its target's
//! (`kubectl debug --target`, CRI `TARGET`) and a pod whose containers share one
//! (`shareProcessNamespace: true`, CRI `POD`). Run like [`super::conformance`] by
//! `tests/embedded.rs` and `tests/cri_containerd.rs`.

use std::time::Duration;

use super::conformance::{Harness, container_config, remove_all, run, sandbox_config, wait_exited};
use crate::ContainerRuntime;
use crate::types::*;

/// The log of an exited container, its CRI framing stripped.
fn output(st: &ContainerStatus) -> String {
    super::conformance::cri_lines(&st.log_path)
        .into_iter()
        .map(|(_, _, text)| text + "\n")
        .collect()
}

/// Runs `script` in a new container of `sb` in PID namespace `pid`, to its end; its output.
async fn run_to_end(
    rt: &dyn ContainerRuntime,
    h: &dyn Harness,
    sb: &SandboxId,
    name: &str,
    pid: PidNamespace,
    script: &str,
) -> String {
    let mut cfg = container_config(h.image(), name, script);
    cfg.pid_namespace = pid;
    let id = run(rt, sb, cfg).await;
    let st = wait_exited(rt, &id, Duration::from_secs(30)).await;
    let text = output(&st);
    assert_eq!(st.exit_code, Some(0), "{name}: {text}");
    text
}

/// The `ps` line (busybox: `PID USER TIME COMMAND`) whose command is `command`: its PID.
fn pid_of(ps: &str, command: &str) -> Option<u32> {
    ps.lines()
        .find(|l| l.trim_end().ends_with(command))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
}

/// A container created with the target's PID namespace sees the target's processes (`ps`, its
/// root through `/proc/1/root`), a container of its own does not; a debug container's background
/// process does not outlive its main process.
pub async fn a_debug_container_sees_its_targets_processes(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("debug-target"))
        .await
        .expect("sandbox");
    let target = run(
        rt,
        &sb,
        container_config(
            h.image(),
            "main",
            "echo target-root > /tmp/mark; exec sleep 31337",
        ),
    )
    .await;
    // The target's main process runs sleep once its marker file is written.
    let probe = vec!["cat".to_string(), "/tmp/mark".to_string()];
    let mut ready = false;
    for _ in 0..100 {
        let out = rt
            .exec_sync(&target, probe.clone(), Duration::from_secs(10))
            .await
            .expect("exec");
        if out.exit_code == 0 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the target never wrote its marker");

    let seen = run_to_end(
        rt,
        h,
        &sb,
        "dbg",
        PidNamespace::Target(target.clone()),
        "ps; echo root-$(cat /proc/1/root/tmp/mark)",
    )
    .await;
    // The target's main process is PID 1 of its namespace, and the debug container is in it.
    assert_eq!(pid_of(&seen, "sleep 31337"), Some(1), "{seen}");
    assert!(seen.contains("root-target-root\n"), "{seen}");

    let alone = run_to_end(rt, h, &sb, "alone", PidNamespace::Container, "ps").await;
    assert_eq!(pid_of(&alone, "sleep 31337"), None, "{alone}");

    // A background process keeps the debug container's output open; when its main process
    // ends, it ends too, and the container is reported exited.
    run_to_end(
        rt,
        h,
        &sb,
        "dbg-bg",
        PidNamespace::Target(target.clone()),
        "sleep 4242 & echo started",
    )
    .await;
    let ps = vec!["ps".to_string()];
    let mut after = String::new();
    for _ in 0..100 {
        let out = rt
            .exec_sync(&target, ps.clone(), Duration::from_secs(10))
            .await
            .expect("exec ps");
        after = String::from_utf8_lossy(&out.stdout).into_owned();
        if pid_of(&after, "sleep 4242").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pid_of(&after, "sleep 4242"), None, "{after}");
    assert_eq!(pid_of(&after, "sleep 31337"), Some(1), "{after}");

    let st = rt.container_status(&target).await.expect("target status");
    assert_eq!(st.state, ContainerState::Running, "the target runs on");
    remove_all(h, rt, &sb).await;
}

/// With `share_pid_namespace`, the pod's containers see each other's processes, none of them is
/// PID 1 (the sandbox's process is, as pause is under the kubelet), and a container's main
/// process ending takes its background processes with it.
pub async fn containers_of_a_pod_share_one_process_namespace(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(SandboxConfig {
            share_pid_namespace: true,
            ..sandbox_config("shared-pid")
        })
        .await
        .expect("sandbox");
    let mut main = container_config(h.image(), "main", "exec sleep 31338");
    main.pid_namespace = PidNamespace::Pod;
    let main = run(rt, &sb, main).await;

    let mut seen = String::new();
    for attempt in 0..50 {
        seen = run_to_end(
            rt,
            h,
            &sb,
            &format!("peek-{attempt}"),
            PidNamespace::Pod,
            "ps",
        )
        .await;
        if pid_of(&seen, "sleep 31338").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sleeper = pid_of(&seen, "sleep 31338");
    assert!(
        sleeper.is_some_and(|p| p > 1),
        "another container's process, not PID 1: {seen}"
    );
    assert!(
        seen.lines()
            .any(|l| l.split_whitespace().next() == Some("1")),
        "the pod's PID 1 is listed: {seen}"
    );

    // Exec into the main container sees the same namespace.
    let out = rt
        .exec_sync(&main, vec!["ps".to_string()], Duration::from_secs(10))
        .await
        .expect("exec ps");
    let ps = String::from_utf8_lossy(&out.stdout);
    assert_eq!(pid_of(&ps, "sleep 31338"), sleeper, "{ps}");

    // Without the pod's namespace a container sees only its own processes.
    let alone = run_to_end(rt, h, &sb, "alone", PidNamespace::Container, "ps").await;
    assert_eq!(pid_of(&alone, "sleep 31338"), None, "{alone}");

    run_to_end(
        rt,
        h,
        &sb,
        "bg",
        PidNamespace::Pod,
        "sleep 4243 & echo started",
    )
    .await;
    let mut ps = String::new();
    for _ in 0..100 {
        let out = rt
            .exec_sync(&main, vec!["ps".to_string()], Duration::from_secs(10))
            .await
            .expect("exec ps");
        ps = String::from_utf8_lossy(&out.stdout).into_owned();
        if pid_of(&ps, "sleep 4243").is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(pid_of(&ps, "sleep 4243"), None, "{ps}");
    remove_all(h, rt, &sb).await;
}
