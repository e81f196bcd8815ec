//! The access reviews of `authorization.k8s.io`: SubjectAccessReview,
//! LocalSubjectAccessReview, SelfSubjectAccessReview (`kubectl auth can-i`) and
//! SelfSubjectRulesReview (`kubectl auth can-i --list`), answered by the authorizers and never
//! stored.

use hyper::Response;
use rudder_auth::UserInfo;
use rudder_auth::rbac::{Attributes, node};
use serde_json::{Value, json};

use super::{Ctx, decode_body};
use crate::authz;
use crate::http::{Body, json_response};
use crate::status::{ApiError, Cause};

fn invalid(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::invalid(
        "authorization.k8s.io",
        kind,
        "",
        vec![Cause {
            reason: "FieldValueRequired".into(),
            message: message.into(),
            field: field.into(),
        }],
    )
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// The user a SubjectAccessReview asks about.
fn spec_user(spec: &Value) -> UserInfo {
    let extra = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), str_list(Some(v))))
                .collect()
        })
        .unwrap_or_default();
    UserInfo {
        name: spec
            .get("user")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        groups: str_list(spec.get("groups")),
        extra,
    }
}

/// The attributes in a review's `spec.resourceAttributes` or `spec.nonResourceAttributes`.
fn spec_attributes(kind: &str, spec: &Value, user: UserInfo) -> Result<Attributes, ApiError> {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let mut a = Attributes::resource(user, &s(r, "verb"), &s(r, "group"), &s(r, "resource"))
            .subresource(&s(r, "subresource"))
            .in_namespace(&s(r, "namespace"))
            .named(&s(r, "name"));
        if a.resource == "namespaces" && a.namespace.is_empty() && a.api_group.is_empty() {
            a.namespace = a.name.clone();
        }
        return Ok(a);
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes::path(user, &s(n, "verb"), &s(n, "path")));
    }
    Err(invalid(
        kind,
        "spec.resourceAttributes",
        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

fn created(mut review: Value, kind: &str, status: Value) -> Response<Body> {
    review["apiVersion"] = "authorization.k8s.io/v1".into();
    review["kind"] = kind.into();
    if review.get("metadata").is_none_or(Value::is_null) {
        review["metadata"] = json!({"creationTimestamp": null});
    }
    review["status"] = status;
    json_response(201, serde_json::to_vec(&review).unwrap_or_default())
}

/// POST of any of the four reviews.
pub(crate) async fn review(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let requester = ctx
        .req
        .parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .ok_or_else(ApiError::unauthorized)?;
    let review = decode_body(&ctx.req)?;
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let kind = ctx.resource.kind.clone();
    let user = match kind.as_str() {
        "SelfSubjectAccessReview" | "SelfSubjectRulesReview" => requester,
        _ => {
            let u = spec_user(&spec);
            if u.name.is_empty() && u.groups.is_empty() {
                return Err(invalid(
                    &kind,
                    "spec.user",
                    "at least one of user or group must be specified",
                ));
            }
            u
        }
    };
    if kind == "SelfSubjectRulesReview" {
        let ns = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
        return Ok(created(
            review.clone(),
            &kind,
            rules_status(&ctx, &user, ns),
        ));
    }
    let attrs = spec_attributes(&kind, &spec, user)?;
    if kind == "LocalSubjectAccessReview" {
        let ns = ctx.target.namespace.as_deref().unwrap_or("");
        if !attrs.resource_request || attrs.namespace != ns {
            return Err(ApiError::bad_request(format!(
                "spec.resourceAttributes.namespace must match namespace: {ns}"
            )));
        }
    }
    let decision = authz::decide(ctx.server, &attrs).await?;
    let mut status = json!({"allowed": decision.allowed});
    if !decision.reason.is_empty() {
        status["reason"] = decision.reason.into();
    }
    Ok(created(review, &kind, status))
}

/// What the user may do in `ns`, as RBAC grants it.
fn rules_status(ctx: &Ctx<'_>, user: &UserInfo, ns: &str) -> Value {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in authz::rules_for(ctx.server, user, ns) {
        if r.non_resource_urls.is_empty() {
            let mut rule =
                json!({"verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources});
            if !r.resource_names.is_empty() {
                rule["resourceNames"] = json!(r.resource_names);
            }
            resource_rules.push(rule);
        } else {
            non_resource_rules
                .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    // What the Node authorizer allows depends on the objects named; it cannot be listed.
    if node::node_name(user).is_some() {
        status["incomplete"] = true.into();
        status["evaluationError"] = "node authorizer does not support user rule resolution".into();
    }
    status
}
