//! CREATE, UPDATE (PUT) and PATCH, including the `status`, `scale` and `binding` subresources.
//! Every update is an optimistic-concurrency loop over the store, as kube-apiserver's
//! GuaranteedUpdate: read, compute, compare-and-swap on the revision read, retry on a race.

use bytes::Bytes;
use hyper::Response;
use rudder_store::{DeleteOutcome, WriteOutcome};
use serde_json::{Value, json};

use super::list::object_response;
use super::{Ctx, decode_body};
use crate::admission;
use crate::cache::CachedObject;
use crate::http::{Body, json_response};
use crate::keys;
use crate::objects::{self, Precondition};
use crate::params::{FieldValidation, dry_run};
use crate::services;
use crate::status::ApiError;
use crate::validate;
use rudder_machinery::MergeSchema;
use rudder_machinery::managed_fields;

const CONFLICT_MSG: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

fn with_warnings(mut resp: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let v = format!("299 - {}", serde_json::to_string(w).unwrap_or_default());
        if let Ok(h) = http::HeaderValue::from_str(&v) {
            resp.headers_mut().append("warning", h);
        }
    }
    resp
}

/// CREATE.
pub(crate) async fn create(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let obj = decode_body(&ctx.req)?;
    create_object(ctx, obj, Tracking::Update).await
}

/// Whether a write's field ownership is still to be recorded, or was by server-side apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tracking {
    Update,
    Applied,
}

/// Whether the request writes a Namespace (whose deletion also waits for `spec.finalizers`).
fn is_namespace(ctx: &Ctx<'_>) -> bool {
    ctx.resource.group.is_empty() && ctx.resource.plural == "namespaces"
}

/// Whether the request writes a core/v1 Service (whose addresses and ports are allocated).
fn is_service(ctx: &Ctx<'_>) -> bool {
    ctx.resource.group.is_empty()
        && ctx.resource.plural == "services"
        && ctx.target.subresource.is_none()
}

/// The field manager of a request: `?fieldManager=`, else the user agent's product name.
fn field_manager(ctx: &Ctx<'_>) -> Result<String, ApiError> {
    let manager = match ctx.query.get("fieldManager") {
        Some(m) => m.clone(),
        None => {
            managed_fields::manager_from_user_agent(crate::server::header(&ctx.req, "user-agent"))
        }
    };
    if manager.chars().count() > 128 {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Too long: may not be more than 128 bytes",
        ));
    }
    if manager.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "fieldManager: Invalid value: {manager:?}: must only contain printable characters"
        )));
    }
    Ok(manager)
}

fn merge_schema(ctx: &Ctx<'_>) -> MergeSchema {
    let r = &ctx.resource;
    MergeSchema::for_kind(&r.group, &r.version, &r.kind).unwrap_or_else(MergeSchema::unstructured)
}

