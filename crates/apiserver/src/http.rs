//! The HTTPS listener: TLS, HTTP/1.1 and HTTP/2 on one port, request bodies with a size limit,
//! and graceful shutdown. Knows nothing about the API; it calls a [`Handler`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::status::ApiError;

/// Request bodies larger than this are refused with 413 (upstream's limit).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// A response body: a whole buffer or a stream (watches).
pub type Body = BoxBody<Bytes, Infallible>;

/// What the connection layer knows about the peer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Remote address.
    pub addr: SocketAddr,
    /// DER of the verified client certificate, if the client presented one.
    pub client_cert: Option<Vec<u8>>,
}

/// A request with its body read.
pub struct ApiRequest {
    pub parts: http::request::Parts,
    pub body: Bytes,
    pub peer: Peer,
}

/// Whatever serves requests.
pub trait Handler: Send + Sync + 'static {
    /// Serves one request.
    fn handle(&self, req: ApiRequest) -> impl std::future::Future<Output = Response<Body>> + Send;
}

/// A whole-buffer body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// A streaming body fed by a channel of chunks.
pub fn streaming(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    StreamBody::new(stream).boxed()
}

/// A JSON response.
pub fn json_response(code: u16, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(full(body))
        .unwrap_or_else(|_| Response::new(full(Bytes::new())))
}

/// A `Status` error response.
pub fn error_response(err: &ApiError) -> Response<Body> {
    let body = serde_json::to_vec(&err.to_status()).unwrap_or_default();
    let mut resp = json_response(err.code, body);
    if let Some(secs) = err.retry_after
        && let Ok(v) = http::HeaderValue::from_str(&secs.to_string())
    {
        resp.headers_mut().insert("retry-after", v);
    }
    resp
}

/// Accepts connections until `shutdown` resolves, then stops accepting and lets in-flight
/// requests finish.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Arc<H>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, addr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(t) => t,
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "TLS handshake failed");
                    return;
                }
            };
            let client_cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec());
            let peer = Peer { addr, client_cert };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                let peer = peer.clone();
                async move { Ok::<_, Infallible>(dispatch(&*handler, req, peer).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%addr, error = %e, "connection ended with an error");
            }
        });
    }
    // Watches are long-lived: give requests a bounded time to finish.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}

async fn dispatch<H: Handler>(handler: &H, req: Request<Incoming>, peer: Peer) -> Response<Body> {
    let (parts, body) = req.into_parts();
    if let Some(len) = parts
        .headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > MAX_BODY
    {
        return error_response(&ApiError::too_large(format!(
            "the request body of {len} bytes exceeds the limit of {MAX_BODY} bytes"
        )));
    }
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return error_response(&ApiError::too_large(format!(
                    "the request body exceeds the limit of {MAX_BODY} bytes"
                )));
            }
            return error_response(&ApiError::bad_request(format!(
                "reading the request body: {e}"
            )));
        }
    };
    handler.handle(ApiRequest { parts, body, peer }).await
}
