//! The `kube-system/kube-dns` Service of cluster DNS, on the tenth address of the Service range
//! (upstream's convention, what kubeadm and k3s do). Selectorless: each node's DNS server adds
//! its own EndpointSlice (`kube-dns-<node>`). Built here (pure) and created at start-up when
//! missing; an existing Service is left as the administrator keeps it.

use bytes::Bytes;
use rudder_store::{Store, WriteOutcome};
use serde_json::{Value, json};

use crate::{keys, objects};

/// The Service's name.
pub const NAME: &str = "kube-dns";
/// Its namespace.
pub const NAMESPACE: &str = "kube-system";
/// Which address of the Service range it gets.
pub const NTH_ADDRESS: u32 = 10;

/// The Service as CoreDNS's manifests define it, minus the selector: ports 53/UDP `dns`,
/// 53/TCP `dns-tcp`, labels `k8s-app=kube-dns`.
pub fn service(cluster_ip: std::net::Ipv4Addr) -> Value {
    json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "rudder-dns",
            },
        },
        "spec": {
            "ports": [
                {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 53},
                {"name": "dns-tcp", "protocol": "TCP", "port": 53, "targetPort": 53},
            ],
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

/// Creates the Service on the tenth address of `range` if it does not exist.
pub async fn ensure(
    store: &dyn Store,
    range: ipnet::Ipv4Net,
) -> Result<(), rudder_store::StoreError> {
    let Some(ip) = crate::service_range::nth_address(range, NTH_ADDRESS) else {
        return Ok(());
    };
    let key = keys::object_key("", "services", Some(NAMESPACE), NAME);
    if store.get(&key, None).await?.kv.is_some() {
        return Ok(());
    }
    let allocations = crate::services::Allocations { store, range };
    if let Err(e) = allocations.reserve_ip(ip, "kube-system/kube-dns").await {
        tracing::warn!(error = %e.message, "reserving the kube-dns Service address");
    }
    let mut svc = service(ip);
    svc["metadata"]["uid"] = json!(objects::new_uid());
    svc["metadata"]["creationTimestamp"] = json!(objects::now_rfc3339());
    let bytes =
        serde_json::to_vec(&svc).map_err(|e| rudder_store::StoreError::Backend(e.to_string()))?;
    if let WriteOutcome::Written(_) = store.create(&key, Bytes::from(bytes)).await? {
        tracing::info!(%ip, "created the kube-dns Service");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_is_selectorless_on_the_given_address() {
        let range: ipnet::Ipv4Net = "10.43.0.0/16".parse().expect("cidr");
        let ip = crate::service_range::nth_address(range, NTH_ADDRESS).expect("tenth");
        let svc = service(ip);
        assert_eq!(svc["spec"]["clusterIP"], "10.43.0.10");
        assert!(svc["spec"].get("selector").is_none());
        let ports: Vec<(&str, &str)> = svc["spec"]["ports"]
            .as_array()
            .expect("ports")
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap_or_default(),
                    p["protocol"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(ports, [("dns", "UDP"), ("dns-tcp", "TCP")]);
        assert_eq!(svc["metadata"]["namespace"], NAMESPACE);
    }
}
