//! The generic resource handlers: one implementation of each verb for every resource, driven by
//! the resource table.

mod access;
mod auth;
mod binding;
mod body;
mod delete;
mod eviction;
mod list;
mod node_proxy;
mod node_stream;
mod read;
mod watch;
mod write;

use std::collections::HashMap;
use std::sync::Arc;

use hyper::Response;

use crate::http::{ApiRequest, Body};
use crate::keys;
use crate::request_info::{ResourceRequest, Verb};
use crate::resources::Resource;
use crate::server::ApiServer;
use crate::status::ApiError;

pub(crate) use body::decode_body;
pub(crate) use node_proxy::{connect_node, kubelet_endpoint};

/// Everything a verb handler needs about the request.
pub(crate) struct Ctx<'a> {
    pub server: &'a ApiServer,
    pub req: ApiRequest,
    pub target: ResourceRequest,
    pub resource: Arc<Resource>,
    pub query: HashMap<String, String>,
}

impl Ctx<'_> {
    /// Key of the named object.
    pub fn key(&self) -> Result<String, ApiError> {
        let name = self
            .target
            .name
            .as_deref()
            .ok_or_else(ApiError::path_not_found)?;
        Ok(keys::object_key(
            self.resource.key_group(),
            &self.resource.plural,
            self.target.namespace.as_deref(),
            name,
        ))
    }

    /// Prefix of the addressed collection.
    pub fn prefix(&self) -> String {
        keys::collection_prefix(
            self.resource.key_group(),
            &self.resource.plural,
            self.target.namespace.as_deref(),
        )
    }

    /// The object name from the path, or "".
    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    /// `NotFound` for the addressed object.
    pub fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.resource.group, &self.resource.plural, self.name())
    }
}

/// Serves a request on a resource.
pub(crate) async fn resource(
    server: &ApiServer,
    req: ApiRequest,
    target: ResourceRequest,
    query: HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let resource = server
        .resources
        .get(&target.group, &target.version, &target.resource)
        .ok_or_else(ApiError::path_not_found)?;
    // A namespace in the path of a cluster-scoped resource, or a single namespaced object
    // addressed without one, is a path that does not exist.
    match (resource.namespaced, &target.namespace, &target.name) {
        (false, Some(_), _) => return Err(ApiError::path_not_found()),
        (true, None, Some(_)) => return Err(ApiError::path_not_found()),
        (true, None, None) if target.verb == Verb::Create => return Err(ApiError::path_not_found()),
        _ => {}
    }
    if let Some(sub) = &target.subresource {
        if !resource.has_sub(sub) {
            return Err(ApiError::path_not_found());
        }
    } else if !resource.allows(target.verb.as_str()) {
        return Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({} {})",
            target.verb.as_str(),
            resource.plural
        )));
    }
    let ctx = Ctx {
        server,
        req,
        target,
        resource,
        query,
    };
    // Resource metrics are computed from scrapes, not stored (`metrics_api`).
    if ctx.resource.group == crate::metrics_api::GROUP {
        return crate::metrics_api::serve(&ctx).await;
    }
    match (ctx.target.verb, ctx.target.subresource.as_deref()) {
        (Verb::Get, None | Some("status" | "ephemeralcontainers")) => read::get(&ctx).await,
        (Verb::Get, Some("scale")) => read::get_scale(&ctx).await,
        (Verb::Get, Some("log")) => node_proxy::pod_log(&ctx).await,
        (Verb::Get, Some("proxy"))
            if ctx.resource.group.is_empty() && ctx.resource.plural == "nodes" =>
        {
            node_proxy::node_proxy(&ctx).await
        }
        (Verb::Get | Verb::Create, Some("exec")) => {
            node_stream::upgrade(ctx, node_stream::Kind::Exec).await
        }
        (Verb::Get | Verb::Create, Some("attach")) => {
            node_stream::upgrade(ctx, node_stream::Kind::Attach).await
        }
        (Verb::Get | Verb::Create, Some("portforward")) => {
            node_stream::upgrade(ctx, node_stream::Kind::PortForward).await
        }
        (Verb::List, None) => list::list(&ctx).await,
        (Verb::Watch, None) => watch::watch(&ctx).await,
        (Verb::Create, Some("token")) if auth::is(&ctx, "", "serviceaccounts") => {
            auth::token_request(ctx).await
        }
        (Verb::Create, None) if auth::is(&ctx, "authentication.k8s.io", "tokenreviews") => {
            auth::token_review(ctx).await
        }
        (Verb::Create, None) if ctx.resource.group == "authorization.k8s.io" => {
            access::review(ctx).await
        }
        (Verb::Create, None) if auth::is(&ctx, "authentication.k8s.io", "selfsubjectreviews") => {
            auth::self_subject_review(ctx).await
        }
        (Verb::Create, None)
            if auth::is(&ctx, "certificates.k8s.io", "certificatesigningrequests") =>
        {
            auth::create_csr(ctx).await
        }
        (Verb::Create, None) => write::create(ctx).await,
        (Verb::Create, Some("binding")) => binding::bind(ctx).await,
        (Verb::Create, Some("eviction")) if ctx.resource.plural == "pods" => {
            eviction::evict(ctx).await
        }
        (Verb::Update, None | Some("status" | "finalize" | "ephemeralcontainers")) => {
            write::update(ctx).await
        }
        (Verb::Update, Some("scale")) => write::update_scale(ctx).await,
        (Verb::Patch, None | Some("status" | "ephemeralcontainers")) => write::patch(ctx).await,
        (Verb::Patch, Some("scale")) => write::patch_scale(ctx).await,
        (Verb::Delete, None) => delete::delete(ctx).await,
        (Verb::DeleteCollection, None) => delete::delete_collection(ctx).await,
        (verb, sub) => Err(ApiError::method_not_allowed(format!(
            "{} is not supported on {}{}",
            verb.as_str(),
            ctx.resource.plural,
            sub.map(|s| format!("/{s}")).unwrap_or_default()
        ))),
    }
}
