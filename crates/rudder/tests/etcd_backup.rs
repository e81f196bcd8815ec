//! docs/operations.md's "Backup and restore: etcd", followed step by step: `etcdctl snapshot
//! save` from the running etcd a rudder server uses, `etcdctl snapshot restore` into a new data
//! directory (Debian's etcd 3.4; `etcdutl` from 3.5 on), etcd started on it, the server started
//! again on its own data directory: every object that existed when the snapshot was taken is
//! back with its uid, resourceVersion and content, and what was written after it is not.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::node::wait_for;
use common::{Server, backup, free_port, json};
use rudder_store_etcd::testing::EtcdProcess;

const KUBECTL: &str = "/usr/bin/kubectl";
const ETCDCTL: &str = "etcdctl";

/// An `etcd` process started by the test, killed by PID when dropped.
struct Etcd(Option<Child>);

impl Drop for Etcd {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `etcdctl` (API v3, the default of 3.4) and returns its stdout; panics on failure.
fn etcdctl(args: &[&str]) -> String {
    let out = Command::new(ETCDCTL)
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .unwrap_or_else(|e| panic!("running etcdctl: {e} (Debian: apt-get install etcd-client)"));
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every object the server lists, of every listable resource: (apiVersion/kind, namespace,
/// name) to (uid, resourceVersion).
fn inventory(s: &Server) -> BTreeMap<(String, String, String), (String, String)> {
    let resources = s.ok_kubectl(KUBECTL, &["api-resources", "--verbs=list", "-o", "name"]);
    // Metrics are read from the nodes, not stored.
    let names: Vec<&str> = resources
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty() && !n.ends_with(".metrics.k8s.io"))
        .collect();
    let joined = names.join(",");
    let list = json(&s.ok_kubectl(KUBECTL, &["get", &joined, "-A", "-o", "json"]));
    let mut all = BTreeMap::new();
    for item in list["items"].as_array().cloned().unwrap_or_default() {
        let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
        let kind = format!("{}/{}", text(&item["apiVersion"]), text(&item["kind"]));
        let m = &item["metadata"];
        all.insert(
            (kind, text(&m["namespace"]), text(&m["name"])),
            (text(&m["uid"]), text(&m["resourceVersion"])),
        );
    }
    all
}

fn start_etcd(data_dir: &Path, name: &str, client_url: &str, peer_url: &str, log: &Path) -> Etcd {
    let mut cmd = Command::new("etcd");
    cmd.args(["--name", name, "--data-dir"])
        .arg(data_dir)
        .args([
            "--listen-client-urls",
            client_url,
            "--advertise-client-urls",
            client_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("etcd log"));
    // etcd reads flags from ETCD_* variables too: only the ones above may count.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("ETCD_") {
            cmd.env_remove(key);
        }
    }
    Etcd(Some(cmd.spawn().expect("spawn etcd")))
}

#[test]
fn an_etcd_snapshot_restores_every_object_of_the_cluster() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut etcd = rt
        .block_on(EtcdProcess::start())
        .unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let endpoint = etcd.endpoint();
    let mut s = Server::start_with(&[
        "--store",
        "etcd",
        "--etcd-endpoints",
        &endpoint,
        "--disable-agent",
        "--disable-ingress",
    ]);

    // Objects of several kinds, a custom resource among them.
    backup::populate(&s, KUBECTL, 2);
    s.ok_kubectl(
        KUBECTL,
        &[
            "create",
            "secret",
            "generic",
            "creds",
            "-n",
            "backup",
            "--from-literal=pw=s3cret",
        ],
    );
    s.create(
        KUBECTL,
        Some("backup"),
        r#"{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w1"},"size":3}"#,
    );
    // The controllers made the ReplicaSet and its pods (Pending: no nodes).
    wait_for("the Deployment's pods", 60, || {
        let pods = json(&s.ok_kubectl(KUBECTL, &["get", "pods", "-n", "backup", "-o", "json"]));
        (pods["items"].as_array().map_or(0, Vec::len) == 2).then_some(())
    });