async fn create_object(
    ctx: Ctx<'_>,
    mut obj: Value,
    tracking: Tracking,
) -> Result<Response<Body>, ApiError> {
    let validation = FieldValidation::parse(&ctx.query)?;
    let dry = dry_run(&ctx.query)?;
    let kind = ctx.resource.kind_ref();
    objects::check_type(&mut obj, &kind)?;
    objects::check_namespace(&mut obj, &kind, ctx.target.namespace.as_deref())?;
    if let Some(ns) = ctx.target.namespace.as_deref() {
        admission::check_namespace_open(ctx.server, ns).await?;
    }
    let name = objects::prepare_create(&mut obj, &kind)?;
    crate::defaults::apply(&ctx.resource, &mut obj);
    let attrs = admission::Attributes {
        op: admission::Operation::Create,
        resource: &ctx.resource,
        subresource: None,
        namespace: ctx.target.namespace.as_deref(),
        name: &name,
        old: None,
        dry_run: dry,
    };
    let mut warnings = admission::mutate(ctx.server, &ctx.req, &attrs, &mut obj).await?;
    warnings.extend(validate::check(&ctx.resource, &mut obj, validation, &name)?);
    warnings.extend(admission::validate(ctx.server, &ctx.req, &attrs, &obj).await?);
    if tracking == Tracking::Update {
        let manager = field_manager(&ctx)?;
        let now = objects::now_rfc3339();
        let api_version = ctx.resource.api_version();
        let writer = managed_fields::Writer {
            manager: &manager,
            api_version: &api_version,
            subresource: None,
            now: &now,
        };
        managed_fields::on_create(&mut obj, &merge_schema(&ctx), &writer);
    }
    let key = keys::object_key(
        ctx.resource.key_group(),
        &ctx.resource.plural,
        ctx.target.namespace.as_deref(),
        &name,
    );
    if dry {
        let shown = CachedObject::from_value(&key, &mut obj, ctx.server.cache.revision());
        return Ok(with_warnings(
            object_response(&ctx, 201, &shown)?,
            &warnings,
        ));
    }
    let allocations = services::Allocations {
        store: &*ctx.server.store,
        range: ctx.server.service_range,
    };
    let is_service = is_service(&ctx);
    let taken = if is_service {
        let owner = format!("{}/{name}", ctx.target.namespace.as_deref().unwrap_or(""));
        Some(allocations.allocate(&mut obj, None, &owner, &name).await?)
    } else {
        None
    };
    ctx.resource.to_storage(&mut obj);
    let stored = objects::to_stored(&obj)?;
    let outcome = ctx.server.store.create(&key, Bytes::from(stored)).await;
    if let Some(taken) = &taken
        && !matches!(outcome, Ok(WriteOutcome::Written(_)))
    {
        allocations.release(taken).await;
    }
    match outcome? {
        WriteOutcome::Written(kv) => {
            let shown = CachedObject::from_value(&key, &mut obj, kv.mod_revision);
            Ok(with_warnings(
                object_response(&ctx, 201, &shown)?,
                &warnings,
            ))
        }
        WriteOutcome::AlreadyExists(_) => Err(ApiError::already_exists(
            &ctx.resource.group,
            &ctx.resource.plural,
            &name,
        )),
        WriteOutcome::Conflict(_) => Err(ApiError::internal("create reported a conflict")),
    }
}

/// What an update computes from the current object.
type Mutation<'m> = dyn FnMut(&Value) -> Result<Value, ApiError> + Send + 'm;

/// The result of a guaranteed update.
struct Updated {
    object: CachedObject,
    warnings: Vec<String>,
}

