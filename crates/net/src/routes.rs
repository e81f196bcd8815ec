//! Routes between nodes, host-gw style: every node keeps, for every other node, a route to that
//! node's pod subnet (`spec.podCIDR`) through that node's InternalIP, so pods on different nodes
//! reach each other by address without encapsulation. The next hop must be on a link this node
//! shares with it (one L2 segment), as flannel's host-gw backend requires; nodes behind a
//! router need an overlay, which rudder does not have.
//!
//! [`desired`] (pure) turns the Nodes into the routes this node should have, [`diff`] (pure)
//! compares them with the routes the kernel has that carry rudder's protocol number
//! ([`ROUTE_PROTOCOL`]), and [`run`] watches Nodes and applies the difference through netlink.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;

use crate::{NetError, link};

/// The routing protocol number rudder's routes carry (`ip route ... proto 82`), so the agent
/// tells its routes from everyone else's and never touches those. 82 is free in iproute2's
/// `rt_protos`.
pub const ROUTE_PROTOCOL: u8 = 82;
/// How often the routes are checked even without a Node change: a route someone deleted comes
/// back, and one whose next hop was not reachable yet is tried again.
const RESYNC_INTERVAL: Duration = Duration::from_secs(30);

/// One route to another node's pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRoute {
    /// The other node's pod subnet.
    pub subnet: Ipv4Net,
    /// The other node's InternalIP.
    pub via: Ipv4Addr,
}

/// What to change in the kernel.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RouteDiff {
    /// Routes to delete (gone nodes, or a next hop that changed).
    pub remove: Vec<NodeRoute>,
    /// Routes to add.
    pub add: Vec<NodeRoute>,
}

/// A node's pod subnet, if it has an IPv4 one.
fn pod_subnet(node: &Node) -> Option<Ipv4Net> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .iter()
        .chain(spec.pod_cidrs.iter().flatten())
        .find_map(|c| c.parse::<Ipv4Net>().ok())
        .map(|n| n.trunc())
}

/// A node's IPv4 InternalIP, if it reports one.
fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse().ok())
}

/// The routes node `own` should have to the other `nodes`' pod subnets. Skipped: nodes without
/// a subnet or an InternalIP yet, and nodes whose InternalIP is one of this machine's own
/// `local` addresses (several agents sharing one network namespace reach each other's bridges
/// directly; a route through oneself would be refused). When two nodes claim one subnet, the
/// first by name wins, so every node picks the same.
pub fn desired(nodes: &[Node], own: &str, local: &HashSet<Ipv4Addr>) -> BTreeSet<NodeRoute> {
    let mut named: Vec<(&str, &Node)> = nodes
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n)))
        .filter(|(name, _)| *name != own)
        .collect();
    named.sort_by_key(|(name, _)| *name);
    let mut by_subnet: BTreeMap<Ipv4Net, Ipv4Addr> = BTreeMap::new();
    for (_, node) in named {
        let (Some(subnet), Some(via)) = (pod_subnet(node), internal_ip(node)) else {
            continue;
        };
        if local.contains(&via) {
            continue;
        }
        by_subnet.entry(subnet).or_insert(via);
    }
    by_subnet
        .into_iter()
        .map(|(subnet, via)| NodeRoute { subnet, via })
        .collect()
}

/// The changes that turn the kernel's rudder routes (`current`) into `desired`.
pub fn diff(current: &BTreeSet<NodeRoute>, desired: &BTreeSet<NodeRoute>) -> RouteDiff {
    RouteDiff {
        remove: current.difference(desired).copied().collect(),
        add: desired.difference(current).copied().collect(),
    }
}

/// How the route keeper runs.
#[derive(Clone, Debug)]
pub struct RouteOptions {
    /// The node this agent runs.
    pub node_name: String,
}

/// Keeps this node's routes to the other nodes' pod subnets until `stop` resolves. The routes
/// stay when it stops: pods keep talking across nodes while the agent restarts.
pub async fn run(
    client: kube::Client,
    opts: RouteOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), NetError> {
    let handle = link::host()?;
    let changed = Arc::new(Notify::new());
    let (nodes, task) = crate::reflect::reflect::<Node>(
        Api::all(client),
        watcher::Config::default(),
        &changed,
        "watch",
    );
    let work = async {
        if nodes.wait_until_ready().await.is_err() {
            tracing::warn!("node watch ended before its first list");
            return;
        }
        tracing::info!(node = %opts.node_name, "keeping routes to the other nodes' pods");
        loop {
            let all: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
            if let Err(e) = sync(&handle, &all, &opts.node_name).await {
                tracing::warn!(error = %e, "syncing routes to other nodes");
            }
            let _ = tokio::time::timeout(RESYNC_INTERVAL, changed.notified()).await;
        }
    };
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {}
        () = work => {}
    }
    task.abort();
    Ok(())
}

