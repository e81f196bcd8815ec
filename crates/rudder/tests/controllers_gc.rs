//! End to end: the garbage collector and real `kubectl delete --cascade=background|foreground|orphan`.

mod common;
mod controllers_support;

use common::Server;
use controllers_support::{K, get, items, wait_for};

fn replicaset(name: &str, replicas: i32, finalizers: &[&str]) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "finalizers": finalizers},
                "spec": {"containers": [{"name": "main", "image": "rudder.invalid/none:1"}]},
            },
        },
    })
    .to_string()
}

#[test]
fn background_deletion_removes_dependents() {
    let s = Server::start();
    s.create(
        K,
        Some("default"),
        &serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "main", "image": "rudder.invalid/none:1"}]},
                },
            },
        })
        .to_string(),
    );
    wait_for("2 pods", 60, &s, || {
        (items(&s, &["pods", "-l", "app=web"]).len() == 2).then_some(())
    });
    s.ok_kubectl(K, &["delete", "deployment", "web"]);
    wait_for("ReplicaSets and pods collected", 60, &s, || {
        (items(&s, &["rs", "-l", "app=web"]).is_empty()
            && items(&s, &["pods", "-l", "app=web"]).is_empty())
        .then_some(())
    });
}

#[test]
fn foreground_deletion_waits_for_dependents() {
    let s = Server::start();
    // The pod carries a finalizer of its own, so it stays (terminating) until the test lets go.
    s.create(
        K,
        Some("default"),
        &replicaset("hold", 1, &["example.com/hold"]),
    );
    let pod = wait_for("the pod", 60, &s, || {
        items(&s, &["pods", "-l", "app=hold"])
            .first()
            .and_then(|p| p["metadata"]["name"].as_str().map(str::to_owned))
    });
    s.ok_kubectl(
        K,
        &[
            "delete",
            "rs",
            "hold",
            "--cascade=foreground",
            "--wait=false",
        ],
    );
    wait_for("the pod deleted by the collector", 60, &s, || {
        get(&s, &["pod", &pod]).filter(|p| !p["metadata"]["deletionTimestamp"].is_null())
    });
    // The owner waits while its blocking dependent exists.
    for _ in 0..5 {
        let rs = get(&s, &["rs", "hold"]).expect("the ReplicaSet waits for its pod");
        assert!(
            rs["metadata"]["finalizers"]
                .to_string()
                .contains("foregroundDeletion"),
            "{rs}"
        );
        assert!(!rs["metadata"]["deletionTimestamp"].is_null());
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    s.ok_kubectl(
        K,
        &[
            "patch",
            "pod",
            &pod,
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    wait_for("the pod and then the ReplicaSet gone", 60, &s, || {
        (get(&s, &["pod", &pod]).is_none() && get(&s, &["rs", "hold"]).is_none()).then_some(())
    });
}

#[test]
fn orphan_deletion_keeps_dependents() {
    let s = Server::start();
    s.create(K, Some("default"), &replicaset("keep", 2, &[]));
    wait_for("2 pods", 60, &s, || {
        (items(&s, &["pods", "-l", "app=keep"]).len() == 2).then_some(())
    });
    s.ok_kubectl(K, &["delete", "rs", "keep", "--cascade=orphan"]);
    wait_for("the ReplicaSet gone", 60, &s, || {
        get(&s, &["rs", "keep"]).is_none().then_some(())
    });
    let pods = items(&s, &["pods", "-l", "app=keep"]);
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert!(p["metadata"]["deletionTimestamp"].is_null(), "{p}");
        let refs = p["metadata"]["ownerReferences"]
            .as_array()
            .map_or(0, Vec::len);
        assert_eq!(refs, 0, "{p}");
    }
}
