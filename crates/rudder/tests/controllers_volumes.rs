//! End to end: the default `local-path` StorageClass, static PersistentVolume binding by class,
//! access modes and size, local-path provisioning for the node of the claim's first pod, and
//! reclaim Delete once the claim is gone.

mod common;
mod controllers_support;

use common::Server;
use controllers_support::{K, get, wait_for};

fn claim(name: &str, class: Option<&str>, size: &str) -> String {
    let mut c = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}},
    });
    if let Some(class) = class {
        c["spec"]["storageClassName"] = serde_json::json!(class);
    }
    c.to_string()
}

#[test]
fn claims_bind_static_and_local_path_volumes() {
    // A pod is bound to a node that does not exist: keep the pod GC from removing it.
    // The volume's directory is only named, never created: its node does not exist.
    let s = Server::start_with(&[
        "--controllers",
        "*,-podgc",
        "--local-path-dir",
        "/var/lib/rudder/e2e-storage",
    ]);
    let class = wait_for("the default class", 60, &s, || {
        get(&s, &["storageclass", "local-path"])
    });
    assert_eq!(
        class["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"],
        "true"
    );
    assert_eq!(class["volumeBindingMode"], "WaitForFirstConsumer");

    // Static: the smallest fitting volume of the class.
    for (name, size) in [("big", "10Gi"), ("fit", "1Gi")] {
        s.create(K, None, &serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                "storageClassName": "manual", "hostPath": {"path": format!("/tmp/rudder-test-{name}")},
            },
        }).to_string());
    }
    s.create(
        K,
        Some("default"),
        &claim("static", Some("manual"), "512Mi"),
    );
    wait_for("the static claim bound to fit", 60, &s, || {
        let c = get(&s, &["pvc", "static"])?;
        (c["status"]["phase"] == "Bound" && c["spec"]["volumeName"] == "fit").then_some(())
    });
    let pv = get(&s, &["pv", "fit"]).expect("pv");
    assert_eq!(pv["status"]["phase"], "Bound");
    assert_eq!(pv["spec"]["claimRef"]["name"], "static");

    // local-path: provisioned once a pod using the claim has a node.
    s.create(K, Some("default"), &claim("data", None, "1Gi"));
    s.create(
        K,
        Some("default"),
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "user"},
            "spec": {
                "nodeName": "nowhere",
                "containers": [{"name": "main", "image": "rudder.invalid/none:1"}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        })
        .to_string(),
    );
    let volume = wait_for("the local-path claim bound", 60, &s, || {
        let c = get(&s, &["pvc", "data"])?;
        (c["status"]["phase"] == "Bound")
            .then(|| c["spec"]["volumeName"].as_str().map(str::to_owned))
            .flatten()
    });
    let pv = get(&s, &["pv", &volume]).expect("provisioned pv");
    assert_eq!(pv["spec"]["storageClassName"], "local-path");
    assert!(
        pv["spec"]["nodeAffinity"].to_string().contains("nowhere"),
        "{pv}"
    );
    assert!(
        pv["spec"]["hostPath"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("/var/lib/rudder/e2e-storage/pvc-")),
        "{pv}"
    );

    // Reclaim Delete once the claim is gone.
    s.ok_kubectl(K, &["delete", "pod", "user", "--wait=false"]);
    s.ok_kubectl(K, &["delete", "pvc", "data", "--wait=false"]);
    wait_for("the provisioned volume deleted", 60, &s, || {
        get(&s, &["pv", &volume]).is_none().then_some(())
    });
}
