//! Admission webhooks, the IO: finds the webhooks of the Mutating- or
//! ValidatingWebhookConfigurations (from the watch cache, in name order) that apply to a
//! write, calls each over HTTPS (`clientConfig.url`, or `clientConfig.service` through a ready
//! endpoint of the Service, trusting only `caBundle`) within `timeoutSeconds`, and applies
//! their answers; a webhook that cannot be called fails the write unless its
//! `failurePolicy` is `Ignore`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http_body_util::BodyExt;
use rudder_auth::UserInfo;
use serde_json::{Value, json};

use super::webhook::{self, Target};
use super::{Attributes, Operation, cached};
use crate::http::ApiRequest;
use crate::keys;
use crate::server::ApiServer;
use crate::status::ApiError;

const GROUP: &str = "admissionregistration.k8s.io";
const DEFAULT_TIMEOUT: u64 = 10;

/// Which configurations a phase reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Mutating,
    Validating,
}

/// Where a webhook is served.
struct Endpoint {
    address: String,
    port: u16,
    path: String,
    server_name: String,
}

/// Runs the phase's webhooks on `obj`; mutating ones may change it. Returns their warnings.
pub(crate) async fn run(
    server: &ApiServer,
    req: &ApiRequest,
    attrs: &Attributes<'_>,
    phase: Phase,
    obj: &mut Value,
) -> Result<Vec<String>, ApiError> {
    // Webhooks never see their own configurations, so a broken one can always be removed.
    if attrs.resource.group == GROUP {
        return Ok(Vec::new());
    }
    let plural = match phase {
        Phase::Mutating => "mutatingwebhookconfigurations",
        Phase::Validating => "validatingwebhookconfigurations",
    };
    let configs = cached(server, GROUP, plural, None);
    if configs.is_empty() {
        return Ok(Vec::new());
    }
    let r = attrs.resource;
    let target = Target {
        operation: match attrs.op {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
        },
        group: &r.group,
        version: &r.version,
        kind: &r.kind,
        plural: &r.plural,
        subresource: attrs.subresource,
        namespaced: r.namespaced,
    };
    let ns_labels = if r.group.is_empty() && r.plural == "namespaces" {
        webhook::labels_of(Some(obj))
    } else {
        let ns = attrs
            .namespace
            .and_then(|n| {
                server
                    .cache
                    .get(&keys::object_key("", "namespaces", None, n))
            })
            .and_then(|n| n.value().ok());
        webhook::labels_of(ns.as_ref())
    };
    let user = req.parts.extensions.get::<UserInfo>().map_or(
        Value::Null,
        |u| json!({"username": u.name, "uid": u.uid, "groups": u.groups, "extra": u.extra}),
    );
    let mut warnings = Vec::new();
    for config in &configs {
        for hook in config
            .get("webhooks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let namespaced_ok = !r.namespaced
                || (r.group.is_empty() && r.plural == "namespaces")
                || webhook::selector_matches(hook, "namespaceSelector", &ns_labels);
            let object_ok =
                webhook::selector_matches(hook, "objectSelector", &webhook::labels_of(Some(obj)))
                    || attrs.old.is_some_and(|o| {
                        webhook::selector_matches(
                            hook,
                            "objectSelector",
                            &webhook::labels_of(Some(o)),
                        )
                    });
            if !webhook::rules_match(hook, &target) || !namespaced_ok || !object_ok {
                continue;
            }
            let name = hook.get("name").and_then(Value::as_str).unwrap_or("");
            let uid = crate::objects::new_uid();
            let review = webhook::review(
                &uid,
                &target,
                attrs.name,
                attrs.namespace,
                Some(obj),
                attrs.old,
                &user,
                attrs.dry_run,
            );
            let answered = match call(server, hook, &review).await {
                Ok(body) => webhook::answer(name, &uid, &body),
                Err(why) => Err(webhook::call_failed(name, &why)),
            };
            let answer = match answered {
                Ok(a) => a,
                // A denial is a decision, not a failure: failurePolicy does not apply to it.
                Err(e) if e.code != 500 => return Err(e),
                Err(e) => {
                    if hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") {
                        tracing::warn!(webhook = name, error = %e.message, "admission webhook failed; ignored");
                        continue;
                    }
                    return Err(e);
                }
            };
            warnings.extend(answer.warnings);
            if let (Some(patch), Phase::Mutating) = (answer.patch, phase) {
                *obj = crate::patch::json_patch(obj, &patch)?;
            }
        }
    }
    Ok(warnings)
}

