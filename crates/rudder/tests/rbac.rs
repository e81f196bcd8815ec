//! Authorization end to end with real kubectl: a static-token user bound to `view` in one
//! namespace reads there and nowhere else and writes nothing, with upstream's 403 messages;
//! `kubectl auth can-i` (also `--list` and `--as`) answers for every kubectl version;
//! impersonation needs the right to it; a ClusterRole with an aggregation label extends
//! `view`; a namespace admin cannot grant what they do not hold.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{KUBECTLS, Server, kubectl_raw};

/// Newest kubectl: the default for single-version steps.
const K: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// A kubeconfig for the server that authenticates with a bearer token.
fn token_kubeconfig(server: &Server, name: &str, token: &str) -> PathBuf {
    let dir = server.dir.path().join(format!("home-{name}"));
    std::fs::create_dir_all(&dir).expect("kubeconfig dir");
    let path = dir.join("kubeconfig");
    let ca = server.data_dir().join("pki/ca.crt");
    let text = format!(
        r#"{{"apiVersion":"v1","kind":"Config","current-context":"c",
  "clusters":[{{"name":"c","cluster":{{"server":"https://127.0.0.1:{}","certificate-authority":"{}"}}}}],
  "users":[{{"name":"u","user":{{"token":"{token}"}}}}],
  "contexts":[{{"name":"c","context":{{"cluster":"c","user":"u"}}}}]}}"#,
        server.port,
        ca.display()
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// (success, stdout, stderr) of kubectl as the user of `kubeconfig`.
fn run(kubectl: &str, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = kubectl_raw(kubectl, kubeconfig, args, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(kubectl: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(kubectl, kubeconfig, args);
    assert!(ok, "{kubectl} {args:?}: {err}");
    out
}

/// Runs kubectl expecting a 403; returns stderr.
fn forbidden(kubectl: &str, kubeconfig: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(kubectl, kubeconfig, args);
    assert!(!ok, "{kubectl} {args:?} unexpectedly succeeded: {out}");
    assert!(err.contains("is forbidden"), "{kubectl} {args:?}: {err}");
    err
}

/// `kubectl auth can-i ...`: the answer printed, checked against the exit code.
fn can_i(kubectl: &str, kubeconfig: &Path, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let (ok, out, err) = run(kubectl, kubeconfig, &all);
    let answer = out.trim();
    assert!(
        answer == "yes" || answer.starts_with("no"),
        "{kubectl} {all:?}: {out} {err}"
    );
    assert_eq!(
        ok,
        answer == "yes",
        "{kubectl} {all:?}: exit code vs {answer}"
    );
    answer == "yes"
}

fn start() -> (Server, PathBuf, PathBuf) {
    let files = tempfile::tempdir().expect("tempdir");
    let token_file = files.path().join("tokens.csv");
    std::fs::write(&token_file, "t0ken-alice,alice,1001\nt0ken-bob,bob,1002\n")
        .expect("token file");
    let server = Server::start_with(&[
        "--disable-agent",
        "--token-auth-file",
        token_file.to_str().expect("utf-8 path"),
    ]);
    // The server read the file at start; the directory may go.
    drop(files);
    let alice = token_kubeconfig(&server, "alice", "t0ken-alice");
    let bob = token_kubeconfig(&server, "bob", "t0ken-bob");
    for ns in ["a", "b"] {
        server.namespace(K, ns);
        server.configmap(K, ns, "settings", "k", "v");
        server.create(
            K,
            Some(ns),
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"token"},"stringData":{"k":"v"}}"#,
        );
    }
    server.create(
        K,
        Some("a"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},"spec":{"containers":[{"name":"main","image":"busybox:1.36"}]}}"#,
    );
    (server, alice, bob)
}

fn role_binding(server: &Server, ns: &str, name: &str, role: &str, user: &str) {
    let rb = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    });
    server.create(K, Some(ns), &rb.to_string());
}

