//! End to end with real kubectl: every namespace gets the `kube-root-ca.crt` ConfigMap with the
//! cluster CA, recreated when deleted and corrected when edited; a legacy service-account token
//! Secret is filled in by the token controller, its token authenticates as the service account
//! with kubectl, and deleting the account deletes the Secret and revokes the token.

mod common;
mod controllers_support;

use std::path::{Path, PathBuf};

use base64::Engine;
use common::{Server, json, kubectl_raw};
use controllers_support::{K, get, mutate, wait_for};

fn ca_pem(s: &Server) -> String {
    std::fs::read_to_string(s.data_dir().join("pki/ca.crt")).expect("ca.crt")
}

/// The published CA of namespace `ns`, once the ConfigMap exists.
fn published(s: &Server, ns: &str) -> Option<String> {
    let cm = get(s, &["configmap", "kube-root-ca.crt", "-n", ns])?;
    cm["data"]["ca.crt"].as_str().map(str::to_owned)
}

#[test]
fn every_namespace_gets_the_root_ca_and_keeps_it() {
    let s = Server::start_with(&["--disable-agent"]);
    let ca = ca_pem(&s);
    s.namespace(K, "team");
    for ns in ["default", "kube-system", "team"] {
        let got = wait_for(&format!("kube-root-ca.crt in {ns}"), 60, &s, || {
            published(&s, ns)
        });
        assert_eq!(got, ca, "{ns}");
    }
    let cm = get(&s, &["configmap", "kube-root-ca.crt", "-n", "team"]).expect("configmap");
    assert!(
        cm["metadata"]["annotations"]["kubernetes.io/description"].is_string(),
        "{cm}"
    );

    s.ok_kubectl(
        K,
        &["delete", "configmap", "kube-root-ca.crt", "-n", "team"],
    );
    wait_for("kube-root-ca.crt recreated", 60, &s, || {
        published(&s, "team").filter(|got| *got == ca)
    });

    mutate(
        &s,
        &[
            "patch",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "team",
            "--type=merge",
            "-p",
            r#"{"data":{"ca.crt":"tampered","extra":"x"}}"#,
        ],
    );
    wait_for("kube-root-ca.crt corrected", 60, &s, || {
        let cm = get(&s, &["configmap", "kube-root-ca.crt", "-n", "team"])?;
        let data = cm["data"].as_object()?.clone();
        (data.len() == 1 && data.get("ca.crt")?.as_str() == Some(ca.as_str())).then_some(())
    });
}

/// A kubeconfig that authenticates with `token` only (no client certificate).
fn token_kubeconfig(s: &Server, token: &str) -> PathBuf {
    let path = s.dir.path().join("token.kubeconfig");
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {
            "server": format!("https://127.0.0.1:{}", s.port),
            "certificate-authority": s.data_dir().join("pki/ca.crt"),
        }}],
        "users": [{"name": "u", "user": {"token": token}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    });
    std::fs::write(&path, config.to_string()).expect("write kubeconfig");
    path
}

/// `kubectl auth whoami -o json` as the kubeconfig's user: the user name, or kubectl's error.
fn whoami(kubeconfig: &Path) -> Result<String, String> {
    let out = kubectl_raw(K, kubeconfig, &["auth", "whoami", "-o", "json"], None);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let review = json(&String::from_utf8_lossy(&out.stdout));
    Ok(review["status"]["userInfo"]["username"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn decoded(secret: &serde_json::Value, key: &str) -> Option<String> {
    let b64 = secret["data"][key].as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    String::from_utf8(bytes).ok().filter(|v| !v.is_empty())
}

#[test]
fn legacy_token_secrets_are_filled_and_die_with_their_account() {
    let s = Server::start_with(&["--disable-agent"]);
    s.create(
        K,
        Some("default"),
        r#"{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"builder"}}"#,
    );
    let sa = get(&s, &["serviceaccount", "builder"]).expect("service account");
    s.create(
        K,
        Some("default"),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"builder-token",
            "annotations":{"kubernetes.io/service-account.name":"builder"}},
            "type":"kubernetes.io/service-account-token"}"#,
    );
    let secret = wait_for("the token Secret filled in", 60, &s, || {
        let secret = get(&s, &["secret", "builder-token"])?;
        decoded(&secret, "token").map(|_| secret)
    });
    assert_eq!(
        decoded(&secret, "ca.crt").as_deref(),
        Some(ca_pem(&s).as_str())
    );
    assert_eq!(decoded(&secret, "namespace").as_deref(), Some("default"));
    assert_eq!(
        secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"],
        sa["metadata"]["uid"]
    );
    // kubectl describes it as upstream's: the token is there.
    let described = s.ok_kubectl(K, &["describe", "secret", "builder-token"]);
    assert!(described.contains("token:"), "{described}");

    let token = decoded(&secret, "token").expect("token");
    let kubeconfig = token_kubeconfig(&s, &token);
    assert_eq!(
        whoami(&kubeconfig).as_deref(),
        Ok("system:serviceaccount:default:builder")
    );

    s.ok_kubectl(K, &["delete", "serviceaccount", "builder"]);
    wait_for("the token Secret deleted", 60, &s, || {
        get(&s, &["secret", "builder-token"])
            .is_none()
            .then_some(())
    });
    let refused = whoami(&kubeconfig).expect_err("a revoked token");
    assert!(refused.contains("Unauthorized"), "{refused}");
}

#[test]
fn a_token_secret_without_its_account_is_deleted() {
    let s = Server::start_with(&["--disable-agent"]);
    s.create(
        K,
        Some("default"),
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"nobody-token",
            "annotations":{"kubernetes.io/service-account.name":"nobody"}},
            "type":"kubernetes.io/service-account-token"}"#,
    );
    wait_for("the orphan token Secret deleted", 60, &s, || {
        get(&s, &["secret", "nobody-token"]).is_none().then_some(())
    });
}