/// Reads, mutates and compare-and-swaps until it wins or fails for a reason other than a race.
async fn guaranteed_update(
    ctx: &Ctx<'_>,
    subresource: Option<&str>,
    tracking: Tracking,
    mutate: &mut Mutation<'_>,
) -> Result<Updated, ApiError> {
    let key = ctx.key()?;
    let manager = field_manager(ctx)?;
    let api_version = ctx.resource.api_version();
    let schema = merge_schema(ctx);
    let validation = FieldValidation::parse(&ctx.query)?;
    let dry = dry_run(&ctx.query)?;
    let kind = ctx.resource.kind_ref();
    for _attempt in 0..64 {
        let got = ctx.server.store.get(&key, None).await?;
        let kv = got.kv.ok_or_else(|| ctx.not_found())?;
        let mut current =
            objects::from_stored(&key, &kv.value, kv.mod_revision).map_err(ApiError::internal)?;
        // Custom resources may be stored at another version: mutate and compare at the served one.
        ctx.resource.to_served(&mut current);
        let mut new = mutate(&current)?;
        objects::check_type(&mut new, &kind)?;
        // The name is immutable: a patch that removed it (or `metadata` whole) keeps the
        // object's, rather than storing an object without one (found by the robustness fuzzer).
        match new.get_mut("metadata") {
            Some(Value::Object(m)) => {
                if m.get("name")
                    .is_none_or(|n| n.is_null() || n.as_str() == Some(""))
                {
                    m.insert("name".into(), json!(ctx.name()));
                }
            }
            None | Some(Value::Null) => {
                if let Some(obj) = new.as_object_mut() {
                    obj.insert("metadata".into(), json!({"name": ctx.name()}));
                }
            }
            Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
        }
        let body_name = objects::meta_str(&new, "name");
        if !body_name.is_empty() && body_name != ctx.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({})",
                ctx.name()
            )));
        }
        objects::check_namespace(&mut new, &kind, ctx.target.namespace.as_deref())?;
        let pre = objects::precondition(&new, kv.mod_revision)?;
        if pre == Precondition::Stale {
            return Err(ApiError::conflict(
                &ctx.resource.group,
                &ctx.resource.plural,
                ctx.name(),
                CONFLICT_MSG,
            ));
        }
        objects::prepare_update(&mut new, &current, &kind, subresource)?;
        if is_service(ctx) {
            services::carry_over(&current, &mut new, ctx.name())?;
        }
        crate::defaults::apply(&ctx.resource, &mut new);
        let attrs = admission::Attributes {
            op: admission::Operation::Update,
            resource: &ctx.resource,
            subresource,
            namespace: ctx.target.namespace.as_deref(),
            name: ctx.name(),
            old: Some(&current),
            dry_run: dry,
        };
        let mut warnings = admission::mutate(ctx.server, &ctx.req, &attrs, &mut new).await?;
        warnings.extend(validate::check(
            &ctx.resource,
            &mut new,
            validation,
            ctx.name(),
        )?);
        warnings.extend(admission::validate(ctx.server, &ctx.req, &attrs, &new).await?);
        if tracking == Tracking::Update {
            let now = objects::now_rfc3339();
            let writer = managed_fields::Writer {
                manager: &manager,
                api_version: &api_version,
                subresource: ctx.target.subresource.as_deref(),
                now: &now,
            };
            managed_fields::on_update(&current, &mut new, &schema, &writer);
        }
        let mut unchanged = current.clone();
        if let Some(m) = unchanged.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        if unchanged == new
            && !crate::encryption::stale(ctx.server.encryption.as_deref(), &key, kv.mod_revision)
                .await
        {
            // A no-op update writes nothing and keeps the resourceVersion, as upstream (unless
            // the stored value is encrypted otherwise than now: key rotation rewrites it).
            let object = CachedObject::decode(&key, &kv.value, kv.mod_revision)
                .map_err(ApiError::internal)?;
            return Ok(Updated { object, warnings });
        }
        // The last finalizer of an object being deleted is gone: the deletion completes.
        let finish_delete = objects::is_deleting(&new)
            && objects::finalizers(&new).is_empty()
            && (!is_namespace(ctx) || objects::spec_finalizers(&new).is_empty());
        if dry {
            let object = CachedObject::from_value(&key, &mut new, kv.mod_revision);
            return Ok(Updated { object, warnings });
        }
        if finish_delete {
            match ctx.server.store.delete(&key, Some(kv.mod_revision)).await? {
                DeleteOutcome::Deleted { revision, .. } => {
                    let object = CachedObject::from_value(&key, &mut new, revision);
                    return Ok(Updated { object, warnings });
                }
                DeleteOutcome::NotFound => return Err(ctx.not_found()),
                DeleteOutcome::Conflict(_) if pre == Precondition::Matches => {
                    return Err(ApiError::conflict(
                        &ctx.resource.group,
                        &ctx.resource.plural,
                        ctx.name(),
                        CONFLICT_MSG,
                    ));
                }
                DeleteOutcome::Conflict(_) => continue,
            }
        }
        let allocations = services::Allocations {
            store: &*ctx.server.store,
            range: ctx.server.service_range,
        };
        let taken = if is_service(ctx) {
            let owner = format!(
                "{}/{}",
                ctx.target.namespace.as_deref().unwrap_or(""),
                ctx.name()
            );
            Some(
                allocations
                    .allocate(&mut new, Some(&current), &owner, ctx.name())
                    .await?,
            )
        } else {
            None
        };
        ctx.resource.to_storage(&mut new);
        let stored = objects::to_stored(&new)?;
        let outcome = ctx
            .server
            .store
            .update(&key, Bytes::from(stored), kv.mod_revision)
            .await;
        if let Some(taken) = &taken {
            if matches!(outcome, Ok(WriteOutcome::Written(_))) {
                allocations.release_held(&current, Some(&new)).await;
            } else {
                allocations.release(taken).await;
            }
        }
        match outcome? {
            WriteOutcome::Written(w) => {
                let object = CachedObject::from_value(&key, &mut new, w.mod_revision);
                return Ok(Updated { object, warnings });
            }
            WriteOutcome::Conflict(None) => return Err(ctx.not_found()),
            WriteOutcome::Conflict(Some(_)) if pre == Precondition::Matches => {
                return Err(ApiError::conflict(
                    &ctx.resource.group,
                    &ctx.resource.plural,
                    ctx.name(),
                    CONFLICT_MSG,
                ));
            }
            WriteOutcome::Conflict(Some(_)) | WriteOutcome::AlreadyExists(_) => continue,
        }
    }
    Err(ApiError::conflict(
        &ctx.resource.group,
        &ctx.resource.plural,
        ctx.name(),
        "too many concurrent updates; try again",
    ))
}

