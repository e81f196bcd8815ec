//! A client-side balancer for agents of a highly available cluster: one `kube::Client` that talks
//! to one of several API servers and moves to the next when the one in use cannot be reached.
//!
//! Sticky, not round-robin: every request goes to the current server until a request to it fails
//! at the transport level; then the current server becomes the next in the list. A request that
//! failed before anything was sent (connection refused, no route, connect timeout) is sent again
//! at once to the following servers, so short requests do not notice the switch; a request that
//! may have reached the server (the connection broke afterwards) is not, since repeating a
//! create could duplicate it: its caller retries, as it does after any error. Watches resume by
//! themselves: `kube::runtime::watcher` re-issues a broken watch from its last resourceVersion,
//! and that request lands on the next server. HTTP answers (even 5xx) are the server's and are
//! returned as they are.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use anyhow::{Context as _, Result};
use futures::future::BoxFuture;
use http::{Request, Response};
use kube::client::Body;

/// How a request to one server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No connection was made: the request never left.
    NotSent,
    /// The connection broke: the server may have acted on the request.
    MaybeSent,
}

/// What to do after a request to one server failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send the same request to the next server.
    TryNext,
    /// Return the error to the caller.
    GiveUp,
}

/// The retry rule: a request that never left is sent to every server once (`tried` of
/// `servers` were tried so far), if its body can be sent again; anything else goes back to the
/// caller.
pub fn next(failure: Failure, tried: usize, servers: usize, body_replayable: bool) -> Next {
    if failure == Failure::NotSent && body_replayable && tried < servers {
        Next::TryNext
    } else {
        Next::GiveUp
    }
}

/// The server to use after `failed` failed while `current` was the one in use: the one after
/// `failed`, unless another request already moved on (then `current` stays, so that concurrent
/// failures of one server skip it once, not several servers at a time).
pub fn after(current: usize, failed: usize, servers: usize) -> usize {
    if current == failed && servers > 0 {
        (failed + 1) % servers
    } else {
        current
    }
}

/// Whether `error` (a failed `Client::send`) happened before the request was sent: the error
/// chain holds an I/O error of a connection attempt.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> Failure {
    use std::io::ErrorKind;
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
                    // kube's connect timeout; reads have none.
                    | ErrorKind::TimedOut
            )
        {
            return Failure::NotSent;
        }
        cause = e.source();
    }
    Failure::MaybeSent
}

/// One client per server and the index of the one in use.
#[derive(Clone)]
struct Failover {
    servers: Arc<[(String, kube::Client)]>,
    current: Arc<AtomicUsize>,
}

impl Failover {
    async fn send(self, request: Request<Body>) -> Result<Response<Body>, kube::Error> {
        let n = self.servers.len();
        let (parts, body) = request.into_parts();
        let replay = body.try_clone();
        let mut body = Some(body);
        let mut tried = 0;
        loop {
            let index = self.current.load(Ordering::SeqCst) % n;
            let (url, client) = &self.servers[index];
            // The first attempt sends the body itself; later ones a copy (`replay` is Some then).
            let this_body = match body.take() {
                Some(b) => b,
                None => replay
                    .as_ref()
                    .and_then(Body::try_clone)
                    .unwrap_or_else(Body::empty),
            };
            let mut again = Request::new(this_body);
            *again.method_mut() = parts.method.clone();
            *again.uri_mut() = parts.uri.clone();
            *again.version_mut() = parts.version;
            *again.headers_mut() = parts.headers.clone();
            let error = match client.send(again).await {
                Ok(response) => return Ok(response),
                Err(e) => e,
            };
            tried += 1;
            let failure = classify(&error);
            let moved = after(index, index, n);
            if self
                .current
                .compare_exchange(index, moved, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
                && n > 1
            {
                tracing::warn!(
                    server = %url, next = %self.servers[moved].0, error = %error,
                    "API server unreachable; switching to the next one"
                );
            }
            if next(failure, tried, n, replay.is_some()) == Next::GiveUp {
                return Err(error);
            }
        }
    }
}

impl tower::Service<Request<Body>> for Failover {
    type Response = Response<Body>;
    type Error = kube::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, kube::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each server's client has its own queue; readiness is awaited in `send`.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(request))
    }
}

