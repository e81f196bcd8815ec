//! `pods/{name}/exec`, `pods/{name}/attach` and `pods/{name}/portforward`: the client's upgrade
//! request (WebSocket or SPDY) is passed to the node agent that runs the pod, and once both
//! sides have switched protocols the two connections are spliced, as kube-apiserver's
//! upgrade-aware proxy does.
//! The stream protocols themselves are the agent's business.

use hyper::Response;
use serde_json::Value;

use super::Ctx;
use super::node_proxy::{body_text, connect_node, node_of, pick_container};
use crate::http::Body;
use crate::status::ApiError;

/// Request headers that carry the upgrade negotiation to the node.
const FORWARDED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];
/// Response headers that carry the node's answer back.
const RETURNED: &[&str] = &[
    "upgrade",
    "connection",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "x-stream-protocol-version",
];

/// Which stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Exec,
    Attach,
    PortForward,
}

/// GET or POST `pods/{name}/exec|attach|portforward` with an upgrade.
pub(crate) async fn upgrade(mut ctx: Ctx<'_>, kind: Kind) -> Result<Response<Body>, ApiError> {
    let pod = super::read::fetch(&ctx)
        .await?
        .value()
        .map_err(ApiError::internal)?;
    let name = ctx.name().to_owned();
    let ns = ctx.target.namespace.clone().unwrap_or_default();
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed") {
        let what = match kind {
            Kind::Exec => "exec into a container",
            Kind::Attach => "attach to a container",
            Kind::PortForward => "forward ports to",
        };
        return Err(ApiError::bad_request(format!(
            "cannot {what} in a completed pod; current phase is {phase}"
        )));
    }
    let path = match kind {
        Kind::Exec => {
            let container = pick_container(&pod, &name, ctx.query.get("container"))?;
            format!("/exec/{ns}/{name}/{container}")
        }
        Kind::Attach => {
            let container = pick_container(&pod, &name, ctx.query.get("container"))?;
            format!("/attach/{ns}/{name}/{container}")
        }
        Kind::PortForward => format!("/portForward/{ns}/{name}"),
    };
    let path = match ctx.req.parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let Some(client_upgrade) = ctx
        .req
        .parts
        .extensions
        .remove::<hyper::upgrade::OnUpgrade>()
    else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    if !ctx.req.parts.headers.contains_key("upgrade") {
        return Err(ApiError::bad_request("Upgrade request required"));
    }
    let (address, hostname, port) = node_of(&ctx, &pod)?;
    let tls = ctx
        .server
        .kubelet_client
        .clone()
        .ok_or_else(|| ApiError::internal("no client credentials for node agents"))?;
    let stream = connect_node(tls, &address, &hostname, port).await?;
    let unreachable =
        |e: String| ApiError::internal(format!("error dialing the node {address}:{port}: {e}"));
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let mut req = hyper::Request::get(&path)
        .header("host", format!("{hostname}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    for h in FORWARDED {
        for v in ctx.req.parts.headers.get_all(*h) {
            req.headers_mut().append(*h, v.clone());
        }
    }
    let mut resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    if resp.status() != http::StatusCode::SWITCHING_PROTOCOLS {
        let code = resp.status();
        let message = body_text(resp).await;
        return Err(if code.is_client_error() {
            ApiError::bad_request(message)
        } else {
            ApiError::internal(message)
        });
    }
    let node_upgrade = hyper::upgrade::on(&mut resp);
    let mut out = Response::new(crate::http::full(bytes::Bytes::new()));
    *out.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
    for h in RETURNED {
        for v in resp.headers().get_all(*h) {
            out.headers_mut().append(*h, v.clone());
        }
    }
    tokio::spawn(async move {
        let (client, node) = match tokio::join!(client_upgrade, node_upgrade) {
            (Ok(c), Ok(n)) => (c, n),
            _ => return,
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut node = hyper_util::rt::TokioIo::new(node);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
    });
    Ok(out)
}
