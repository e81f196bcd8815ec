//! GET and LIST of NodeMetrics and PodMetrics: the Nodes and Pods the request selects (from
//! the watch cache, so label and field selectors mean what they mean for the objects
//! themselves, as with metrics-server), each with its usage if the storage has one. Objects
//! without usage are left out of lists and are NotFound when asked for by name.

use std::sync::Arc;

use hyper::Response;
use serde_json::Value;

use super::{GROUP, render};
use crate::cache::CachedObject;
use crate::filter::Filter;
use crate::handlers::Ctx;
use crate::http::Body;
use crate::keys;
use crate::request_info::Verb;
use crate::server::json_ok;
use crate::status::ApiError;

/// The name and namespace a cached Pod or Node is under.
fn name_of(obj: &CachedObject) -> (String, String) {
    let value = obj.value().unwrap_or_default();
    let get = |p: &str| {
        value
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (get("/metadata/namespace"), get("/metadata/name"))
}

/// The metrics object of a cached Node or Pod, if there is usage for it.
fn metrics_of(ctx: &Ctx<'_>, obj: &CachedObject, now: &str) -> Option<Value> {
    let storage = ctx.server.metrics.read();
    let (namespace, name) = name_of(obj);
    if ctx.resource.namespaced {
        let usage = storage.pod(&namespace, &name)?;
        Some(render::pod_metrics(
            &namespace,
            &name,
            &obj.labels,
            &usage,
            now,
        ))
    } else {
        let usage = storage.node(&name)?;
        Some(render::node_metrics(&name, &obj.labels, &usage, now))
    }
}

/// Serves a request on `metrics.k8s.io` (the resource table allows only get and list).
pub(crate) async fn serve(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let (source, kind) = if ctx.resource.namespaced {
        ("pods", "PodMetrics")
    } else {
        ("nodes", "NodeMetrics")
    };
    let namespace = ctx.target.namespace.as_deref();
    let now = rudder_machinery::timestamp::now_rfc3339();
    match ctx.target.verb {
        Verb::Get => {
            let name = ctx.name();
            let key = keys::object_key("", source, namespace, name);
            ctx.server
                .cache
                .get(&key)
                .and_then(|obj| metrics_of(ctx, &obj, &now))
                .map(|v| json_ok(&v))
                .ok_or_else(|| ApiError::not_found(GROUP, source, name))
        }
        Verb::List => {
            // Selectors are checked against the Pod or Node kind: its selectable fields.
            let core: Arc<crate::resources::Resource> = ctx
                .server
                .resources
                .get("", "v1", source)
                .ok_or_else(|| ApiError::internal(format!("no core {source} resource")))?;
            let get = |k: &str| ctx.query.get(k).map(String::as_str).unwrap_or("");
            let filter = Filter::parse(get("labelSelector"), get("fieldSelector"), &core)?;
            let prefix = keys::collection_prefix("", source, namespace);
            let (objects, _, _) = ctx
                .server
                .cache
                .list(&prefix, None, 0, |o| filter.matches(o));
            let items: Vec<Value> = objects
                .iter()
                .filter_map(|o| metrics_of(ctx, o, &now))
                .collect();
            Ok(json_ok(&render::list(kind, items)))
        }
        other => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on {GROUP} {source}",
            other.as_str()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_of_cached_objects() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "web", "labels": {"app": "x"}}});
        let obj = CachedObject::from_value("/registry/pods/web/a", &mut pod, 5);
        assert_eq!(name_of(&obj), ("web".to_owned(), "a".to_owned()));
        let mut node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        let obj = CachedObject::from_value("/registry/minions/n", &mut node, 6);
        assert_eq!(name_of(&obj), (String::new(), "n".to_owned()));
    }
}
