//! The agent's HTTPS endpoint (the kubelet's port 10250): what the API server proxies
//! `kubectl logs`, `exec`, `attach` and `port-forward` to, and scrapes `/metrics/resource`
//! from for `kubectl top`. Clients must present a certificate of the cluster CA.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use rudder_runtime::{ContainerRuntime, ContainerState, ContainerStatus};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::net::TcpListener;

use crate::logs::{self, LogOptions};
use crate::pod_spec::labels;

type Body = BoxBody<Bytes, Infallible>;

fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body.into())).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves until `shutdown` resolves. Connections without a verified client certificate are
/// refused (the TLS config must request one).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    runtime: Arc<dyn ContainerRuntime>,
    data_dir: std::path::PathBuf,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let data_dir = Arc::new(data_dir);
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "kubelet endpoint accept");
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let runtime = runtime.clone();
        let data_dir = data_dir.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let authenticated = tls
                .get_ref()
                .1
                .peer_certificates()
                .is_some_and(|c| !c.is_empty());
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let runtime = runtime.clone();
                let data_dir = data_dir.clone();
                async move {
                    if !authenticated {
                        return Ok::<_, Infallible>(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
                    }
                    Ok(handle(req, runtime, &data_dir).await)
                }
            });
            let io = hyper_util::rt::TokioIo::new(tls);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(io, service)
                    .await;
        });
    }
}

async fn handle(
    req: Request<Incoming>,
    runtime: Arc<dyn ContainerRuntime>,
    data_dir: &std::path::Path,
) -> Response<Body> {
    let path: Vec<String> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match path
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["healthz"] => text(StatusCode::OK, "ok"),
        // The kubelet's `/logs/`: pods' log files, kept a while after their pods are deleted.
        ["logs", rest @ ..] => {
            let rest: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
            let data_dir = data_dir.to_path_buf();
            let served = tokio::task::spawn_blocking(move || {
                let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
                crate::pod_logs::serve(&data_dir, &rest)
            })
            .await;
            match served {
                Ok(crate::pod_logs::Served::Listing(body)) => text(StatusCode::OK, body),
                Ok(crate::pod_logs::Served::File(bytes)) => {
                    text(StatusCode::OK, String::from_utf8_lossy(&bytes).into_owned())
                }
                _ => text(StatusCode::NOT_FOUND, "404 page not found"),
            }
        }
        // The process's registry (kubelet_* and, inside `rudder server`, the control plane's)
        // plus this agent's running pods and containers.
        ["metrics"] => {
            let extra = crate::kubelet_metrics::scrape_registry(&*runtime).await;
            let mut r = text(StatusCode::OK, rudder_metrics::encode_with(Some(&extra)));
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static(rudder_metrics::CONTENT_TYPE),
            );
            r
        }
        ["metrics", "resource"] => {
            let body = crate::resource_metrics::resource_metrics(&*runtime).await;
            let mut r = text(StatusCode::OK, body);
            r.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        ["exec", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            crate::streaming::exec(req, runtime, &ns, &pod, &container).await
        }
        ["attach", ns, pod, container] => {
            let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
            crate::streaming::attach(req, runtime, &ns, &pod, &container).await
        }
        ["portForward", ns, pod] => {
            let (ns, pod) = (ns.to_string(), pod.to_string());
            crate::streaming::port_forward(req, runtime, &ns, &pod).await
        }
        ["containerLogs", ns, pod, container] => {
            let q = rudder_machinery::query::parse(req.uri().query());
            let get = |k: &str| q.get(k).map(String::as_str);
            // As Go's `strconv.ParseBool` reads them (the Python client sends `follow=True`).
            let flag = |k: &str| {
                get(k).is_some_and(|v| matches!(v, "true" | "1" | "True" | "t" | "T" | "TRUE"))
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
            let since = get("sinceSeconds")
                .and_then(|s| s.parse::<i64>().ok())
                .map(|s| now - s)
                .or_else(|| get("sinceTime").and_then(rudder_machinery::timestamp::parse_rfc3339));
            let opts = LogOptions {
                tail_lines: get("tailLines").and_then(|s| s.parse().ok()),
                since,
                timestamps: flag("timestamps"),
                limit_bytes: get("limitBytes").and_then(|s| s.parse().ok()),
            };
            container_logs(
                runtime,
                ns,
                pod,
                container,
                flag("previous"),
                flag("follow"),
                opts,
            )
            .await
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

async fn container_logs(
    runtime: Arc<dyn ContainerRuntime>,
    ns: &str,
    pod: &str,
    container: &str,
    previous: bool,
    follow: bool,
    opts: LogOptions,
) -> Response<Body> {
    let filter = labels::container_filter(ns, pod, container);
    let mut found = match runtime.list_containers(filter).await {
        Ok(f) => f,
        Err(e) => return text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    found.sort_by_key(|c| c.metadata.attempt);
    let chosen: Option<ContainerStatus> = if previous {
        found.iter().rev().nth(1).cloned()
    } else {
        found.last().cloned()
    };
    let Some(c) = chosen else {
        let what = if previous {
            "previous terminated container"
        } else {
            "container"
        };
        return text(
            StatusCode::BAD_REQUEST,
            format!("{what} \"{container}\" in pod \"{pod}\" not found"),
        );
    };
    let content = tokio::fs::read(&c.log_path).await.unwrap_or_default();
    let body = logs::render(&logs::parse(&String::from_utf8_lossy(&content)), &opts);
    if !follow || c.state == ContainerState::Exited {
        return text(StatusCode::OK, body);
    }
    // Follow: what is there now, then appended records until the container exits.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    let path = c.log_path.clone();
    let id = c.id.clone();
    let timestamps = opts.timestamps;
    tokio::spawn(async move {
        if tx.send(Ok(Frame::data(Bytes::from(body)))).await.is_err() {
            return;
        }
        let mut offset = content.len() as u64;
        let mut pending = String::new();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let exited = runtime
                .container_status(&id)
                .await
                .map_or(true, |s| s.state == ContainerState::Exited);
            if let Ok(mut f) = tokio::fs::File::open(&path).await {
                // A shorter file than what was read is a new one: the log was rotated.
                if f.metadata().await.is_ok_and(|m| m.len() < offset) {
                    offset = 0;
                }
                let mut buf = Vec::new();
                if f.seek(std::io::SeekFrom::Start(offset)).await.is_ok()
                    && f.read_to_end(&mut buf).await.is_ok()
                    && !buf.is_empty()
                {
                    offset += buf.len() as u64;
                    pending.push_str(&String::from_utf8_lossy(&buf));
                    // Only whole records; a partial one waits for the rest.
                    if let Some(end) = pending.rfind('\n') {
                        let whole: String = pending.drain(..=end).collect();
                        let out = logs::render(
                            &logs::parse(&whole),
                            &LogOptions {
                                timestamps,
                                ..Default::default()
                            },
                        );
                        if tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_err() {
                            return;
                        }
                    }
                }
            }
            if exited || tx.is_closed() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
