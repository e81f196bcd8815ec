//! LIST, and the response encodings shared by reads: plain JSON objects and lists, or
//! `meta.k8s.io/v1` Tables when the client asks for them.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::Response;
use rudder_printers::{IncludeObject, TableOptions};
use rudder_store::RangeRequest;
use serde_json::{Value, json};

use super::Ctx;
use crate::cache::CachedObject;
use crate::filter::Filter;
use crate::http::{Body, json_response};
use crate::params::{Continue, ListParams, ReadAt};
use crate::status::ApiError;

/// How a client wants objects rendered, from its `Accept` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Render {
    Json,
    Table,
    /// `PartialObjectMetadata(List)`: only each object's metadata (metadata informers, the
    /// garbage collector, `kubectl get -o name` in some versions).
    Metadata,
}

/// An object reduced to a `PartialObjectMetadata`.
pub(crate) fn partial_metadata(obj: &CachedObject) -> Result<Bytes, ApiError> {
    // Only `metadata` is copied, as raw JSON: the rest of the object is scanned but never
    // built into a tree. A metadata LIST of 30,000 pods (the garbage collector's, or a client
    // probing) parsed every pod in full and held a server thread for seconds.
    #[derive(serde::Deserialize)]
    struct Metadata<'a> {
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    let m: Metadata<'_> = serde_json::from_slice(&obj.json)
        .map_err(|e| ApiError::internal(format!("cached object {} is not JSON: {e}", obj.key)))?;
    let meta = m.metadata.map_or("{}", |r| r.get());
    let mut out = BytesMut::with_capacity(meta.len() + 80);
    out.put_slice(br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#);
    out.put_slice(meta.as_bytes());
    out.put_u8(b'}');
    Ok(out.freeze())
}

pub(crate) fn render(ctx: &Ctx<'_>) -> Result<Render, ApiError> {
    let accept = crate::server::header(&ctx.req, "accept");
    if accept.is_empty() {
        return Ok(Render::Json);
    }
    let mut json_ok = false;
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("as=Table") && p.contains("g=meta.k8s.io") {
            return Ok(Render::Table);
        }
        if p.contains("as=PartialObjectMetadata") && p.contains("g=meta.k8s.io") {
            return Ok(Render::Metadata);
        }
        let media = p.split(';').next().unwrap_or("");
        if matches!(media, "application/json" | "*/*" | "application/*") && !p.contains("as=") {
            json_ok = true;
        }
    }
    if json_ok {
        Ok(Render::Json)
    } else {
        Err(ApiError::not_acceptable(
            "only the following media types are accepted: application/json, application/json;as=Table;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io, application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io",
        ))
    }
}

/// The request's `?includeObject=`, checked like upstream checks its TableOptions.
fn include_object(ctx: &Ctx<'_>) -> Result<IncludeObject, ApiError> {
    IncludeObject::parse(ctx.query.get("includeObject").map(String::as_str))
        .map_err(|e| ApiError::bad_request(format!("Unable to convert to Table as requested: {e}")))
}

/// Table options of the request, with headers (the first table of a watch, or any read).
pub(crate) fn table_options(ctx: &Ctx<'_>) -> Result<TableOptions, ApiError> {
    Ok(TableOptions {
        include_object: include_object(ctx)?,
        no_headers: false,
    })
}

/// The Table for `values` of the request's kind.
fn table_for(ctx: &Ctx<'_>, mut values: Vec<Value>) -> Result<Value, ApiError> {
    // Printers read the served version's fields.
    for v in &mut values {
        ctx.resource.to_served(v);
    }
    Ok(rudder_printers::table(
        &ctx.resource.printer,
        &values,
        table_options(ctx)?,
        now_secs(),
    ))
}

/// The current time in Unix seconds, which ages are computed against.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn table_of(ctx: &Ctx<'_>, objects: &[Arc<CachedObject>]) -> Result<Value, ApiError> {
    let values: Vec<Value> = objects
        .iter()
        .map(|o| o.value())
        .collect::<Result<_, _>>()
        .map_err(ApiError::internal)?;
    table_for(ctx, values)
}

/// One object, as JSON or as a one-row Table.
pub(crate) fn object_response(
    ctx: &Ctx<'_>,
    code: u16,
    obj: &CachedObject,
) -> Result<Response<Body>, ApiError> {
    match render(ctx)? {
        Render::Json => Ok(json_response(code, ctx.resource.serve(&obj.json))),
        Render::Metadata => Ok(json_response(code, partial_metadata(obj)?)),
        Render::Table => {
            let value = obj.value().map_err(ApiError::internal)?;
            let mut table = table_for(ctx, vec![value])?;
            table["metadata"] = json!({"resourceVersion": obj.rev.to_string()});
            Ok(json_response(
                code,
                serde_json::to_vec(&table).unwrap_or_default(),
            ))
        }
    }
}

/// A list of objects: `{"kind":"<Kind>List", ...,"items":[...]}`, assembled from the cached
/// encodings without re-serializing each object.
pub(crate) fn list_response(
    ctx: &Ctx<'_>,
    objects: &[Arc<CachedObject>],
    rev: u64,
    next: Option<Continue>,
) -> Result<Response<Body>, ApiError> {
    let mut metadata = json!({"resourceVersion": rev.to_string()});
    if let Some(c) = &next {
        metadata["continue"] = json!(c.encode());
    }
    match render(ctx)? {
        Render::Table => {
            let mut table = table_of(ctx, objects)?;
            table["metadata"] = metadata;
            return Ok(json_response(
                200,
                serde_json::to_vec(&table).unwrap_or_default(),
            ));
        }
        Render::Metadata => {
            let items = objects
                .iter()
                .map(|o| partial_metadata(o))
                .collect::<Result<Vec<_>, _>>()?;
            let head = json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
            });
            return Ok(json_response(200, concat_list(&head, items.iter())));
        }
        Render::Json => {}
    }
    let head = json!({
        "kind": format!("{}List", ctx.resource.kind),
        "apiVersion": ctx.resource.api_version(),
        "metadata": metadata,
    });
    let items: Vec<Bytes> = objects
        .iter()
        .map(|o| ctx.resource.serve(&o.json))
        .collect();
    Ok(json_response(200, concat_list(&head, items.iter())))
}

