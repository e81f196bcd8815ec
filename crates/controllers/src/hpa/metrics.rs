//! Where the HPA gets its numbers: `metrics.k8s.io/v1beta1` PodMetrics read through the API
//! server (as upstream's REST metrics client does), turned into per-pod usage of one resource.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;

use super::replicas::PodUsage;

/// The parts of a `PodMetricsList` the HPA reads.
#[derive(Debug, Default, Deserialize)]
pub struct PodMetricsList {
    #[serde(default)]
    pub items: Vec<PodMetrics>,
}

/// One pod's sample.
#[derive(Debug, Default, Deserialize)]
pub struct PodMetrics {
    pub metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub window: Option<String>,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
}

/// One container's usage.
#[derive(Debug, Default, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: BTreeMap<String, String>,
}

/// Reads the PodMetrics of the pods `selector` matches in `ns`.
pub async fn fetch(
    client: &kube::Client,
    ns: &str,
    selector: &str,
) -> crate::Result<PodMetricsList> {
    let mut url = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods");
    if !selector.is_empty() {
        url.push_str("?labelSelector=");
        url.push_str(&encode_query(selector));
    }
    let request =
        http::Request::get(url)
            .body(Vec::new())
            .map_err(|e| crate::ControllerError::Invalid {
                kind: "HorizontalPodAutoscaler",
                name: ns.to_owned(),
                message: e.to_string(),
            })?;
    Ok(client.request::<PodMetricsList>(request).await?)
}

fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Per-pod usage of `resource` in milli-units, summed over the containers (or of one
/// `container` for ContainerResource metrics). Pods without a parseable sample are left out,
/// which makes them "missing" to the calculator.
pub fn usage_by_pod(
    list: &PodMetricsList,
    resource: &str,
    container: Option<&str>,
) -> BTreeMap<String, PodUsage> {
    let mut out = BTreeMap::new();
    for pod in &list.items {
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let mut total = 0i64;
        let mut seen = false;
        let mut bad = false;
        for c in &pod.containers {
            if container.is_some_and(|want| want != c.name) {
                continue;
            }
            match c
                .usage
                .get(resource)
                .map(|q| rudder_machinery::quantity::to_milli(q))
            {
                Some(Some(m)) => {
                    total = total.saturating_add(i64::try_from(m).unwrap_or(i64::MAX));
                    seen = true;
                }
                _ => bad = true,
            }
        }
        if !seen || bad {
            continue;
        }
        let timestamp = pod
            .timestamp
            .as_deref()
            .and_then(|t| t.parse::<Timestamp>().ok())
            .map_or(0, |t| t.as_second());
        let window = pod
            .window
            .as_deref()
            .and_then(rudder_machinery::duration::parse_go_duration)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        out.insert(
            name,
            PodUsage {
                milli: total,
                timestamp,
                window,
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pod_metrics_like_metrics_server_returns_them() {
        let list: PodMetricsList = serde_json::from_value(serde_json::json!({
            "kind": "PodMetricsList",
            "apiVersion": "metrics.k8s.io/v1beta1",
            "items": [
                {"metadata": {"name": "a", "namespace": "ns"},
                 "timestamp": "2026-12-07T10:00:00Z", "window": "15.01s",
                 "containers": [
                    {"name": "app", "usage": {"cpu": "250000000n", "memory": "10Mi"}},
                    {"name": "side", "usage": {"cpu": "5m", "memory": "1Mi"}}
                 ]},
                {"metadata": {"name": "b", "namespace": "ns"},
                 "timestamp": "2026-12-07T10:00:00Z", "window": "1m0s",
                 "containers": [{"name": "app", "usage": {"memory": "1Mi"}}]}
            ]
        }))
        .unwrap_or_default();
        let cpu = usage_by_pod(&list, "cpu", None);
        assert_eq!(cpu.len(), 1, "b has no cpu sample: missing");
        assert_eq!(cpu["a"].milli, 255);
        assert_eq!(cpu["a"].window, 15);
        assert_eq!(cpu["a"].timestamp, 1_796_637_600);
        let app_only = usage_by_pod(&list, "cpu", Some("app"));
        assert_eq!(app_only["a"].milli, 250);
        let memory = usage_by_pod(&list, "memory", None);
        assert_eq!(memory["a"].milli, 11 * 1024 * 1024 * 1000);
        assert_eq!(memory["b"].window, 60);
    }

    #[test]
    fn selector_is_query_encoded() {
        assert_eq!(
            encode_query("app=web,tier in (a,b)"),
            "app%3Dweb%2Ctier%20in%20%28a%2Cb%29"
        );
    }
}
