//! `audit.k8s.io/v1` `Event`s: what one request's record looks like at each stage. Pure.

use std::time::{SystemTime, UNIX_EPOCH};

use rudder_auth::UserInfo;
use serde_json::{Map, Value, json};

use super::policy::{Level, Stage};

/// `objectRef`: the object a resource request is about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectRef {
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub api_group: String,
    pub api_version: String,
    pub subresource: String,
}

/// What is known of a request once it has been authenticated and routed.
#[derive(Clone, Debug)]
pub struct RequestFacts {
    pub audit_id: String,
    pub request_uri: String,
    pub verb: String,
    /// The authenticated user.
    pub user: UserInfo,
    /// Whom the request acts as, when it impersonates.
    pub impersonated: Option<UserInfo>,
    pub source_ips: Vec<String>,
    pub user_agent: String,
    /// For resource requests.
    pub object_ref: Option<ObjectRef>,
    pub received: SystemTime,
}

/// How the request ended (or is ending), for `responseStatus`.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A success (or a response the server did not build as a `Status`): only its code.
    Code(u16),
    /// A failure: the `Status` sent to the client.
    Status(Value),
}

/// The objects logged at `Request` and `RequestResponse` levels.
#[derive(Clone, Debug, Default)]
pub struct Bodies<'a> {
    pub request: Option<&'a Value>,
    pub response: Option<&'a Value>,
}

/// RFC 3339 with microseconds, as upstream's `MicroTime`.
pub fn micro_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    rudder_machinery::timestamp::format_rfc3339_micros(
        d.as_secs() as i64,
        Some(i64::from(d.subsec_micros())),
    )
}

fn user_json(u: &UserInfo) -> Value {
    let mut m = Map::new();
    m.insert("username".into(), json!(u.name));
    if !u.uid.is_empty() {
        m.insert("uid".into(), json!(u.uid));
    }
    if !u.groups.is_empty() {
        m.insert("groups".into(), json!(u.groups));
    }
    if !u.extra.is_empty() {
        m.insert("extra".into(), json!(u.extra));
    }
    Value::Object(m)
}

fn object_ref_json(r: &ObjectRef) -> Value {
    let mut m = Map::new();
    for (k, v) in [
        ("resource", &r.resource),
        ("namespace", &r.namespace),
        ("name", &r.name),
        ("apiGroup", &r.api_group),
        ("apiVersion", &r.api_version),
        ("subresource", &r.subresource),
    ] {
        if !v.is_empty() {
            m.insert(k.into(), json!(v));
        }
    }
    Value::Object(m)
}

/// `responseStatus`: upstream's `metav1.Status` without kind and apiVersion.
fn response_status(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Code(code) => json!({"metadata": {}, "code": code}),
        Outcome::Status(s) => {
            let mut s = s.clone();
            if let Some(m) = s.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            s
        }
    }
}

/// Removes `metadata.managedFields` from an object, or from each item of a list.
fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    if let Some(items) = v.get_mut("items").and_then(Value::as_array_mut) {
        for item in items {
            if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
    }
    v
}

/// The event of `stage`. `outcome` is absent at RequestReceived; bodies are included as far as
/// `level` allows (`requestObject` from `Request`, `responseObject` at `RequestResponse`).
pub fn build(
    facts: &RequestFacts,
    level: Level,
    stage: Stage,
    at: SystemTime,
    outcome: Option<&Outcome>,
    bodies: &Bodies<'_>,
    omit_managed_fields: bool,
) -> Value {
    let mut e = Map::new();
    e.insert("kind".into(), json!("Event"));
    e.insert("apiVersion".into(), json!("audit.k8s.io/v1"));
    e.insert("level".into(), json!(level.as_str()));
    e.insert("auditID".into(), json!(facts.audit_id));
    e.insert("stage".into(), json!(stage.as_str()));
    e.insert("requestURI".into(), json!(facts.request_uri));
    e.insert("verb".into(), json!(facts.verb));
    e.insert("user".into(), user_json(&facts.user));
    if let Some(u) = &facts.impersonated {
        e.insert("impersonatedUser".into(), user_json(u));
    }
    e.insert("sourceIPs".into(), json!(facts.source_ips));
    if !facts.user_agent.is_empty() {
        e.insert("userAgent".into(), json!(facts.user_agent));
    }
    if let Some(r) = &facts.object_ref {
        e.insert("objectRef".into(), object_ref_json(r));
    }
    if let Some(o) = outcome {
        e.insert("responseStatus".into(), response_status(o));
    }
    let body = |v: &Value| {
        if omit_managed_fields {
            without_managed_fields(v)
        } else {
            v.clone()
        }
    };
    if level >= Level::Request
        && let Some(r) = bodies.request
    {
        e.insert("requestObject".into(), body(r));
    }
    if level >= Level::RequestResponse
        && stage == Stage::ResponseComplete
        && let Some(r) = bodies.response
    {
        e.insert("responseObject".into(), body(r));
    }
    e.insert(
        "requestReceivedTimestamp".into(),
        json!(micro_time(facts.received)),
    );
    e.insert("stageTimestamp".into(), json!(micro_time(at)));
    Value::Object(e)
}

