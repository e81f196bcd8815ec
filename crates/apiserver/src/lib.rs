//! rudder's Kubernetes API server: the only component that touches the store.
//!
//! A request goes `http` (TLS, body limits) → `server` (authentication, routing) →
//! `discovery` or `handlers` (one generic implementation per verb, driven by the resource table)
//! → the watch cache for reads and the store for writes. See `docs/ARCHITECTURE.md`.

mod authn;
pub mod bootstrap;
pub mod cache;
pub mod compactor;
mod crd;
mod defaults;
mod discovery;
mod filter;
mod handlers;
pub mod http;
pub mod keys;
mod objects;
mod openapi;
mod openapi_v2;
mod params;
mod patch;
pub mod request_info;
pub mod resources;
mod schema_check;
mod server;
mod services;
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
    /// TLS client configuration for reaching node agents (`pods/log`); `None` answers such
    /// requests with an error.
    pub kubelet_client: Option<Arc<rustls::ClientConfig>>,
    /// Authentication: static tokens, service-account keys, the CA for node certificates.
    pub auth: AuthOptions,
}

/// Loads the cache, creates the system namespaces, binds and serves until `shutdown`.
pub async fn start(
    store: Arc<dyn Store>,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Running, ApiServerError> {
    let authn = authn::Authenticator::new(config.auth)?;
    bootstrap::ensure_namespaces(&*store).await?;
    bootstrap::ensure_priority_classes(&*store).await?;
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
    let api = Arc::new(api);
    let compactor = tokio::spawn(compactor::run(store, config.compaction_interval));
    let done = tokio::spawn(async move {
        http::serve(listener, config.tls, api, shutdown).await;
        compactor.abort();
        crds.abort();
    });
    tracing::info!(%addr, "API server listening");
    Ok(Running { addr, done })
}
