//! rudder's Ingress controller (ingress-nginx's role): serves `networking.k8s.io/v1` Ingresses of
//! the `rudder` IngressClass with a reverse proxy on an HTTP and an HTTPS port, routing by host
//! and path ([`routes`], pure) straight to ready pod addresses, with certificates from TLS
//! Secrets chosen by SNI ([`tls`]). `rudder server` runs it.

pub mod proxy;
pub mod routes;
pub mod tls;
mod watch;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use k8s_openapi::api::networking::v1::{IngressClass, IngressClassSpec};
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::net::TcpListener;

use crate::proxy::{Proxy, SharedTable};
use crate::routes::{CLASS_NAME, CONTROLLER, DEFAULT_CLASS_ANNOTATION, Table};

/// Pause between attempts to create the IngressClass while the API is not ready for it.
const RETRY: Duration = Duration::from_secs(1);
/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong running the controller.
#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    /// A listening port could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The default certificate could not be made.
    #[error(transparent)]
    Cert(#[from] tls::CertError),
}

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct IngressOptions {
    /// Where plain HTTP is served.
    pub http: SocketAddr,
    /// Where HTTPS is served.
    pub https: SocketAddr,
    /// The address published in the served Ingresses' `status.loadBalancer.ingress[].ip` (the
    /// node's); `None` leaves the status alone.
    pub address: Option<IpAddr>,
}

/// Binds both ports, then serves until `stop` resolves. Binding errors return at once, so a
/// port already taken fails the server's start-up rather than a request later.
pub async fn run(
    client: kube::Client,
    opts: IngressOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), IngressError> {
    let bind = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| IngressError::Bind { addr, source })
    };
    let http = bind(opts.http).await?;
    let https = bind(opts.https).await?;
    let default_cert = tls::default_certificate()?;
    let resolver = Arc::new(tls::Resolver(RwLock::new(Arc::new(tls::Certs::new(
        default_cert.clone(),
    )))));
    let table: SharedTable = Arc::new(RwLock::new(Arc::new(Table::default())));
    let class_task = tokio::spawn(ensure_class(client.clone()));
    let watcher = tokio::spawn(watch::run(
        client,
        opts.address,
        table.clone(),
        resolver.clone(),
        default_cert,
    ));
    let mut tls_config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(tls::CertError::Unsupported)?
    .with_no_client_auth()
    .with_cert_resolver(resolver);
    tls_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls_config));
    let proxy = Proxy::new(table);
    tracing::info!(http = %opts.http, https = %opts.https, "ingress controller listening");
    let serving = async {
        tokio::join!(
            serve(http, proxy.clone(), None),
            serve(https, proxy.clone(), Some(acceptor)),
        )
    };
    tokio::select! {
        () = stop => {}
        _ = serving => {}
    }
    watcher.abort();
    class_task.abort();
    tracing::info!("ingress controller stopped");
    Ok(())
}

/// Serves connections from one listener for ever through `proxy`; TLS first when `tls` is
/// given (its ALPN decides between HTTP/2 and HTTP/1.1; in clear text HTTP/2 needs prior
/// knowledge).
pub async fn serve(listener: TcpListener, proxy: Proxy, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "ingress accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (proxy, tls) = (proxy.clone(), tls.clone());
        tokio::spawn(async move {
            let https = tls.is_some();
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, peer, https).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            builder
                                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                                .await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
                None => {
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "ingress connection ended");
            }
        });
    }
}

/// Creates the `rudder` IngressClass, marked default, unless it exists (an administrator may
/// have changed it: it is left as it is). Retries until the API server accepts.
async fn ensure_class(client: kube::Client) {
    let api: Api<IngressClass> = Api::all(client);
    let class = IngressClass {
        metadata: ObjectMeta {
            name: Some(CLASS_NAME.to_owned()),
            annotations: Some(BTreeMap::from([(
                DEFAULT_CLASS_ANNOTATION.to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(IngressClassSpec {
            controller: Some(CONTROLLER.to_owned()),
            parameters: None,
        }),
    };
    loop {
        match api.create(&PostParams::default(), &class).await {
            Ok(_) => {
                tracing::info!(class = CLASS_NAME, "ingress class created");
                return;
            }
            Err(kube::Error::Api(e)) if e.code == 409 => return,
            Err(e) => tracing::debug!(error = %e, "creating the ingress class"),
        }
        tokio::time::sleep(RETRY).await;
    }
}
