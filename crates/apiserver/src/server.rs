//! The API server proper: authentication gate, routing of every request to discovery, OpenAPI,
//! health or the generic resource handlers.

use std::sync::Arc;

use hyper::Response;
use rudder_store::Store;
use serde_json::{Value, json};

use crate::cache::WatchCache;
use crate::discovery;
use crate::http::{ApiRequest, Body, Handler, error_response, json_response};
use crate::request_info::{self, PathError, Target};
use crate::resources::Resources;
use crate::status::ApiError;

/// Kubernetes version the API corresponds to (the k8s-openapi types it serves).
pub const KUBE_MAJOR: &str = "1";
/// Minor version reported by `/version`.
pub const KUBE_MINOR: &str = "34";

/// Shared state of the API server.
pub struct ApiServer {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) cache: Arc<WatchCache>,
    pub(crate) resources: Arc<Resources>,
    pub(crate) server_address: String,
    openapi_v2: crate::openapi_v2::OpenApiV2,
    /// TLS to node agents (for `pods/log`): the API server's client certificate, verifying the
    /// node's serving certificate against the cluster CA.
    pub(crate) kubelet_client: Option<Arc<rustls::ClientConfig>>,
    /// The latest resource-metrics scrapes (`metrics.k8s.io`).
    pub(crate) metrics: Arc<crate::metrics_api::Metrics>,
    /// Authenticators (client certificates, static, bootstrap and service-account tokens).
    pub(crate) authn: crate::authn::Authenticator,
    /// The RBAC policy, as of the watch cache.
    pub(crate) authz: crate::authz::Authz,
    /// The Service address range ClusterIPs are allocated from.
    pub(crate) service_range: ipnet::Ipv4Net,
    /// The audit log, when configured.
    pub(crate) audit: Option<Arc<crate::audit::Audit>>,
    /// The store as encrypted at rest (the same as `store`), when configured.
    pub(crate) encryption: Option<Arc<crate::encryption::EncryptedStore>>,
    /// Requests in flight and watches open, against `--max-requests-inflight` and the others.
    pub(crate) limiter: Arc<crate::limits::Limiter>,
}

impl ApiServer {
    /// Builds the server over a store and its watch cache.
    pub fn new(
        store: Arc<dyn Store>,
        cache: Arc<WatchCache>,
        resources: Arc<Resources>,
        server_address: String,
        kubelet_client: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        Self {
            store,
            cache,
            resources,
            server_address,
            openapi_v2: Default::default(),
            kubelet_client,
            metrics: Default::default(),
            authn: Default::default(),
            authz: Default::default(),
            service_range: crate::service_range::DEFAULT,
            audit: None,
            encryption: None,
            limiter: Arc::new(crate::limits::Limiter::new(Default::default())),
        }
    }

    async fn route(
        &self,
        mut req: ApiRequest,
        audit: &mut crate::audit::Recorder,
        labels: &mut crate::instrument::RequestLabels,
        permit: &mut Option<crate::limits::Permit>,
    ) -> Result<Response<Body>, ApiError> {
        let path = req.parts.uri.path().to_owned();
        let query = request_info::parse_query(req.parts.uri.query());
        // The dashboard's page and scripts are public, as upstream's are (ADR 0022): they hold
        // no data, and every API call the page makes carries the user's own token.
        if let Some(resp) = rudder_dashboard::serve(&req.parts.method, &path, &req.parts.headers) {
            return Ok(resp.map(crate::http::full));
        }
        let public = matches!(
            path.as_str(),
            "/healthz" | "/readyz" | "/livez" | "/version"
        ) || path.starts_with("/healthz/")
            || path.starts_with("/readyz/")
            || path.starts_with("/livez/");
        // Authentication (`authn.rs`): the user goes into the request's extensions. Anonymous
        // requests reach only the public paths, and there only because the default
        // `system:public-info-viewer` binding lets them.
        match crate::authn::authenticate(self, &req).await? {
            Some(user) => {
                req.parts.extensions.insert(user);
            }
            None if public => {
                req.parts.extensions.insert(rudder_auth::UserInfo::new(
                    rudder_auth::ANONYMOUS,
                    vec![rudder_auth::ALL_UNAUTHENTICATED.to_owned()],
                ));
            }
            None => return Err(ApiError::unauthorized()),
        }
        let method = req.parts.method.as_str().to_owned();
        let accept = header(&req, "accept").to_owned();
        let target = request_info::parse(&method, &path, &query).map_err(|e| match e {
            PathError::NotFound => ApiError::path_not_found(),
            PathError::MethodNotAllowed => ApiError::method_not_allowed(e.to_string()),
        })?;
        *labels = crate::instrument::request_labels(
            &method,
            &target,
            &query,
            header(&req, "content-type"),
        );
        // Impersonation, then authorization (`authz.rs`): Node, then RBAC.
        audit.authenticated(req.parts.extensions.get::<rudder_auth::UserInfo>());
        crate::authz::impersonate(self, &mut req).await?;
        let user = req
            .parts
            .extensions
            .get::<rudder_auth::UserInfo>()
            .ok_or_else(ApiError::unauthorized)?;
        let attrs = crate::authz::attributes(user, &method, &path, &target, &query);
        audit.routed(&attrs, &target, &req);
        // Request limits before authorization, as upstream's max-in-flight filter; health
        // checks are never refused, so probes see an overloaded server as alive.
        if !public {
            *permit = self
                .limiter
                .admit(user, crate::limits::kind(&method, &target))?;
        }
        crate::authz::require(self, &attrs).await?;
        match target {
            Target::NonResource(p) if p == "/openapi/v2" => self.openapi_v2.serve(
                &self.resources,
                &method,
                &accept,
                header(&req, "if-none-match"),
            ),
            Target::NonResource(p) => self.non_resource(&p, &method).await,
            Target::ApiVersions => Ok(match discovery::aggregated_version(&accept) {
                Some(v) => aggregated_response(discovery::aggregated(&self.resources, true, v), v),
                None => json_ok(&discovery::api_versions(&self.server_address)),
            }),
            Target::ApiGroups => Ok(match discovery::aggregated_version(&accept) {
                Some(v) => aggregated_response(discovery::aggregated(&self.resources, false, v), v),
                None => json_ok(&discovery::api_groups(&self.resources)),
            }),
            Target::ApiGroup(g) => discovery::api_group(&self.resources, &g)
                .map(|d| json_ok(&d))
                .ok_or_else(ApiError::path_not_found),
            Target::ApiResources { group, version } => {
                discovery::api_resources(&self.resources, &group, &version)
                    .map(|d| json_ok(&d))
                    .ok_or_else(ApiError::path_not_found)
            }
            Target::Resource(r) => crate::handlers::resource(self, req, r, query).await,
        }
    }

