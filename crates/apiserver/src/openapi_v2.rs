//! `/openapi/v2`: the Swagger 2.0 document that kubectl 1.27 and 1.28 fetch (as gnostic protobuf)
//! for client-side validation, `apply` and `explain`. It is derived from the v3 documents, so
//! custom resources of established CRDs are in it, and cached until the resource set changes:
//! building it takes far longer than serving it.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use hyper::Response;

use crate::http::{Body, full};
use crate::resources::Resources;
use crate::status::ApiError;

/// The media type kubectl asks for. Not a valid media type to Go's `mime` package (the `@`), so
/// never sent back.
const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The spelling without `@`, which upstream answers with whichever of the two was asked for.
const PROTOBUF_DOTTED: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The last document built, in both encodings.
struct Built {
    resources_key: u64,
    json: Bytes,
    json_etag: String,
    protobuf: Bytes,
    protobuf_etag: String,
}

/// The cached `/openapi/v2` document.
#[derive(Default)]
pub(crate) struct OpenApiV2 {
    built: Mutex<Option<Arc<Built>>>,
}

impl OpenApiV2 {
    /// Answers `GET /openapi/v2`: protobuf when `accept` prefers it, JSON otherwise, 304 when
    /// `if_none_match` names the current ETag.
    pub(crate) fn serve(
        &self,
        resources: &Resources,
        method: &str,
        accept: &str,
        if_none_match: &str,
    ) -> Result<Response<Body>, ApiError> {
        if method != "GET" && method != "HEAD" {
            return Err(ApiError::method_not_allowed("only GET is allowed here"));
        }
        let built = self.current(resources)?;
        let (body, etag, content_type) = if wants_protobuf(accept) {
            (&built.protobuf, &built.protobuf_etag, PROTOBUF_DOTTED)
        } else {
            (&built.json, &built.json_etag, "application/json")
        };
        let not_modified = if_none_match
            .split(',')
            .any(|t| t.trim() == etag.as_str() || t.trim() == "*");
        let (status, body) = if not_modified {
            (304, Bytes::new())
        } else {
            (200, body.clone())
        };
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .header("etag", etag.as_str())
            .header("vary", "Accept")
            .body(full(body))
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    fn current(&self, resources: &Resources) -> Result<Arc<Built>, ApiError> {
        let key = resources_key(resources);
        // Held while building so concurrent first requests build once.
        let mut slot = self.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(built) = slot.as_ref().filter(|b| b.resources_key == key) {
            return Ok(built.clone());
        }
        let started = std::time::Instant::now();
        let built = Arc::new(build(resources, key)?);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            json_bytes = built.json.len(),
            protobuf_bytes = built.protobuf.len(),
            "built /openapi/v2"
        );
        *slot = Some(built.clone());
        Ok(built)
    }
}

/// Identifies the resource set (built-ins and CRDs with their schemas) the document reflects.
fn resources_key(resources: &Resources) -> u64 {
    let mut h = DefaultHasher::new();
    format!("{:?}", resources.all()).hash(&mut h);
    h.finish()
}

fn etag(bytes: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    format!("\"{:016X}\"", h.finish())
}

fn build(resources: &Resources, resources_key: u64) -> Result<Built, ApiError> {
    let group_versions: BTreeSet<String> = resources
        .all()
        .iter()
        .map(|r| {
            if r.group.is_empty() {
                format!("api/{}", r.version)
            } else {
                format!("apis/{}/{}", r.group, r.version)
            }
        })
        .collect();
    let docs: Vec<_> = group_versions
        .iter()
        .filter_map(|gv| crate::openapi::document(resources, gv))
        .collect();
    let version = format!("v{}.{}.0", crate::KUBE_MAJOR, crate::KUBE_MINOR);
    let swagger = rudder_openapi::swagger_from_v3(&docs, "Kubernetes", &version);
    let protobuf = rudder_openapi::encode(&swagger)
        .map_err(|e| ApiError::internal(format!("encoding /openapi/v2: {e}")))?;
    let json = serde_json::to_vec(&swagger)
        .map_err(|e| ApiError::internal(format!("encoding /openapi/v2: {e}")))?;
    Ok(Built {
        resources_key,
        json_etag: etag(&json),
        json: json.into(),
        protobuf_etag: etag(&protobuf),
        protobuf: protobuf.into(),
    })
}

/// Whether the protobuf form is the most preferred acceptable one (JSON is the default, also for
/// `Accept` values naming neither).
fn wants_protobuf(accept: &str) -> bool {
    let mut best: Option<(f32, bool)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let q = parts
            .find_map(|p| p.trim().strip_prefix("q=").map(str::to_owned))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let protobuf = media == PROTOBUF || media == PROTOBUF_DOTTED;
        let json = matches!(media.as_str(), "application/json" | "application/*" | "*/*");
        if (protobuf || json) && q > 0.0 && best.is_none_or(|(best_q, _)| q > best_q) {
            best = Some((q, protobuf));
        }
    }
    best.is_some_and(|(_, protobuf)| protobuf)
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::{OpenApiV2, PROTOBUF, PROTOBUF_DOTTED, wants_protobuf};
    use crate::resources::{Resources, builtin};

    #[test]
    fn accept_header_selects_the_encoding() {
        let cases = [
            ("", false),
            ("application/json", false),
            ("*/*", false),
            (PROTOBUF, true),
            (PROTOBUF_DOTTED, true),
            (
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json",
                true,
            ),
            (
                "application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                false,
            ),
            (
                "application/json;q=0.5, application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                true,
            ),
            (
                "application/com.github.proto-openapi.spec.v2@v1.0+protobuf;q=0",
                false,
            ),
            ("application/yaml", false),
        ];
        for (accept, want) in cases {
            assert_eq!(wants_protobuf(accept), want, "{accept}");
        }
    }

    async fn body(resp: hyper::Response<crate::http::Body>) -> Vec<u8> {
        match resp.into_body().collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(never) => match never {},
        }
    }

    #[tokio::test]
    async fn serves_json_and_protobuf_with_etags() {
        let resources = Resources::builtin(builtin());
        let v2 = OpenApiV2::default();

        let resp = v2.serve(&resources, "GET", PROTOBUF, "").expect("protobuf");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], PROTOBUF_DOTTED);
        let etag = resp.headers()["etag"].to_str().expect("etag").to_owned();
        let doc = rudder_openapi::decode(&body(resp).await).expect("gnostic Document");
        let pod = doc
            .definitions
            .iter()
            .flat_map(|d| &d.additional_properties)
            .find(|d| d.name == "io.k8s.api.core.v1.Pod")
            .and_then(|d| d.value.as_ref())
            .expect("Pod definition");
        assert!(
            pod.vendor_extension
                .iter()
                .any(|e| e.name == "x-kubernetes-group-version-kind"),
            "{:?}",
            pod.vendor_extension
        );

        let resp = v2
            .serve(&resources, "GET", PROTOBUF, &etag)
            .expect("cached");
        assert_eq!(resp.status(), 304);
        assert!(body(resp).await.is_empty());

        let resp = v2
            .serve(&resources, "GET", "application/json", &etag)
            .expect("json");
        assert_eq!(resp.status(), 200, "the JSON form has its own ETag");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let swagger: serde_json::Value = serde_json::from_slice(&body(resp).await).expect("JSON");
        assert_eq!(swagger["swagger"], "2.0");
        assert!(
            swagger["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"].is_object()
        );

        let err = v2.serve(&resources, "POST", "", "").expect_err("POST");
        assert_eq!(err.code, 405);
    }
}
