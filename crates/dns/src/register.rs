//! The node's entry in the `kube-system/kube-dns` Service: a selectorless EndpointSlice per node
//! (`kube-dns-<node>`) naming this node's DNS listener, so the service proxy's ordinary ClusterIP
//! rules carry pods' questions to a DNS server. The slice is built here (pure) and kept by
//! [`keep`] (IO).

use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

/// The DNS Service's name and namespace (upstream's, which clients and tools expect).
pub const SERVICE: &str = "kube-dns";
/// Namespace of [`SERVICE`].
pub const NAMESPACE: &str = "kube-system";
/// `endpointslice.kubernetes.io/managed-by` of the slices written here: the EndpointSlice
/// controller leaves slices managed by someone else alone.
pub const MANAGED_BY: &str = "dns.rudder.dev";
/// How often the slice is re-asserted (brought back if deleted or edited).
const RESYNC: Duration = Duration::from_secs(30);

/// Name of `node`'s slice.
pub fn slice_name(node: &str) -> String {
    format!("{SERVICE}-{node}")
}

/// The slice for `node`'s DNS server at `addr`: ports `dns` (UDP) and `dns-tcp` (TCP) as the
/// Service names them, pointing at the server's real port.
pub fn endpoint_slice(node: &str, addr: SocketAddr) -> Result<EndpointSlice, serde_json::Error> {
    let address_type = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(node),
            "namespace": NAMESPACE,
            "labels": {
                "kubernetes.io/service-name": SERVICE,
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
            },
        },
        "addressType": address_type,
        "ports": [
            {"name": "dns", "protocol": "UDP", "port": addr.port()},
            {"name": "dns-tcp", "protocol": "TCP", "port": addr.port()},
        ],
        "endpoints": [{
            "addresses": [addr.ip().to_string()],
            "conditions": {"ready": true, "serving": true, "terminating": false},
            "nodeName": node,
        }],
    }))
}

/// Whether `have` already says what `want` says (labels, ports, endpoints).
fn same(have: &EndpointSlice, want: &EndpointSlice) -> bool {
    have.metadata.labels == want.metadata.labels
        && have.ports == want.ports
        && have.endpoints == want.endpoints
        && have.address_type == want.address_type
}

/// Keeps `node`'s slice pointing at `addr` until `stop` resolves, then deletes it.
pub async fn keep(
    client: kube::Client,
    node: &str,
    addr: SocketAddr,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), serde_json::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client, NAMESPACE);
    let want = endpoint_slice(node, addr)?;
    let name = slice_name(node);
    let work = async {
        loop {
            if let Err(e) = ensure(&api, &name, &want).await {
                tracing::warn!(error = %e, "registering the DNS server's endpoint");
            }
            tokio::time::sleep(RESYNC).await;
        }
    };
    tokio::select! {
        () = stop => {}
        () = work => {}
    }
    if let Err(e) = api.delete(&name, &DeleteParams::default()).await {
        tracing::debug!(error = %e, "removing the DNS server's endpoint");
    }
    Ok(())
}

async fn ensure(api: &Api<EndpointSlice>, name: &str, want: &EndpointSlice) -> kube::Result<()> {
    match api.get_opt(name).await? {
        None => {
            api.create(&PostParams::default(), want).await?;
            tracing::info!(slice = name, "registered the DNS server in kube-dns");
        }
        Some(have) if !same(&have, want) => {
            let mut next = want.clone();
            next.metadata.resource_version = have.metadata.resource_version;
            api.replace(name, &PostParams::default(), &next).await?;
        }
        Some(_) => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_names_the_listener() {
        let addr: SocketAddr = "10.42.0.1:53".parse().expect("addr");
        let s = endpoint_slice("n1", addr).expect("slice");
        assert_eq!(s.metadata.name.as_deref(), Some("kube-dns-n1"));
        assert_eq!(s.metadata.namespace.as_deref(), Some("kube-system"));
        let labels = s.metadata.labels.clone().unwrap_or_default();
        assert_eq!(
            labels.get("kubernetes.io/service-name").map(String::as_str),
            Some("kube-dns")
        );
        assert_eq!(s.address_type, "IPv4");
        let ports: Vec<(Option<String>, Option<String>, Option<i32>)> = s
            .ports
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.protocol.clone(), p.port))
            .collect();
        assert_eq!(
            ports,
            vec![
                (Some("dns".into()), Some("UDP".into()), Some(53)),
                (Some("dns-tcp".into()), Some("TCP".into()), Some(53)),
            ]
        );
        let ep = &s.endpoints.as_ref().expect("endpoints")[0];
        assert_eq!(ep.addresses, vec!["10.42.0.1".to_owned()]);
        assert_eq!(ep.node_name.as_deref(), Some("n1"));
        assert!(same(&s, &s.clone()));
        let moved = endpoint_slice("n1", "10.42.0.1:5353".parse().expect("addr")).expect("slice");
        assert!(!same(&s, &moved));
    }
}