#[test]
fn view_in_one_namespace() {
    let (server, alice, _) = start();
    // Before any binding alice may only discover and ask about herself.
    let err = forbidden(K, &alice, &["get", "configmaps", "-n", "a"]);
    assert!(
        err.contains(r#"configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "a""#),
        "{err}"
    );
    role_binding(&server, "a", "alice-view", "view", "alice");
    for kubectl in KUBECTLS {
        let out = ok(
            kubectl,
            &alice,
            &["get", "configmaps", "-n", "a", "-o", "name"],
        );
        assert!(out.contains("configmap/settings"), "{out}");
        ok(
            kubectl,
            &alice,
            &["get", "configmap", "settings", "-n", "a"],
        );
        ok(kubectl, &alice, &["get", "pods", "-n", "a"]);
        ok(kubectl, &alice, &["get", "namespace", "a"]);
        // `view` leaves secrets out.
        let err = forbidden(kubectl, &alice, &["get", "secrets", "-n", "a"]);
        assert!(
            err.contains(r#"User "alice" cannot list resource "secrets" in API group "" in the namespace "a""#),
            "{err}"
        );
        let err = forbidden(kubectl, &alice, &["get", "secret", "token", "-n", "a"]);
        assert!(
            err.contains(r#"secrets "token" is forbidden: User "alice" cannot get resource "secrets" in API group "" in the namespace "a""#),
            "{err}"
        );
        forbidden(kubectl, &alice, &["get", "configmaps", "-n", "b"]);
        let err = forbidden(kubectl, &alice, &["get", "configmaps", "-A"]);
        assert!(err.contains("at the cluster scope"), "{err}");
        forbidden(kubectl, &alice, &["get", "namespace", "b"]);
        forbidden(
            kubectl,
            &alice,
            &["delete", "configmap", "settings", "-n", "a"],
        );
        forbidden(kubectl, &alice, &["create", "configmap", "x", "-n", "a"]);
        forbidden(kubectl, &alice, &["get", "nodes"]);
    }
    // Streaming subresources are `create` even over a websocket GET.
    let err = forbidden(K, &alice, &["exec", "-n", "a", "web", "--", "true"]);
    assert!(
        err.contains(r#"cannot create resource "pods/exec""#),
        "{err}"
    );
    // Non-resource paths outside discovery are refused in upstream's words.
    let (ok_, _, err) = run(K, &alice, &["get", "--raw", "/logs/"]);
    assert!(!ok_);
    assert!(
        err.contains(r#"forbidden: User "alice" cannot get path "/logs""#),
        "{err}"
    );
    // Health and version stay public, also without credentials.
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(server.data_dir().join("pki/ca.crt"))
        .arg(format!("https://127.0.0.1:{}/healthz", server.port))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
}

#[test]
fn can_i_and_impersonation() {
    let (server, alice, bob) = start();
    role_binding(&server, "a", "alice-view", "view", "alice");
    let admin = server.kubeconfig();
    for kubectl in KUBECTLS {
        assert!(can_i(kubectl, &alice, &["list", "pods", "-n", "a"]));
        assert!(can_i(
            kubectl,
            &alice,
            &["get", "configmaps/settings", "-n", "a"]
        ));
        assert!(!can_i(kubectl, &alice, &["get", "secrets", "-n", "a"]));
        assert!(!can_i(kubectl, &alice, &["list", "pods", "-n", "b"]));
        assert!(!can_i(kubectl, &alice, &["create", "pods", "-n", "a"]));
        assert!(!can_i(
            kubectl,
            &alice,
            &["delete", "configmaps", "-n", "a"]
        ));
        assert!(can_i(kubectl, &admin, &["create", "pods"]));
        assert!(can_i(kubectl, &admin, &["*", "*"]));
        // As someone else: the admin may impersonate, alice may not.
        assert!(can_i(
            kubectl,
            &admin,
            &["list", "pods", "-n", "a", "--as", "alice"]
        ));
        assert!(!can_i(
            kubectl,
            &admin,
            &["list", "secrets", "-n", "a", "--as", "alice"]
        ));
        assert!(!can_i(
            kubectl,
            &admin,
            &["list", "pods", "-n", "a", "--as", "bob"]
        ));
        let list = ok(kubectl, &alice, &["auth", "can-i", "--list", "-n", "a"]);
        let pods = list
            .lines()
            .find(|l| l.starts_with("pods "))
            .unwrap_or_else(|| panic!("{kubectl}: no pods row in\n{list}"));
        assert!(pods.contains("[get list watch]"), "{pods}");
        assert!(
            list.lines()
                .any(|l| l.starts_with("selfsubjectaccessreviews.authorization.k8s.io")),
            "{list}"
        );
        assert!(!list.lines().any(|l| l.starts_with("secrets ")), "{list}");
        let out = ok(
            kubectl,
            &admin,
            &[
                "get",
                "configmaps",
                "-n",
                "a",
                "--as",
                "alice",
                "-o",
                "name",
            ],
        );
        assert!(out.contains("configmap/settings"), "{out}");
        let err = forbidden(
            kubectl,
            &admin,
            &["get", "secrets", "-n", "a", "--as", "alice"],
        );
        assert!(
            err.contains(r#"User "alice" cannot list resource "secrets""#),
            "{err}"
        );
        let err = forbidden(
            kubectl,
            &alice,
            &["get", "configmaps", "-n", "a", "--as", "bob"],
        );
        assert!(
            err.contains(r#"users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope"#),
            "{err}"
        );
        // Without a discovery cache kubectl fails on discovery already and shows no message.
        let (ok_, _, err) = run(
            kubectl,
            &bob,
            &[
                "get",
                "pods",
                "-n",
                "a",
                "--as",
                "alice",
                "--as-group",
                "devs",
            ],
        );
        assert!(!ok_);
        assert!(
            err.contains("cannot impersonate") || err.contains("(Forbidden)"),
            "{err}"
        );
    }
    // Impersonating a group grants what the group holds.
    let rb = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "ops-edit", "namespace": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "ops"}],
    });
    server.create(K, Some("b"), &rb.to_string());
    assert!(can_i(
        K,
        &admin,
        &[
            "get",
            "secrets",
            "-n",
            "b",
            "--as",
            "carol",
            "--as-group",
            "ops"
        ]
    ));
    assert!(!can_i(
        K,
        &admin,
        &["get", "secrets", "-n", "b", "--as", "carol"]
    ));
}

#[test]
fn aggregation_extends_view() {
    let (server, alice, _) = start();
    role_binding(&server, "a", "alice-view", "view", "alice");
    assert!(!can_i(K, &alice, &["list", "secrets", "-n", "a"]));
    let role = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "secrets-view", "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}],
    });
    server.create(K, None, &role.to_string());
    assert!(can_i(K, &alice, &["list", "secrets", "-n", "a"]));
    let out = ok(K, &alice, &["get", "secrets", "-n", "a", "-o", "name"]);
    assert!(out.contains("secret/token"), "{out}");
    // Still only in her namespace.
    forbidden(K, &alice, &["get", "secrets", "-n", "b"]);
    server.ok_kubectl(K, &["delete", "clusterrole", "secrets-view"]);
    assert!(!can_i(K, &alice, &["list", "secrets", "-n", "a"]));
}

#[test]
fn escalation_is_refused() {
    let (server, _, bob) = start();
    role_binding(&server, "a", "bob-admin", "admin", "bob");
    // What bob holds he may hand on.
    let reader = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "reader", "namespace": "a"},
        "rules": [{"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "list"]}],
    });
    let (ok_, _, err) = run_in(K, &bob, &["create", "-f", "-"], &reader.to_string());
    assert!(ok_, "{err}");
    let view = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "carol-view", "namespace": "a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}],
    });
    let (ok_, _, err) = run_in(K, &bob, &["create", "-f", "-"], &view.to_string());
    assert!(ok_, "{err}");
    // What he does not hold he may neither put in a role nor bind.
    let grab = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "grab", "namespace": "a"},
        "rules": [{"apiGroups": [""], "resources": ["resourcequotas"], "verbs": ["delete"]}],
    });
    let (ok_, _, err) = run_in(K, &bob, &["create", "-f", "-"], &grab.to_string());
    assert!(!ok_);
    assert!(
        err.contains(r#"roles.rbac.authorization.k8s.io "grab" is forbidden: user "bob" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:"#),
        "{err}"
    );
    assert!(
        err.contains(r#"{APIGroups:[""], Resources:["resourcequotas"], Verbs:["delete"]}"#),
        "{err}"
    );
    // Nor by widening a role he may edit.
    let mut wider = reader.clone();
    wider["rules"][0]["verbs"] = serde_json::json!(["get", "list", "deletecollection", "escalate"]);
    wider["rules"][0]["resources"] = serde_json::json!(["resourcequotas"]);
    let (ok_, _, err) = run_in(K, &bob, &["apply", "-f", "-"], &wider.to_string());
    assert!(!ok_);
    assert!(
        err.contains("attempting to grant RBAC permissions not currently held"),
        "{err}"
    );
    let admin_binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bob-root", "namespace": "a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
    });
    let (ok_, _, err) = run_in(K, &bob, &["create", "-f", "-"], &admin_binding.to_string());
    assert!(!ok_);
    assert!(
        err.contains(r#"rolebindings.rbac.authorization.k8s.io "bob-root" is forbidden"#),
        "{err}"
    );
    // The cluster admin may, and `bind` lets someone hand on a role without holding it.
    server.create(K, Some("a"), &grab.to_string());
    let bind = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "may-bind-grab", "namespace": "a"},
        "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"], "verbs": ["bind"], "resourceNames": ["grab"]}],
    });
    server.create(K, Some("a"), &bind.to_string());
    let rb = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "bob-may-bind", "namespace": "a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "may-bind-grab"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}],
    });
    server.create(K, Some("a"), &rb.to_string());
    let grab_binding = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "carol-grab", "namespace": "a"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "grab"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}],
    });
    let (ok_, _, err) = run_in(K, &bob, &["create", "-f", "-"], &grab_binding.to_string());
    assert!(ok_, "{err}");
}

fn run_in(kubectl: &str, kubeconfig: &Path, args: &[&str], stdin: &str) -> (bool, String, String) {
    let out = kubectl_raw(kubectl, kubeconfig, args, Some(stdin));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
