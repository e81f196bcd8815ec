//! End to end, as root: a second machine's agent joins a running server with a bootstrap token
//! (`rudder token create`, `rudder agent --token --ca-cert-hash`), gets its own certificates,
//! registers its Node and runs a pod bound to it; a wrong CA pin or token is refused, and a
//! restarted agent reuses its credentials.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::node::{import_busybox, remove_containers, wait_for};
use common::{KUBECTLS, Server, free_port, remove_pod_network};

/// A `rudder agent` process, stopped and cleaned up on drop.
struct Agent {
    child: Option<Child>,
    dir: std::path::PathBuf,
    bridge: String,
}

impl Agent {
    fn start(dir: &std::path::Path, name: &str, port: u16, bridge: &str, join: &[String]) -> Agent {
        let log = std::fs::File::create(dir.join("agent.log")).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .arg("agent")
            .args(join)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--node-name", name, "--kubelet-port", &port.to_string()])
            // The test server's pod range has room for its own node only; the proxy would
            // use the machine-wide default table.
            .args([
                "--pod-bridge",
                bridge,
                "--disable-pod-network",
                "--disable-proxy",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rudder agent");
        Agent {
            child: Some(child),
            dir: dir.to_owned(),
            bridge: bridge.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// Waits for the process to end by itself (a refused join).
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
        remove_containers(&self.dir.join("data"));
        remove_pod_network(&self.bridge);
    }
}

#[test]
fn an_agent_joins_with_a_token_and_runs_pods() {
    let s = Server::start();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["token", "create", "--data-dir"])
        .arg(s.data_dir())
        .output()
        .expect("rudder token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let join: Vec<String> = printed
        .strip_prefix("rudder agent ")
        .unwrap_or_else(|| panic!("not a join command: {printed}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let secrets = s.ok_kubectl(k, &["get", "secrets", "-n", "kube-system"]);
    assert!(secrets.contains("bootstrap-token-"), "{secrets}");

    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path().join("worker");
    std::fs::create_dir_all(&dir).expect("agent dir");
    import_busybox(&dir, &dir.join("data"));

    // A wrong pin is refused before anything is sent with the token.
    let mut wrong = join.clone();
    if let Some(pin) = wrong.iter_mut().find(|a| a.starts_with("sha256:")) {
        *pin = format!("sha256:{}", "0".repeat(64));
    }
    let bad_dir = work.path().join("bad");
    std::fs::create_dir_all(&bad_dir).expect("dir");
    let mut refused = Agent::start(
        &bad_dir,
        "bad",
        free_port(),
        &format!("rj{}", s.port),
        &wrong,
    );
    assert_eq!(
        refused.exit_code(Duration::from_secs(30)),
        Some(1),
        "{}",
        refused.log()
    );
    assert!(
        refused.log().contains("does not present a CA with the pin"),
        "{}",
        refused.log()
    );
    drop(refused);

    let name = format!("worker-{}", s.port);
    let bridge = format!("ra{}", s.port);
    let mut agent = Agent::start(&dir, &name, free_port(), &bridge, &join);
    wait_for("the joined node to be Ready", 60, || {
        let out = s.kubectl(k, &["get", "node", &name, "-o", "json"]);
        let node: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let ready = node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        ready.then_some(())
    });
    let csrs = s.ok_kubectl(k, &["get", "csr"]);
    assert!(csrs.contains("Approved,Issued"), "{csrs}");

    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "on-worker"},
        "spec": {
            "nodeName": name,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "echo hello from the worker; sleep 3600"]}],
        },
    });
    s.create(k, Some("default"), &pod.to_string());
    wait_for("the pod's output", 60, || {
        let out = s.kubectl(k, &["logs", "on-worker"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("hello from the worker")
            .then_some(())
    });
    let exec = s.ok_kubectl(k, &["exec", "on-worker", "--", "hostname"]);
    assert_eq!(exec.trim(), "on-worker");

    // The node's own credentials reach its own objects only (Node authorizer).
    let node_kc = dir.join("data/kubeconfig");
    let as_node = |args: &[&str]| {
        let out = common::kubectl_raw(k, &node_kc, args, None);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, err) = as_node(&["get", "node", &name]);
    assert!(ok, "{err}");
    let (ok, err) = as_node(&["get", "pod", "on-worker"]);
    assert!(ok, "{err}");
    let server_node = s.ok_kubectl(
        k,
        &["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"],
    );
    let server_node = if server_node == name {
        s.ok_kubectl(
            k,
            &["get", "nodes", "-o", "jsonpath={.items[1].metadata.name}"],
        )
    } else {
        server_node
    };
    let (ok, err) = as_node(&["delete", "node", &server_node]);
    assert!(!ok, "a node deleted another node");
    assert!(
        err.contains(&format!(
            r#"nodes "{server_node}" is forbidden: User "system:node:{name}" cannot delete resource "nodes""#
        )),
        "{err}"
    );
    s.create(
        k,
        Some("default"),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"unrelated"},"stringData":{"k":"v"}}"#,
    );
    let (ok, err) = as_node(&["get", "secret", "unrelated"]);
    assert!(!ok, "a node read a secret none of its pods uses");
    assert!(
        err.contains(&format!(
            "no relationship found between node '{name}' and this object"
        )),
        "{err}"
    );
    let (ok, err) = as_node(&["get", "secrets"]);
    assert!(!ok && err.contains("Forbidden"), "{err}");

    // Restarted without a token, the agent uses the credentials it has.
    agent.stop();
    let mut again = Agent::start(
        &dir,
        &name,
        free_port(),
        &bridge,
        &[join[0].clone(), join[1].clone()],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        again.exit_code(Duration::from_millis(100)),
        None,
        "{}",
        again.log()
    );
    s.ok_kubectl(
        k,
        &["delete", "pod", "on-worker", "--wait=true", "--timeout=60s"],
    );
    again.stop();
    drop(agent);
}
