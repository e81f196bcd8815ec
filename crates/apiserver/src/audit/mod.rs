//! The audit log (`--audit-policy-file`, `--audit-log-path`): one `audit.k8s.io/v1` `Event`
//! per JSON line for each stage of each request the policy selects.
//!
//! `policy.rs` decides the level (pure), `event.rs` builds events (pure), `writer.rs` is the IO:
//! a bounded queue and a writer thread, so logging never makes a request wait. [`Recorder`] is
//! the per-request glue the server calls: after authentication, once the request is routed,
//! and with the response (ADR 0018).

mod event;
mod policy;
mod writer;

pub use event::{ObjectRef, RequestFacts};
pub use policy::{Decision, Level, Policy, Stage};
pub use writer::Destination;

use std::sync::Arc;
use std::time::SystemTime;

use http_body_util::BodyExt;
use hyper::Response;
use rudder_auth::UserInfo;
use rudder_auth::rbac::Attributes;
use serde_json::Value;

use crate::http::{ApiRequest, Body};
use crate::request_info::{Target, Verb};
use event::{Bodies, Outcome};

/// Why auditing cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The policy file is not a valid `audit.k8s.io/v1` `Policy`.
    #[error("invalid audit policy: {0}")]
    Policy(String),
    /// The log could not be opened or its writer started.
    #[error("audit log: {0}")]
    Io(String),
}

/// What `rudder server` configures.
pub struct AuditConfig {
    pub policy: Policy,
    pub destination: Destination,
}

/// A running audit log.
pub struct Audit {
    policy: Policy,
    sink: writer::Sink,
}

impl Audit {
    /// Opens the log and starts its writer.
    pub fn start(config: AuditConfig) -> Result<Arc<Self>, AuditError> {
        Ok(Arc::new(Self {
            policy: config.policy,
            sink: writer::Sink::start(config.destination)?,
        }))
    }

    /// Events dropped so far because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped()
    }

    fn emit(&self, event: &Value) {
        let mut line = serde_json::to_vec(event).unwrap_or_default();
        line.push(b'\n');
        self.sink.send(line);
    }
}

/// The header carrying a request's audit ID, both ways.
const AUDIT_ID: &str = "audit-id";

/// What is being recorded of the request being served.
struct Decided {
    facts: RequestFacts,
    decision: Decision,
    request_object: Option<Value>,
    long_running: bool,
}

/// One request's audit record in the making; does nothing when auditing is off.
pub(crate) struct Recorder {
    audit: Option<Arc<Audit>>,
    id: String,
    received: SystemTime,
    uri: String,
    method: String,
    source_ips: Vec<String>,
    user_agent: String,
    authenticated: Option<UserInfo>,
    decided: Option<Decided>,
}

impl Recorder {
    /// Starts the record of `req` (its ID from an `Audit-ID` request header, as upstream lets
    /// proxies set it, or a new UUID).
    pub fn new(audit: Option<&Arc<Audit>>, req: &ApiRequest) -> Self {
        let header = |n: &str| crate::server::header(req, n).to_owned();
        let Some(audit) = audit else {
            return Self {
                audit: None,
                id: String::new(),
                received: SystemTime::UNIX_EPOCH,
                uri: String::new(),
                method: String::new(),
                source_ips: Vec::new(),
                user_agent: String::new(),
                authenticated: None,
                decided: None,
            };
        };
        let id = Some(header(AUDIT_ID))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(crate::objects::new_uid);
        Self {
            audit: Some(audit.clone()),
            id,
            received: SystemTime::now(),
            uri: req.parts.uri.to_string(),
            method: req.parts.method.as_str().to_owned(),
            source_ips: event::source_ips(
                &header("x-forwarded-for"),
                &header("x-real-ip"),
                &req.peer.addr.ip().to_string(),
            ),
            user_agent: header("user-agent"),
            authenticated: None,
            decided: None,
        }
    }

    /// The user authentication produced (before impersonation: audit names the real caller).
    pub fn authenticated(&mut self, user: Option<&UserInfo>) {
        if self.audit.is_some() {
            self.authenticated = user.cloned();
        }
    }

    /// The request is routed: decide its level and write `RequestReceived`. `attrs` are the
    /// authorizer's (whose user is the impersonated one, if any).
    pub fn routed(&mut self, attrs: &Attributes, target: &Target, req: &ApiRequest) {
        let Some(audit) = self.audit.clone() else {
            return;
        };
        let user = self
            .authenticated
            .clone()
            .unwrap_or_else(|| attrs.user.clone());
        let impersonating = req.parts.headers.contains_key("impersonate-user");
        let mut original = attrs.clone();
        original.user = user.clone();
        let decision = audit.policy.decide(&original);
        let resource = match target {
            Target::Resource(r) => Some(r),
            _ => None,
        };
        let mut object_ref = resource.map(|r| ObjectRef {
            resource: r.resource.clone(),
            namespace: attrs.namespace.clone(),
            name: attrs.name.clone(),
            api_group: r.group.clone(),
            api_version: r.version.clone(),
            subresource: r.subresource.clone().unwrap_or_default(),
        });
        // The body is decoded again only when something will be logged of it: at Request
        // level, or for a create's name (upstream fills objectRef from the object).
        let is_create = resource.is_some_and(|r| r.verb == Verb::Create);
        let want_body =
            decision.level >= Level::Request || (decision.level == Level::Metadata && is_create);
        let request_object = (want_body && !req.body.is_empty())
            .then(|| crate::handlers::decode_body(req).ok())
            .flatten();
        if let (Some(r), Some(obj)) = (object_ref.as_mut(), request_object.as_ref())
            && r.name.is_empty()
            && r.subresource.is_empty()
        {
            r.name = crate::objects::meta_str(obj, "name").to_owned();
        }
        let long_running = resource.is_some_and(|r| {
            r.verb == Verb::Watch
                || matches!(
                    r.subresource.as_deref(),
                    Some("exec" | "attach" | "portforward" | "proxy")
                )
                || (r.subresource.as_deref() == Some("log")
                    && req.parts.uri.query().unwrap_or("").contains("follow=true"))
        });
        let decided = Decided {
            facts: RequestFacts {
                audit_id: self.id.clone(),
                request_uri: self.uri.clone(),
                verb: attrs.verb.clone(),
                user,
                impersonated: impersonating.then(|| attrs.user.clone()),
                source_ips: self.source_ips.clone(),
                user_agent: self.user_agent.clone(),
                object_ref,
                received: self.received,
            },
            decision,
            request_object: request_object.filter(|_| want_body),
            long_running,
        };
        emit(&audit, &decided, Stage::RequestReceived, None, None);
        self.decided = Some(decided);
    }