/// Brings the kernel's rudder routes to what `nodes` ask for. One route failing (a next hop not
/// on a shared link) does not keep the others from being made.
async fn sync(handle: &rtnetlink::Handle, nodes: &[Node], own: &str) -> Result<(), NetError> {
    let local = link::local_ipv4(handle).await?;
    let want = desired(nodes, own, &local);
    let have = link::routes(handle, ROUTE_PROTOCOL).await?;
    let changes = diff(&have, &want);
    for r in &changes.remove {
        match link::delete_route(handle, r, ROUTE_PROTOCOL).await {
            Ok(()) => tracing::info!(subnet = %r.subnet, via = %r.via, "route removed"),
            Err(e) => tracing::warn!(error = %e, subnet = %r.subnet, "removing a route"),
        }
    }
    for r in &changes.add {
        match link::add_route(handle, r, ROUTE_PROTOCOL).await {
            Ok(()) => tracing::info!(subnet = %r.subnet, via = %r.via, "route added"),
            Err(e) => tracing::warn!(
                error = %e, subnet = %r.subnet, via = %r.via,
                "adding a route (is the next hop on a link this node shares with it?)"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": cidr.map_or(serde_json::json!({}), |c| serde_json::json!({"podCIDR": c})),
            "status": {"addresses": ip.map_or(vec![], |ip| vec![
                serde_json::json!({"type": "Hostname", "address": name}),
                serde_json::json!({"type": "InternalIP", "address": ip}),
            ])},
        }))
        .expect("a Node")
    }

    fn route(subnet: &str, via: &str) -> NodeRoute {
        NodeRoute {
            subnet: subnet.parse().expect("subnet"),
            via: via.parse().expect("address"),
        }
    }

    /// What, the nodes, this node's name, its addresses, the routes it should have.
    type Case<'a> = (
        &'a str,
        Vec<Node>,
        &'a str,
        &'a HashSet<Ipv4Addr>,
        Vec<NodeRoute>,
    );

    #[test]
    fn desired_routes_table() {
        let a = node("a", Some("10.42.0.0/24"), Some("172.31.5.1"));
        let b = node("b", Some("10.42.1.0/24"), Some("172.31.5.2"));
        let c = node("c", Some("10.42.2.0/24"), Some("172.31.5.3"));
        let no_cidr = node("d", None, Some("172.31.5.4"));
        let no_ip = node("e", Some("10.42.4.0/24"), None);
        let same_subnet = node("f", Some("10.42.1.0/24"), Some("172.31.5.6"));
        let not_truncated = node("g", Some("10.42.7.9/24"), Some("172.31.5.7"));
        let none: HashSet<Ipv4Addr> = HashSet::new();
        let local_b: HashSet<Ipv4Addr> = ["172.31.5.2".parse().expect("ip")].into();
        let cases: Vec<Case> = vec![
            ("alone", vec![a.clone()], "a", &none, vec![]),
            (
                "every other node",
                vec![a.clone(), b.clone(), c.clone()],
                "a",
                &none,
                vec![
                    route("10.42.1.0/24", "172.31.5.2"),
                    route("10.42.2.0/24", "172.31.5.3"),
                ],
            ),
            (
                "from another node",
                vec![a.clone(), b.clone(), c.clone()],
                "c",
                &none,
                vec![
                    route("10.42.0.0/24", "172.31.5.1"),
                    route("10.42.1.0/24", "172.31.5.2"),
                ],
            ),
            (
                "nodes not ready for routing",
                vec![a.clone(), no_cidr, no_ip],
                "c",
                &none,
                vec![route("10.42.0.0/24", "172.31.5.1")],
            ),
            (
                "a next hop that is this machine",
                vec![a.clone(), b.clone()],
                "a",
                &local_b,
                vec![],
            ),
            (
                "a subnet claimed twice: first by name",
                vec![same_subnet, b.clone()],
                "a",
                &none,
                vec![route("10.42.1.0/24", "172.31.5.2")],
            ),
            (
                "host bits in the subnet",
                vec![not_truncated],
                "a",
                &none,
                vec![route("10.42.7.0/24", "172.31.5.7")],
            ),
        ];
        for (what, nodes, own, local, want) in cases {
            let got: Vec<NodeRoute> = desired(&nodes, own, local).into_iter().collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn diff_table() {
        let r1 = route("10.42.1.0/24", "172.31.5.2");
        let r2 = route("10.42.2.0/24", "172.31.5.3");
        let r2_moved = route("10.42.2.0/24", "172.31.5.9");
        let set = |rs: &[NodeRoute]| rs.iter().copied().collect::<BTreeSet<_>>();
        let cases = [
            (
                "nothing to do",
                set(&[r1, r2]),
                set(&[r1, r2]),
                vec![],
                vec![],
            ),
            ("new node", set(&[r1]), set(&[r1, r2]), vec![], vec![r2]),
            ("node gone", set(&[r1, r2]), set(&[r1]), vec![r2], vec![]),
            (
                "next hop changed",
                set(&[r1, r2]),
                set(&[r1, r2_moved]),
                vec![r2],
                vec![r2_moved],
            ),
            ("first sync", set(&[]), set(&[r1]), vec![], vec![r1]),
        ];
        for (what, current, want, remove, add) in cases {
            assert_eq!(diff(&current, &want), RouteDiff { remove, add }, "{what}");
        }
    }
}
