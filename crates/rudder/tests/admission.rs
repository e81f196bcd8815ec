//! The admission chain end to end with real kubectl: NamespaceLifecycle (missing and
//! terminating namespaces, undeletable system namespaces), ServiceAccount (the `default`
//! account and the projected `kube-api-access-*` volume), Priority, DefaultStorageClass,
//! LimitRanger, ResourceQuota and Pod Security admission, with upstream's messages. The
//! servers run without a node agent: admission decides before anything would run.

mod common;

use common::node::wait_for;
use common::{Server, json, kubectl_raw};

const K: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

fn pod(name: &str, extra_spec: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{{extra_spec}"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
    )
}

fn pod_with_resources(name: &str, resources: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{"containers":[{{"name":"c","image":"busybox","resources":{resources}}}]}}}}"#
    )
}

fn get(server: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["get", "-o", "json"];
    all.extend_from_slice(args);
    json(&server.ok_kubectl(K, &all))
}

#[test]
fn namespaces_service_accounts_priority_and_storage_classes() {
    let server = Server::start_with(&["--disable-agent"]);

    let err = server.fail_kubectl(
        K,
        &["create", "-n", "nowhere", "-f", "-"],
        Some(&pod("p", "")),
    );
    assert!(err.contains(r#"namespaces "nowhere" not found"#), "{err}");

    let err = server.fail_kubectl(K, &["delete", "namespace", "kube-system"], None);
    assert!(
        err.contains(r#"namespaces "kube-system" is forbidden: this namespace may not be deleted"#),
        "{err}"
    );

    // A ConfigMap's finalizer keeps the namespace Terminating while the test creates in it.
    server.namespace(K, "ending");
    server.create(
        K,
        Some("ending"),
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held","finalizers":["example.com/hold"]}}"#,
    );
    server.ok_kubectl(K, &["delete", "namespace", "ending", "--wait=false"]);
    let err = server.fail_kubectl(
        K,
        &["create", "-n", "ending", "-f", "-"],
        Some(&pod("p", "")),
    );
    assert!(
        err.contains(
            "unable to create new content in namespace ending because it is being terminated"
        ),
        "{err}"
    );
    assert!(err.contains("Forbidden"), "{err}");

    server.namespace(K, "work");
    server.create(K, Some("work"), &pod("plain", ""));
    let p = get(&server, &["pod", "plain", "-n", "work"]);
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["priority"], 0);
    let volume = &p["spec"]["volumes"][0];
    let name = volume["name"].as_str().expect("volume name");
    assert!(name.starts_with("kube-api-access-"), "{p}");
    let sources = &volume["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
    assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
    assert_eq!(
        sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    let mount = &p["spec"]["containers"][0]["volumeMounts"][0];
    assert_eq!(mount["name"], name);
    assert_eq!(
        mount["mountPath"],
        "/var/run/secrets/kubernetes.io/serviceaccount"
    );
    assert_eq!(mount["readOnly"], true);

    server.create(
        K,
        Some("work"),
        &pod("quiet", r#""automountServiceAccountToken":false,"#),
    );
    let p = get(&server, &["pod", "quiet", "-n", "work"]);
    assert!(p["spec"]["volumes"].is_null(), "{p}");

    let err = server.fail_kubectl(
        K,
        &["create", "-n", "work", "-f", "-"],
        Some(&pod("ghost", r#""serviceAccountName":"ghost","#)),
    );
    assert!(
        err.contains(r#"pods "ghost" is forbidden: error looking up service account work/ghost: serviceaccount "ghost" not found"#),
        "{err}"
    );

    server.create(
        K,
        None,
        r#"{"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass","metadata":{"name":"high"},"value":100000}"#,
    );
    server.create(
        K,
        Some("work"),
        &pod("important", r#""priorityClassName":"high","#),
    );
    let p = get(&server, &["pod", "important", "-n", "work"]);
    assert_eq!(p["spec"]["priority"], 100_000);
    assert_eq!(p["spec"]["preemptionPolicy"], "PreemptLowerPriority");
    let err = server.fail_kubectl(
        K,
        &["create", "-n", "work", "-f", "-"],
        Some(&pod("nobody", r#""priorityClassName":"nope","#)),
    );
    assert!(
        err.contains("no PriorityClass with name nope was found"),
        "{err}"
    );

    // The controllers' local-path class is the default one.
    wait_for("the default storage class", 30, || {
        server
            .kubectl(K, &["get", "storageclass", "local-path"])
            .status
            .success()
            .then_some(())
    });
    server.create(
        K,
        Some("work"),
        r#"{"apiVersion":"v1","kind":"PersistentVolumeClaim","metadata":{"name":"data"},"spec":{"accessModes":["ReadWriteOnce"],"resources":{"requests":{"storage":"1Mi"}}}}"#,
    );
    let c = get(&server, &["pvc", "data", "-n", "work"]);
    assert_eq!(c["spec"]["storageClassName"], "local-path");
}

#[test]
fn limit_ranges_and_quotas() {
    let server = Server::start_with(&["--disable-agent"]);
    server.namespace(K, "limited");
    server.create(
        K,
        Some("limited"),
        r#"{"apiVersion":"v1","kind":"LimitRange","metadata":{"name":"cpu"},"spec":{"limits":[{"type":"Container","default":{"cpu":"200m"},"defaultRequest":{"cpu":"100m"},"max":{"cpu":"1"}}]}}"#,
    );
    server.create(K, Some("limited"), &pod("defaulted", ""));
    let p = get(&server, &["pod", "defaulted", "-n", "limited"]);
    let r = &p["spec"]["containers"][0]["resources"];
    assert_eq!(r["requests"]["cpu"], "100m", "{p}");
    assert_eq!(r["limits"]["cpu"], "200m", "{p}");
    assert!(
        p["metadata"]["annotations"]["kubernetes.io/limit-ranger"]
            .as_str()
            .is_some_and(|a| a.starts_with("LimitRanger plugin set: cpu request for container c")),
        "{p}"
    );
    let err = server.fail_kubectl(
        K,
        &["create", "-n", "limited", "-f", "-"],
        Some(&pod_with_resources("big", r#"{"limits":{"cpu":"2"}}"#)),
    );
    assert!(
        err.contains(
            r#"pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2"#
        ),
        "{err}"
    );

    server.namespace(K, "counted");
    server.create(
        K,
        Some("counted"),
        r#"{"apiVersion":"v1","kind":"ResourceQuota","metadata":{"name":"two"},"spec":{"hard":{"pods":"2"}}}"#,
    );
    wait_for("the quota's status", 30, || {
        let q = get(&server, &["quota", "two", "-n", "counted"]);
        (q["status"]["used"]["pods"] == "0").then_some(())
    });
    server.create(K, Some("counted"), &pod("a", ""));
    server.create(K, Some("counted"), &pod("b", ""));
    let err = server.fail_kubectl(
        K,
        &["create", "-n", "counted", "-f", "-"],
        Some(&pod("c", "")),
    );
    assert!(
        err.contains(r#"pods "c" is forbidden: exceeded quota: two, requested: pods=1, used: pods=2, limited: pods=2"#),
        "{err}"
    );
    let q = get(&server, &["quota", "two", "-n", "counted"]);
    assert_eq!(q["status"]["used"]["pods"], "2", "{q}");
}

#[test]
fn pod_security_enforces_and_warns_by_namespace_label() {
    let server = Server::start_with(&["--disable-agent"]);
    let privileged = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"root"},"spec":{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}}"#;
    for (ns, mode, level) in [
        ("strict", "enforce", "restricted"),
        ("lenient", "warn", "baseline"),
    ] {
        server.namespace(K, ns);
        server.ok_kubectl(
            K,
            &[
                "label",
                "namespace",
                ns,
                &format!("pod-security.kubernetes.io/{mode}={level}"),
            ],
        );
    }
    let err = server.fail_kubectl(K, &["create", "-n", "strict", "-f", "-"], Some(privileged));
    assert!(
        err.contains(r#"pods "root" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), allowPrivilegeEscalation != false"#),
        "{err}"
    );
    let out = kubectl_raw(
        K,
        &server.kubeconfig(),
        &["create", "-n", "lenient", "-f", "-"],
        Some(privileged),
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"Warning: would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)"#),
        "{stderr}"
    );
}

/// An HTTPS admission webhook (Python's `http.server`) on a free loopback port: `/mutate`
/// adds the annotation `webhook.example.com/seen: "true"`, `/validate` refuses pods labelled
/// `deny=yes` with a 403. Killed (by its pid) when dropped.
struct Webhook {
    child: std::process::Child,
    port: u16,
    ca_bundle: String,
}

const WEBHOOK_PY: &str = r#"
import base64, json, ssl, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        req = review["request"]
        resp = {"uid": req["uid"], "allowed": True}
        labels = (req["object"].get("metadata") or {}).get("labels") or {}
        if self.path.startswith("/mutate"):
            patch = [{"op": "add", "path": "/metadata/annotations", "value": {"webhook.example.com/seen": "true"}}]
            resp["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
            resp["patchType"] = "JSONPatch"
        elif labels.get("deny") == "yes":
            resp = {"uid": req["uid"], "allowed": False, "status": {"code": 403, "message": "pods labelled deny=yes are not welcome"}}
        else:
            resp["warnings"] = ["checked by the test webhook"]
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": resp}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
server.socket = ctx.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

impl Webhook {
    fn start(dir: &std::path::Path) -> Self {
        use base64::Engine;
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca.pem(), &ca_key).expect("issuer");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("certificate");
        let (script, crt, pem) = (
            dir.join("webhook.py"),
            dir.join("webhook.crt"),
            dir.join("webhook.key"),
        );
        std::fs::write(&script, WEBHOOK_PY).expect("write the webhook");
        std::fs::write(&crt, cert.pem()).expect("write the certificate");
        std::fs::write(&pem, key.serialize_pem()).expect("write the key");
        let port = common::free_port();
        let child = std::process::Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&crt)
            .arg(&pem)
            .spawn()
            .expect("start the webhook");
        wait_for("the webhook to listen", 30, || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| ())
        });
        Webhook {
            child,
            port,
            ca_bundle: base64::engine::general_purpose::STANDARD.encode(ca.pem()),
        }
    }

    fn hook(
        &self,
        name: &str,
        path: &str,
        port: u16,
        policy: &str,
        extra: serde_json::Value,
    ) -> serde_json::Value {
        let mut hook = serde_json::json!({
            "name": name,
            "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "failurePolicy": policy,
            "timeoutSeconds": 5,
            "clientConfig": {"url": format!("https://127.0.0.1:{port}{path}"), "caBundle": self.ca_bundle},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}],
        });
        if let (Some(h), Some(e)) = (hook.as_object_mut(), extra.as_object()) {
            h.extend(e.clone());
        }
        hook
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn admission_webhooks_mutate_validate_and_follow_their_failure_policy() {
    let server = Server::start_with(&["--disable-agent"]);
    let webhook = Webhook::start(server.dir.path());
    let dead = common::free_port();
    let strict = serde_json::json!({"namespaceSelector": {"matchLabels": {"strict": "yes"}}});
    server.create(
        K,
        None,
        &serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "annotate"},
            "webhooks": [webhook.hook("annotate.example.com", "/mutate", webhook.port, "Fail", serde_json::json!({}))],
        })
        .to_string(),
    );
    server.create(
        K,
        None,
        &serde_json::json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "check"},
            "webhooks": [
                webhook.hook("check.example.com", "/validate", webhook.port, "Fail", serde_json::json!({})),
                webhook.hook("gone.example.com", "/validate", dead, "Ignore", serde_json::json!({})),
                webhook.hook("strict.example.com", "/validate", dead, "Fail", strict),
            ],
        })
        .to_string(),
    );
    server.namespace(K, "hooked");
    let out = kubectl_raw(
        K,
        &server.kubeconfig(),
        &["create", "-n", "hooked", "-f", "-"],
        Some(&pod("welcome", "")),
    );
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Warning: checked by the test webhook"),
        "{stderr}"
    );
    let p = get(&server, &["pod", "welcome", "-n", "hooked"]);
    assert_eq!(
        p["metadata"]["annotations"]["webhook.example.com/seen"], "true",
        "{p}"
    );

    let denied = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"unwelcome","labels":{"deny":"yes"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}"#;
    let err = server.fail_kubectl(K, &["create", "-n", "hooked", "-f", "-"], Some(denied));
    assert!(
        err.contains(r#"admission webhook "check.example.com" denied the request: pods labelled deny=yes are not welcome"#),
        "{err}"
    );

    server.namespace(K, "strict");
    server.ok_kubectl(K, &["label", "namespace", "strict", "strict=yes"]);
    let err = server.fail_kubectl(
        K,
        &["create", "-n", "strict", "-f", "-"],
        Some(&pod("p", "")),
    );
    assert!(
        err.contains(r#"failed calling webhook "strict.example.com""#),
        "{err}"
    );
}