/// The addresses a request came from: `X-Forwarded-For` entries, `X-Real-Ip`, then the peer,
/// without repeats (upstream's order).
pub fn source_ips(forwarded_for: &str, real_ip: &str, peer: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let candidates = forwarded_for
        .split(',')
        .chain(std::iter::once(real_ip))
        .chain(std::iter::once(peer));
    for ip in candidates.map(str::trim).filter(|s| !s.is_empty()) {
        if ip.parse::<std::net::IpAddr>().is_ok() && !out.iter().any(|o| o == ip) {
            out.push(ip.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn facts() -> RequestFacts {
        RequestFacts {
            audit_id: "2c2ea3a2-6c1b-4b11-8a0e-8f5a4c9a8c01".into(),
            request_uri: "/api/v1/namespaces/default/secrets".into(),
            verb: "create".into(),
            user: UserInfo::new("alice", vec!["system:authenticated".into()]),
            impersonated: None,
            source_ips: vec!["127.0.0.1".into()],
            user_agent: "kubectl/v1.33.0".into(),
            object_ref: Some(ObjectRef {
                resource: "secrets".into(),
                namespace: "default".into(),
                name: "db".into(),
                api_version: "v1".into(),
                ..Default::default()
            }),
            received: UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
        }
    }

    #[test]
    fn metadata_level_has_no_bodies() {
        let req = json!({"kind": "Secret", "data": {"p": "aHVudGVyMg=="}});
        let at = UNIX_EPOCH + Duration::from_micros(1_700_000_000_200_001);
        let e = build(
            &facts(),
            Level::Metadata,
            Stage::ResponseComplete,
            at,
            Some(&Outcome::Code(201)),
            &Bodies {
                request: Some(&req),
                response: Some(&req),
            },
            false,
        );
        assert_eq!(e["kind"], "Event");
        assert_eq!(e["apiVersion"], "audit.k8s.io/v1");
        assert_eq!(e["level"], "Metadata");
        assert_eq!(e["stage"], "ResponseComplete");
        assert_eq!(
            e["user"],
            json!({"username": "alice", "groups": ["system:authenticated"]})
        );
        assert_eq!(
            e["objectRef"],
            json!({"resource": "secrets", "namespace": "default", "name": "db", "apiVersion": "v1"})
        );
        assert_eq!(e["responseStatus"], json!({"metadata": {}, "code": 201}));
        assert_eq!(e["requestReceivedTimestamp"], "2023-11-14T22:13:20.123456Z");
        assert_eq!(e["stageTimestamp"], "2023-11-14T22:13:20.200001Z");
        assert!(e.get("requestObject").is_none() && e.get("responseObject").is_none());
        assert!(!e.to_string().contains("aHVudGVyMg"));
    }

    #[test]
    fn bodies_by_level_and_stage() {
        let req = json!({"metadata": {"name": "c", "managedFields": [{"manager": "kubectl"}]}});
        let resp = json!({"items": [{"metadata": {"name": "c", "managedFields": []}}]});
        let bodies = Bodies {
            request: Some(&req),
            response: Some(&resp),
        };
        let now = SystemTime::now();
        let cases = [
            (Level::Request, Stage::ResponseComplete, true, false),
            (Level::RequestResponse, Stage::ResponseComplete, true, true),
            (Level::RequestResponse, Stage::RequestReceived, true, false),
            (Level::RequestResponse, Stage::ResponseStarted, true, false),
        ];
        for (level, stage, want_req, want_resp) in cases {
            let e = build(&facts(), level, stage, now, None, &bodies, true);
            assert_eq!(
                e.get("requestObject").is_some(),
                want_req,
                "{level:?} {stage:?}"
            );
            assert_eq!(
                e.get("responseObject").is_some(),
                want_resp,
                "{level:?} {stage:?}"
            );
            assert!(e.get("responseStatus").is_none());
            assert!(!e.to_string().contains("managedFields"), "omitted");
        }
        let kept = build(
            &facts(),
            Level::Request,
            Stage::ResponseComplete,
            now,
            None,
            &bodies,
            false,
        );
        assert!(kept["requestObject"]["metadata"]["managedFields"].is_array());
    }

    #[test]
    fn failure_status_and_impersonation() {
        let mut f = facts();
        f.impersonated = Some(UserInfo::new("bob", vec!["devs".into()]));
        let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "secrets \"db\" not found", "reason": "NotFound", "code": 404});
        let e = build(
            &f,
            Level::Metadata,
            Stage::ResponseComplete,
            SystemTime::now(),
            Some(&Outcome::Status(status)),
            &Bodies::default(),
            false,
        );
        assert_eq!(e["responseStatus"]["code"], 404);
        assert_eq!(e["responseStatus"]["reason"], "NotFound");
        assert_eq!(e["responseStatus"]["status"], "Failure");
        assert!(e["responseStatus"].get("kind").is_none());
        assert_eq!(e["impersonatedUser"]["username"], "bob");
    }

    #[test]
    fn source_ips_table() {
        let cases = [
            ("", "", "10.0.0.1", vec!["10.0.0.1"]),
            (
                "1.2.3.4, 5.6.7.8",
                "",
                "10.0.0.1",
                vec!["1.2.3.4", "5.6.7.8", "10.0.0.1"],
            ),
            ("1.2.3.4", "1.2.3.4", "1.2.3.4", vec!["1.2.3.4"]),
            ("junk", "9.9.9.9", "::1", vec!["9.9.9.9", "::1"]),
        ];
        for (xff, real, peer, want) in cases {
            assert_eq!(source_ips(xff, real, peer), want, "{xff} {real} {peer}");
        }
    }
}
