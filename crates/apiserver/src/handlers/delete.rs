//! DELETE and DELETECOLLECTION: preconditions, graceful deletion, finalizers and the
//! propagation policy's finalizers (`orphan`, `foregroundDeletion`).

use bytes::Bytes;
use hyper::Response;
use rudder_store::{DeleteOutcome, WriteOutcome};
use serde_json::{Value, json};

use super::Ctx;
use super::list::object_response;
use crate::cache::CachedObject;
use crate::filter::Filter;
use crate::http::{Body, json_response};
use crate::objects;
use crate::params::{ListParams, dry_run};
use crate::status::ApiError;

/// DeleteOptions, from the body or the query.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct DeleteOptions {
    pub grace_period: Option<i64>,
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

impl DeleteOptions {
    fn parse(ctx: &Ctx<'_>) -> Result<Self, ApiError> {
        let body: Value = if ctx.req.body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&ctx.req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
        };
        Self::from_value(&body, ctx)
    }

    /// DeleteOptions from a decoded body (or an Eviction's `deleteOptions`) and the query.
    pub(super) fn from_value(body: &Value, ctx: &Ctx<'_>) -> Result<Self, ApiError> {
        let q = &ctx.query;
        let grace_period = match body.get("gracePeriodSeconds").and_then(Value::as_i64) {
            Some(g) => Some(g),
            None => match q.get("gracePeriodSeconds") {
                Some(g) if !g.is_empty() => Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?),
                _ => None,
            },
        };
        let mut propagation = body
            .get("propagationPolicy")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                q.get("propagationPolicy")
                    .filter(|s| !s.is_empty())
                    .cloned()
            });
        let orphan = body
            .get("orphanDependents")
            .and_then(Value::as_bool)
            .or_else(|| q.get("orphanDependents").map(|v| crate::params::is_true(v)));
        if propagation.is_none() && orphan == Some(true) {
            propagation = Some("Orphan".into());
        }
        if let Some(p) = &propagation
            && !matches!(p.as_str(), "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
        let dry = body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"))
            || dry_run(q)?;
        Ok(Self {
            grace_period,
            propagation,
            uid: body
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_owned),
            resource_version: body
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned),
            dry_run: dry,
        })
    }
}

/// What deleting `obj` with `opts` does: the finalizers to add and whether the object only gets
/// marked (graceful or finalized deletion) instead of removed.
fn plan(resource_plural: &str, obj: &Value, opts: &DeleteOptions) -> (Vec<String>, Option<i64>) {
    let mut finalizers = objects::finalizers(obj);
    match opts.propagation.as_deref() {
        Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
            finalizers.push("orphan".into())
        }
        Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
            finalizers.push("foregroundDeletion".into())
        }
        _ => {}
    }
    // Pods on a node terminate gracefully: the node agent finishes the deletion.
    let grace = if resource_plural == "pods"
        && obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty())
    {
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let g = opts.grace_period.unwrap_or(default);
        if g > 0 { Some(g) } else { None }
    } else {
        None
    };
    (finalizers, grace)
}

