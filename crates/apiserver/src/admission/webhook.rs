//! Admission webhooks, the decisions: which webhooks of a Mutating- or
//! ValidatingWebhookConfiguration apply to a request (`rules`, `scope`, `namespaceSelector`,
//! `objectSelector`), the `admission.k8s.io/v1` AdmissionReview sent to them, and what their
//! answer means (allowed, with a JSONPatch and warnings; or denied, in upstream's words).
//! Calling them is `webhook_call.rs`.

use std::collections::BTreeMap;

use rudder_api::k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use rudder_machinery::LabelSelector;
use serde_json::{Value, json};

use crate::status::ApiError;

/// The request facts rules match on.
pub(crate) struct Target<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub plural: &'a str,
    pub subresource: Option<&'a str>,
    pub namespaced: bool,
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn any_or(list: &[&str], want: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == want)
}

/// Whether one of the webhook's `rules` covers the target.
pub(crate) fn rules_match(webhook: &Value, t: &Target<'_>) -> bool {
    let resource = match t.subresource {
        Some(sub) => format!("{}/{sub}", t.plural),
        None => t.plural.to_owned(),
    };
    webhook
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|rule| {
            let resources = strings(rule.get("resources"));
            let resource_ok = resources.iter().any(|r| {
                *r == "*/*"
                    || *r == resource
                    || (t.subresource.is_none() && *r == "*")
                    || r.strip_suffix("/*") == Some(t.plural) && t.subresource.is_some()
                    || r.strip_prefix("*/")
                        .is_some_and(|s| Some(s) == t.subresource)
            });
            let scope_ok = match rule.get("scope").and_then(Value::as_str).unwrap_or("*") {
                "Namespaced" => t.namespaced,
                "Cluster" => !t.namespaced,
                _ => true,
            };
            any_or(&strings(rule.get("operations")), t.operation)
                && any_or(&strings(rule.get("apiGroups")), t.group)
                && any_or(&strings(rule.get("apiVersions")), t.version)
                && resource_ok
                && scope_ok
        })
}

/// Whether `labels` pass the webhook's selector `field` (absent = everything).
pub(crate) fn selector_matches(
    webhook: &Value,
    field: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(selector) = webhook.get(field).filter(|s| !s.is_null()) else {
        return true;
    };
    let Ok(parsed) = serde_json::from_value::<metav1::LabelSelector>(selector.clone()) else {
        return false;
    };
    LabelSelector::from_api(Some(&parsed)).is_ok_and(|s| s.matches(labels))
}

/// The labels of an object.
pub(crate) fn labels_of(obj: Option<&Value>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// The AdmissionReview sent to a webhook.
#[allow(clippy::too_many_arguments)]
pub(crate) fn review(
    uid: &str,
    t: &Target<'_>,
    name: &str,
    namespace: Option<&str>,
    object: Option<&Value>,
    old: Option<&Value>,
    user: &Value,
    dry_run: bool,
) -> Value {
    let resource = json!({"group": t.group, "version": t.version, "resource": t.plural});
    let kind = json!({"group": t.group, "version": t.version, "kind": t.kind});
    let mut request = json!({
        "uid": uid,
        "kind": kind,
        "resource": resource,
        "requestKind": kind,
        "requestResource": resource,
        "name": name,
        "operation": t.operation,
        "userInfo": user,
        "object": object.cloned().unwrap_or(Value::Null),
        "oldObject": old.cloned().unwrap_or(Value::Null),
        "dryRun": dry_run,
        "options": Value::Null,
    });
    if let Some(ns) = namespace {
        request["namespace"] = json!(ns);
    }
    if let Some(sub) = t.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// What a webhook answered.
#[derive(Debug, PartialEq)]
pub(crate) struct Answer {
    /// The JSONPatch to apply (mutating webhooks only).
    pub patch: Option<Value>,
    pub warnings: Vec<String>,
}

/// Reads a webhook's AdmissionReview response for the request `uid`: allowed (with a patch
/// and warnings), or refused with upstream's `admission webhook "x" denied the request`.
pub(crate) fn answer(name: &str, uid: &str, body: &Value) -> Result<Answer, ApiError> {
    let Some(response) = body.get("response") else {
        return Err(call_failed(name, "the response is not an AdmissionReview"));
    };
    if response.get("uid").and_then(Value::as_str) != Some(uid) {
        return Err(call_failed(
            name,
            &format!(
                "expected response.uid={uid:?}, got {:?}",
                response.get("uid").and_then(Value::as_str).unwrap_or("")
            ),
        ));
    }
    let warnings = strings(response.get("warnings"))
        .into_iter()
        .map(str::to_owned)
        .collect();
    if response.get("allowed").and_then(Value::as_bool) != Some(true) {
        let status = response.get("status").cloned().unwrap_or(Value::Null);
        let message = status.get("message").and_then(Value::as_str).unwrap_or("");
        let reason = status.get("reason").and_then(Value::as_str).unwrap_or("");
        let denied = format!("admission webhook {name:?} denied the request");
        let text = if !message.is_empty() {
            format!("{denied}: {message}")
        } else if !reason.is_empty() {
            format!("{denied}: {reason}")
        } else {
            format!("{denied} without explanation")
        };
        let code = status
            .get("code")
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| *c >= 400)
            .unwrap_or(400);
        let reason = match code {
            403 => "Forbidden",
            404 => "NotFound",
            409 => "Conflict",
            422 => "Invalid",
            400 => "BadRequest",
            _ => "",
        };
        return Err(ApiError {
            code,
            reason,
            message: text,
            details: None,
            retry_after: None,
        });
    }
    let patch = match response.get("patch").and_then(Value::as_str) {
        None => None,
        Some(encoded) => {
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| call_failed(name, &format!("invalid patch: {e}")))?;
            Some(
                serde_json::from_slice(&bytes)
                    .map_err(|e| call_failed(name, &format!("invalid patch: {e}")))?,
            )
        }
    };
    Ok(Answer { patch, warnings })
}

