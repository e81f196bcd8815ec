//! Authentication end to end: anonymous and bad credentials get a 401 `Status`, a static-token
//! user and service-account tokens from `kubectl create token` work with real kubectl, bound
//! and expired tokens are refused, TokenReview and SelfSubjectReview answer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{KUBECTLS, Server, json, kubectl_raw};

/// A kubeconfig for the server that authenticates with `token` (no client certificate); no
/// credentials at all with `None`.
fn token_kubeconfig(server: &Server, name: &str, token: Option<&str>) -> PathBuf {
    let path = server.dir.path().join(format!("{name}.kubeconfig"));
    let ca = server.data_dir().join("pki/ca.crt");
    let user = match token {
        Some(t) => format!(r#"{{"token":"{t}"}}"#),
        None => "{}".to_owned(),
    };
    let text = format!(
        r#"{{"apiVersion":"v1","kind":"Config","current-context":"c",
  "clusters":[{{"name":"c","cluster":{{"server":"https://127.0.0.1:{}","certificate-authority":"{}"}}}}],
  "users":[{{"name":"u","user":{user}}}],
  "contexts":[{{"name":"c","context":{{"cluster":"c","user":"u"}}}}]}}"#,
        server.port,
        ca.display()
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// `curl` of a path with an optional bearer token: (HTTP code, body).
fn curl(server: &Server, path: &str, token: Option<&str>) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-w", "\n%{http_code}", "--cacert"])
        .arg(server.data_dir().join("pki/ca.crt"))
        .arg(format!("https://127.0.0.1:{}{path}", server.port));
    if let Some(t) = token {
        cmd.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = cmd.output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn assert_unauthorized(server: &Server, path: &str, token: Option<&str>) {
    let (code, body) = curl(server, path, token);
    assert_eq!(code, 401, "{path} with {token:?}: {body}");
    let status = json(&body);
    assert_eq!(status["kind"], "Status", "{body}");
    assert_eq!(status["reason"], "Unauthorized", "{body}");
    assert_eq!(status["code"], 401, "{body}");
}

fn run(kubectl: &str, kubeconfig: &Path, args: &[&str]) -> (bool, String, String) {
    let out = kubectl_raw(kubectl, kubeconfig, args, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl auth whoami -o json` (kubectl 1.28+) as the user of `kubeconfig`.
fn whoami(kubectl: &str, kubeconfig: &Path) -> serde_json::Value {
    let (ok, out, err) = run(kubectl, kubeconfig, &["auth", "whoami", "-o", "json"]);
    assert!(ok, "{kubectl} auth whoami: {err}");
    json(&out)["status"]["userInfo"].clone()
}

/// Grants `view` cluster-wide to `subject` (a binding's subject as JSON): authentication alone
/// allows only discovery and self-review.
fn grant_view(server: &Server, name: &str, subject: serde_json::Value) {
    let crb = serde_json::json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [subject],
    });
    server.create("/usr/bin/kubectl", None, &crb.to_string());
}

fn wait_for_default_sa(server: &Server, ns: &str) {
    common::node::wait_for("the default service account", 30, || {
        server
            .kubectl("/usr/bin/kubectl", &["get", "sa", "default", "-n", ns])
            .status
            .success()
            .then_some(())
    });
}

#[test]
fn anonymous_and_bad_credentials_get_401_but_public_paths_answer() {
    let server = Server::start_with(&["--disable-agent"]);
    for path in ["/healthz", "/readyz", "/livez", "/version"] {
        let (code, body) = curl(&server, path, None);
        assert_eq!(code, 200, "{path}: {body}");
    }
    for path in ["/api", "/api/v1/namespaces", "/apis", "/openapi/v2"] {
        assert_unauthorized(&server, path, None);
    }
    for token in [
        "not-a-known-token",
        "abcdef.0123456789abcdef",
        "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2lnbmF0dXJl",
    ] {
        assert_unauthorized(&server, "/api/v1/namespaces", Some(token));
    }
    let bad = token_kubeconfig(&server, "bad", Some("wrong"));
    for kubectl in KUBECTLS {
        // kubectl prompts for a user name when a kubeconfig has no credentials at all, so the
        // anonymous case is checked with curl above; kubectl gets a wrong token.
        let kcs = [&bad];
        for kc in kcs {
            let (ok, _, err) = run(kubectl, kc, &["get", "namespaces"]);
            assert!(
                !ok && (err.contains("Unauthorized") || err.contains("provide credentials")),
                "{kubectl}: {err}"
            );
        }
    }
    // The admin kubeconfig (a client certificate) is the certificate's CN and O.
    let admin = whoami("/usr/bin/kubectl", &server.kubeconfig());
    assert_eq!(admin["username"], "rudder-admin");
    assert_eq!(
        admin["groups"],
        serde_json::json!(["system:masters", "system:authenticated"])
    );
}

#[test]
fn static_token_users_are_authenticated() {
    let files = tempfile::tempdir().expect("tempdir");
    let token_file = files.path().join("tokens.csv");
    std::fs::write(
        &token_file,
        "s3cr3t-alice,alice,1001,\"dev,ops\"\ns3cr3t-bob,bob,1002\n",
    )
    .expect("token file");
    let server = Server::start_with(&[
        "--disable-agent",
        "--token-auth-file",
        token_file.to_str().expect("utf-8 path"),
    ]);
    for user in ["alice", "bob"] {
        grant_view(
            &server,
            user,
            serde_json::json!({"kind": "User", "name": user}),
        );
    }
    let alice = token_kubeconfig(&server, "alice", Some("s3cr3t-alice"));
    for kubectl in KUBECTLS {
        let (ok, out, err) = run(kubectl, &alice, &["get", "namespaces", "-o", "name"]);
        assert!(ok, "{kubectl}: {err}");
        assert!(out.contains("namespace/default"), "{out}");
    }
    for kubectl in &KUBECTLS[1..] {
        let who = whoami(kubectl, &alice);
        assert_eq!(who["username"], "alice");
        assert_eq!(who["uid"], "1001");
        assert_eq!(
            who["groups"],
            serde_json::json!(["dev", "ops", "system:authenticated"])
        );
    }
    let (code, body) = curl(&server, "/api/v1/namespaces/default", Some("s3cr3t-bob"));
    assert_eq!(code, 200, "{body}");
    assert_unauthorized(&server, "/api", Some("s3cr3t-carol"));
}

#[test]
fn service_account_tokens_from_kubectl_create_token() {
    let server = Server::start_with(&["--disable-agent"]);
    wait_for_default_sa(&server, "default");
    grant_view(
        &server,
        "default-sa",
        serde_json::json!({"kind": "ServiceAccount", "name": "default", "namespace": "default"}),
    );
    for kubectl in KUBECTLS {
        let token = server.ok_kubectl(kubectl, &["create", "token", "default"]);
        let token = token.trim();
        assert_eq!(token.split('.').count(), 3, "{token}");
        let kc = token_kubeconfig(&server, "sa", Some(token));
        let (ok, out, err) = run(kubectl, &kc, &["get", "serviceaccounts", "-o", "name"]);
        assert!(ok, "{kubectl} with a service-account token: {err}");
        assert!(out.contains("serviceaccount/default"), "{out}");
        let who = whoami("/usr/bin/kubectl", &kc);
        assert_eq!(who["username"], "system:serviceaccount:default:default");
        assert_eq!(
            who["groups"],
            serde_json::json!([
                "system:serviceaccounts",
                "system:serviceaccounts:default",
                "system:authenticated"
            ])
        );
    }
    // A token for another audience is not for this server, but TokenReview with that audience
    // accepts it.
    let vault = server.ok_kubectl(
        "/usr/bin/kubectl",
        &[
            "create",
            "token",
            "default",
            "--audience",
            "vault",
            "--duration",
            "20m",
        ],
    );
    assert_unauthorized(&server, "/api", Some(vault.trim()));
    let review = |token: &str, audiences: &str| {
        let manifest = format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","metadata":{{}},"spec":{{"token":"{token}","audiences":{audiences}}}}}"#
        );
        json(&server.kubectl_in(
            "/usr/bin/kubectl",
            &["create", "-f", "-", "-o", "json"],
            &manifest,
        ))["status"]
            .clone()
    };
    let status = review(vault.trim(), r#"["vault"]"#);
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:default"
    );
    let status = review("nope", "[]");
    assert_eq!(status["authenticated"], false, "{status}");
    // Too short a lifetime is invalid, a missing service account is not found.
    let err = server.fail_kubectl(
        "/usr/bin/kubectl",
        &["create", "token", "default", "--duration", "5m"],
        None,
    );
    assert!(err.contains("10 minutes"), "{err}");
    let err = server.fail_kubectl("/usr/bin/kubectl", &["create", "token", "nobody"], None);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn bound_and_expired_tokens_are_refused() {
    let server = Server::start_with(&["--disable-agent"]);
    wait_for_default_sa(&server, "default");
    grant_view(
        &server,
        "default-sa",
        serde_json::json!({"kind": "ServiceAccount", "name": "default", "namespace": "default"}),
    );
    let kubectl = "/usr/bin/kubectl";
    server.create(
        kubectl,
        Some("default"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"holder"},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#,
    );
    server.create(
        kubectl,
        Some("default"),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"holder"},"type":"Opaque"}"#,
    );
    let bound = |kind: &str| {
        server
            .ok_kubectl(
                kubectl,
                &[
                    "create",
                    "token",
                    "default",
                    "--bound-object-kind",
                    kind,
                    "--bound-object-name",
                    "holder",
                ],
            )
            .trim()
            .to_owned()
    };
    let pod_token = bound("Pod");
    let secret_token = bound("Secret");
    for t in [&pod_token, &secret_token] {
        let (code, body) = curl(&server, "/api/v1/namespaces/default/pods", Some(t));
        assert_eq!(code, 200, "{body}");
    }
    server.ok_kubectl(
        kubectl,
        &["delete", "pod", "holder", "--grace-period=0", "--force"],
    );
    server.ok_kubectl(kubectl, &["delete", "secret", "holder"]);
    common::node::wait_for("bound tokens to be refused", 10, || {
        (curl(&server, "/api", Some(&pod_token)).0 == 401
            && curl(&server, "/api", Some(&secret_token)).0 == 401)
            .then_some(())
    });
    assert_unauthorized(&server, "/api", Some(&pod_token));

    // A token signed with the cluster's key that expired an hour ago.
    let sa = json(&server.ok_kubectl(kubectl, &["get", "sa", "default", "-o", "json"]));
    let key = std::fs::read_to_string(server.data_dir().join("pki/sa.key")).expect("sa.key");
    let signer = rudder_auth::service_account::Signer::from_pem(&key).expect("signer");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let claims = |issued: i64| {
        rudder_auth::service_account::Claims::new(rudder_auth::service_account::TokenSpec {
            issuer: rudder_auth::service_account::DEFAULT_ISSUER.into(),
            audiences: vec![rudder_auth::service_account::DEFAULT_ISSUER.into()],
            namespace: "default".into(),
            service_account: rudder_auth::service_account::ObjectRef {
                name: "default".into(),
                uid: sa["metadata"]["uid"].as_str().unwrap_or("").into(),
            },
            bound: None,
            now: issued,
            expiration_seconds: 600,
            id: "test".into(),
        })
    };
    let fresh = signer.sign(&claims(now)).expect("sign");
    let (code, body) = curl(&server, "/api", Some(&fresh));
    assert_eq!(code, 200, "a fresh token signed with sa.key: {body}");
    let expired = signer.sign(&claims(now - 3600)).expect("sign");
    assert_unauthorized(&server, "/api", Some(&expired));

    // A service account deleted and recreated has a new uid: the old tokens die with it.
    let token = server.ok_kubectl(kubectl, &["create", "token", "default"]);
    server.ok_kubectl(kubectl, &["delete", "sa", "default"]);
    common::node::wait_for("the service account to be recreated", 30, || {
        let out = server.kubectl(kubectl, &["get", "sa", "default", "-o", "json"]);
        if !out.status.success() {
            return None;
        }
        let uid = json(&String::from_utf8_lossy(&out.stdout))["metadata"]["uid"].clone();
        (uid != sa["metadata"]["uid"]).then_some(())
    });
    assert_unauthorized(&server, "/api", Some(token.trim()));
}

/// `curl` POST of a SelfSubjectReview with a bearer token: (HTTP code, body).
fn self_review(server: &Server, token: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-X", "POST", "--cacert"])
        .arg(server.data_dir().join("pki/ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json"])
        .args([
            "-d",
            r#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        ])
        .arg(format!(
            "https://127.0.0.1:{}/apis/authentication.k8s.io/v1/selfsubjectreviews",
            server.port
        ))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

#[test]
fn projected_service_account_token_authenticates_the_pod() {
    let (server, node) = common::node::node_with_busybox();
    let kubectl = KUBECTLS[KUBECTLS.len() - 1];
    wait_for_default_sa(&server, "default");
    let ca = std::fs::read_to_string(server.data_dir().join("pki/ca.crt")).expect("ca.crt");
    // The root CA publisher (controller manager) provides ca.crt to the projected volume.
    common::node::wait_for("kube-root-ca.crt published", 60, || {
        server
            .kubectl(kubectl, &["get", "configmap", "kube-root-ca.crt"])
            .status
            .success()
            .then_some(())
    });
    let dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
        "spec": {
            "nodeName": node,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "sleep 3600"],
                "volumeMounts": [{"name": "kube-api-access-x1", "mountPath": dir, "readOnly": true}],
            }],
            "volumes": [{"name": "kube-api-access-x1", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
            ]}}],
        },
    });
    server.create(kubectl, Some("default"), &pod.to_string());
    let token = common::node::wait_for("the pod's token", 90, || {
        let out = server.kubectl(
            kubectl,
            &["exec", "reader", "--", "cat", &format!("{dir}/token")],
        );
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .filter(|t| !t.is_empty())
    });
    let ns = server.ok_kubectl(
        kubectl,
        &["exec", "reader", "--", "cat", &format!("{dir}/namespace")],
    );
    assert_eq!(ns, "default");
    let in_pod_ca = server.ok_kubectl(
        kubectl,
        &["exec", "reader", "--", "cat", &format!("{dir}/ca.crt")],
    );
    assert_eq!(in_pod_ca, ca);
    let (code, body) = self_review(&server, &token);
    assert_eq!(code, 201, "{body}");
    let user = json(&body)["status"]["userInfo"].clone();
    assert_eq!(user["username"], "system:serviceaccount:default:default");
    assert_eq!(
        user["extra"]["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["reader"])
    );
    server.ok_kubectl(kubectl, &["delete", "pod", "reader", "--grace-period=1"]);
    common::node::wait_for("the pod to be gone", 60, || {
        (!server
            .kubectl(kubectl, &["get", "pod", "reader"])
            .status
            .success())
        .then_some(())
    });
    assert_unauthorized(&server, "/api", Some(&token));
}
