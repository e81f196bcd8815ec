//! Helpers for tests that run real containers (as root): a server whose node has the offline
//! busybox test image, and the clean-up of what containers outlive the server.

use std::process::Command;
use std::time::{Duration, Instant};

use rudder_runtime::testing::TestImage;

use super::{KUBECTLS, Server, json};

/// Polls `f` every 300 ms until it returns a value, failing after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Removes every container and sandbox the node left in `data` (even when the test fails):
/// containers outlive the agent by design, so stopping the server alone would leak them.
pub fn remove_containers(data: &std::path::Path) {
    // A thread of its own: the caller may be a test's async runtime, which cannot block.
    let data = data.to_owned();
    let _ = std::thread::spawn(move || remove_containers_now(&data)).join();
}

fn remove_containers_now(data: &std::path::Path) {
    use rudder_runtime::ContainerRuntime;
    use rudder_runtime::embedded::{EmbeddedRuntime, RuntimeOptions, ShimCommand};
    let Ok(images) = rudder_runtime::images::ImageStore::open(data.join("images")) else {
        return;
    };
    let opts = RuntimeOptions {
        root: data.join("containers"),
        shim: ShimCommand {
            program: env!("CARGO_BIN_EXE_rudder").into(),
            args: vec!["shim".into()],
        },
        cgroup_parent: "rudder".into(),
    };
    let Ok(rt) = EmbeddedRuntime::new(opts, images) else {
        return;
    };
    let Ok(tokio_rt) = tokio::runtime::Runtime::new() else {
        return;
    };
    tokio_rt.block_on(async {
        for c in rt
            .list_containers(Default::default())
            .await
            .unwrap_or_default()
        {
            let _ = rt.stop_container(&c.id, Duration::ZERO).await;
            let _ = rt.remove_container(&c.id).await;
        }
        for sb in rt.list_pod_sandboxes().await.unwrap_or_default() {
            let _ = rt.stop_pod_sandbox(&sb.id).await;
            let _ = rt.remove_pod_sandbox(&sb.id).await;
        }
    });
}

/// Builds the busybox test image offline (from busybox-static) in `work` and imports it with
/// `rudder image import` into the node store of `data_dir`.
pub fn import_busybox(work: &std::path::Path, data_dir: &std::path::Path) {
    let archive = work.join("busybox.tar");
    TestImage::busybox()
        .and_then(|i| i.write_oci_layout(&archive, "docker.io/library/busybox:1.36"))
        .expect("build the busybox image");
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["image", "import"])
        .arg(&archive)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("rudder image import");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("busybox:1.36"));
}

/// A server whose node has the busybox test image (built offline from busybox-static and
/// imported with `rudder image import`), and the node's name.
pub fn node_with_busybox() -> (Server, String) {
    // The server removes its node's containers when it stops (`Server::start`).
    let s = Server::start();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    import_busybox(s.dir.path(), &s.data_dir());

    let node = wait_for("the node", 30, || {
        let list = json(&s.ok_kubectl(k, &["get", "nodes", "-o", "json"]));
        list["items"][0]["metadata"]["name"]
            .as_str()
            .map(str::to_owned)
    });

    (s, node)
}

/// A container `name` of the busybox test image (imported, never pulled) running `command`.
pub fn busybox_container(name: &str, command: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "name": name, "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
        "command": command,
    })
}

/// A pod `name` bound to `node` with `containers`. Its grace period is one second: a shell as
/// PID 1 ignores SIGTERM, so deleting the pod waits that period out.
pub fn pod_on(node: &str, name: &str, containers: &[serde_json::Value]) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": containers,
        },
    })
}

/// A [`pod_on`] `node` whose one container, `main`, runs `sh -c script`.
pub fn busybox_pod(node: &str, name: &str, script: &str) -> serde_json::Value {
    pod_on(
        node,
        name,
        &[busybox_container("main", &["sh", "-c", script])],
    )
}

/// Waits (up to `secs`) until pod `name` in the default namespace runs; the pod then.
pub fn running(s: &Server, k: &str, name: &str, secs: u64) -> serde_json::Value {
    wait_for(&format!("pod {name} to run"), secs, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", name, "-o", "json"]));
        (p["status"]["phase"] == "Running").then_some(p)
    })
}

/// Sets the Node's Ready condition to Unknown through its status, as the node lifecycle
/// controller does.
pub fn mark_ready_unknown(s: &Server, kubectl: &str, node: &str) {
    let patch = r#"{"status":{"conditions":[{"type":"Ready","status":"Unknown","reason":"NodeStatusUnknown","message":"Kubelet stopped posting node status."}]}}"#;
    s.ok_kubectl(
        kubectl,
        &[
            "patch",
            "node",
            node,
            "--subresource=status",
            "--type=strategic",
            "-p",
            patch,
        ],
    );
}

/// The status of the Node's Ready condition.
pub fn ready_status(s: &Server, kubectl: &str, node: &str) -> String {
    let n = json(&s.ok_kubectl(kubectl, &["get", "node", node, "-o", "json"]));
    n["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}