/// Upstream's error for a webhook that could not be called (or answered nonsense), used when
/// its `failurePolicy` is `Fail`.
pub(crate) fn call_failed(name: &str, why: &str) -> ApiError {
    ApiError::internal(format!(
        "Internal error occurred: failed calling webhook {name:?}: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target<'a>(op: &'a str, plural: &'a str, sub: Option<&'a str>) -> Target<'a> {
        Target {
            operation: op,
            group: "",
            version: "v1",
            kind: "Pod",
            plural,
            subresource: sub,
            namespaced: true,
        }
    }

    #[test]
    fn rules_table() {
        let hook = |rule: Value| json!({"rules": [rule]});
        let pods = json!({"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]});
        let all = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*/*"]});
        let subs = json!({"operations": ["*"], "apiGroups": [""], "apiVersions": ["*"], "resources": ["pods/*"]});
        let cluster = json!({"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"], "scope": "Cluster"});
        let cases = [
            (&pods, target("CREATE", "pods", None), true),
            (&pods, target("UPDATE", "pods", None), false),
            (&pods, target("CREATE", "services", None), false),
            (&pods, target("CREATE", "pods", Some("status")), false),
            (&all, target("DELETE", "pods", Some("status")), true),
            (&subs, target("UPDATE", "pods", Some("status")), true),
            (&subs, target("UPDATE", "pods", None), false),
            (&cluster, target("CREATE", "pods", None), false),
        ];
        for (rule, t, want) in cases {
            assert_eq!(
                rules_match(&hook(rule.clone()), &t),
                want,
                "{rule} {} {:?}",
                t.operation,
                t.subresource
            );
        }
    }

    #[test]
    fn selectors_table() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "a".to_string())].into();
        let cases = [
            (json!({}), true),
            (json!({"namespaceSelector": {}}), true),
            (
                json!({"namespaceSelector": {"matchLabels": {"team": "a"}}}),
                true,
            ),
            (
                json!({"namespaceSelector": {"matchLabels": {"team": "b"}}}),
                false,
            ),
            (
                json!({"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "NotIn", "values": ["a"]}]}}),
                false,
            ),
        ];
        for (hook, want) in cases {
            assert_eq!(
                selector_matches(&hook, "namespaceSelector", &labels),
                want,
                "{hook}"
            );
        }
    }

    #[test]
    fn answers_table() {
        use base64::Engine;
        let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(patch.to_string());
        let ok = json!({"response": {"uid": "u", "allowed": true, "patch": encoded, "patchType": "JSONPatch", "warnings": ["careful"]}});
        assert_eq!(
            answer("w", "u", &ok).unwrap(),
            Answer {
                patch: Some(patch),
                warnings: vec!["careful".into()]
            }
        );
        let denied = json!({"response": {"uid": "u", "allowed": false, "status": {"code": 403, "message": "no pods today"}}});
        let e = answer("w.example.com", "u", &denied).unwrap_err();
        assert_eq!((e.code, e.reason), (403, "Forbidden"));
        assert_eq!(
            e.message,
            "admission webhook \"w.example.com\" denied the request: no pods today"
        );
        let bare = json!({"response": {"uid": "u", "allowed": false}});
        let e = answer("w", "u", &bare).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (
                400,
                "admission webhook \"w\" denied the request without explanation"
            )
        );
        let wrong = json!({"response": {"uid": "x", "allowed": true}});
        assert_eq!(answer("w", "u", &wrong).unwrap_err().code, 500);
    }
}
