//! rudder's Kubernetes API server: the only component that touches the store.
//!
//! A request goes `http` (TLS, body limits) → `server` (authentication, authorization, routing) →
//! `discovery` or `handlers` (one generic implementation per verb, driven by the resource table)
//! → the watch cache for reads and the store for writes. See `docs/ARCHITECTURE.md`.

mod admission;
pub mod audit;
mod authn;
mod authz;
pub mod bootstrap;
pub mod cache;
pub mod compactor;
mod crd;
mod defaults;
mod discovery;
mod dns_service;
pub mod encryption;
mod endpoint_leases;
mod endpoint_reconciler;
pub mod event_ttl;
mod filter;
mod handlers;
pub mod http;
mod instrument;
pub mod keys;
mod kubernetes_service;
pub mod limits;
pub mod metrics_api;
mod network_policy;
mod objects;
mod openapi;
mod openapi_v2;
mod params;
mod patch;
pub mod request_info;
pub mod resources;
mod schema_check;
mod server;
pub mod service_range;
mod services;
mod snapshot;
pub mod status;
mod validate;

pub use authn::{AuthOptions, ServiceAccountOptions};
pub use server::{ApiServer, KUBE_MAJOR, KUBE_MINOR, version};

use std::net::SocketAddr;
use std::sync::Arc;

use rudder_store::{Store, StoreError};

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// The store failed during start-up.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// An authentication key could not be used.
    #[error("{0}")]
    AuthKey(#[from] rudder_auth::service_account::KeyError),
    /// The audit log could not be started.
    #[error("{0}")]
    Audit(#[from] audit::AuditError),
    /// The listen address could not be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// A started API server: serving until `shutdown` resolves.
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    /// Resolves when the server has stopped.
    pub done: tokio::task::JoinHandle<()>,
}

/// Configuration of [`start`].
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The address clients are told to use (`/api`'s serverAddressByClientCIDRs).
    pub advertise: String,
    /// TLS with client-certificate verification.
    pub tls: Arc<rustls::ServerConfig>,
    /// How often store history is compacted.
    pub compaction_interval: std::time::Duration,
    /// How long Events live after their last write (`--event-ttl`).
    pub event_ttl: std::time::Duration,
    /// TLS client configuration for reaching node agents (`pods/log`); `None` answers such
    /// requests with an error.
    pub kubelet_client: Option<Arc<rustls::ClientConfig>>,
    /// Authentication: static tokens, service-account keys, the CA for node certificates.
    pub auth: AuthOptions,
    /// The Service address range (`--service-cluster-ip-range`), checked by the caller with
    /// [`service_range::check`].
    pub service_cluster_ip_range: ipnet::Ipv4Net,
    /// Where the `default/kubernetes` Service's endpoints point: the address and port other
    /// machines and pods reach this API server at.
    pub kubernetes_endpoint: SocketAddr,
    /// How often node agents' resource metrics are scraped (`--metric-resolution`).
    pub metric_resolution: std::time::Duration,
    /// Encryption at rest (`--encryption-provider-config`); `None` stores values as they are.
    pub encryption: Option<Arc<encryption::Transformer>>,
    /// The audit log (`--audit-policy-file`, `--audit-log-path`); `None` records nothing.
    pub audit: Option<audit::AuditConfig>,
    /// Requests in flight and watches open (`--max-requests-inflight`, `--max-watches`, ...).
    pub limits: limits::Limits,
}

/// Loads the cache, creates the system namespaces, binds and serves until `shutdown`.
pub async fn start(
    store: Arc<dyn Store>,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, ApiServerError> {
    let authn = authn::Authenticator::new(config.auth)?;
    // Store latency is the backend's alone: timed under encryption, as upstream times etcd.
    instrument::init();
    let store: Arc<dyn Store> = Arc::new(instrument::MeteredStore::new(store));
    // Everything below, bootstrap included, reads and writes through the transformer.
    let encrypted = config
        .encryption
        .map(|t| Arc::new(encryption::EncryptedStore::new(store.clone(), t)));
    let store: Arc<dyn Store> = match &encrypted {
        Some(e) => e.clone(),
        None => store,
    };
    let audit = config.audit.map(audit::Audit::start).transpose()?;
    bootstrap::ensure_namespaces(&*store).await?;
    bootstrap::ensure_priority_classes(&*store).await?;
    bootstrap::ensure_rbac(&*store).await?;
    let (range, endpoint) = (config.service_cluster_ip_range, config.kubernetes_endpoint);
    let endpoints = Arc::new(endpoint_reconciler::EndpointReconciler::new(
        store.clone(),
        range,
        endpoint,
    ));
    // The first round before serving, as before: the Service and this server's address are
    // there when the server is ready.
    endpoints.reconcile().await?;
    dns_service::ensure(&*store, range).await?;
    tracing::info!("loading the watch cache");
    let cache = cache::WatchCache::start(store.clone()).await?;
    tracing::info!(objects_at_revision = cache.revision(), "watch cache ready");
    let resources = Arc::new(resources::Resources::builtin(resources::builtin()));
    let crds = crd::spawn_sync(store.clone(), cache.clone(), resources.clone());
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ApiServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| ApiServerError::Listen {
            addr: config.listen,
            source,
        })?;
    let mut api = ApiServer::new(
        store.clone(),
        cache,
        resources,
        config.advertise,
        config.kubelet_client,
    );
    api.authn = authn;
    api.audit = audit;
    api.encryption = encrypted;
    api.service_range = range;
    api.limiter = Arc::new(limits::Limiter::new(config.limits));
    let api = Arc::new(api);
    // Without client credentials for node agents there is nothing to scrape.
    let scraper = api.kubelet_client.clone().map(|tls| {
        tokio::spawn(metrics_api::run(
            api.metrics.clone(),
            api.cache.clone(),
            tls,
            config.metric_resolution,
        ))
    });
    let reconciler = tokio::spawn(endpoints.clone().run());
    // Leaving the endpoints comes first on shutdown, while still serving (upstream's
    // pre-shutdown hook): clients of the Service move to another server before this one stops
    // answering. Bounded, so an unreachable store cannot hold the shutdown up.
    let shutdown = async move {
        shutdown.await;
        match tokio::time::timeout(std::time::Duration::from_secs(5), endpoints.leave()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "leaving the kubernetes Service's endpoints"),
            Err(_) => tracing::warn!("leaving the kubernetes Service's endpoints timed out"),
        }
    };
    let expiry = tokio::spawn(event_ttl::run(store.clone(), config.event_ttl));
    let compactor = tokio::spawn(compactor::run(store, config.compaction_interval));
    let done = tokio::spawn(async move {
        http::serve(listener, config.tls, api, shutdown).await;
        compactor.abort();
        expiry.abort();
        if let Some(scraper) = scraper {
            scraper.abort();
        }
        crds.abort();
        reconciler.abort();
    });
    tracing::info!(%addr, "API server listening");
    Ok(Running { addr, done })
}
