//! End to end: deleting a namespace with real kubectl removes its content; a namespace that
//! waits on a finalizer of its own shows upstream's deletion conditions and loses the
//! `kubernetes` finalizer once empty.

mod common;
mod controllers_support;

use common::{Server, json};
use controllers_support::{K, wait_for};

fn count(s: &Server, ns: &str, what: &str) -> usize {
    let out = s.ok_kubectl(K, &["get", what, "-n", ns, "-o", "json"]);
    json(&out)["items"].as_array().map_or(0, Vec::len)
}

fn fill(s: &Server, ns: &str) {
    s.configmap(K, ns, "settings", "a", "b");
    s.create(
        K,
        Some(ns),
        &serde_json::json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
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
    wait_for("2 pods", 60, s, || {
        (count(s, ns, "pods") == 2).then_some(())
    });
}

#[test]
fn deleting_a_namespace_removes_its_content() {
    let s = Server::start();
    s.namespace(K, "gone");
    fill(&s, "gone");
    s.ok_kubectl(K, &["delete", "namespace", "gone"]);
    wait_for("the content removed", 60, &s, || {
        (count(&s, "gone", "pods") == 0
            && count(&s, "gone", "configmaps") == 0
            && count(&s, "gone", "replicasets") == 0)
            .then_some(())
    });
}

#[test]
fn finalizing_namespace_is_emptied_then_released() {
    let s = Server::start();
    s.create(K, None, r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"held","finalizers":["example.com/hold"]}}"#);
    fill(&s, "held");
    s.ok_kubectl(K, &["delete", "namespace", "held", "--wait=false"]);
    let ns = wait_for(
        "content removed and the kubernetes finalizer gone",
        60,
        &s,
        || {
            let ns = json(&s.ok_kubectl(K, &["get", "namespace", "held", "-o", "json"]));
            let finalizers = ns["spec"]["finalizers"].as_array().map_or(0, Vec::len);
            (count(&s, "held", "pods") == 0
                && count(&s, "held", "configmaps") == 0
                && finalizers == 0)
                .then_some(ns)
        },
    );
    let conds = ns["status"]["conditions"].to_string();
    assert!(
        conds.contains("NamespaceDeletionContentFailure")
            && conds.contains("NamespaceContentRemaining"),
        "{ns}"
    );
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    s.ok_kubectl(
        K,
        &[
            "patch",
            "namespace",
            "held",
            "--type=merge",
            "-p",
            r#"{"metadata":{"finalizers":null}}"#,
        ],
    );
    wait_for("the namespace gone", 60, &s, || {
        let out = s.ok_kubectl(K, &["get", "namespace", "held", "--ignore-not-found"]);
        out.trim().is_empty().then_some(())
    });
}

#[test]
fn a_deleted_namespace_waits_for_its_spec_finalizers() {
    // Without the namespace controller, nothing removes the `kubernetes` finalizer.
    let s = Server::start_with(&["--controllers", "*,-namespace"]);
    s.ok_kubectl(K, &["create", "namespace", "waiting"]);
    s.ok_kubectl(K, &["delete", "namespace", "waiting", "--wait=false"]);
    let ns = json(&s.ok_kubectl(K, &["get", "namespace", "waiting", "-o", "json"]));
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    assert_eq!(ns["spec"]["finalizers"][0], "kubernetes", "{ns}");
    let refused = s.fail_kubectl(K, &["create", "configmap", "late", "-n", "waiting"], None);
    assert!(
        refused.contains("because it is being terminated"),
        "{refused}"
    );
    // What the namespace controller does once the namespace is empty: /finalize without it.
    let mut body = ns.clone();
    body["spec"]["finalizers"] = serde_json::json!([]);
    s.kubectl_in(
        K,
        &[
            "replace",
            "--raw",
            "/api/v1/namespaces/waiting/finalize",
            "-f",
            "-",
        ],
        &body.to_string(),
    );
    let out = s.ok_kubectl(K, &["get", "namespace", "waiting", "--ignore-not-found"]);
    assert!(out.trim().is_empty(), "{out}");
}
