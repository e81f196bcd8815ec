//! GET of one object (and its `status` and `scale` subresources).

use hyper::Response;
use serde_json::{Value, json};

use super::Ctx;
use super::list::object_response;
use crate::cache::{CachedObject, WatchCache};
use crate::http::{Body, json_response};
use crate::params::{ListParams, ReadAt};
use crate::status::ApiError;

/// Reads the addressed object at the revision the request asks for.
pub(crate) async fn fetch(ctx: &Ctx<'_>) -> Result<CachedObject, ApiError> {
    let key = ctx.key()?;
    let params = ListParams::parse(&ctx.query)?;
    let cache = &ctx.server.cache;
    if crate::cache::uncached(&key) {
        let at = match params.read_at()? {
            ReadAt::Exact(rev) => Some(rev),
            // The store is never behind a write it acknowledged.
            _ => None,
        };
        let got = ctx.server.store.get(&key, at).await?;
        let kv = got.kv.ok_or_else(|| ctx.not_found())?;
        return CachedObject::decode(&kv.key, &kv.value, kv.mod_revision)
            .map_err(ApiError::internal);
    }
    if let Some(rev) = settle(cache, params.read_at()?).await? {
        let got = ctx.server.store.get(&key, Some(rev)).await?;
        let kv = got.kv.ok_or_else(|| ctx.not_found())?;
        return CachedObject::decode(&kv.key, &kv.value, kv.mod_revision)
            .map_err(ApiError::internal);
    }
    let Some(obj) = cache.get(&key) else {
        // Stored but unreadable (encrypted with a key this server lacks): a 500 naming the
        // key, never a 404 that would invite re-creating it.
        return Err(match cache.broken(&key) {
            Some(why) => ApiError::internal(why),
            None => ctx.not_found(),
        });
    };
    // The cache holds decoded bytes behind an Arc; handlers want an owned view.
    Ok(CachedObject {
        key: obj.key.clone(),
        rev: obj.rev,
        json: obj.json.clone(),
        labels: obj.labels.clone(),
        fields: obj.fields.clone(),
    })
}

/// Brings the cache to the revision a read asks for. `Some(rev)` means the read wants exactly
/// `rev`, which only the store can serve.
pub(crate) async fn settle(cache: &WatchCache, at: ReadAt) -> Result<Option<u64>, ApiError> {
    match at {
        ReadAt::Latest => {
            cache.sync().await?;
        }
        ReadAt::Any => {}
        ReadAt::NotOlderThan(rev) => {
            if !cache.wait_for(rev, std::time::Duration::from_secs(3)).await {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {rev}, current: {}",
                    cache.revision()
                )));
            }
        }
        ReadAt::Exact(rev) => return Ok(Some(rev)),
    }
    Ok(None)
}

/// GET.
pub(crate) async fn get(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let obj = fetch(ctx).await?;
    object_response(ctx, 200, &obj)
}

/// The `autoscaling/v1` Scale view of a scalable object.
pub(crate) fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut scale_meta = serde_json::Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(f) {
            scale_meta.insert(f.into(), v.clone());
        }
    }
    let spec_replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let status_replicas = obj
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match obj.pointer("/spec/selector") {
        Some(sel) if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() => {
            crate::filter::selector_string(sel)
        }
        // ReplicationControllers use a plain map.
        Some(Value::Object(m)) => {
            let mut parts: Vec<String> = m
                .iter()
                .filter_map(|(k, v)| Some(format!("{k}={}", v.as_str()?)))
                .collect();
            parts.sort();
            parts.join(",")
        }
        _ => String::new(),
    };
    let mut status = json!({"replicas": status_replicas});
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": spec_replicas},
        "status": status,
    })
}

/// GET of the `scale` subresource.
pub(crate) async fn get_scale(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let obj = fetch(ctx).await?;
    let value = obj.value().map_err(ApiError::internal)?;
    Ok(json_response(
        200,
        serde_json::to_vec(&scale_of(&value)).unwrap_or_default(),
    ))
}
