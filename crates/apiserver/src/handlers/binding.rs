//! POST `pods/{name}/binding`, the scheduler's one write per pod. As upstream's binding storage,
//! it sets `spec.nodeName` and the `PodScheduled` condition straight on the stored pod in a
//! compare-and-swap loop: the Binding is what the request creates, so the pod's own validation,
//! defaulting and managedFields are not re-run (none of them can change with these two fields),
//! and nothing is encoded for the response but a Status. It is on the scheduler's hot path.

use bytes::Bytes;
use hyper::Response;
use rudder_store::WriteOutcome;
use serde_json::{Value, json};

use super::{Ctx, decode_body};
use crate::http::{Body, json_response};
use crate::objects;
use crate::params::dry_run;
use crate::status::{ApiError, Cause};

/// Attempts before giving up on a pod that keeps changing under the binding.
const ATTEMPTS: usize = 64;

pub(crate) async fn bind(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let binding = decode_body(&ctx.req)?;
    let target = Target::of(&binding, ctx.name())?;
    let dry = dry_run(&ctx.query)?;
    let key = ctx.key()?;
    for _ in 0..ATTEMPTS {
        let got = ctx.server.store.get(&key, None).await?;
        let kv = got.kv.ok_or_else(|| ctx.not_found())?;
        let mut pod: Value = serde_json::from_slice(&kv.value)
            .map_err(|e| ApiError::internal(format!("stored pod {key} is not JSON: {e}")))?;
        assign(&mut pod, &target, ctx.name(), &objects::now_rfc3339())?;
        crate::authz::admit(ctx.server, &ctx.req, &ctx.resource, &pod).await?;
        if dry {
            return Ok(created());
        }
        let stored = serde_json::to_vec(&pod)
            .map_err(|e| ApiError::internal(format!("encoding pod: {e}")))?;
        match ctx
            .server
            .store
            .update(&key, Bytes::from(stored), kv.mod_revision)
            .await?
        {
            WriteOutcome::Written(_) => return Ok(created()),
            WriteOutcome::Conflict(None) => return Err(ctx.not_found()),
            WriteOutcome::Conflict(Some(_)) => {}
            WriteOutcome::AlreadyExists(_) => {
                return Err(ApiError::internal(format!(
                    "the store answered an update of {key} as a create"
                )));
            }
        }
    }
    Err(ApiError::conflict(
        "",
        "pods",
        ctx.name(),
        "the pod kept changing while it was being bound; try again",
    ))
}

fn created() -> Response<Body> {
    json_response(
        201,
        serde_json::to_vec(&crate::status::success(None)).unwrap_or_default(),
    )
}

/// What a Binding asks for.
#[derive(Debug, PartialEq)]
struct Target {
    node: String,
    /// The pod uid the binding was made for (`metadata.uid`), a precondition when set.
    uid: Option<String>,
}

impl Target {
    fn of(binding: &Value, pod: &str) -> Result<Target, ApiError> {
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                pod,
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "target.name".into(),
                }],
            ));
        }
        let kind = binding
            .pointer("/target/kind")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !kind.is_empty() && kind != "Node" {
            return Err(ApiError::invalid(
                "",
                "Binding",
                pod,
                vec![Cause {
                    reason: "FieldValueNotSupported".into(),
                    message: format!("Unsupported value: {kind:?}: supported values: \"Node\""),
                    field: "target.kind".into(),
                }],
            ));
        }
        let uid = binding
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_owned);
        Ok(Target {
            node: node.to_owned(),
            uid,
        })
    }
}

/// Binds the stored `pod` to the target node, or says why it cannot be.
fn assign(pod: &mut Value, target: &Target, name: &str, now: &str) -> Result<(), ApiError> {
    let conflict = |msg: &str| ApiError::conflict("", "pods", name, msg);
    if let Some(uid) = &target.uid {
        let current = objects::meta_str(pod, "uid");
        if current != uid {
            return Err(conflict(&format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {current}"
            )));
        }
    }
    let assigned = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !assigned.is_empty() {
        return Err(conflict(&format!(
            "pod {name} is already assigned to node \"{assigned}\""
        )));
    }
    if objects::is_deleting(pod) {
        return Err(conflict(
            "pod is being deleted, cannot be assigned to a host",
        ));
    }
    if pod
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty())
    {
        return Err(conflict(&format!(
            "pod {name} has non-empty .spec.schedulingGates"
        )));
    }
    pod["spec"]["nodeName"] = json!(target.node);
    let mut conditions: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["type"] != "PodScheduled")
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    conditions.push(json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now}));
    pod["status"]["conditions"] = Value::Array(conditions);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(node: &str, uid: Option<&str>) -> Target {
        Target {
            node: node.into(),
            uid: uid.map(str::to_owned),
        }
    }

    #[test]
    fn targets() {
        let t = |b: Value| Target::of(&b, "web").map_err(|e| e.code);
        assert_eq!(
            t(json!({"target": {"kind": "Node", "name": "n1"}, "metadata": {"uid": "u"}})),
            Ok(target("n1", Some("u")))
        );
        assert_eq!(t(json!({"target": {"name": "n1"}})), Ok(target("n1", None)));
        assert_eq!(t(json!({"target": {"kind": "Node"}})), Err(422));
        assert_eq!(t(json!({"target": {"kind": "Pod", "name": "x"}})), Err(422));
    }

    #[test]
    fn assignment() {
        let pending = json!({
            "metadata": {"name": "web", "uid": "u1"},
            "spec": {},
            "status": {"phase": "Pending", "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            ]}
        });
        let mut pod = pending.clone();
        assign(&mut pod, &target("n1", Some("u1")), "web", "T").expect("binds");
        assert_eq!(pod["spec"]["nodeName"], "n1");
        assert_eq!(
            pod["status"]["conditions"],
            json!([{"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "T"}])
        );
        assert_eq!(pod["status"]["phase"], "Pending");

        let refused = |mut pod: Value, t: Target| {
            let e = assign(&mut pod, &t, "web", "T").expect_err("refused");
            (e.code, e.message.clone())
        };
        let (code, msg) = refused(pod, target("n2", None));
        assert_eq!(code, 409);
        assert!(msg.contains("already assigned to node \"n1\""), "{msg}");
        let (code, msg) = refused(pending.clone(), target("n1", Some("other")));
        assert_eq!(code, 409);
        assert!(msg.contains("Precondition failed: UID"), "{msg}");
        let mut deleting = pending;
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let (code, msg) = refused(deleting, target("n1", None));
        assert_eq!(code, 409);
        assert!(msg.contains("being deleted"), "{msg}");
        let mut gated =
            json!({"metadata": {"name": "web"}, "spec": {"schedulingGates": [{"name": "g"}]}});
        let e = assign(&mut gated, &target("n1", None), "web", "T").expect_err("gated");
        assert_eq!(e.code, 409);
    }
}
