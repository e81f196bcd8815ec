//! The audit log end to end, with the real binary and kubectl: a policy logs Secrets at
//! Metadata (their data never in the log), ConfigMaps at RequestResponse and nothing else;
//! each event is an `audit.k8s.io/v1` Event line whose auditID is the `Audit-Id` header the
//! client saw.

mod common;

use std::time::{Duration, Instant};

use common::{Server, json};
use serde_json::Value;

const KUBECTLS: &[&str] = &[
    "/usr/bin/kubectl",
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
];
const SECRET_VALUE: &str = "audit-must-not-see-5e1d";

const POLICY: &str = r#"apiVersion: audit.k8s.io/v1
kind: Policy
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/api", "/api/*", "/apis*", "/openapi*"]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets]
- level: RequestResponse
  resources:
  - group: ""
    resources: [configmaps]
- level: None
"#;

fn events(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(json)
        .collect()
}

/// Waits until an event satisfies `pred` (the writer is asynchronous); returns all events.
fn wait_for(path: &std::path::Path, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let all = events(path);
        if all.iter().any(&pred) {
            return all;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not logged; log has {} events",
            all.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn find<'a>(all: &'a [Value], verb: &str, resource: &str, name: &str, stage: &str) -> &'a Value {
    all.iter()
        .find(|e| {
            e["verb"] == verb
                && e["objectRef"]["resource"] == resource
                && e["objectRef"]["name"] == name
                && e["stage"] == stage
        })
        .unwrap_or_else(|| panic!("no {stage} event of {verb} {resource}/{name}"))
}

fn is_micro_time(v: &Value) -> bool {
    let s = v.as_str().unwrap_or("");
    s.len() == 27 && s.ends_with('Z') && s.as_bytes()[19] == b'.'
}

#[test]
fn audit_log_follows_the_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, POLICY).expect("write policy");
    let log = dir.path().join("audit/audit.log");
    let server = Server::start_with(&[
        "--disable-agent",
        "--audit-policy-file",
        policy.to_str().expect("utf-8"),
        "--audit-log-path",
        log.to_str().expect("utf-8"),
    ]);
    server.namespace(KUBECTLS[0], "audited");
    for (i, kubectl) in KUBECTLS.iter().enumerate() {
        let (s, c) = (format!("s{i}"), format!("c{i}"));
        let b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(SECRET_VALUE)
        };
        server.create(
            kubectl,
            Some("audited"),
            &format!(r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{s}"}},"data":{{"v":"{b64}"}}}}"#),
        );
        server.ok_kubectl(
            kubectl,
            &["get", "secret", &s, "-n", "audited", "-o", "json"],
        );
        server.fail_kubectl(
            kubectl,
            &["get", "secret", "missing", "-n", "audited"],
            None,
        );
        server.configmap(kubectl, "audited", &c, "k", "logged-value");
        // The Audit-Id response header, as kubectl's debug output shows it.
        let out = server.kubectl(
            kubectl,
            &[
                "get",
                "configmap",
                &c,
                "-n",
                "audited",
                "-o",
                "json",
                "-v=8",
            ],
        );
        assert!(out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let audit_id = stderr
            .lines()
            .filter_map(|l| l.split_once("Audit-Id: ").map(|(_, id)| id))
            .map(str::trim)
            .next_back()
            .unwrap_or_else(|| panic!("no Audit-Id header in:\n{stderr}"))
            .to_owned();
        server.ok_kubectl(kubectl, &["delete", "secret", &s, "-n", "audited"]);
        server.ok_kubectl(kubectl, &["delete", "configmap", &c, "-n", "audited"]);

        let all = wait_for(&log, "the configmap delete", |e| {
            e["verb"] == "delete"
                && e["objectRef"]["name"] == c.as_str()
                && e["stage"] == "ResponseComplete"
        });
        let text = std::fs::read_to_string(&log).expect("log");
        assert!(
            !text.contains(SECRET_VALUE) && !text.contains(&b64),
            "secret data logged"
        );

        // Secrets: metadata only.
        let created = find(&all, "create", "secrets", &s, "ResponseComplete");
        assert_eq!(created["kind"], "Event");
        assert_eq!(created["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(created["level"], "Metadata");
        assert_eq!(created["objectRef"]["namespace"], "audited");
        assert_eq!(created["objectRef"]["apiVersion"], "v1");
        assert_eq!(created["responseStatus"]["code"], 201);
        assert_eq!(created["user"]["username"], "rudder-admin");
        assert!(
            created["user"]["groups"]
                .as_array()
                .is_some_and(|g| g.contains(&"system:masters".into()))
        );
        assert!(created.get("requestObject").is_none() && created.get("responseObject").is_none());
        assert!(
            created["userAgent"]
                .as_str()
                .is_some_and(|u| u.starts_with("kubectl"))
        );
        assert!(created["sourceIPs"][0] == "127.0.0.1");
        assert!(
            is_micro_time(&created["requestReceivedTimestamp"])
                && is_micro_time(&created["stageTimestamp"])
        );
        let received = find(&all, "create", "secrets", &s, "RequestReceived");
        assert_eq!(received["auditID"], created["auditID"]);
        assert!(received.get("responseStatus").is_none());
        assert_eq!(
            find(&all, "get", "secrets", &s, "ResponseComplete")["responseStatus"]["code"],
            200
        );
        let missing = find(&all, "get", "secrets", "missing", "ResponseComplete");
        assert_eq!(missing["responseStatus"]["code"], 404);
        assert_eq!(missing["responseStatus"]["reason"], "NotFound");
        assert_eq!(missing["responseStatus"]["status"], "Failure");
        assert_eq!(
            find(&all, "delete", "secrets", &s, "ResponseComplete")["responseStatus"]["code"],
            200
        );

        // ConfigMaps: request and response bodies.
        let created = find(&all, "create", "configmaps", &c, "ResponseComplete");
        assert_eq!(created["level"], "RequestResponse");
        assert_eq!(
            created["requestObject"]["data"]["k"], "logged-value",
            "{created}"
        );
        assert_eq!(created["responseObject"]["metadata"]["name"], c.as_str());
        assert_eq!(created["responseStatus"]["code"], 201);
        let got: Vec<&Value> = all
            .iter()
            .filter(|e| e["auditID"] == audit_id.as_str())
            .collect();
        assert_eq!(
            got.len(),
            2,
            "RequestReceived and ResponseComplete of {audit_id}: {got:?}"
        );
        let complete = got
            .iter()
            .find(|e| e["stage"] == "ResponseComplete")
            .expect("complete");
        assert_eq!(complete["verb"], "get");
        assert_eq!(complete["objectRef"]["name"], c.as_str());
        assert_eq!(complete["responseObject"]["data"]["k"], "logged-value");
        find(&all, "delete", "configmaps", &c, "ResponseComplete");
    }

    // A watch: RequestReceived, ResponseStarted, then ResponseComplete when it ends.
    server.ok_kubectl(
        KUBECTLS[0],
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/audited/configmaps?watch=1&timeoutSeconds=1",
        ],
    );
    let all = wait_for(&log, "the watch's end", |e| {
        e["verb"] == "watch"
            && e["objectRef"]["namespace"] == "audited"
            && e["stage"] == "ResponseComplete"
    });
    let watch: Vec<&str> = all
        .iter()
        .filter(|e| e["verb"] == "watch" && e["objectRef"]["namespace"] == "audited")
        .filter_map(|e| e["stage"].as_str())
        .collect();
    assert_eq!(
        watch,
        ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    );

    // Nothing the policy leaves out: discovery, health, other resources (the controllers' and
    // the scheduler's requests, namespaces).
    for e in &all {
        let resource = e["objectRef"]["resource"].as_str().unwrap_or("");
        assert!(
            resource == "secrets" || resource == "configmaps",
            "logged against the policy: {e}"
        );
    }
}
