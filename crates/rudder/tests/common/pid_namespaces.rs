//! The process-namespace checks every node agent must pass whatever runs its containers (the
//! embedded runtime, containerd), with real kubectl: `kubectl debug --target` and
//! `shareProcessNamespace: true`.

use super::node::{busybox_container, pod_on, running, wait_for};
use super::{Server, json};

/// A pod `name` on `node` whose containers run `sleep` with recognisable arguments; with `share`
/// (`shareProcessNamespace`) they see each other's processes.
fn sleepers(node: &str, name: &str, share: bool) -> String {
    let c =
        |n: &str, secs: &str| busybox_container(n, &["sh", "-c", &format!("exec sleep {secs}")]);
    let mut pod = pod_on(node, name, &[c("main", "31337"), c("side", "31338")]);
    pod["spec"]["shareProcessNamespace"] = share.into();
    pod.to_string()
}

/// The exit code of ephemeral container `name` of `pod`, once it terminated.
fn ephemeral_exit(s: &Server, k: &str, pod: &str, name: &str) -> i64 {
    wait_for(&format!("{name} to finish"), 60, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", pod, "-o", "json"]));
        p["status"]["ephemeralContainerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .and_then(|c| c["state"]["terminated"]["exitCode"].as_i64())
    })
}

/// `kubectl debug POD` with a busybox container `name` that runs `ps` (in `target`'s PID
/// namespace, if given); once it finished, what it printed.
fn debug_ps(s: &Server, k: &str, pod: &str, name: &str, target: Option<&str>) -> String {
    let target = target.map(|t| format!("--target={t}"));
    let mut args = vec![
        "debug",
        pod,
        "--image=busybox:1.36",
        "--image-pull-policy=IfNotPresent",
    ];
    args.extend(target.as_deref());
    args.extend(["-c", name, "--", "ps"]);
    s.ok_kubectl(k, &args);
    assert_eq!(ephemeral_exit(s, k, pod, name), 0);
    s.ok_kubectl(k, &["logs", pod, "-c", name])
}

/// `kubectl debug --target=main` (with each of `kubectls`) puts the debug container in main's
/// PID namespace, whose PID 1 is main's process, and without `--target` it has its own; in a
/// `shareProcessNamespace` pod one container sees the other's process.
pub fn check_debug_target_and_shared(s: &Server, kubectls: &[&str], node: &str) {
    let newest = kubectls[kubectls.len() - 1];
    s.create(newest, None, &sleepers(node, "apart", false));
    s.create(newest, None, &sleepers(node, "together", true));
    for pod in ["apart", "together"] {
        running(s, newest, pod, 90);
    }
    for (i, k) in kubectls.iter().enumerate() {
        // `kubectl debug --target`: the debug container is in main's PID namespace, whose
        // PID 1 is main's sleep; side's processes are not there.
        let ps = debug_ps(s, k, "apart", &format!("dbg-{i}"), Some("main"));
        let line = ps.lines().find(|l| l.ends_with("sleep 31337"));
        assert_eq!(
            line.and_then(|l| l.split_whitespace().next()),
            Some("1"),
            "{k}: {ps}"
        );
        assert!(!ps.contains("sleep 31338"), "{k}: {ps}");
        // Without --target it has a namespace of its own.
        let ps = debug_ps(s, k, "apart", &format!("alone-{i}"), None);
        assert!(!ps.contains("sleep 3133"), "{k}: {ps}");

        // shareProcessNamespace: each container sees the other's process.
        let ps = s.ok_kubectl(k, &["exec", "together", "-c", "side", "--", "ps"]);
        assert!(
            ps.contains("sleep 31337") && ps.contains("sleep 31338"),
            "{k}: {ps}"
        );
    }
}
