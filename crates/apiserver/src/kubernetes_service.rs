//! The `default/kubernetes` Service and its Endpoints and EndpointSlice, which point at the API
//! server (upstream's "kubernetes service" controller and endpoint reconciler). The objects are
//! built here, pure; `bootstrap::ensure_kubernetes_service` writes them.

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::{Value, json};

/// The Service's (and its Endpoints' and EndpointSlice's) name, in `default`.
pub const NAME: &str = "kubernetes";
/// The namespace it lives in.
pub const NAMESPACE: &str = "default";

/// The Service as upstream creates it: port 443 named `https` to the API server's port.
pub fn service(cluster_ip: Ipv4Addr, api_port: u16) -> Value {
    json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": api_port}],
            "clusterIP": cluster_ip.to_string(),
            "clusterIPs": [cluster_ip.to_string()],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    })
}

/// The Endpoints: the API server's address. Marked so the EndpointSlice mirroring controller
/// leaves it alone (the API server writes the slice itself).
pub fn endpoints(endpoint: SocketAddr) -> Value {
    json!({
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": [{
            "addresses": [{"ip": endpoint.ip().to_string()}],
            "ports": [{"name": "https", "port": endpoint.port(), "protocol": "TCP"}],
        }],
    })
}

/// The EndpointSlice derived from [`endpoints`] (upstream's endpoints adapter).
pub fn endpoint_slice(endpoint: SocketAddr) -> Value {
    let family = if endpoint.is_ipv4() { "IPv4" } else { "IPv6" };
    json!({
        "kind": "EndpointSlice",
        "apiVersion": "discovery.k8s.io/v1",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"kubernetes.io/service-name": NAME},
        },
        "addressType": family,
        "endpoints": [{
            "addresses": [endpoint.ip().to_string()],
            "conditions": {"ready": true},
        }],
        "ports": [{"name": "https", "port": endpoint.port(), "protocol": "TCP"}],
    })
}

/// Whether `stored` already says what `wanted` says (ignoring the metadata the store adds), so
/// a restart does not rewrite an unchanged object.
pub fn up_to_date(stored: &Value, wanted: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(obj) = v.as_object_mut() {
            let labels = obj.get("metadata").and_then(|m| m.get("labels")).cloned();
            obj.insert("metadata".into(), json!({"labels": labels}));
        }
        v
    };
    strip(stored) == strip(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects() {
        let svc = service(Ipv4Addr::new(10, 43, 0, 1), 6443);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 6443);
        assert_eq!(svc["spec"]["ports"][0]["port"], 443);
        assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
        assert!(
            svc["spec"].get("selector").is_none(),
            "no selector: not the controllers' to manage"
        );
        let ep: SocketAddr = "192.0.2.2:6443".parse().expect("addr");
        let eps = endpoints(ep);
        assert_eq!(eps["subsets"][0]["addresses"][0]["ip"], "192.0.2.2");
        let slice = endpoint_slice(ep);
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            NAME
        );
        assert_eq!(slice["ports"][0]["port"], 6443);
        assert_eq!(slice["addressType"], "IPv4");
    }

    #[test]
    fn up_to_date_ignores_server_metadata() {
        let ep: SocketAddr = "192.0.2.2:6443".parse().expect("addr");
        let mut stored = endpoints(ep);
        stored["metadata"]["uid"] = json!("u");
        stored["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(up_to_date(&stored, &endpoints(ep)));
        let moved: SocketAddr = "192.0.2.3:6443".parse().expect("addr");
        assert!(!up_to_date(&stored, &endpoints(moved)));
        stored["metadata"]["labels"] = json!({});
        assert!(!up_to_date(&stored, &endpoints(ep)));
    }
}