/// Deletes (or marks for deletion) one object. Returns the object as the response shows it.
pub(super) async fn delete_one(
    ctx: &Ctx<'_>,
    key: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<CachedObject, ApiError> {
    crate::admission::check_delete(&ctx.resource, name)?;
    let store = &ctx.server.store;
    let (group, plural) = (&ctx.resource.group, &ctx.resource.plural);
    for _attempt in 0..64 {
        let kv = store
            .get(key, None)
            .await?
            .kv
            .ok_or_else(|| ApiError::not_found(group, plural, name))?;
        let current =
            CachedObject::decode(key, &kv.value, kv.mod_revision).map_err(ApiError::internal)?;
        let obj = current.value().map_err(ApiError::internal)?;
        if let Some(uid) = &opts.uid
            && uid != objects::meta_str(&obj, "uid")
        {
            return Err(ApiError::conflict(
                group,
                plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    objects::meta_str(&obj, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && *rv != kv.mod_revision.to_string()
        {
            return Err(ApiError::conflict(
                group,
                plural,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    kv.mod_revision
                ),
            ));
        }
        let (finalizers, grace) = plan(plural, &obj, opts);
        // A namespace stays, Terminating, until its spec finalizers are done (the namespace
        // controller empties it, then removes `kubernetes` through /finalize).
        let namespace_waits = group.is_empty()
            && plural == "namespaces"
            && !objects::spec_finalizers(&obj).is_empty();
        if finalizers.is_empty() && grace.is_none() && !namespace_waits {
            if opts.dry_run {
                return Ok(current);
            }
            match store.delete(key, Some(kv.mod_revision)).await? {
                DeleteOutcome::Deleted { revision, .. } => {
                    if group.is_empty() && plural == "services" {
                        crate::services::Allocations {
                            store,
                            range: ctx.server.service_range,
                        }
                        .release_held(&obj, None)
                        .await;
                    }
                    let mut value = obj;
                    return Ok(CachedObject::from_value(key, &mut value, revision));
                }
                DeleteOutcome::NotFound => return Err(ApiError::not_found(group, plural, name)),
                DeleteOutcome::Conflict(_) => continue,
            }
        }
        // Mark: deletionTimestamp (once), grace period, finalizers.
        let mut marked = obj.clone();
        if !objects::is_deleting(&marked) {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            marked["metadata"]["deletionTimestamp"] =
                json!(objects::rfc3339(secs + grace.unwrap_or(0)));
            marked["metadata"]["deletionGracePeriodSeconds"] = json!(grace.unwrap_or(0));
        } else if let Some(g) = grace {
            // A shorter grace period may replace a longer one, never the reverse.
            let old = marked
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_i64)
                .unwrap_or(i64::MAX);
            if g < old {
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(g);
            }
        }
        marked["metadata"]["finalizers"] = json!(finalizers);
        if namespace_waits {
            marked["status"]["phase"] = json!("Terminating");
        }
        if finalizers.is_empty()
            && let Some(m) = marked.get_mut("metadata").and_then(Value::as_object_mut)
        {
            m.remove("finalizers");
        }
        if marked == obj || opts.dry_run {
            let mut value = marked;
            return Ok(CachedObject::from_value(key, &mut value, kv.mod_revision));
        }
        let stored = objects::to_stored(&marked)?;
        match store
            .update(key, Bytes::from(stored), kv.mod_revision)
            .await?
        {
            WriteOutcome::Written(w) => {
                let mut value = marked;
                return Ok(CachedObject::from_value(key, &mut value, w.mod_revision));
            }
            WriteOutcome::Conflict(None) => return Err(ApiError::not_found(group, plural, name)),
            _ => continue,
        }
    }
    Err(ApiError::conflict(
        group,
        plural,
        name,
        "too many concurrent updates; try again",
    ))
}

/// DELETE.
pub(crate) async fn delete(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let opts = DeleteOptions::parse(&ctx)?;
    let key = ctx.key()?;
    let obj = delete_one(&ctx, &key, ctx.name(), &opts).await?;
    object_response(&ctx, 200, &obj)
}

/// DELETECOLLECTION: deletes every object the selectors match.
pub(crate) async fn delete_collection(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let opts = DeleteOptions::parse(&ctx)?;
    let params = ListParams::parse(&ctx.query)?;
    let filter = Filter::from_params(&params, &ctx.resource)?;
    ctx.server.cache.sync().await?;
    let (targets, _, _) = ctx
        .server
        .cache
        .list(&ctx.prefix(), None, 0, |o| filter.matches(o));
    let mut deleted = Vec::new();
    for obj in targets {
        let name = obj.key.rsplit('/').next().unwrap_or("").to_owned();
        match delete_one(&ctx, &obj.key, &name, &opts).await {
            Ok(o) => deleted.push(o.value().map_err(ApiError::internal)?),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let list = json!({
        "kind": format!("{}List", ctx.resource.kind),
        "apiVersion": ctx.resource.api_version(),
        "metadata": {"resourceVersion": ctx.server.cache.revision().to_string()},
        "items": deleted,
    });
    Ok(json_response(
        200,
        serde_json::to_vec(&list).unwrap_or_default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_table() {
        let pod_on_node = json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}});
        let pending_pod = json!({"metadata": {"name": "p"}, "spec": {}});
        let finalized = json!({"metadata": {"name": "c", "finalizers": ["example.com/x"]}});
        let opts = |p: Option<&str>, g: Option<i64>| DeleteOptions {
            grace_period: g,
            propagation: p.map(Into::into),
            ..Default::default()
        };
        type Expected<'a> = (Vec<&'a str>, Option<i64>);
        let cases: Vec<(&str, &Value, DeleteOptions, Expected)> = vec![
            ("pods", &pod_on_node, opts(None, None), (vec![], Some(30))),
            ("pods", &pod_on_node, opts(None, Some(0)), (vec![], None)),
            ("pods", &pending_pod, opts(None, None), (vec![], None)),
            (
                "configmaps",
                &finalized,
                opts(None, None),
                (vec!["example.com/x"], None),
            ),
            (
                "deployments",
                &pending_pod,
                opts(Some("Orphan"), None),
                (vec!["orphan"], None),
            ),
            (
                "deployments",
                &pending_pod,
                opts(Some("Foreground"), None),
                (vec!["foregroundDeletion"], None),
            ),
            (
                "deployments",
                &pending_pod,
                opts(Some("Background"), None),
                (vec![], None),
            ),
        ];
        for (plural, obj, o, (fins, grace)) in cases {
            let (f, g) = plan(plural, obj, &o);
            assert_eq!(
                (f.iter().map(String::as_str).collect::<Vec<_>>(), g),
                (fins, grace),
                "{plural} {o:?}"
            );
        }
    }
}