/// `{...head's fields...,"items":[a,b,c]}` from each item's JSON, copied once: no tree.
fn concat_list<T: AsRef<[u8]>>(head: &Value, items: impl Iterator<Item = T> + Clone) -> Bytes {
    let head = serde_json::to_vec(head).unwrap_or_default();
    let size: usize = items.clone().map(|i| i.as_ref().len() + 1).sum::<usize>() + head.len() + 16;
    let mut out = BytesMut::with_capacity(size);
    out.put_slice(&head[..head.len().saturating_sub(1)]);
    out.put_slice(b",\"items\":[");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.put_u8(b',');
        }
        out.put_slice(item.as_ref());
    }
    out.put_slice(b"]}");
    out.freeze()
}

/// LIST.
pub(crate) async fn list(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let params = ListParams::parse(&ctx.query)?;
    let filter = Filter::from_params(&params, &ctx.resource)?;
    let prefix = ctx.prefix();
    let cache = &ctx.server.cache;
    if let Some(token) = &params.continue_token {
        if !token.start.starts_with(&prefix) {
            return Err(ApiError::bad_request(
                "continue key is not valid: it is for another collection",
            ));
        }
        return list_from_store(
            ctx,
            &prefix,
            Some(token.start.clone()),
            token.rev,
            params.limit,
            &filter,
        )
        .await;
    }
    if crate::cache::uncached(&prefix) {
        let rev = match params.read_at()? {
            ReadAt::Exact(rev) => rev,
            _ => ctx.server.store.current_revision().await?,
        };
        return list_from_store(ctx, &prefix, None, rev, params.limit, &filter).await;
    }
    if let Some(rev) = super::read::settle(cache, params.read_at()?).await? {
        return list_from_store(ctx, &prefix, None, rev, params.limit, &filter).await;
    }
    // A list that would include an unreadable object fails whole, as upstream's does, rather
    // than silently leaving it out.
    if let Some(why) = cache.broken_under(&prefix) {
        return Err(ApiError::internal(why));
    }
    let (objects, rev, more) = cache.list(&prefix, None, params.limit, |o| filter.matches(o));
    let next = if more {
        objects.last().map(|o| Continue {
            rev,
            start: format!("{}\0", o.key),
        })
    } else {
        None
    };
    list_response(ctx, &objects, rev, next)
}

/// A page read from the store at an exact revision (continuations and `Exact` lists).
async fn list_from_store(
    ctx: &Ctx<'_>,
    prefix: &str,
    start: Option<String>,
    rev: u64,
    limit: usize,
    filter: &Filter,
) -> Result<Response<Body>, ApiError> {
    let mut out = Vec::new();
    let mut start = start;
    let mut next = None;
    loop {
        let page = ctx
            .server
            .store
            .range(RangeRequest { prefix: prefix.to_owned(), start: start.clone(), limit: limit.max(500), revision: Some(rev) })
            .await
            .map_err(|e| match e {
                rudder_store::StoreError::Compacted { .. } => ApiError::gone(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                e => ApiError::from(e),
            })?;
        let mut stopped_early = false;
        for kv in &page.kvs {
            let obj = CachedObject::decode(&kv.key, &kv.value, kv.mod_revision)
                .map_err(ApiError::internal)?;
            if !filter.matches(&obj) {
                continue;
            }
            if limit != 0 && out.len() == limit {
                next = Some(Continue {
                    rev,
                    start: kv.key.clone(),
                });
                stopped_early = true;
                break;
            }
            out.push(Arc::new(obj));
        }
        if stopped_early {
            break;
        }
        match page.continue_key() {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    list_response(ctx, &out, rev, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(json: &str) -> CachedObject {
        CachedObject {
            key: "/registry/core/pods/ns/p".into(),
            rev: 7,
            json: Bytes::from(json.to_owned()),
            labels: Default::default(),
            fields: Default::default(),
        }
    }

    #[test]
    fn partial_metadata_keeps_only_metadata() {
        let cases = [
            (
                r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"a":"b"},"resourceVersion":"7"},"spec":{"containers":[{"name":"c"}]}}"#,
                json!({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1",
                       "metadata":{"name":"p","labels":{"a":"b"},"resourceVersion":"7"}}),
            ),
            (
                r#"{"kind":"Pod","spec":{}}"#,
                json!({"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":{}}),
            ),
        ];
        for (object, want) in cases {
            let got = partial_metadata(&cached(object)).expect("partial");
            let got: Value = serde_json::from_slice(&got).expect("valid JSON");
            assert_eq!(got, want, "{object}");
        }
        assert!(partial_metadata(&cached("not json")).is_err());
    }

    #[test]
    fn concat_list_is_valid_json() {
        let head =
            json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"}});
        for items in [vec![], vec![r#"{"a":1}"#], vec![r#"{"a":1}"#, r#"{"b":2}"#]] {
            let out = concat_list(&head, items.iter().map(|i| i.as_bytes()));
            let v: Value = serde_json::from_slice(&out).expect("valid JSON");
            assert_eq!(v["kind"], "PodList");
            assert_eq!(v["items"].as_array().map(Vec::len), Some(items.len()));
        }
    }
}