/// PUT on an object or its status.
pub(crate) async fn update(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let body = decode_body(&ctx.req)?;
    let sub = ctx.target.subresource.clone();
    let mut mutate = |_: &Value| Ok(body.clone());
    let done = guaranteed_update(&ctx, sub.as_deref(), Tracking::Update, &mut mutate).await?;
    Ok(with_warnings(
        object_response(&ctx, 200, &done.object)?,
        &done.warnings,
    ))
}

/// The patch formats Kubernetes accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

fn patch_type(ctx: &Ctx<'_>) -> Result<PatchType, ApiError> {
    let ct = crate::server::header(&ctx.req, "content-type").to_ascii_lowercase();
    match ct.split(';').next().unwrap_or("").trim() {
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" if !ctx.resource.custom => {
            Ok(PatchType::Strategic)
        }
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Ok(PatchType::Apply),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{} (got {other:?})",
            if ctx.resource.custom {
                ""
            } else {
                ", application/strategic-merge-patch+json"
            }
        ))),
    }
}

/// Applies a patch document to `current`.
fn apply_patch(
    ctx: &Ctx<'_>,
    kind: PatchType,
    patch: &Value,
    current: &Value,
) -> Result<Value, ApiError> {
    let r = &ctx.resource;
    match kind {
        PatchType::Json => crate::patch::json_patch(current, patch),
        PatchType::Merge => Ok(crate::patch::merge_patch(current, patch)),
        PatchType::Strategic | PatchType::Apply => {
            crate::patch::strategic(current, patch, &r.group, &r.version, &r.kind)
        }
    }
}

/// Whether a patch document names a resourceVersion (merge and apply patches in `metadata`,
/// JSON patches by an operation on `/metadata/resourceVersion`).
fn patch_sets_resource_version(patch: &Value) -> bool {
    match patch {
        Value::Array(ops) => ops
            .iter()
            .any(|op| op.get("path").and_then(Value::as_str) == Some("/metadata/resourceVersion")),
        _ => patch
            .pointer("/metadata/resourceVersion")
            .is_some_and(|v| !v.is_null()),
    }
}

/// `new` made conditional on `requested`, the resourceVersion the request itself named, and on
/// nothing when it named none (`None` or empty): what a mutation computes from the current
/// object carries the current resourceVersion, which must not become a precondition the client
/// never asked for. A write that lost a race is then re-applied to the fresh object rather than
/// failed with a 409 (kube-apiserver's GuaranteedUpdate does the same).
fn conditional_on(mut new: Value, requested: Option<&str>) -> Value {
    if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        match requested.filter(|rv| !rv.is_empty()) {
            Some(rv) => m.insert("resourceVersion".into(), json!(rv)),
            None => m.remove("resourceVersion"),
        };
    }
    new
}

/// PATCH on an object or its status.
pub(crate) async fn patch(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let kind = patch_type(&ctx)?;
    let patch = decode_body(&ctx.req)?;
    let force = match ctx.query.get("force").map(String::as_str) {
        None | Some("false" | "False" | "f" | "F" | "0" | "FALSE") => false,
        Some(v) if crate::params::is_true(v) && kind == PatchType::Apply => true,
        Some(v) if crate::params::is_true(v) => {
            return Err(ApiError::bad_request(
                "PatchOptions.meta.k8s.io \"\" is invalid: force: Invalid value: true: may not be specified for non-apply patch",
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "force: Invalid value: {other:?}: must be true or false"
            )));
        }
    };
    let sub = ctx.target.subresource.clone();
    // The patched object carries the current resourceVersion; only one the patch itself sets
    // is a precondition (otherwise a concurrent write would fail the patch instead of it being
    // re-applied, as upstream does).
    let rv_in_patch = patch_sets_resource_version(&patch);
    let unconditional = |v: Value| {
        let requested = rv_in_patch.then(|| objects::meta_str(&v, "resourceVersion").to_owned());
        conditional_on(v, requested.as_deref())
    };
    if kind != PatchType::Apply {
        let mut mutate =
            |current: &Value| apply_patch(&ctx, kind, &patch, current).map(unconditional);
        let done = guaranteed_update(&ctx, sub.as_deref(), Tracking::Update, &mut mutate).await?;
        return Ok(with_warnings(
            object_response(&ctx, 200, &done.object)?,
            &done.warnings,
        ));
    }
    if ctx.query.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return Err(ApiError::bad_request(
            "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
        ));
    }
    let manager = field_manager(&ctx)?;
    let mut mutate = |current: &Value| {
        server_side_apply(&ctx, Some(current), &patch, &manager, force).map(unconditional)
    };
    match guaranteed_update(&ctx, sub.as_deref(), Tracking::Applied, &mut mutate).await {
        Ok(done) => Ok(with_warnings(
            object_response(&ctx, 200, &done.object)?,
            &done.warnings,
        )),
        // Server-side apply creates what does not exist yet.
        Err(e) if e.code == 404 && sub.is_none() => {
            let mut config = patch.clone();
            if let Some(m) = config.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("name".into(), json!(ctx.name()));
            }
            let obj = server_side_apply(&ctx, None, &config, &manager, force)?;
            create_object(ctx, obj, Tracking::Applied).await
        }
        Err(e) => Err(e),
    }
}

