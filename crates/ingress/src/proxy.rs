//! The reverse proxy: accepts HTTP/1.1 and HTTP/2 (h2 by ALPN over TLS, prior knowledge or
//! HTTP/1.1 in clear), routes each request through the current [`Table`], forwards it to an
//! endpoint over a pooled HTTP/1.1 keep-alive connection with X-Forwarded-* headers, and splices
//! upgraded connections (WebSockets) through. 404, 502 and 503 are answered here.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::routes::{Decision, Table};

/// The routing table the watcher replaces after each change.
pub type SharedTable = Arc<RwLock<Arc<Table>>>;
/// Response bodies: a backend's stream or one of our pages.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// How long to wait for a TCP connection to an endpoint before answering 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle backend connections kept this long (upstream keep-alive).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers of one hop, never forwarded (RFC 9110 §7.6.1); `upgrade`/`connection` are put back
/// for an upgrade; hyper re-frames bodies itself (chunked or not) from the body's size.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The proxy's state shared by every connection.
#[derive(Clone)]
pub struct Proxy {
    table: SharedTable,
    client: Client<HttpConnector, Incoming>,
}

impl Proxy {
    /// A proxy routing through `table`.
    pub fn new(table: SharedTable) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .build(connector);
        Self { table, client }
    }

    /// Answers one request from `peer`; `https` says which listener it came through.
    pub async fn handle(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
        https: bool,
    ) -> Response<Body> {
        let Some(host) = request_host(&req) else {
            return page(StatusCode::BAD_REQUEST, "no host in the request");
        };
        let table = match self.table.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let backend = match table.route(&host, req.uri().path()) {
            Decision::NotFound => return page(StatusCode::NOT_FOUND, "no ingress rule matches"),
            Decision::Backend(b) => b,
        };
        let Some(addr) = backend.pick() else {
            tracing::debug!(backend = %backend.name, "no ready endpoint");
            return page(StatusCode::SERVICE_UNAVAILABLE, "no ready endpoint");
        };
        let upgrade = upgrade_protocol(&req);
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", http::uri::PathAndQuery::as_str);
        let Ok(uri) = Uri::try_from(format!("http://{addr}{path}")) else {
            return page(StatusCode::BAD_REQUEST, "invalid request target");
        };
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        forwarded_headers(&mut parts.headers, &host, peer, https);
        if let Some(proto) = &upgrade {
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            parts.headers.insert(header::UPGRADE, proto.clone());
        }
        let mut resp = match self.client.request(Request::from_parts(parts, body)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::info!(backend = %backend.name, %addr, error = %e, "backend request failed");
                return page(StatusCode::BAD_GATEWAY, "the backend could not be reached");
            }
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let backend_upgrade = hyper::upgrade::on(&mut resp);
            tokio::spawn(async move {
                match tokio::try_join!(client_upgrade, backend_upgrade) {
                    Ok((client, backend)) => {
                        let (mut c, mut b) = (TokioIo::new(client), TokioIo::new(backend));
                        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut b).await {
                            tracing::debug!(error = %e, "upgraded connection ended");
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "upgrade failed"),
                }
            });
            let (parts, body) = resp.into_parts();
            return Response::from_parts(parts, body.boxed());
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Response::from_parts(parts, body.boxed())
    }
}

/// The request's host: `:authority` (HTTP/2, absolute URIs) or the Host header.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    req.uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|h| !h.is_empty())
}

/// The protocol an HTTP/1.1 request asks to upgrade to (`Connection: upgrade` + `Upgrade`).
fn upgrade_protocol<B>(req: &Request<B>) -> Option<HeaderValue> {
    let connection_upgrade = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    if !connection_upgrade {
        return None;
    }
    req.headers().get(header::UPGRADE).cloned()
}

/// Removes hop-by-hop headers, including those the Connection header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for h in named {
        headers.remove(h);
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
}

/// Request headers for the backend: hop-by-hop ones removed, Host kept (HTTP/2 has it only as
/// `:authority`), X-Forwarded-For appended to, X-Forwarded-Proto/-Host and X-Real-IP set.
fn forwarded_headers(headers: &mut HeaderMap, host: &str, peer: SocketAddr, https: bool) {
    strip_hop_by_hop(headers);
    let client_ip = peer.ip().to_canonical().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {client_ip}"),
        _ => client_ip.clone(),
    };
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    };
    set(headers, "host", host);
    set(headers, "x-forwarded-for", &xff);
    set(headers, "x-real-ip", &client_ip);
    set(headers, "x-forwarded-host", host);
    set(
        headers,
        "x-forwarded-proto",
        if https { "https" } else { "http" },
    );
}

/// One of the proxy's own answers: a short HTML page.
pub fn page(status: StatusCode, detail: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("");
    let html = format!(
        "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1><p>{detail}</p><hr>rudder ingress</body></html>\n",
        code = status.as_u16()
    );
    let mut resp = Response::new(Full::new(Bytes::from(html)).map_err(|n| match n {}).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_for_the_backend() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-forwarded-for", HeaderValue::from_static("192.0.2.1"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let peer: SocketAddr = "[::ffff:10.1.2.3]:5555".parse().expect("addr");
        forwarded_headers(&mut h, "a.test:8443", peer, true);
        for gone in ["connection", "x-secret", "keep-alive"] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        for (name, want) in [
            ("host", "a.test:8443"),
            ("x-forwarded-for", "192.0.2.1, 10.1.2.3"),
            ("x-real-ip", "10.1.2.3"),
            ("x-forwarded-host", "a.test:8443"),
            ("x-forwarded-proto", "https"),
            ("accept", "*/*"),
        ] {
            assert_eq!(
                h.get(name).and_then(|v| v.to_str().ok()),
                Some(want),
                "{name}"
            );
        }
    }

    #[test]
    fn hosts_and_upgrades() {
        let req = |uri: &str, headers: &[(&str, &str)]| {
            let mut b = Request::builder().uri(uri);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).expect("request")
        };
        assert_eq!(
            request_host(&req("/", &[("host", "a.test")])).as_deref(),
            Some("a.test")
        );
        assert_eq!(
            request_host(&req("https://b.test/x", &[("host", "a.test")])).as_deref(),
            Some("b.test")
        );
        assert_eq!(request_host(&req("/", &[])), None);
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ];
        assert_eq!(
            upgrade_protocol(&req("/", &ws))
                .as_ref()
                .and_then(|v| v.to_str().ok()),
            Some("websocket")
        );
        assert!(upgrade_protocol(&req("/", &[("upgrade", "websocket")])).is_none());
    }

    #[test]
    fn pages_say_what_happened() {
        let p = page(StatusCode::SERVICE_UNAVAILABLE, "no ready endpoint");
        assert_eq!(p.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            p.headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/html; charset=utf-8")
        );
    }
}
