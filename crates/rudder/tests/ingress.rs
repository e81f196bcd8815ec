//! End to end, as root with real containers: the Ingress controller creates the default
//! `rudder` IngressClass, routes two hosts over HTTPS (certificates from two TLS Secrets chosen
//! by SNI, HTTP/2 by ALPN) and plain HTTP to two Deployments' pods, sends an Exact path to the
//! other Service, answers 404 for unknown hosts and 503 once a Service has no ready endpoint,
//! and publishes the node's address in the Ingress status. Requests are made with curl.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use common::node::{node_with_busybox, wait_for};
use common::{KUBECTLS, Server, json};

/// A Deployment of busybox httpd pods answering `/` and `/b` with `pod=<pod name>`.
fn deployment(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c",
                            "mkdir -p /www && echo pod=$(hostname) > /www/index.html && cp /www/index.html /www/b && touch /tmp/ready && exec httpd -f -p 8080 -h /www"],
                        "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                            "periodSeconds": 1, "failureThreshold": 1},
                    }],
                },
            },
        },
    })
    .to_string()
}

fn service(name: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    })
    .to_string()
}

/// A self-signed certificate for `host`, written to `<dir>/<host>.pem`; the Secret holding it.
fn tls_secret(dir: &Path, name: &str, host: &str) -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec![host.to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    std::fs::write(dir.join(format!("{host}.pem")), cert.pem()).expect("write the certificate");
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name},
        "data": {"tls.crt": b64(cert.pem()), "tls.key": b64(key.serialize_pem())},
    })
    .to_string()
}

/// What curl got: status code, HTTP version and body; or its error.
struct Answer {
    code: String,
    version: String,
    body: String,
}

/// One request with curl to `scheme://host:port/path`, connecting to 127.0.0.1 (SNI and Host
/// are `host`); `ca`: the only certificate to trust (`None`: any).
fn curl(
    s: &Server,
    https: bool,
    host: &str,
    path: &str,
    ca: Option<&Path>,
) -> Result<Answer, String> {
    let port = if https {
        s.ingress_https_port
    } else {
        s.ingress_http_port
    };
    let scheme = if https { "https" } else { "http" };
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "5",
        "--resolve",
        &format!("{host}:{port}:127.0.0.1"),
        "-w",
        "\n%{http_code} %{http_version}",
    ]);
    if https {
        cmd.arg("--http2");
    }
    match ca {
        Some(ca) => {
            cmd.arg("--cacert").arg(ca);
        }
        None => {
            cmd.arg("-k");
        }
    }
    let out = cmd
        .arg(format!("{scheme}://{host}:{port}{path}"))
        .output()
        .expect("run curl");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').ok_or("no status line")?;
    let (code, version) = last.split_once(' ').ok_or("no version")?;
    Ok(Answer {
        code: code.to_owned(),
        version: version.to_owned(),
        body: body.to_owned(),
    })
}

/// Waits until a request answers `code` with a body starting with `body`; returns the answer.
fn wait_answer(
    s: &Server,
    https: bool,
    host: &str,
    path: &str,
    ca: Option<&Path>,
    code: &str,
    body: &str,
) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let last = match curl(s, https, host, path, ca) {
            Ok(a) if a.code == code && a.body.starts_with(body) => return a,
            Ok(a) => format!("{} HTTP/{} {}", a.code, a.version, a.body),
            Err(e) => e,
        };
        assert!(
            Instant::now() < deadline,
            "{host}{path} did not answer {code} {body}; last: {last}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn ingress_routes_two_hosts_to_two_services_with_tls() {
    let (s, _node) = node_with_busybox();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let certs = tempfile::tempdir().expect("tempdir");
    let (a, b) = ("a.example.test", "b.example.test");
    let ca_a = certs.path().join(format!("{a}.pem"));
    let ca_b = certs.path().join(format!("{b}.pem"));

    // The controller's class exists and is the default.
    let class = wait_for("the rudder IngressClass", 30, || {
        let out = s.kubectl(k, &["get", "ingressclass", "rudder", "-o", "json"]);
        out.status
            .success()
            .then(|| json(&String::from_utf8_lossy(&out.stdout)))
    });
    assert_eq!(class["spec"]["controller"], "rudder.io/ingress");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );

    for name in ["web-a", "web-b"] {
        s.create(k, None, &service(name));
        s.create(k, None, &deployment(name));
    }
    s.create(k, None, &tls_secret(certs.path(), "tls-a", a));
    s.create(k, None, &tls_secret(certs.path(), "tls-b", b));
    let backend = |svc: &str| serde_json::json!({"service": {"name": svc, "port": {"number": 80}}});
    // No ingressClassName: the default class's controller serves it.
    s.create(
        k,
        None,
        &serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web"},
            "spec": {
                "tls": [{"hosts": [a], "secretName": "tls-a"}, {"hosts": [b], "secretName": "tls-b"}],
                "rules": [
                    {"host": a, "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": backend("web-a")},
                        {"path": "/b", "pathType": "Exact", "backend": backend("web-b")},
                    ]}},
                    {"host": b, "http": {"paths": [
                        {"path": "/", "pathType": "Prefix", "backend": backend("web-b")},
                    ]}},
                ],
            },
        })
        .to_string(),
    );

    // Each host reaches its Service's pod over HTTPS with its own certificate (curl trusts only
    // that one) and HTTP/2.
    let got = wait_answer(&s, true, a, "/", Some(&ca_a), "200", "pod=web-a-");
    assert_eq!(got.version, "2");
    let got = wait_answer(&s, true, b, "/", Some(&ca_b), "200", "pod=web-b-");
    assert_eq!(got.version, "2");
    // SNI picked a's certificate, which b's does not verify.
    let wrong = curl(&s, true, a, "/", Some(&ca_b));
    assert!(
        wrong.is_err(),
        "a.example.test verified with b's certificate"
    );
    // The Exact path goes to the other Service; a longer path stays with the Prefix rule.
    wait_answer(&s, true, a, "/b", Some(&ca_a), "200", "pod=web-b-");
    wait_answer(&s, true, a, "/b/c", Some(&ca_a), "404", "");
    // Plain HTTP, HTTP/1.1.
    let got = wait_answer(&s, false, b, "/", None, "200", "pod=web-b-");
    assert_eq!(got.version, "1.1");
    // No rule for the host: 404 from the controller.
    let got = wait_answer(&s, true, "c.example.test", "/", None, "404", "");
    assert!(got.body.contains("rudder ingress"), "{}", got.body);

    // The status names the node's address: the one the `kubernetes` Service's endpoints have.
    let eps = json(&s.ok_kubectl(
        k,
        &[
            "get",
            "endpoints",
            "kubernetes",
            "-n",
            "default",
            "-o",
            "json",
        ],
    ));
    let node_ip = eps["subsets"][0]["addresses"][0]["ip"]
        .as_str()
        .expect("the node's address")
        .to_owned();
    wait_for("the ingress status", 30, || {
        let ing = json(&s.ok_kubectl(k, &["get", "ingress", "web", "-o", "json"]));
        (ing["status"]["loadBalancer"]["ingress"][0]["ip"] == node_ip.as_str()).then_some(())
    });

    // No ready endpoint left behind b: 503.
    s.ok_kubectl(k, &["scale", "deployment", "web-b", "--replicas=0"]);
    let got = wait_answer(&s, true, b, "/", Some(&ca_b), "503", "");
    assert!(got.body.contains("no ready endpoint"), "{}", got.body);
    wait_answer(&s, true, a, "/", Some(&ca_a), "200", "pod=web-a-");
}
