//! Backup and restore of the embedded store end to end: `rudder snapshot save` takes a snapshot
//! from a server that keeps serving writes, `rudder snapshot restore` builds a new data dir from
//! it, and a second server on that dir serves every object exactly as the first one had it at
//! the snapshot's revision (content and resourceVersion), then continues with higher
//! resourceVersions. Damaged snapshots and non-empty data dirs are refused.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use common::node::wait_for;
use common::{Server, backup};

const KUBECTL: &str = "/usr/bin/kubectl";

fn rudder(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(args)
        .output()
        .expect("run rudder")
}

fn ok(args: &[&str]) -> String {
    let out = rudder(args);
    assert!(
        out.status.success(),
        "rudder {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = rudder(args);
    assert!(!out.status.success(), "rudder {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The revision a snapshot was taken at, from `rudder snapshot status`.
fn snapshot_revision(file: &Path) -> u64 {
    let out = ok(&["snapshot", "status", path(file)]);
    out.split("revision ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|r| r.trim().parse().ok())
        .unwrap_or_else(|| panic!("no revision in {out:?}"))
}

/// What the test compares: its own namespace's objects of several kinds, the CRD and the
/// namespace itself.
const LISTS: &[&str] = &[
    "/api/v1/namespaces/backup/configmaps",
    "/api/v1/namespaces/backup/secrets",
    "/apis/apps/v1/namespaces/backup/deployments",
    "/apis/example.com/v1/namespaces/backup/widgets",
];

fn list_items(s: &Server, path: &str) -> Vec<serde_json::Value> {
    s.get_json(path)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// [`backup::populate`], a Secret and three Widgets.
fn setup(s: &Server) {
    backup::populate(s, KUBECTL, 1);
    s.create(
        KUBECTL,
        Some("backup"),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"db"},"type":"Opaque",
            "data":{"password":"aHVudGVyMg=="}}"#,
    );
    for i in 0..3 {
        s.create(
            KUBECTL,
            Some("backup"),
            &format!(
                r#"{{"apiVersion":"example.com/v1","kind":"Widget","metadata":{{"name":"w{i}"}},
                    "spec":{{"size":{i}}}}}"#
            ),
        );
    }
}

#[test]
fn a_snapshot_saved_under_writes_restores_into_a_new_server() {
    // History is kept for the test's Exact reads at the snapshot's revision.
    let mut s = Server::start_with(&["--disable-agent", "--compaction-interval", "3600"]);
    setup(&s);
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("backup.snap");

    // Writes keep arriving while the snapshot is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let kubeconfig = s.kubeconfig();
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = common::kubectl_raw(
                    KUBECTL,
                    &kubeconfig,
                    &["create", "configmap", &format!("load-{n}"), "-n", "backup"],
                    None,
                );
                assert!(out.status.success(), "{out:?}");
                n += 1;
                written.store(n, Ordering::Relaxed);
            }
        })
    };
    wait_for("writes under way", 60, || {
        (written.load(Ordering::Relaxed) >= 3).then_some(())
    });
    let saved = ok(&[
        "snapshot",
        "save",
        path(&file),
        "--kubeconfig",
        path(&s.kubeconfig()),
    ]);
    assert!(saved.contains("saved"), "{saved}");
    let after_save = written.load(Ordering::Relaxed);
    wait_for("writes after the snapshot", 60, || {
        (written.load(Ordering::Relaxed) >= after_save + 3).then_some(())
    });
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("writer");
    let revision = snapshot_revision(&file);

    // What the first server held at the snapshot's revision, read back from its history.
    let at_snapshot: Vec<Vec<serde_json::Value>> = LISTS
        .iter()
        .map(|l| {
            list_items(
                &s,
                &format!("{l}?resourceVersion={revision}&resourceVersionMatch=Exact"),
            )
        })
        .collect();
    let crd_path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com";
    let ns_path = "/api/v1/namespaces/backup";
    let (crd, ns) = (s.get_json(crd_path), s.get_json(ns_path));
    let loads = |items: &[serde_json::Value]| {
        items
            .iter()
            .filter(|cm| {
                cm["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("load-"))
            })
            .count()
    };
    let (in_snapshot, total) = (
        loads(&at_snapshot[0]),
        loads(&list_items(&s, "/api/v1/namespaces/backup/configmaps")),
    );
    assert!(
        in_snapshot >= 3,
        "only {in_snapshot} concurrent writes in the snapshot"
    );
    assert!(total > in_snapshot, "no write after the snapshot ({total})");

    // Damaged copies are refused, and leave the data dir usable.
    let bytes = std::fs::read(&file).expect("read the snapshot");
    let damaged_dir = work.path().join("damaged");
    let truncated = work.path().join("truncated.snap");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).expect("write");
    let err = fails(&[
        "snapshot",
        "restore",
        path(&truncated),
        "--data-dir",
        path(&damaged_dir),
    ]);
    assert!(err.contains("the snapshot is truncated"), "{err}");
    let flipped = work.path().join("flipped.snap");
    let mut copy = bytes.clone();
    let at = copy
        .windows(7)
        .position(|w| w == b"value 5")
        .expect("a ConfigMap's value in the snapshot");
    copy[at + 6] ^= 0x02;
    std::fs::write(&flipped, &copy).expect("write");
    let err = fails(&[
        "snapshot",
        "restore",
        path(&flipped),
        "--data-dir",
        path(&damaged_dir),
    ]);
    assert!(err.contains("checksum does not match"), "{err}");
    let err = fails(&["snapshot", "status", path(&flipped)]);
    assert!(err.contains("checksum does not match"), "{err}");
    let err = fails(&[
        "snapshot",
        "restore",
        path(&file),
        "--data-dir",
        path(&s.data_dir()),
    ]);
    assert!(err.contains("is not empty"), "{err}");

    // Restore into a new data dir, keep the cluster's certificates (as docs/operations.md
    // says), and serve it. Nothing runs that would change the restored objects.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let data2 = dir2.path().join("data");
    let restored = ok(&[
        "snapshot",
        "restore",
        path(&file),
        "--data-dir",
        path(&data2),
    ]);
    assert!(
        restored.contains(&format!("revision {revision}")),
        "{restored}"
    );
    let copied = Command::new("cp")
        .arg("-a")
        .arg(s.data_dir().join("pki"))
        .arg(data2.join("pki"))
        .status()
        .expect("cp");
    assert!(copied.success());
    let s2 = Server::start_in(
        dir2,
        &[
            "--disable-agent",
            "--disable-controllers",
            "--disable-scheduler",
            "--disable-ingress",
        ],
    );
    for (l, want) in LISTS.iter().zip(&at_snapshot) {
        assert!(!want.is_empty(), "{l}: nothing to compare");
        assert_eq!(&list_items(&s2, l), want, "{l}");
    }
    assert_eq!(s2.get_json(crd_path), crd);
    assert_eq!(s2.get_json(ns_path), ns);

    // New writes get resourceVersions above every restored one.
    s2.configmap(KUBECTL, "backup", "after-restore", "k", "v");
    let cm = s2.get_json("/api/v1/namespaces/backup/configmaps/after-restore");
    let rv: u64 = cm["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("resourceVersion");
    assert!(rv > revision, "{rv} <= {revision}");

    // A running server's store cannot be read offline; a stopped one's can.
    let err = fails(&[
        "snapshot",
        "save",
        path(&work.path().join("offline.snap")),
        "--data-dir",
        path(&s2.data_dir()),
    ]);
    assert!(err.contains("save through the server"), "{err}");
    s.stop();
    let offline = work.path().join("offline.snap");
    ok(&[
        "snapshot",
        "save",
        path(&offline),
        "--data-dir",
        path(&s.data_dir()),
    ]);
    assert!(snapshot_revision(&offline) >= revision);
}