/// Merges an apply configuration into the live object (or makes it the new object), recording
/// ownership; a change to fields other managers own is a 409 unless forced.
fn server_side_apply(
    ctx: &Ctx<'_>,
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    let r = &ctx.resource;
    let merged = match live {
        Some(l) => crate::patch::strategic(l, config, &r.group, &r.version, &r.kind)?,
        None => config.clone(),
    };
    let now = objects::now_rfc3339();
    let api_version = r.api_version();
    let writer = managed_fields::Writer {
        manager,
        api_version: &api_version,
        subresource: ctx.target.subresource.as_deref(),
        now: &now,
    };
    managed_fields::apply(live, merged, config, &merge_schema(ctx), &writer, force).map_err(|c| {
        let causes = c
            .fields
            .iter()
            .map(|(m, v, p)| crate::status::Cause {
                reason: "FieldManagerConflict".into(),
                message: format!("conflict with \"{m}\" using {v}"),
                field: p.clone(),
            })
            .collect();
        ApiError::apply_conflict(&r.group, &r.plural, ctx.name(), c.message(), causes)
    })
}

fn replicas_from_scale(scale: &Value) -> Result<i64, ApiError> {
    scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .filter(|r| *r >= 0)
        .ok_or_else(|| {
            ApiError::invalid(
                "autoscaling",
                "Scale",
                "",
                vec![crate::status::Cause {
                    reason: "FieldValueInvalid".into(),
                    message: "Invalid value: must be greater than or equal to 0".into(),
                    field: "spec.replicas".into(),
                }],
            )
        })
}

/// What writing the Scale `wanted` makes of `current`: its replicas, conditional on the
/// Scale's resourceVersion only if the request named one (the Scale view always carries the
/// current one).
fn scaled(current: &Value, wanted: &Value, request_names_rv: bool) -> Result<Value, ApiError> {
    let replicas = replicas_from_scale(wanted)?;
    let requested = request_names_rv.then(|| objects::meta_str(wanted, "resourceVersion"));
    let mut new = conditional_on(current.clone(), requested);
    new["spec"]["replicas"] = json!(replicas);
    Ok(new)
}

async fn scale_with(
    ctx: Ctx<'_>,
    request_names_rv: bool,
    mut to_scale: impl FnMut(&Value) -> Result<Value, ApiError> + Send,
) -> Result<Response<Body>, ApiError> {
    let mut mutate = |current: &Value| {
        let wanted = to_scale(&super::read::scale_of(current))?;
        scaled(current, &wanted, request_names_rv)
    };
    let done = guaranteed_update(&ctx, None, Tracking::Update, &mut mutate).await?;
    let value = done.object.value().map_err(ApiError::internal)?;
    Ok(json_response(
        200,
        serde_json::to_vec(&super::read::scale_of(&value)).unwrap_or_default(),
    ))
}

/// PUT of the `scale` subresource.
pub(crate) async fn update_scale(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let body = decode_body(&ctx.req)?;
    let names_rv = !objects::meta_str(&body, "resourceVersion").is_empty();
    scale_with(ctx, names_rv, move |_| Ok(body.clone())).await
}

/// PATCH of the `scale` subresource: the patch applies to the Scale view.
pub(crate) async fn patch_scale(ctx: Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let kind = patch_type(&ctx)?;
    let patch = decode_body(&ctx.req)?;
    let names_rv = patch_sets_resource_version(&patch);
    let apply = move |view: &Value| match kind {
        PatchType::Json => crate::patch::json_patch(view, &patch),
        PatchType::Merge | PatchType::Strategic | PatchType::Apply => {
            Ok(crate::patch::merge_patch(view, &patch))
        }
    };
    scale_with(ctx, names_rv, apply).await
}

#[cfg(test)]
mod tests;