    // The backup, from the running etcd, as the docs say.
    let work = tempfile::tempdir().expect("tempdir");
    let backup = work.path().join("backup.db");
    let backup = backup.to_str().expect("UTF-8 path");
    let before = inventory(&s);
    etcdctl(&["--endpoints", &endpoint, "snapshot", "save", backup]);
    let status = etcdctl(&["snapshot", "status", backup, "-w", "table"]);
    assert!(status.contains("TOTAL KEYS"), "{status}");
    let after = inventory(&s);
    // Written after the snapshot: not in the restored cluster.
    s.configmap(KUBECTL, "backup", "late", "value", "after the snapshot");

    // Restore: stop the server and etcd, restore a new data directory, start etcd on it (at
    // the same client URL the server is configured with), then the server.
    s.stop();
    etcd.kill();
    let restored = work.path().join("etcd-restored");
    let peer = format!("http://127.0.0.1:{}", free_port());
    etcdctl(&[
        "snapshot",
        "restore",
        backup,
        "--name",
        "a",
        "--data-dir",
        restored.to_str().expect("UTF-8 path"),
        "--initial-cluster",
        &format!("a={peer}"),
        "--initial-advertise-peer-urls",
        &peer,
    ]);
    let _etcd = start_etcd(
        &restored,
        "a",
        &endpoint,
        &peer,
        &work.path().join("etcd.log"),
    );
    wait_for("the restored etcd healthy", 30, || {
        let out = Command::new(ETCDCTL)
            .args(["--endpoints", &endpoint, "endpoint", "health"])
            .env("ETCDCTL_API", "3")
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    s.restart();

    // Every object that existed before and after the snapshot was taken is back, same uid and
    // resourceVersion (etcd keeps revisions); objects that came or went around the snapshot
    // (leader election Leases, Events) may be either way.
    let back = inventory(&s);
    let mut checked = 0;
    for (key, (uid, rv)) in &before {
        let Some((after_uid, after_rv)) = after.get(key) else {
            continue;
        };
        if after_uid != uid {
            continue;
        }
        let (back_uid, back_rv) = back
            .get(key)
            .unwrap_or_else(|| panic!("{key:?} is missing after the restore"));
        assert_eq!(back_uid, uid, "{key:?}");
        // Objects untouched around the snapshot keep their version; Leases are heartbeats the
        // restarted server renews at once (leader election, its endpoint Lease), so theirs move.
        let heartbeat = key.0.starts_with("coordination.k8s.io/");
        if after_rv == rv && !heartbeat {
            assert_eq!(back_rv, rv, "{key:?}");
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} objects compared");
    for (kind, name) in [
        ("v1/Secret", "creds"),
        ("apps/v1/Deployment", "web"),
        ("apps/v1/ReplicaSet", ""),
        ("example.com/v1/Widget", "w1"),
        ("v1/ConfigMap", "cm-9"),
    ] {
        assert!(
            back.keys()
                .any(|(k, ns, n)| k == kind && ns == "backup" && n.starts_with(name)),
            "{kind} {name} restored"
        );
    }
    let cm = json(&s.ok_kubectl(
        KUBECTL,
        &["get", "configmap", "cm-7", "-n", "backup", "-o", "json"],
    ));
    assert_eq!(cm["data"]["k"], "value 7");
    let secret = json(&s.ok_kubectl(
        KUBECTL,
        &["get", "secret", "creds", "-n", "backup", "-o", "json"],
    ));
    assert_eq!(secret["data"]["pw"], "czNjcmV0");
    let widget = json(&s.ok_kubectl(
        KUBECTL,
        &["get", "widget", "w1", "-n", "backup", "-o", "json"],
    ));
    assert_eq!(widget["size"], 3);
    let late = s.kubectl(KUBECTL, &["get", "configmap", "late", "-n", "backup"]);
    assert!(
        !late.status.success(),
        "written after the snapshot, yet restored"
    );
}
