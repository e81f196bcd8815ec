//! A user bound to `view` in one namespace reads that namespace (all but Secrets) and nothing
//! else, and writes nothing anywhere: every verb, in its namespace, in another, cluster-wide
//! and on cluster-scoped kinds, through raw requests with the user's own certificate.

use serde_json::json;

use crate::client::{Conn, admin_tls, assert_status, user_tls};
use crate::common::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_in_one_namespace_reads_nothing_else_and_writes_nothing() {
    let s = Server::start_with(&["--disable-agent"]);
    let admin = Conn::open(s.port, admin_tls(&s)).await.expect("admin");
    let post = |path: &'static str, body: serde_json::Value| {
        let admin = admin.clone();
        async move {
            let a = admin
                .call("POST", path, Some("application/json"), body.to_string())
                .await
                .expect("post");
            assert_eq!(a.status, 201, "{path}: {}", a.text());
        }
    };
    for ns in ["team-a", "team-b"] {
        post(
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        .await;
    }
    post(
        "/api/v1/namespaces/team-a/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}),
    )
    .await;
    post(
        "/api/v1/namespaces/team-b/configmaps",
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}),
    )
    .await;
    post(
        "/api/v1/namespaces/team-a/secrets",
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .await;
    post(
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "viewer-view", "namespace": "team-a"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}]}),
    )
    .await;
    let viewer = Conn::open(s.port, user_tls(&s, "viewer", &[]))
        .await
        .expect("viewer");

    // What view allows: reads in team-a.
    for path in [
        "/api/v1/namespaces/team-a/configmaps",
        "/api/v1/namespaces/team-a/configmaps/cm",
        "/api/v1/namespaces/team-a/pods",
        "/apis/apps/v1/namespaces/team-a/deployments",
        "/api/v1/namespaces/team-a/configmaps?watch=true&timeoutSeconds=1",
    ] {
        let a = viewer.get(path).await.expect("read");
        assert_eq!(a.status, 200, "{path}: {}", a.text());
    }

    // Everything else is 403: reads outside team-a, Secrets and RBAC objects inside it, and
    // every write anywhere.
    let cm =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}).to_string();
    let merge = r#"{"data":{"k":"v"}}"#.to_owned();
    let mut refused = 0;
    let mut cases: Vec<(&str, String, Option<&str>, String)> = Vec::new();
    for path in [
        "/api/v1/namespaces/team-b/configmaps",
        "/api/v1/namespaces/team-b/configmaps/cm",
        "/api/v1/namespaces/team-b/configmaps?watch=true",
        "/api/v1/configmaps",
        "/api/v1/configmaps?watch=true",
        "/api/v1/namespaces/team-a/secrets",
        "/api/v1/namespaces/team-a/secrets/s",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/roles",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a/rolebindings",
        "/api/v1/nodes",
        "/api/v1/namespaces/team-b",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
        "/apis/storage.k8s.io/v1/storageclasses",
        "/api/v1/persistentvolumes",
        "/logs/",
        "/metrics",
    ] {
        cases.push(("GET", path.to_owned(), None, String::new()));
    }
    for ns in ["team-a", "team-b"] {
        let coll = format!("/api/v1/namespaces/{ns}/configmaps");
        let one = format!("{coll}/cm");
        cases.extend([
            ("POST", coll.clone(), Some("application/json"), cm.clone()),
            ("PUT", one.clone(), Some("application/json"), cm.replace("\"x\"", "\"cm\"")),
            ("PATCH", one.clone(), Some("application/merge-patch+json"), merge.clone()),
            ("PATCH", one.clone(), Some("application/strategic-merge-patch+json"), merge.clone()),
            ("PATCH", one.clone(), Some("application/json-patch+json"), r#"[{"op":"add","path":"/data","value":{}}]"#.to_owned()),
            ("PATCH", format!("{one}?fieldManager=v"), Some("application/apply-patch+yaml"), cm.replace("\"x\"", "\"cm\"")),
            ("DELETE", one.clone(), None, String::new()),
            ("DELETE", coll.clone(), None, String::new()),
            ("POST", format!("/api/v1/namespaces/{ns}/pods/p/eviction"), Some("application/json"), "{}".into()),
            ("POST", format!("/api/v1/namespaces/{ns}/serviceaccounts/default/token"), Some("application/json"), r#"{"spec":{}}"#.into()),
            ("POST", format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"), Some("application/json"),
             json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "grab"},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}]}).to_string()),
        ]);
    }
    cases.extend([
        ("POST", "/api/v1/namespaces".to_owned(), Some("application/json"), r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"mine"}}"#.to_owned()),
        ("DELETE", "/api/v1/namespaces/team-a".to_owned(), None, String::new()),
        ("PATCH", "/api/v1/namespaces/team-a".to_owned(), Some("application/merge-patch+json"), r#"{"metadata":{"labels":{"a":"b"}}}"#.to_owned()),
        ("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings".to_owned(), Some("application/json"),
         json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "grab"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}]}).to_string()),
        ("POST", "/api/v1/nodes".to_owned(), Some("application/json"), r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"n"}}"#.to_owned()),
    ]);
    for (method, path, ct, body) in &cases {
        let a = viewer
            .call(method, path, *ct, body.clone())
            .await
            .expect("answer");
        assert_eq!(a.status, 403, "{method} {path}: {}", a.text());
        assert_status(&a, path);
        assert_eq!(a.json()["reason"], "Forbidden");
        refused += 1;
    }
    // Impersonating someone else is a write of its own kind, refused too.
    let resp = viewer
        .start(
            "GET",
            "/api/v1/namespaces/team-b/configmaps",
            &[("impersonate-user", "rudder-admin")],
            crate::client::full(bytes::Bytes::new()),
        )
        .await
        .expect("impersonation");
    assert_eq!(resp.status(), 403);
    refused += 1;
    // Nothing changed: team-a's ConfigMap is as created and no object appeared.
    let cm = admin
        .get("/api/v1/namespaces/team-a/configmaps/cm")
        .await
        .expect("get");
    assert!(cm.json().get("data").is_none(), "{}", cm.text());
    for path in [
        "/api/v1/namespaces/team-a/configmaps/x",
        "/api/v1/namespaces/mine",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/grab",
    ] {
        assert_eq!(admin.get(path).await.expect("get").status, 404, "{path}");
    }
    println!("view in one namespace: 5 reads allowed, {refused} requests refused with 403");
}
