//! The control plane's node IPAM: every Node without `spec.podCIDR` gets the next free subnet
//! of the cluster range (as kube-controller-manager's node-ipam controller does with
//! `--allocate-node-cidrs`).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};

/// Assigns pod subnets of `prefix` bits from `cluster` to nodes until `stop` resolves.
pub async fn run(
    client: kube::Client,
    cluster: Ipv4Net,
    prefix: u8,
    stop: impl std::future::Future<Output = ()>,
) {
    let nodes: Api<Node> = Api::all(client);
    let (store, writer) = reflector::store();
    let events = reflector(writer, watcher(nodes.clone(), watcher::Config::default()))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(events);
    tokio::pin!(stop);
    // What this loop assigned, by node uid: the store may not show it yet, and a node must not
    // get a second subnet from an event that predates the first (a node re-created under the
    // same name has a new uid and gets one again).
    let mut assigned: BTreeMap<String, Ipv4Net> = BTreeMap::new();
    loop {
        let node = tokio::select! {
            () = &mut stop => return,
            ev = events.try_next() => match ev {
                Ok(Some(n)) => n,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "node watch");
                    continue;
                }
            },
        };
        let has = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .is_some_and(|c| !c.is_empty());
        let name = node.metadata.name.clone().unwrap_or_default();
        let uid = node.metadata.uid.clone().unwrap_or_default();
        if has || node.metadata.deletion_timestamp.is_some() || assigned.contains_key(&uid) {
            continue;
        }
        let mut used: Vec<Ipv4Net> = store
            .state()
            .iter()
            .filter_map(|n| n.spec.as_ref()?.pod_cidr.as_deref()?.parse().ok())
            .collect();
        used.extend(assigned.values().copied());
        let Some(subnet) = crate::cidr::next_free(cluster, prefix, &used) else {
            tracing::warn!(%cluster, "no pod subnet left for node {:?}", node.metadata.name);
            continue;
        };
        let patch = serde_json::json!({
            "spec": {"podCIDR": subnet.to_string(), "podCIDRs": [subnet.to_string()]}
        });
        match nodes
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                assigned.insert(uid, subnet);
                tracing::info!(node = %name, %subnet, "pod subnet assigned");
            }
            Err(e) => tracing::warn!(node = %name, error = %e, "assigning a pod subnet"),
        }
    }
}
