//! The process-namespace checks every node agent must pass whatever runs its containers (the
//! embedded runtime, containerd), with real kubectl: `kubectl debug --target` and
//! `shareProcessNamespace: true`.

use super::node::wait_for;
use super::{Server, json};

/// A pod `name` on `node` whose containers run `sleep` with recognisable arguments; with `share`
/// (`shareProcessNamespace`) they see each other's processes.
fn sleepers(node: &str, name: &str, share: bool) -> String {
    let c = |n: &str, secs: &str| {
        serde_json::json!({
            "name": n, "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", format!("exec sleep {secs}")],
        })
    };
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "shareProcessNamespace": share,
            "containers": [c("main", "31337"), c("side", "31338")],
        },
    })
    .to_string()
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

/// `kubectl debug --target=main` (with each of `kubectls`) puts the debug container in main's
/// PID namespace, whose PID 1 is main's process, and without `--target` it has its own; in a
/// `shareProcessNamespace` pod one container sees the other's process.
pub fn check_debug_target_and_shared(s: &Server, kubectls: &[&str], node: &str) {
    let newest = kubectls[kubectls.len() - 1];
    s.create(newest, None, &sleepers(node, "apart", false));
    s.create(newest, None, &sleepers(node, "together", true));
    for pod in ["apart", "together"] {
        wait_for(&format!("pod {pod} to run"), 90, || {
            let p = json(&s.ok_kubectl(newest, &["get", "pod", pod, "-o", "json"]));
            (p["status"]["phase"] == "Running").then_some(())
        });
    }
    for (i, k) in kubectls.iter().enumerate() {
        // `kubectl debug --target`: the debug container is in main's PID namespace, whose
        // PID 1 is main's sleep; side's processes are not there.
        let name = format!("dbg-{i}");
        s.ok_kubectl(
            k,
            &[
                "debug",
                "apart",
                "--image=busybox:1.36",
                "--image-pull-policy=IfNotPresent",
                "--target=main",
                "-c",
                &name,
                "--",
                "ps",
            ],
        );
        assert_eq!(ephemeral_exit(s, k, "apart", &name), 0);
        let ps = s.ok_kubectl(k, &["logs", "apart", "-c", &name]);
        let line = ps.lines().find(|l| l.ends_with("sleep 31337"));
        assert_eq!(
            line.and_then(|l| l.split_whitespace().next()),
            Some("1"),
            "{k}: {ps}"
        );
        assert!(!ps.contains("sleep 31338"), "{k}: {ps}");
        // Without --target it has a namespace of its own.
        let name = format!("alone-{i}");
        s.ok_kubectl(
            k,
            &[
                "debug",
                "apart",
                "--image=busybox:1.36",
                "--image-pull-policy=IfNotPresent",
                "-c",
                &name,
                "--",
                "ps",
            ],
        );
        assert_eq!(ephemeral_exit(s, k, "apart", &name), 0);
        let ps = s.ok_kubectl(k, &["logs", "apart", "-c", &name]);
        assert!(!ps.contains("sleep 3133"), "{k}: {ps}");

        // shareProcessNamespace: each container sees the other's process.
        let ps = s.ok_kubectl(k, &["exec", "together", "-c", "side", "--", "ps"]);
        assert!(
            ps.contains("sleep 31337") && ps.contains("sleep 31338"),
            "{k}: {ps}"
        );
    }
}