    /// Records the response (`failure`: the `Status` of an error) and returns it with the
    /// `Audit-Id` header; a long-running response's `ResponseComplete` is written when its
    /// body ends.
    pub async fn finish(mut self, resp: Response<Body>, failure: Option<Value>) -> Response<Body> {
        let Some(audit) = self.audit.clone() else {
            return resp;
        };
        if self.decided.is_none() {
            // Refused before routing (no or bad credentials, unknown path): recorded as a
            // request on its path, by whoever it was made as.
            let user = self.authenticated.clone().unwrap_or_else(|| {
                UserInfo::new(
                    rudder_auth::ANONYMOUS,
                    vec![rudder_auth::ALL_UNAUTHENTICATED.to_owned()],
                )
            });
            let path = self.uri.split('?').next().unwrap_or("").to_owned();
            let attrs = Attributes::path(user, &self.method.to_ascii_lowercase(), &path);
            self.route_fallback(&attrs);
        }
        let Some(decided) = self.decided else {
            return resp;
        };
        let (mut parts, body) = resp.into_parts();
        if let Ok(v) = http::HeaderValue::from_str(&self.id) {
            parts.headers.insert(AUDIT_ID, v);
        }
        let outcome = match failure {
            Some(status) => Outcome::Status(status),
            None => Outcome::Code(parts.status.as_u16()),
        };
        if decided.long_running {
            emit(
                &audit,
                &decided,
                Stage::ResponseStarted,
                Some(&outcome),
                None,
            );
            if !decided.decision.records(Stage::ResponseComplete) {
                return Response::from_parts(parts, body);
            }
            // Written when the stream ends or the client goes: the closure owns the guard,
            // which is dropped with the body.
            let guard = CompleteOnDrop {
                audit,
                decided,
                outcome,
            };
            let body = body
                .map_frame(move |f| {
                    let _owned = &guard;
                    f
                })
                .boxed();
            return Response::from_parts(parts, body);
        }
        let mut body = body;
        let mut response_object = None;
        // Only whole-buffer bodies (an exact size) are read: collecting one does not wait.
        let exact = http_body::Body::size_hint(&body).exact().is_some();
        if decided.decision.records(Stage::ResponseComplete)
            && decided.decision.level == Level::RequestResponse
            && exact
        {
            let Ok(collected) = body.collect().await;
            let bytes = collected.to_bytes();
            response_object = serde_json::from_slice::<Value>(&bytes).ok();
            body = crate::http::full(bytes);
        }
        emit(
            &audit,
            &decided,
            Stage::ResponseComplete,
            Some(&outcome),
            response_object.as_ref(),
        );
        Response::from_parts(parts, body)
    }

    fn route_fallback(&mut self, attrs: &Attributes) {
        let Some(audit) = self.audit.clone() else {
            return;
        };
        let decision = audit.policy.decide(attrs);
        let decided = Decided {
            facts: RequestFacts {
                audit_id: self.id.clone(),
                request_uri: self.uri.clone(),
                verb: attrs.verb.clone(),
                user: attrs.user.clone(),
                impersonated: None,
                source_ips: self.source_ips.clone(),
                user_agent: self.user_agent.clone(),
                object_ref: None,
                received: self.received,
            },
            decision,
            request_object: None,
            long_running: false,
        };
        emit(&audit, &decided, Stage::RequestReceived, None, None);
        self.decided = Some(decided);
    }
}

fn emit(
    audit: &Audit,
    d: &Decided,
    stage: Stage,
    outcome: Option<&Outcome>,
    response: Option<&Value>,
) {
    if !d.decision.records(stage) {
        return;
    }
    let bodies = Bodies {
        request: d.request_object.as_ref(),
        response,
    };
    let event = event::build(
        &d.facts,
        d.decision.level,
        stage,
        SystemTime::now(),
        outcome,
        &bodies,
        d.decision.omit_managed_fields,
    );
    audit.emit(&event);
}

/// Writes a long-running request's `ResponseComplete` when its response body is dropped.
struct CompleteOnDrop {
    audit: Arc<Audit>,
    decided: Decided,
    outcome: Outcome,
}

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        emit(
            &self.audit,
            &self.decided,
            Stage::ResponseComplete,
            Some(&self.outcome),
            None,
        );
    }
}
