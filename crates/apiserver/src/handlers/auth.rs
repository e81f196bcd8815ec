//! The authentication APIs: TokenRequest (`serviceaccounts/NAME/token`), TokenReview,
//! SelfSubjectReview, and the creation of CertificateSigningRequests, which records the
//! requesting user in the spec and approves and signs a node's client certificate at once when
//! a bootstrap token (or the node itself, renewing) asks for it.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Response;
use rudder_auth::UserInfo;
use rudder_auth::service_account::{self, Bound, Claims, ObjectRef, TokenSpec};
use serde_json::{Value, json};

use super::{Ctx, decode_body};
use crate::authn;
use crate::http::{Body, json_response};
use crate::keys;
use crate::objects;
use crate::status::{ApiError, Cause};

/// The signer of kubelet client certificates.
pub(crate) const KUBELET_CLIENT_SIGNER: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// The signer of node agents' serving certificates.
const KUBELET_SERVING_SIGNER: &str = "kubernetes.io/kubelet-serving";
/// Lifetime of node client certificates, in days.
const NODE_CERT_DAYS: i64 = 365;

/// Whether the request addresses `group`/`plural`.
pub(crate) fn is(ctx: &Ctx<'_>, group: &str, plural: &str) -> bool {
    ctx.resource.group == group && ctx.resource.plural == plural
}

/// The authenticated user of the request.
fn user(ctx: &Ctx<'_>) -> Result<UserInfo, ApiError> {
    ctx.req
        .parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .ok_or_else(ApiError::unauthorized)
}

fn created(v: &Value) -> Response<Body> {
    json_response(201, serde_json::to_vec(v).unwrap_or_default())
}

fn invalid(kind: &str, name: &str, field: &str, reason: &str, message: String) -> ApiError {
    let group = if kind == "TokenRequest" {
        "authentication.k8s.io"
    } else {
        ""
    };
    ApiError::invalid(
        group,
        kind,
        name,
        vec![Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }],
    )
}

/// `{name, uid}` of the current object at `key`, or a 404 for `plural`/`name`.
async fn current(
    ctx: &Ctx<'_>,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<(Value, ObjectRef), ApiError> {
    let key = keys::object_key("", plural, ns, name);
    let obj = authn::read(ctx.server, &key)
        .await
        .ok_or_else(|| ApiError::not_found("", plural, name))?;
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Ok((
        obj,
        ObjectRef {
            name: name.to_owned(),
            uid,
        },
    ))
}

/// POST `serviceaccounts/NAME/token`: a signed token for the service account, optionally
/// bound to a Pod or Secret of its namespace.
pub(crate) async fn token_request(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let tokens =
        ctx.server.authn.tokens.as_ref().ok_or_else(|| {
            ApiError::method_not_allowed("service-account tokens are not enabled")
        })?;
    let ns = ctx.target.namespace.clone().unwrap_or_default();
    let name = ctx.name().to_owned();
    let (_, sa) = current(&ctx, "serviceaccounts", Some(&ns), &name).await?;
    let body = decode_body(&ctx.req)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    let mut audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    if audiences.is_empty() {
        audiences = tokens.verifier.audiences().to_vec();
    }
    let expiration =
        service_account::expiration(spec.get("expirationSeconds").and_then(Value::as_i64))
            .map_err(|m| {
                invalid(
                    "TokenRequest",
                    &name,
                    "spec.expirationSeconds",
                    "FieldValueInvalid",
                    m,
                )
            })?;
    let bound_ref = spec.get("boundObjectRef").filter(|v| !v.is_null());
    let bound = match bound_ref {
        None => None,
        Some(r) => Some(bound_object(&ctx, &ns, &name, r).await?),
    };
    let now = authn::now();
    let claims = Claims::new(TokenSpec {
        issuer: tokens.issuer.clone(),
        audiences: audiences.clone(),
        namespace: ns.clone(),
        service_account: sa,
        bound,
        now,
        expiration_seconds: expiration,
        id: objects::new_uid(),
    });
    let token = tokens
        .signer
        .sign(&claims)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out_spec = json!({"audiences": audiences, "expirationSeconds": expiration});
    if let Some(r) = bound_ref {
        out_spec["boundObjectRef"] = r.clone();
    }
    Ok(created(&json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": rudder_auth::bootstrap::rfc3339(now)},
        "spec": out_spec,
        "status": {
            "token": token,
            "expirationTimestamp": rudder_auth::bootstrap::rfc3339(claims.exp),
        },
    })))
}

/// The object a TokenRequest binds its token to: it must exist (with the uid given, if any).
async fn bound_object(ctx: &Ctx<'_>, ns: &str, sa: &str, r: &Value) -> Result<Bound, ApiError> {
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("");
    let name = r.get("name").and_then(Value::as_str).unwrap_or("");
    let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    let plural = match kind {
        "Pod" => "pods",
        "Secret" => "secrets",
        other => {
            return Err(invalid(
                "TokenRequest",
                sa,
                "spec.boundObjectRef.kind",
                "FieldValueNotSupported",
                format!("Unsupported value: \"{other}\": supported values: \"Pod\", \"Secret\""),
            ));
        }
    };
    let (obj, found) = current(ctx, plural, Some(ns), name).await?;
    if !uid.is_empty() && uid != found.uid {
        return Err(ApiError::conflict(
            "",
            plural,
            name,
            &format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record. \
                 The object might have been deleted and then recreated"
            ),
        ));
    }
    if kind == "Secret" {
        return Ok(Bound::Secret(found));
    }
    let node_name = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let node = if node_name.is_empty() {
        None
    } else {
        current(ctx, "nodes", None, node_name)
            .await
            .ok()
            .map(|(_, n)| n)
    };
    Ok(Bound::Pod { pod: found, node })
}