    async fn non_resource(&self, path: &str, method: &str) -> Result<Response<Body>, ApiError> {
        if method != "GET" && method != "HEAD" {
            return Err(ApiError::method_not_allowed("only GET is allowed here"));
        }
        match path {
            "/version" => Ok(json_ok(&version())),
            "/healthz" | "/livez" | "/readyz" => {
                self.store.current_revision().await?;
                Ok(Response::builder()
                    .status(200)
                    .header("content-type", "text/plain; charset=utf-8")
                    .body(crate::http::full("ok"))
                    .unwrap_or_else(|_| Response::new(crate::http::full("ok"))))
            }
            "/metrics" => {
                crate::instrument::set_storage_objects(self.cache.count_by_resource());
                Ok(crate::instrument::exposition())
            }
            crate::snapshot::PATH => crate::snapshot::serve(self.store.as_ref()).await,
            "/openapi/v3" => Ok(json_ok(&crate::openapi::index(&self.resources))),
            p if p.starts_with("/openapi/v3/") => {
                let gv = p.trim_start_matches("/openapi/v3/");
                crate::openapi::document(&self.resources, gv)
                    .map(|d| json_ok(&d))
                    .ok_or_else(ApiError::path_not_found)
            }
            _ => Err(ApiError::path_not_found()),
        }
    }
}

impl Handler for ApiServer {
    async fn handle(&self, req: ApiRequest) -> Response<Body> {
        let method = req.parts.method.clone();
        let uri = req.parts.uri.clone();
        let started = std::time::Instant::now();
        let mut audit = crate::audit::Recorder::new(self.audit.as_ref(), &req);
        let mut labels = crate::instrument::RequestLabels::unrouted(method.as_str());
        let mut permit = None;
        let (resp, failure) = match self.route(req, &mut audit, &mut labels, &mut permit).await {
            Ok(r) => (crate::limits::hold(permit, r), None),
            Err(e) => (error_response(&e), Some(e.to_status())),
        };
        let resp = audit.finish(resp, failure).await;
        tracing::debug!(%method, %uri, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
        // A 404 for a resource nobody serves is labelled without it: a client cannot add label
        // sets by inventing paths.
        if resp.status() == 404
            && !labels.resource.is_empty()
            && self
                .resources
                .get(&labels.group, &labels.version, &labels.resource)
                .is_none()
        {
            labels.forget_resource();
        }
        crate::instrument::finish(labels, started, resp)
    }
}

/// A request header as a string, or "".
pub(crate) fn header<'a>(req: &'a ApiRequest, name: &str) -> &'a str {
    req.parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// 200 with a JSON document.
pub(crate) fn json_ok(v: &Value) -> Response<Body> {
    json_response(200, serde_json::to_vec(v).unwrap_or_default())
}

fn aggregated_response(doc: Value, version: &str) -> Response<Body> {
    let mut resp = json_ok(&doc);
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    if let Ok(v) = http::HeaderValue::from_str(&ct) {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}

/// The `/version` document.
pub fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-rudder.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rustc",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}
