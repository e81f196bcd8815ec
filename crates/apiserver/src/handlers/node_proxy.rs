//! `pods/{name}/log` and GETs of `nodes/{name}/proxy/{path}`: proxied to the node agent (its
//! kubelet endpoint), as kube-apiserver does, streaming the answer back (so `kubectl logs -f`
//! follows).

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::Response;
use serde_json::Value;

use super::Ctx;
use crate::http::Body;
use crate::keys;
use crate::status::ApiError;

/// The query parameters of `PodLogOptions` passed on to the node.
const LOG_PARAMS: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

/// GET `pods/{name}/log`.
pub(crate) async fn pod_log(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let pod = super::read::fetch(ctx)
        .await?
        .value()
        .map_err(ApiError::internal)?;
    let name = ctx.name();
    let container = pick_container(&pod, name, ctx.query.get("container"))?;
    let (address, hostname, port) = node_of(ctx, &pod)?;
    let ns = ctx.target.namespace.as_deref().unwrap_or("default");
    let query: Vec<String> = LOG_PARAMS
        .iter()
        .filter_map(|p| {
            let v = ctx.query.get(*p)?;
            Some(format!("{p}={}", rudder_machinery::query::encode(v)))
        })
        .collect();
    let path = format!("/containerLogs/{ns}/{name}/{container}?{}", query.join("&"));
    let tls = ctx
        .server
        .kubelet_client
        .clone()
        .ok_or_else(|| ApiError::internal("no client credentials for node agents"))?;
    get_from_node(tls, &address, &hostname, port, &path).await
}

/// GET `nodes/{name}/proxy/{path}`: the node agent's own endpoints (`/logs/`, `/metrics`,
/// `/healthz`), with the query passed on.
pub(crate) async fn node_proxy(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let name = ctx.name();
    let path = proxied_path(ctx.req.parts.uri.path(), name).ok_or_else(ApiError::path_not_found)?;
    let path = match ctx.req.parts.uri.query() {
        Some(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path,
    };
    let node = super::read::fetch(ctx)
        .await?
        .value()
        .map_err(ApiError::internal)?;
    let (address, hostname, port) = kubelet_endpoint(&node, name);
    let tls = ctx
        .server
        .kubelet_client
        .clone()
        .ok_or_else(|| ApiError::internal("no client credentials for node agents"))?;
    get_from_node(tls, &address, &hostname, port, &path).await
}

/// The path after `/nodes/{name}/proxy` (with its leading `/`), as the node should see it.
fn proxied_path(request_path: &str, node: &str) -> Option<String> {
    let marker = format!("/nodes/{node}/proxy/");
    let at = request_path.find(&marker)?;
    Some(request_path[at + marker.len() - 1..].to_owned())
}

/// The text of a node's error answer.
pub(super) async fn body_text(resp: hyper::Response<hyper::body::Incoming>) -> String {
    resp.into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
        .unwrap_or_default()
}

/// The container a request addresses: the one named, or the pod's only one.
pub(super) fn pick_container(
    pod: &Value,
    name: &str,
    asked: Option<&String>,
) -> Result<String, ApiError> {
    let containers: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(
            pod.pointer("/spec/initContainers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    // Ephemeral containers (`kubectl debug`) may be named, but are never the default.
    let ephemeral = |c: &str| {
        pod.pointer("/spec/ephemeralContainers")
            .and_then(Value::as_array)
            .is_some_and(|l| {
                l.iter()
                    .any(|e| e.get("name").and_then(Value::as_str) == Some(c))
            })
    };
    match asked {
        Some(c) if !c.is_empty() => {
            if !containers.contains(c) && !ephemeral(c) {
                return Err(ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )));
            }
            Ok(c.clone())
        }
        _ if containers.len() == 1 => Ok(containers[0].clone()),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            containers.join(" ")
        ))),
    }
}

/// The agent endpoint of the node the pod is bound to.
pub(super) fn node_of(ctx: &Ctx<'_>, pod: &Value) -> Result<(String, String, u16), ApiError> {
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("");
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            ctx.name()
        )));
    }
    let node = ctx
        .server
        .cache
        .get(&keys::object_key("", "nodes", None, node_name))
        .ok_or_else(|| ApiError::not_found("", "nodes", node_name))?
        .value()
        .map_err(ApiError::internal)?;
    Ok(kubelet_endpoint(&node, node_name))
}

/// Where the node's agent listens: its InternalIP (else its host name), the host name to verify
/// its certificate against, and its port.
pub(crate) fn kubelet_endpoint(node: &Value, node_name: &str) -> (String, String, u16) {
    let addresses = node.pointer("/status/addresses").and_then(Value::as_array);
    let of = |t: &str| {
        addresses
            .into_iter()
            .flatten()
            .find(|a| a["type"] == t)
            .and_then(|a| a["address"].as_str())
            .map(str::to_owned)
    };
    let hostname = of("Hostname").unwrap_or_else(|| node_name.to_owned());
    let address = of("InternalIP").unwrap_or_else(|| hostname.clone());
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(10250);
    (address, hostname, port)
}

/// A TLS connection to the node's agent, its certificate checked against the cluster CA.
pub(crate) async fn connect_node(
    tls: Arc<rustls::ClientConfig>,
    address: &str,
    hostname: &str,
    port: u16,
) -> Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>, ApiError> {
    let unreachable =
        |e: String| ApiError::internal(format!("error dialing the node {address}:{port}: {e}"));
    let tcp = tokio::net::TcpStream::connect((address, port))
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    let server_name = rustls::pki_types::ServerName::try_from(hostname.to_owned())
        .map_err(|e| unreachable(e.to_string()))?;
    tokio_rustls::TlsConnector::from(tls)
        .connect(server_name, tcp)
        .await
        .map_err(|e| unreachable(e.to_string()))
}

async fn get_from_node(
    tls: Arc<rustls::ClientConfig>,
    address: &str,
    hostname: &str,
    port: u16,
    path: &str,
) -> Result<Response<Body>, ApiError> {
    let unreachable =
        |e: String| ApiError::internal(format!("error dialing the node {address}:{port}: {e}"));
    let stream = connect_node(tls, address, hostname, port).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::get(path)
        .header("host", format!("{hostname}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ApiError::bad_request(body_text(resp).await));
    }
    // Stream the node's answer through; a broken node connection ends the body.
    let (tx, rx) = tokio::sync::mpsc::channel::<
        Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>,
    >(16);
    let mut incoming = resp.into_body();
    tokio::spawn(async move {
        while let Some(Ok(frame)) = incoming.frame().await {
            if let Ok(data) = frame.into_data()
                && tx.send(Ok(hyper::body::Frame::data(data))).await.is_err()
            {
                return;
            }
        }
    });
    let body =
        http_body_util::StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed();
    let mut out = Response::new(body);
    out.headers_mut()
        .insert("content-type", http::HeaderValue::from_static("text/plain"));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::proxied_path;

    #[test]
    fn proxied_paths() {
        let cases = [
            ("/api/v1/nodes/n1/proxy/logs/pods/", Some("/logs/pods/")),
            ("/api/v1/nodes/n1/proxy/metrics", Some("/metrics")),
            ("/api/v1/nodes/n1/status", None),
        ];
        for (path, want) in cases {
            assert_eq!(proxied_path(path, "n1").as_deref(), want, "{path}");
        }
    }
}
