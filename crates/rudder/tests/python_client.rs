//! End to end: Python clients against `rudder server` — the official client (`kubernetes` on
//! PyPI: CRUD, selectors, watch resume, patch types, `create_from_yaml`, pod logs, exec over
//! WebSocket) and an operator built with kopf (a CRD, a handler creating a Deployment, status,
//! a finalizer on delete). The Python packages live in the virtualenv `scripts/test` makes
//! (`target/pyenv`, or `RUDDER_PYENV`).

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::node::{node_with_busybox, wait_for};
use common::{KUBECTLS, Server, json};

/// The virtualenv with the pinned `kubernetes` and `kopf` packages.
fn pyenv() -> PathBuf {
    let dir = std::env::var_os("RUDDER_PYENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/pyenv"));
    assert!(
        dir.join("bin/python").exists(),
        "no Python virtualenv at {} (scripts/test makes it)",
        dir.display()
    );
    dir
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients/python")
        .join(name)
}

#[test]
fn official_python_client() {
    let (s, node) = node_with_busybox();
    let out = Command::new(pyenv().join("bin/python"))
        .arg(script("client_suite.py"))
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.data_dir())
        .env("NODE", &node)
        .env("NAMESPACE", "python-client")
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python client suite failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log tail:\n{}",
        out.status,
        tail(&s.log(), 60)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

/// A running kopf operator, killed by PID when dropped (also when the test fails).
struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
  "metadata": {"name": "webapps.rudder.test"},
  "spec": {
    "group": "rudder.test", "scope": "Namespaced",
    "names": {"plural": "webapps", "singular": "webapp", "kind": "WebApp"},
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}},
      "schema": {"openAPIV3Schema": {"type": "object", "properties": {
        "spec": {"type": "object", "properties": {
          "replicas": {"type": "integer"}, "image": {"type": "string"}}},
        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
      }}}
    }]
  }
}"#;

#[test]
fn kopf_operator() {
    let s = Server::start();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    s.create(k, None, CRD);
    wait_for("the CRD to be served", 30, || {
        s.kubectl(k, &["get", "webapps", "-A"])
            .status
            .success()
            .then_some(())
    });
    s.namespace(k, "apps");

    let log = s.dir.path().join("kopf.log");
    let file = std::fs::File::create(&log).expect("kopf log");
    let child = Command::new(pyenv().join("bin/kopf"))
        .args(["run", "--standalone", "--namespace", "apps", "--verbose"])
        .arg(script("kopf_operator.py"))
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.data_dir())
        .stdout(file.try_clone().expect("log"))
        .stderr(file)
        .stdin(Stdio::null())
        .spawn()
        .expect("start kopf");
    let op = Operator { child, log };
    let fail = |what: &str| -> String {
        format!(
            "{what}\nkopf log:\n{}\nserver log tail:\n{}",
            tail(&op.log(), 60),
            tail(&s.log(), 40)
        )
    };

    s.create(
        k,
        Some("apps"),
        r#"{"apiVersion":"rudder.test/v1","kind":"WebApp","metadata":{"name":"shop"},"spec":{"replicas":2}}"#,
    );
    // The handler creates the Deployment, owned by the WebApp.
    let deploy = wait_for_or("the Deployment", 60, &fail, || {
        let out = s.kubectl(
            k,
            &["get", "deployment", "shop-web", "-n", "apps", "-o", "json"],
        );
        out.status
            .success()
            .then(|| json(&String::from_utf8_lossy(&out.stdout)))
    });
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(deploy["metadata"]["ownerReferences"][0]["kind"], "WebApp");
    assert_eq!(deploy["metadata"]["ownerReferences"][0]["name"], "shop");
    // Status (through the status subresource) and kopf's finalizer.
    let app = wait_for_or("the WebApp's status", 30, &fail, || {
        let app = json(&s.ok_kubectl(k, &["get", "webapp", "shop", "-n", "apps", "-o", "json"]));
        (app["status"]["create_fn"]["deployment"] == "shop-web").then_some(app)
    });
    assert_eq!(app["status"]["phase"], "Deployed", "{app}");
    let finalizers = app["metadata"]["finalizers"].to_string();
    assert!(
        finalizers.contains("kopf.zalando.org/KopfFinalizerMarker"),
        "{app}"
    );

    // Deleting: the finalizer holds the object until the delete handler ran, then it goes
    // (and the garbage collector takes its Deployment).
    s.ok_kubectl(
        k,
        &["delete", "webapp", "shop", "-n", "apps", "--wait=false"],
    );
    wait_for_or("the delete handler", 60, &fail, || {
        let out = s.kubectl(
            k,
            &[
                "get",
                "configmap",
                "shop-deleted",
                "-n",
                "apps",
                "-o",
                "json",
            ],
        );
        out.status.success().then_some(())
    });
    wait_for_or("the WebApp to go", 60, &fail, || {
        let out = s.kubectl(k, &["get", "webapp", "shop", "-n", "apps"]);
        (!out.status.success()).then_some(())
    });
    wait_for_or("the Deployment to be collected", 60, &fail, || {
        let out = s.kubectl(k, &["get", "deployment", "shop-web", "-n", "apps"]);
        (!out.status.success()).then_some(())
    });
    let log = op.log();
    assert!(
        log.contains("created deployment shop-web"),
        "{}",
        fail("no create log")
    );
    assert!(
        !log.contains("Traceback"),
        "{}",
        fail("the operator raised an exception")
    );
}

fn wait_for_or<T>(
    what: &str,
    secs: u64,
    fail: &dyn Fn(&str) -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            fail(&format!("timed out waiting for {what}"))
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
