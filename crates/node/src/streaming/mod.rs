//! `kubectl exec`, `attach`, `cp` and `port-forward` on the agent's endpoint: protocol
//! negotiation on the upgrade request (WebSocket `v5`/`v4.channel.k8s.io`, SPDY/3.1, and SPDY
//! tunnelled in a WebSocket for port forwarding), then the session.

mod attach;
mod exec;
mod negotiate;
mod portforward;
mod spdy;
mod websocket;

// The framing is shared with the CRI backend's exec client.
use rudder_runtime::spdy_frame;

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode};
use rudder_runtime::{ContainerId, ContainerRuntime, ContainerState};

use crate::pod_spec::labels;
use negotiate::negotiate;

type Body = http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>;

fn reply(code: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(text.into())).boxed());
    *r.status_mut() = code;
    r
}

/// `/exec/{ns}/{pod}/{container}`: upgrades and runs the command.
pub async fn exec(
    req: Request<hyper::body::Incoming>,
    runtime: Arc<dyn ContainerRuntime>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    session(req, runtime, ns, pod, container, exec::Options::from_query).await
}

/// `/attach/{ns}/{pod}/{container}`: upgrades and attaches to the container's main process.
pub async fn attach(
    req: Request<hyper::body::Incoming>,
    runtime: Arc<dyn ContainerRuntime>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    session(
        req,
        runtime,
        ns,
        pod,
        container,
        exec::Options::attach_from_query,
    )
    .await
}

/// Reads an exec or attach request's options from its query.
type ReadOptions = fn(&[(String, String)]) -> Result<exec::Options, String>;

/// An exec or attach session, as `options` reads the query, on the newest running container
/// `container` of the pod.
async fn session(
    req: Request<hyper::body::Incoming>,
    runtime: Arc<dyn ContainerRuntime>,
    ns: &str,
    pod: &str,
    container: &str,
    options: ReadOptions,
) -> Response<Body> {
    let query = rudder_machinery::query::parse_multi(req.uri().query());
    let opts = match options(&query) {
        Ok(opts) => opts,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let id = match running_container(&*runtime, ns, pod, container).await {
        Ok(id) => id,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let negotiated = match negotiate(req.headers(), negotiate::Purpose::Exec) {
        Ok(n) => n,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let (response, upgraded) = match negotiated.accept(req) {
        Ok(pair) => pair,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let transport = negotiated.transport;
    tokio::spawn(async move {
        let Ok(io) = upgraded.await else { return };
        exec::serve(transport, io, runtime, id, opts).await;
    });
    response
}

/// `/portForward/{ns}/{pod}`: upgrades and forwards connections into the pod's network.
pub async fn port_forward(
    req: Request<hyper::body::Incoming>,
    runtime: Arc<dyn ContainerRuntime>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let query = rudder_machinery::query::parse_multi(req.uri().query());
    let netns = match pod_netns(&*runtime, ns, pod).await {
        Ok(p) => p,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let negotiated = match negotiate(req.headers(), negotiate::Purpose::PortForward) {
        Ok(n) => n,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let ports = match portforward::ports_of(&query, negotiated.transport) {
        Ok(p) => p,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let (response, upgraded) = match negotiated.accept(req) {
        Ok(pair) => pair,
        Err(msg) => return reply(StatusCode::BAD_REQUEST, msg),
    };
    let transport = negotiated.transport;
    let target = portforward::Target {
        pod: format!("{ns}/{pod}"),
        netns,
    };
    tokio::spawn(async move {
        let Ok(io) = upgraded.await else { return };
        portforward::serve(transport, io, target, ports).await;
    });
    response
}

/// The newest running container `container` of the pod.
async fn running_container(
    runtime: &dyn ContainerRuntime,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<ContainerId, String> {
    let filter = labels::container_filter(ns, pod, container);
    let mut found = runtime
        .list_containers(filter)
        .await
        .map_err(|e| e.to_string())?;
    found.sort_by_key(|c| c.metadata.attempt);
    match found.last() {
        Some(c) if c.state == ContainerState::Running => Ok(c.id.clone()),
        Some(_) => Err(format!(
            "container {container} is not running in pod {ns}/{pod}"
        )),
        None => Err(format!("container {container} not found in pod {ns}/{pod}")),
    }
}

/// The network namespace of the pod's ready sandbox.
async fn pod_netns(
    runtime: &dyn ContainerRuntime,
    ns: &str,
    pod: &str,
) -> Result<std::path::PathBuf, String> {
    let sandboxes = runtime
        .list_pod_sandboxes()
        .await
        .map_err(|e| e.to_string())?;
    sandboxes
        .into_iter()
        .filter(|s| {
            s.labels.get(labels::POD_NAMESPACE).map(String::as_str) == Some(ns)
                && s.labels.get(labels::POD_NAME).map(String::as_str) == Some(pod)
        })
        .max_by_key(|s| s.created_at)
        .and_then(|s| s.netns_path)
        .ok_or_else(|| format!("pod {ns}/{pod} has no running sandbox on this node"))
}
