//! API errors as Kubernetes `metav1.Status` objects, with upstream's codes, reasons and messages.

use serde_json::{Value, json};

/// One field-level problem, reported in `details.causes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// Machine-readable cause, e.g. `FieldValueInvalid`, `FieldValueRequired`.
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
    /// The field path, e.g. `metadata.name`.
    pub field: String,
}

/// A failed API request, rendered as a `Status` object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} {reason}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// `metav1.StatusReason`, e.g. `NotFound`.
    pub reason: &'static str,
    /// Human-readable message (what kubectl prints after "Error from server").
    pub message: String,
    /// `details.group`/`kind`/`name` of the object concerned, when there is one.
    pub details: Option<Box<Details>>,
    /// Seconds a client should wait before retrying (`details.retryAfterSeconds`).
    pub retry_after: Option<u32>,
}

/// `details` of a Status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Details {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub causes: Vec<Cause>,
}

/// A group and resource, as error messages name them (`pods`, `deployments.apps`).
pub fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.details = Some(Box::new(Details {
            group: group.to_owned(),
            kind: kind.to_owned(),
            name: name.to_owned(),
            causes: Vec::new(),
        }));
        self
    }

    /// 404: `pods "web" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 404 for a path that does not exist at all.
    pub fn path_not_found() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// 409: `pods "web" already exists`.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(group, resource)),
        )
        .with_details(group, resource, name)
    }

    /// 409 on a stale resourceVersion, with upstream's wording so clients retry correctly.
    pub fn conflict(group: &str, resource: &str, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(group, resource)
            ),
        )
        .with_details(group, resource, name)
    }

    /// 409 from server-side apply: fields other managers own would change. Each cause names
    /// the field and its manager (`reason: FieldManagerConflict`), as kubectl prints them.
    pub fn apply_conflict(
        group: &str,
        resource: &str,
        name: &str,
        message: String,
        causes: Vec<Cause>,
    ) -> Self {
        let mut e = Self::new(409, "Conflict", message).with_details(group, resource, name);
        if let Some(d) = e.details.as_mut() {
            d.causes = causes;
        }
        e
    }

    /// 422 with field causes: `Pod "x" is invalid: spec.containers: Required value`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let summary = match summary.len() {
            1 => summary.join(""),
            _ => format!("[{}]", summary.join(", ")),
        };
        let subject = if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        };
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{subject} \"{name}\" is invalid: {summary}"),
        )
        .with_details(group, kind, name);
        if let Some(d) = e.details.as_mut() {
            d.causes = causes;
        }
        e
    }

    /// 422 for a patch that cannot be applied to the object.
    pub fn invalid_patch(message: impl Into<String>) -> Self {
        Self::new(422, "Invalid", message)
    }

    /// 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 410 when a watch or list asks for history that is gone.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 406 when no acceptable representation exists.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, "NotAcceptable", message)
    }

    /// 413 for bodies over the limit.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, "RequestEntityTooLarge", message)
    }

    /// 415 for a body type the endpoint cannot read.
    pub fn unsupported_media_type(message: impl Into<String>) -> Self {
        Self::new(415, "UnsupportedMediaType", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 500 for failures that are the server's fault.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("Internal error occurred: {}", message.into()),
        )
    }

    /// 503 when the store cannot be reached.
    pub fn unavailable(message: impl Into<String>) -> Self {
        let mut e = Self::new(503, "ServiceUnavailable", message);
        e.retry_after = Some(1);
        e
    }

    /// 504 when the store did not answer in time.
    pub fn timeout(message: impl Into<String>) -> Self {
        let mut e = Self::new(504, "Timeout", message);
        e.retry_after = Some(1);
        e
    }

    /// 429 from the request limits, with `Retry-After` (upstream's `NewTooManyRequests`).
    pub fn too_many_requests(message: impl Into<String>, retry_after: u32) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.retry_after = Some(retry_after);
        e
    }

    /// The `Status` object as JSON.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if self.details.is_some() || self.retry_after.is_some() {
            let mut details = serde_json::Map::new();
            if let Some(d) = &self.details {
                if !d.name.is_empty() {
                    details.insert("name".into(), json!(d.name));
                }
                if !d.group.is_empty() {
                    details.insert("group".into(), json!(d.group));
                }
                if !d.kind.is_empty() {
                    details.insert("kind".into(), json!(d.kind));
                }
                if !d.causes.is_empty() {
                    let causes: Vec<Value> = d
                        .causes
                        .iter()
                        .map(
                            |c| json!({"reason": c.reason, "message": c.message, "field": c.field}),
                        )
                        .collect();
                    details.insert("causes".into(), Value::Array(causes));
                }
            }
            if let Some(s) = self.retry_after {
                details.insert("retryAfterSeconds".into(), json!(s));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

/// A success `Status` (what DELETE returns when the object is gone at once for some kinds).
pub fn success(details: Option<(&str, &str, &str, &str)>) -> Value {
    let mut s = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
    if let Some((group, kind, name, uid)) = details {
        s["details"] = json!({"name": name, "group": group, "kind": kind, "uid": uid});
    }
    s
}

impl From<rudder_store::StoreError> for ApiError {
    fn from(e: rudder_store::StoreError) -> Self {
        use rudder_store::StoreError as E;
        match e {
            E::Compacted { requested, .. } => ApiError::gone(format!(
                "The resourceVersion for the provided watch is too old (requested {requested})"
            )),
            E::FutureRevision { requested, current } => ApiError::timeout(format!(
                "Too large resource version: {requested}, current: {current}"
            )),
            E::InvalidKey(m) => ApiError::bad_request(m),
            E::ValueTooLarge { len, max } => ApiError::too_large(format!(
                "object of {len} bytes exceeds the limit of {max} bytes"
            )),
            E::Unavailable(m) => ApiError::unavailable(format!("storage unavailable: {m}")),
            E::WatchCancelled(m) => ApiError::gone(m),
            E::Closed => ApiError::unavailable("storage is shutting down"),
            E::Corrupt(m) | E::Backend(m) => ApiError::internal(m),
            E::Unsupported(m) => ApiError::method_not_allowed(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_table() {
        let cases = [
            (
                ApiError::not_found("", "pods", "web"),
                404,
                "NotFound",
                "pods \"web\" not found",
            ),
            (
                ApiError::not_found("apps", "deployments", "d"),
                404,
                "NotFound",
                "deployments.apps \"d\" not found",
            ),
            (
                ApiError::already_exists("", "pods", "web"),
                409,
                "AlreadyExists",
                "pods \"web\" already exists",
            ),
            (
                ApiError::conflict(
                    "",
                    "pods",
                    "web",
                    "the object has been modified; please apply your changes to the latest version and try again",
                ),
                409,
                "Conflict",
                "Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again",
            ),
            (
                ApiError::invalid(
                    "",
                    "Pod",
                    "x",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value".into(),
                        field: "spec.containers".into(),
                    }],
                ),
                422,
                "Invalid",
                "Pod \"x\" is invalid: spec.containers: Required value",
            ),
        ];
        for (err, code, reason, message) in cases {
            let s = err.to_status();
            assert_eq!(s["code"], code);
            assert_eq!(s["reason"], reason);
            assert_eq!(s["message"], message);
            assert_eq!(s["kind"], "Status");
            assert_eq!(s["status"], "Failure");
        }
    }

    #[test]
    fn invalid_lists_causes() {
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "d",
            vec![
                Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "bad".into(),
                    field: "a".into(),
                },
                Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "b".into(),
                },
            ],
        );
        let s = e.to_status();
        assert_eq!(
            s["message"],
            "Deployment.apps \"d\" is invalid: [a: bad, b: Required value]"
        );
        assert_eq!(s["details"]["causes"][1]["field"], "b");
        assert_eq!(s["details"]["kind"], "Deployment");
    }
}
