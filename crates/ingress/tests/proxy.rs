//! The proxy over real loopback sockets, without a cluster: a table built from objects pointing
//! at a local hyper backend, requests over HTTP/1.1 and HTTP/2 (prior knowledge), forwarded
//! headers, an upgraded connection spliced both ways, 502 for an endpoint that refuses and 503
//! for a Service without endpoints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http::header::{CONNECTION, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rudder_ingress::proxy::Proxy;
use rudder_ingress::routes::{CLASS_NAME, CONTROLLER, Table};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend answering with what it was asked (path and forwarding headers), and echoing the
/// bytes of upgraded connections.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|mut req: Request<Incoming>| async move {
                    if req.headers().contains_key(UPGRADE) {
                        let on = hyper::upgrade::on(&mut req);
                        tokio::spawn(async move {
                            if let Ok(up) = on.await {
                                let (mut r, mut w) = tokio::io::split(TokioIo::new(up));
                                let _ = tokio::io::copy(&mut r, &mut w).await;
                            }
                        });
                        return Ok::<_, Infallible>(
                            Response::builder()
                                .status(StatusCode::SWITCHING_PROTOCOLS)
                                .header(CONNECTION, "upgrade")
                                .header(UPGRADE, "echo")
                                .body(Full::new(Bytes::new()))
                                .expect("response"),
                        );
                    }
                    let h = |n: &str| {
                        req.headers()
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_owned()
                    };
                    let text = format!(
                        "path={} version={:?} host={} xff={} proto={} xhost={}",
                        req.uri(),
                        req.version(),
                        h("host"),
                        h("x-forwarded-for"),
                        h("x-forwarded-proto"),
                        h("x-forwarded-host"),
                    );
                    Ok(Response::new(Full::new(Bytes::from(text))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// A Service `name` (port 80) whose one ready endpoint is `addr`, or none.
fn service(name: &str, addr: Option<SocketAddr>) -> (serde_json::Value, serde_json::Value) {
    let svc = json!({"metadata": {"name": name, "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]}});
    let endpoints = addr.map_or(json!([]), |a| json!([{"addresses": [a.ip().to_string()]}]));
    let slice = json!({
        "metadata": {"name": name, "namespace": "default",
            "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": addr.map_or(1, |a| a.port())}],
        "endpoints": endpoints,
    });
    (svc, slice)
}

/// The proxy in front of: `h.test` → the backend, `dead.test` → a port nobody listens on,
/// `none.test` → a Service without endpoints. Returns its address.
async fn proxy() -> SocketAddr {
    let live = backend().await;
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr")
    };
    let mut services = Vec::new();
    let mut slices = Vec::new();
    for (name, addr) in [("live", Some(live)), ("dead", Some(dead)), ("none", None)] {
        let (s, e) = service(name, addr);
        services.push(serde_json::from_value(s).expect("service"));
        slices.push(serde_json::from_value(e).expect("slice"));
    }
    let rule = |host: &str, svc: &str| {
        json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": svc, "port": {"number": 80}}}}]}})
    };
    let ingress = serde_json::from_value(json!({
        "metadata": {"name": "i", "namespace": "default"},
        "spec": {"ingressClassName": CLASS_NAME, "rules": [
            rule("h.test", "live"), rule("dead.test", "dead"), rule("none.test", "none"),
        ]},
    }))
    .expect("ingress");
    let class = serde_json::from_value(
        json!({"metadata": {"name": CLASS_NAME}, "spec": {"controller": CONTROLLER}}),
    )
    .expect("class");
    let table = Table::build(&[class], &[ingress], &services, &slices);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let proxy = Proxy::new(Arc::new(RwLock::new(Arc::new(table))));
    tokio::spawn(rudder_ingress::serve(listener, proxy, None));
    addr
}

/// An HTTP/1.1 request with `Connection: close`: status line and body.
async fn get(proxy: SocketAddr, host: &str, path: &str) -> (String, String) {
    let mut tcp = TcpStream::connect(proxy).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("write");
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.expect("read");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[tokio::test]
async fn http1_requests_are_forwarded_with_headers() {
    let p = proxy().await;
    let (status, body) = get(p, "h.test:8080", "/x/y?q=1").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        body,
        "path=/x/y?q=1 version=HTTP/1.1 host=h.test:8080 xff=127.0.0.1 proto=http xhost=h.test:8080"
    );
}

#[tokio::test]
async fn http2_requests_reach_http1_backends() {
    let p = proxy().await;
    let tcp = TcpStream::connect(p).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    let req = Request::builder()
        .uri("http://h.test/two")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let resp = send.send_request(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body),
        "path=/two version=HTTP/1.1 host=h.test xff=127.0.0.1 proto=http xhost=h.test"
    );
}

#[tokio::test]
async fn upgraded_connections_are_spliced() {
    let p = proxy().await;
    let mut tcp = TcpStream::connect(p).await.expect("connect");
    tcp.write_all(
        b"GET /ws HTTP/1.1\r\nHost: h.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.expect("response head");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    for msg in [&b"ping"[..], b"second message"] {
        tcp.write_all(msg).await.expect("write");
        let mut back = vec![0u8; msg.len()];
        tcp.read_exact(&mut back).await.expect("echo");
        assert_eq!(back, msg);
    }
}

#[tokio::test]
async fn errors_are_answered_by_the_proxy() {
    let p = proxy().await;
    for (host, want) in [
        ("dead.test", "HTTP/1.1 502 Bad Gateway"),
        ("none.test", "HTTP/1.1 503 Service Unavailable"),
        ("other.test", "HTTP/1.1 404 Not Found"),
    ] {
        let (status, body) = get(p, host, "/").await;
        assert_eq!(status, want, "{host}");
        assert!(body.contains("rudder ingress"), "{host}: {body}");
    }
}
