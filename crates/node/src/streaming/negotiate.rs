//! Which stream protocol a client asked for, and the `101 Switching Protocols` answer: the
//! WebSocket subprotocols (`v5.channel.k8s.io`, `v4.channel.k8s.io`, SPDY tunnelled as
//! `SPDY/3.1+portforward.k8s.io`) and SPDY/3.1 with `X-Stream-Protocol-Version`.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Empty};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::Body;

/// The upgraded connection.
pub type Io = TokioIo<Upgraded>;
/// Resolves to the upgraded connection once the 101 answer has gone out.
pub type Upgrade = Pin<Box<dyn Future<Output = Result<Io, hyper::Error>> + Send>>;

/// What the session is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// exec, attach (and `kubectl cp`, which is exec of tar).
    Exec,
    /// port-forward.
    PortForward,
}

/// The agreed transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// WebSocket, `v5.channel.k8s.io`: channel-prefixed messages, with the close signal.
    ChannelV5,
    /// WebSocket, `v4.channel.k8s.io` (exec) or `portforward.k8s.io`-style channels.
    ChannelV4,
    /// SPDY/3.1 straight on the connection.
    Spdy,
    /// SPDY/3.1 inside WebSocket binary messages (kubectl 1.31+ port-forward).
    SpdyOverWebSocket,
}

/// A negotiated upgrade, ready to be accepted.
#[derive(Debug)]
pub struct Negotiated {
    pub transport: Transport,
    protocol: &'static str,
    websocket_key: Option<String>,
}

const EXEC_WS: &[(&str, Transport)] = &[
    ("v5.channel.k8s.io", Transport::ChannelV5),
    ("v4.channel.k8s.io", Transport::ChannelV4),
];
const PORT_FORWARD_WS: &[(&str, Transport)] = &[
    ("SPDY/3.1+portforward.k8s.io", Transport::SpdyOverWebSocket),
    ("v4.channel.k8s.io", Transport::ChannelV4),
    ("portforward.k8s.io", Transport::ChannelV4),
    ("channel.k8s.io", Transport::ChannelV4),
];
const EXEC_SPDY: &str = "v4.channel.k8s.io";
const PORT_FORWARD_SPDY: &str = "portforward.k8s.io";

/// All values of `name`, split at commas.
fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect()
}

/// Chooses the transport for a request's headers, or says why none fits (a 400 then, which
/// makes kubectl fall back from WebSocket to SPDY).
pub fn negotiate(headers: &HeaderMap, purpose: Purpose) -> Result<Negotiated, String> {
    let upgrade = values(headers, "upgrade");
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket")) {
        let offered = values(headers, "sec-websocket-protocol");
        let ours = match purpose {
            Purpose::Exec => EXEC_WS,
            Purpose::PortForward => PORT_FORWARD_WS,
        };
        let (protocol, transport) = ours
            .iter()
            .find(|(p, _)| offered.contains(p))
            .copied()
            .ok_or_else(|| {
                format!(
                    "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports {:?}",
                    ours.iter().map(|(p, _)| *p).collect::<Vec<_>>()
                )
            })?;
        let key = headers
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok())
            .ok_or("unable to upgrade: missing Sec-WebSocket-Key")?;
        return Ok(Negotiated {
            transport,
            protocol,
            websocket_key: Some(key.to_owned()),
        });
    }
    if upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1")) {
        let offered = values(headers, "x-stream-protocol-version");
        let ours = match purpose {
            Purpose::Exec => EXEC_SPDY,
            Purpose::PortForward => PORT_FORWARD_SPDY,
        };
        // A client that names no version gets the one we have, as upstream does.
        if !offered.is_empty() && !offered.contains(&ours) {
            return Err(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{ours}\"]"
            ));
        }
        return Ok(Negotiated {
            transport: Transport::Spdy,
            protocol: ours,
            websocket_key: None,
        });
    }
    Err("Upgrade request required".into())
}

impl Negotiated {
    /// The 101 answer and the connection it upgrades to.
    pub fn accept(
        &self,
        mut req: Request<hyper::body::Incoming>,
    ) -> Result<(Response<Body>, Upgrade), String> {
        let mut resp = Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        let hv = |s: &str| http::HeaderValue::from_str(s).map_err(|e| e.to_string());
        h.insert("connection", hv("Upgrade")?);
        match &self.websocket_key {
            Some(key) => {
                h.insert("upgrade", hv("websocket")?);
                h.insert("sec-websocket-accept", hv(&websocket_accept(key))?);
                h.insert("sec-websocket-protocol", hv(self.protocol)?);
            }
            None => {
                h.insert("upgrade", hv("SPDY/3.1")?);
                h.insert("x-stream-protocol-version", hv(self.protocol)?);
            }
        }
        let on = hyper::upgrade::on(&mut req);
        Ok((resp, Box::pin(async move { on.await.map(TokioIo::new) })))
    }
}

/// `Sec-WebSocket-Accept` for a client's key (RFC 6455 §4.2.2).
fn websocket_accept(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                http::HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn choices() {
        use Purpose::*;
        use Transport::*;
        let ws = |protocols: &str| {
            headers(&[
                ("upgrade", "websocket"),
                ("connection", "Upgrade"),
                ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("sec-websocket-protocol", protocols),
            ])
        };
        let spdy = |versions: &[&str]| {
            let mut h = headers(&[("upgrade", "SPDY/3.1"), ("connection", "Upgrade")]);
            for v in versions {
                h.append(
                    "x-stream-protocol-version",
                    http::HeaderValue::from_str(v).expect("value"),
                );
            }
            h
        };
        let cases: Vec<(HeaderMap, Purpose, Option<Transport>)> = vec![
            (ws("v5.channel.k8s.io"), Exec, Some(ChannelV5)),
            (
                ws("v4.channel.k8s.io, v5.channel.k8s.io"),
                Exec,
                Some(ChannelV5),
            ),
            (ws("v4.channel.k8s.io"), Exec, Some(ChannelV4)),
            (ws("v3.channel.k8s.io"), Exec, None),
            (
                ws("SPDY/3.1+portforward.k8s.io"),
                PortForward,
                Some(SpdyOverWebSocket),
            ),
            (ws("v4.channel.k8s.io"), PortForward, Some(ChannelV4)),
            (ws("SPDY/3.1+portforward.k8s.io"), Exec, None),
            (
                spdy(&["v4.channel.k8s.io", "v3.channel.k8s.io"]),
                Exec,
                Some(Spdy),
            ),
            (spdy(&["v2.channel.k8s.io"]), Exec, None),
            (spdy(&["portforward.k8s.io"]), PortForward, Some(Spdy)),
            (spdy(&[]), PortForward, Some(Spdy)),
            (headers(&[]), Exec, None),
        ];
        for (h, purpose, want) in cases {
            let got = negotiate(&h, purpose).ok().map(|n| n.transport);
            assert_eq!(got, want, "{h:?} for {purpose:?}");
        }
    }

    #[test]
    fn accept_key() {
        // The example of RFC 6455 §1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