/// POSTs the review to the webhook and returns the parsed answer, or why the call failed.
async fn call(server: &ApiServer, hook: &Value, review: &Value) -> Result<Value, String> {
    let cc = hook.get("clientConfig").cloned().unwrap_or(Value::Null);
    let endpoint = endpoint(server, &cc)?;
    let ca = cc
        .get("caBundle")
        .and_then(Value::as_str)
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("clientConfig.caBundle is missing or not base64 PEM")?;
    let tls = rudder_pki::client_config_trusting(&ca).map_err(|e| e.to_string())?;
    let seconds = hook
        .get("timeoutSeconds")
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_TIMEOUT);
    let url = format!(
        "https://{}:{}{}?timeout={seconds}s",
        endpoint.server_name, endpoint.port, endpoint.path
    );
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let posted = tokio::time::timeout(
        Duration::from_secs(seconds),
        post(
            tls,
            &endpoint,
            &format!("{}?timeout={seconds}s", endpoint.path),
            body,
        ),
    )
    .await;
    match posted {
        Err(_) => Err(format!(
            "failed to call webhook: Post \"{url}\": context deadline exceeded"
        )),
        Ok(Err(e)) => Err(format!("failed to call webhook: Post \"{url}\": {e}")),
        Ok(Ok(v)) => Ok(v),
    }
}

async fn post(
    tls: Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
    path: &str,
    body: Vec<u8>,
) -> Result<Value, String> {
    let tcp = tokio::net::TcpStream::connect((endpoint.address.as_str(), endpoint.port))
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from(endpoint.server_name.clone())
        .map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = hyper::Request::post(path)
        .header(
            "host",
            format!("{}:{}", endpoint.server_name, endpoint.port),
        )
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if !status.is_success() {
        return Err(format!(
            "the server responded with status {}",
            status.as_u16()
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// Resolves `clientConfig` to an address: the URL's host, or a ready endpoint of the
/// service (its ClusterIP when it has none), named `<service>.<namespace>.svc` for TLS.
fn endpoint(server: &ApiServer, cc: &Value) -> Result<Endpoint, String> {
    if let Some(url) = cc.get("url").and_then(Value::as_str) {
        let rest = url
            .strip_prefix("https://")
            .ok_or("clientConfig.url must be https")?;
        let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().map_err(|_| format!("invalid port in {url}"))?),
            None => (hostport, 443),
        };
        return Ok(Endpoint {
            address: host.trim_matches(['[', ']']).to_owned(),
            port,
            path: format!("/{path}"),
            server_name: host.trim_matches(['[', ']']).to_owned(),
        });
    }
    let svc = cc
        .get("service")
        .ok_or("clientConfig has neither url nor service")?;
    let field = |f: &str| svc.get(f).and_then(Value::as_str).unwrap_or("");
    let (ns, name) = (field("namespace"), field("name"));
    let port = svc
        .get("port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(443);
    let path = svc
        .get("path")
        .and_then(Value::as_str)
        .unwrap_or("/")
        .to_owned();
    let service = server
        .cache
        .get(&keys::object_key("", "services", Some(ns), name))
        .and_then(|s| s.value().ok())
        .ok_or_else(|| format!("service \"{name}\" not found"))?;
    let port_name = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| p.get("port").and_then(Value::as_u64) == Some(u64::from(port)))
        .and_then(|p| p.get("name").and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    let slices = cached(server, "discovery.k8s.io", "endpointslices", Some(ns));
    let ready = slices
        .iter()
        .filter(|s| {
            s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(name)
        })
        .find_map(|s| {
            let target = s
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str).unwrap_or("") == port_name)
                .and_then(|p| p.get("port").and_then(Value::as_u64))
                .and_then(|p| u16::try_from(p).ok())?;
            let address = s
                .get("endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|e| e.pointer("/conditions/ready").and_then(Value::as_bool) != Some(false))
                .find_map(|e| e.pointer("/addresses/0").and_then(Value::as_str))?;
            Some((address.to_owned(), target))
        });
    let (address, port) = match ready {
        Some(found) => found,
        None => {
            let ip = service
                .pointer("/spec/clusterIP")
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty() && *ip != "None")
                .ok_or_else(|| format!("no endpoints available for service \"{name}\""))?;
            (ip.to_owned(), port)
        }
    };
    Ok(Endpoint {
        address,
        port,
        path,
        server_name: format!("{name}.{ns}.svc"),
    })
}