/// A client acting with `config`'s credentials against `servers` (URLs), failing over between
/// them; with one server or none (`config`'s own), a plain client.
pub fn client(config: kube::Config, servers: &[String]) -> Result<kube::Client> {
    if servers.len() <= 1 {
        let mut config = config;
        if let Some(url) = servers.first() {
            config.cluster_url = url
                .parse()
                .with_context(|| format!("{url:?} is not a URL"))?;
        }
        return kube::Client::try_from(config).context("API client");
    }
    let namespace = config.default_namespace.clone();
    let mut clients = Vec::with_capacity(servers.len());
    for url in servers {
        let mut one = config.clone();
        one.cluster_url = url
            .parse()
            .with_context(|| format!("{url:?} is not a URL"))?;
        let client =
            kube::Client::try_from(one).with_context(|| format!("API client for {url}"))?;
        clients.push((url.clone(), client));
    }
    let failover = Failover {
        servers: clients.into(),
        current: Arc::new(AtomicUsize::new(0)),
    };
    Ok(kube::Client::new(failover, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_table() {
        use Failure::*;
        use Next::*;
        let cases = [
            ("not sent, more servers", NotSent, 1, 3, true, TryNext),
            ("not sent, last server tried", NotSent, 3, 3, true, GiveUp),
            (
                "not sent, body not replayable",
                NotSent,
                1,
                3,
                false,
                GiveUp,
            ),
            ("maybe sent: never repeated", MaybeSent, 1, 3, true, GiveUp),
            ("one server", NotSent, 1, 1, true, GiveUp),
        ];
        for (name, failure, tried, servers, replayable, want) in cases {
            assert_eq!(next(failure, tried, servers, replayable), want, "{name}");
        }
    }

    #[test]
    fn after_table() {
        let cases = [
            ("the one in use failed: the next", 0, 0, 3, 1),
            ("wraps around", 2, 2, 3, 0),
            ("someone moved on already: stay", 1, 0, 3, 1),
            ("one server: itself", 0, 0, 1, 0),
        ];
        for (name, current, failed, servers, want) in cases {
            assert_eq!(after(current, failed, servers), want, "{name}");
        }
    }

    /// A port nothing listens on (bound, then closed).
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    /// A server on a free port of 127.0.0.1 that runs `serve` on each connection (a task each);
    /// its address.
    async fn local_server<F, Fut>(serve: F) -> std::net::SocketAddr
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket));
            }
        });
        addr
    }

    fn config(url: &str) -> kube::Config {
        kube::Config::new(url.parse().expect("url"))
    }

    #[tokio::test]
    async fn a_refused_connection_is_not_sent_and_a_broken_one_maybe_is() {
        let refused = format!("http://127.0.0.1:{}", closed_port());
        let client = kube::Client::try_from(config(&refused)).expect("client");
        let err = client
            .send(Request::new(Body::empty()))
            .await
            .expect_err("nothing listens");
        assert_eq!(classify(&err), Failure::NotSent, "{err:?}");

        // A server that accepts and closes without answering: the request went out.
        let addr = local_server(|mut socket| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
        })
        .await;
        let client = kube::Client::try_from(config(&format!("http://{addr}"))).expect("client");
        let err = client
            .send(Request::new(Body::empty()))
            .await
            .expect_err("closed without an answer");
        assert_eq!(classify(&err), Failure::MaybeSent, "{err:?}");
    }

    #[tokio::test]
    async fn requests_move_to_the_next_server_when_one_is_down() {
        // A server that answers every request with 200 and the text "up".
        let addr = local_server(|mut socket| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 4096];
            while let Ok(n) = socket.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let reply = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nup";
                if socket.write_all(reply.as_bytes()).await.is_err() {
                    break;
                }
            }
        })
        .await;
        let down = format!("http://127.0.0.1:{}", closed_port());
        let up = format!("http://{addr}");
        let client = client(config(&down), &[down.clone(), up.clone()]).expect("client");
        for _ in 0..3 {
            let mut request = Request::new(Body::from(b"{}".to_vec()));
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = "/api/v1/namespaces".parse().expect("uri");
            let response = client
                .send(request)
                .await
                .expect("served by the live server");
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect_bytes().await.expect("body");
            assert_eq!(&body[..], b"up");
        }
    }
}