/// POST `tokenreviews`: whether a token authenticates, and whom.
pub(crate) async fn token_review(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    user(&ctx)?;
    let mut review = decode_body(&ctx.req)?;
    let token = review
        .pointer("/spec/token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let audiences: Option<Vec<String>> = review
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty());
    let status = match authn::authenticate_token(ctx.server, &token, audiences.as_deref()).await {
        Ok(user) => {
            let mut s = json!({"authenticated": true, "user": user.to_json()});
            let accepted = match (&audiences, &ctx.server.authn.tokens) {
                (Some(a), _) => a.clone(),
                (None, Some(t)) => t.verifier.audiences().to_vec(),
                (None, None) => Vec::new(),
            };
            s["audiences"] = json!(accepted);
            s
        }
        Err(e) => json!({"authenticated": false, "user": {}, "error": e.to_string()}),
    };
    review["status"] = status;
    review["apiVersion"] = "authentication.k8s.io/v1".into();
    review["kind"] = "TokenReview".into();
    Ok(created(&review))
}

/// POST `selfsubjectreviews` (`kubectl auth whoami`): the request's own user.
pub(crate) async fn self_subject_review(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let user = user(&ctx)?;
    Ok(created(&json!({
        "apiVersion": ctx.resource.api_version(),
        "kind": "SelfSubjectReview",
        "metadata": {"creationTimestamp": null},
        "status": {"userInfo": user.to_json()},
    })))
}

/// POST `certificatesigningrequests`: records the requester in the spec, drops any status the
/// client sent, and — for a node client certificate asked by a bootstrap token or by that node
/// itself — approves and signs it before storing (upstream's csrapproving + csrsigning
/// controllers, inline).
pub(crate) async fn create_csr(mut ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let user = user(&ctx)?;
    let mut obj = decode_body(&ctx.req)?;
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    if obj.get("spec").and_then(Value::as_object).is_none() {
        obj["spec"] = json!({});
    }
    obj["spec"]["username"] = user.name.clone().into();
    obj["spec"]["groups"] = json!(user.groups);
    if user.uid.is_empty() {
        if let Some(s) = obj["spec"].as_object_mut() {
            s.remove("uid");
        }
    } else {
        obj["spec"]["uid"] = user.uid.clone().into();
    }
    if !user.extra.is_empty() {
        obj["spec"]["extra"] = json!(user.extra);
    }
    let serving = node_serving_request(&obj, &user);
    if let Some(ca) = &ctx.server.authn.ca
        && let Some(pem) = serving.clone().or_else(|| node_client_request(&obj, &user))
    {
        let days = obj
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .map(|s| (s / 86_400).clamp(1, NODE_CERT_DAYS))
            .unwrap_or(NODE_CERT_DAYS);
        let cert = if serving.is_some() {
            ca.sign_serving_csr(&pem, days)
        } else {
            ca.sign_csr(&pem, days)
        }
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let now = objects::now_rfc3339();
        obj["status"] = json!({
            "conditions": [{
                "type": "Approved",
                "status": "True",
                "reason": "AutoApproved",
                "message": if serving.is_some() {
                    "Auto approving kubelet serving certificate."
                } else {
                    "Auto approving kubelet client certificate after SubjectAccessReview."
                },
                "lastUpdateTime": now,
                "lastTransitionTime": now,
            }],
            "certificate": STANDARD.encode(cert),
        });
        tracing::info!(user = %user.name, "approved and signed a node client certificate");
    }
    ctx.req.body = serde_json::to_vec(&obj)
        .map_err(|e| ApiError::internal(e.to_string()))?
        .into();
    ctx.req.parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    super::write::create(ctx).await
}

/// The PEM request and the node it names, of a CSR for `signer` whose subject is
/// `CN=system:node:NAME, O=system:nodes`.
fn node_request(obj: &Value, signer: &str) -> Option<(String, String)> {
    if obj.pointer("/spec/signerName").and_then(Value::as_str) != Some(signer) {
        return None;
    }
    let request = obj.pointer("/spec/request").and_then(Value::as_str)?;
    let pem = String::from_utf8(STANDARD.decode(request).ok()?).ok()?;
    let id = rudder_pki::csr_identity(&pem)?;
    let node = id.user.strip_prefix("system:node:")?;
    (!node.is_empty() && id.groups == ["system:nodes"]).then(|| (pem, id.user.clone()))
}

/// Whether `user` is the node `node_user` (`system:node:NAME`) itself.
fn is_node(user: &UserInfo, node_user: &str) -> bool {
    user.name == node_user && user.groups.iter().any(|g| g == "system:nodes")
}

/// The PEM request of a node's serving certificate (its agent endpoint), approved at once when
/// the node itself asks (as k3s does; upstream leaves `kubelet-serving` to an approver).
fn node_serving_request(obj: &Value, user: &UserInfo) -> Option<String> {
    let (pem, node_user) = node_request(obj, KUBELET_SERVING_SIGNER)?;
    is_node(user, &node_user).then_some(pem)
}

/// The PEM request of a CSR that may be approved at once: the kubelet client signer, a subject
/// of `CN=system:node:NAME, O=system:nodes`, asked by a bootstrap token user or by
/// `system:node:NAME` itself.
fn node_client_request(obj: &Value, user: &UserInfo) -> Option<String> {
    let (pem, node_user) = node_request(obj, KUBELET_CLIENT_SIGNER)?;
    let bootstrapper = user
        .groups
        .iter()
        .any(|g| g == rudder_auth::bootstrap::GROUP);
    (bootstrapper || is_node(user, &node_user)).then_some(pem)
}
