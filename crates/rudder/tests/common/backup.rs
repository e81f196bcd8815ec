//! The objects both backup-and-restore tests (the embedded store's `rudder snapshot`, etcd's
//! `etcdctl snapshot`) write before the backup and look for after the restore: of core kinds,
//! of a workload the controllers act on, and of a custom resource.

use super::Server;
use super::node::wait_for;

/// In a new namespace `backup`: ConfigMaps `cm-0` to `cm-9` (key `k`, "value N"), a Deployment
/// `web` of `replicas` busybox pods, and the CRD of namespaced `widgets.example.com`
/// (`example.com/v1`, any fields), once it is established and served.
pub fn populate(s: &Server, k: &str, replicas: usize) {
    s.namespace(k, "backup");
    for i in 0..10 {
        s.configmap(k, "backup", &format!("cm-{i}"), "k", &format!("value {i}"));
    }
    let deployment = serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    });
    s.create(k, Some("backup"), &deployment.to_string());
    s.create(
        k,
        None,
        r#"{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
            "metadata":{"name":"widgets.example.com"},
            "spec":{"group":"example.com","scope":"Namespaced",
              "names":{"plural":"widgets","singular":"widget","kind":"Widget"},
              "versions":[{"name":"v1","served":true,"storage":true,
                "schema":{"openAPIV3Schema":{"type":"object",
                  "x-kubernetes-preserve-unknown-fields":true}}}]}}"#,
    );
    s.ok_kubectl(
        k,
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.example.com",
            "--timeout=60s",
        ],
    );
    // Established is not yet served: discovery may lag behind.
    wait_for("widgets served", 30, || {
        s.kubectl(k, &["get", "widgets", "-n", "backup"])
            .status
            .success()
            .then_some(())
    });
}
