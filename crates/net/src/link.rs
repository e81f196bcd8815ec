//! Links through netlink (rtnetlink): the node's bridge, and for each pod a veth pair whose one
//! end joins the bridge and whose other end becomes `eth0` in the pod's network namespace, with
//! the pod's address and a default route through the bridge; and the routes to other nodes'
//! pod subnets ([`crate::routes`]).

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::NetError;
use crate::routes::NodeRoute;

fn nl(what: &str) -> impl Fn(rtnetlink::Error) -> NetError + '_ {
    move |e| NetError::Netlink(format!("{what}: {e}"))
}

/// Whether netlink answered "exists" (EEXIST), which set-up steps treat as done.
fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -17)
}

/// A netlink handle in the agent's own network namespace.
pub(crate) fn host() -> Result<Handle, NetError> {
    let (conn, handle, _) =
        rtnetlink::new_connection().map_err(|e| NetError::Netlink(e.to_string()))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink handle whose socket lives in the network namespace at `netns` (a socket belongs to
/// the namespace of the thread that created it).
pub(crate) async fn inside(netns: &Path) -> Result<Handle, NetError> {
    let runtime = tokio::runtime::Handle::current();
    let (path, netns) = (netns.display().to_string(), netns.to_owned());
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-netlink".into())
        .spawn(move || {
            let made = (|| {
                let ns = std::fs::File::open(&netns)?;
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )?;
                let _enter = runtime.enter();
                rtnetlink::new_connection()
            })();
            let _ = tx.send(made);
        })
        .map_err(|e| NetError::Netlink(e.to_string()))?;
    let (conn, handle, _) = rx
        .await
        .map_err(|_| NetError::Netlink("netlink thread died".into()))?
        .map_err(|e| NetError::Netlink(format!("netlink in {path}: {e}")))?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The index of link `name`, if there is one.
pub(crate) async fn index_of(handle: &Handle, name: &str) -> Result<Option<u32>, NetError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(l) => Ok(l.map(|l| l.header.index)),
        // No such device.
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -19 => Ok(None),
        Err(e) => Err(nl("find link")(e)),
    }
}

/// Makes sure bridge `name` exists, carries `gateway/prefix` and is up.
pub(crate) async fn ensure_bridge(
    handle: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<(), NetError> {
    if let Err(e) = handle
        .link()
        .add(LinkBridge::new(name).build())
        .execute()
        .await
        && !exists(&e)
    {
        return Err(nl("add bridge")(e));
    }
    let index = index_of(handle, name)
        .await?
        .ok_or_else(|| NetError::Netlink(format!("bridge {name} vanished")))?;
    if let Err(e) = handle
        .address()
        .add(index, IpAddr::V4(gateway), prefix)
        .execute()
        .await
        && !exists(&e)
    {
        return Err(nl("address the bridge")(e));
    }
    handle
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl("bridge up"))
}

/// The names of every link in the handle's namespace.
pub(crate) async fn names(handle: &Handle) -> Result<Vec<String>, NetError> {
    use rtnetlink::packet_route::link::LinkAttribute;
    let mut out = Vec::new();
    let mut links = handle.link().get().execute();
    while let Some(l) = links.try_next().await.map_err(nl("list links"))? {
        out.extend(l.attributes.into_iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n),
            _ => None,
        }));
    }
    Ok(out)
}

/// Turns on hairpin mode on bridge port `name` (`ip link set NAME type bridge_slave hairpin on`).
pub(crate) async fn set_hairpin(handle: &Handle, name: &str) -> Result<(), NetError> {
    let index = index_of(handle, name)
        .await?
        .ok_or_else(|| NetError::Netlink(format!("bridge port {name} vanished")))?;
    handle
        .link()
        .change(LinkBridgePort::new(index).hairpin(true).build())
        .execute()
        .await
        .map_err(nl("hairpin mode"))
}

/// Deletes link `name` if it exists.
pub(crate) async fn delete(handle: &Handle, name: &str) -> Result<(), NetError> {
    if let Some(index) = index_of(handle, name).await? {
        handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(nl("delete link"))?;
    }
    Ok(())
}

/// What one pod's interface looks like.
pub(crate) struct PodLink<'a> {
    pub bridge: &'a str,
    /// The host end's name.
    pub host_end: &'a str,
    pub netns: &'a Path,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// Whether the pod's namespace already has its `eth0` (set up before an agent restart).
pub(crate) async fn pod_has_eth0(netns: &Path) -> Result<bool, NetError> {
    let inner = inside(netns).await?;
    Ok(index_of(&inner, "eth0").await?.is_some())
}

/// Creates the pod's veth pair, joins the host end to the bridge and configures `eth0`.
pub(crate) async fn attach(host: &Handle, p: &PodLink<'_>) -> Result<(), NetError> {
    // A host end left from an earlier attempt would make the new pair's name clash.
    delete(host, p.host_end).await?;
    // The peer gets a name unique on the host until it moves into the pod.
    let peer = format!("{}p", &p.host_end[..p.host_end.len().min(14)]);
    host.link()
        .add(LinkVeth::new(p.host_end, &peer).build())
        .execute()
        .await
        .map_err(nl("add veth"))?;
    let configured = configure(host, p, &peer).await;
    if configured.is_err() {
        // Deleting one end removes the pair, wherever the other end is by now.
        let _ = delete(host, p.host_end).await;
        let _ = delete(host, &peer).await;
    }
    configured
}

/// Moves the new pair's peer into the pod and configures both ends.
async fn configure(host: &Handle, p: &PodLink<'_>, peer: &str) -> Result<(), NetError> {
    let peer_index = index_of(host, peer)
        .await?
        .ok_or_else(|| NetError::Netlink("veth peer vanished".into()))?;
    let ns = std::fs::File::open(p.netns)
        .map_err(|e| NetError::Netlink(format!("{}: {e}", p.netns.display())))?;
    host.link()
        .set(
            LinkUnspec::new_with_index(peer_index)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(nl("move veth into the pod"))?;
    drop(ns);
    let (bridge, end) = (
        index_of(host, p.bridge).await?,
        index_of(host, p.host_end).await?,
    );
    let (Some(bridge), Some(end)) = (bridge, end) else {
        return Err(NetError::Netlink("bridge or veth vanished".into()));
    };
    host.link()
        .set(
            LinkUnspec::new_with_index(end)
                .controller(bridge)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl("join the bridge"))?;

    let inner = inside(p.netns).await?;
    let index = index_of(&inner, peer)
        .await?
        .ok_or_else(|| NetError::Netlink("veth peer not in the pod".into()))?;
    inner
        .link()
        .set(
            LinkUnspec::new_with_index(index)
                .name("eth0".into())
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl("name eth0"))?;
    inner
        .address()
        .add(index, IpAddr::V4(p.ip), p.prefix)
        .execute()
        .await
        .map_err(nl("address eth0"))?;
    inner
        .route()
        .add(
            RouteMessageBuilder::<Ipv4Addr>::new()
                .gateway(p.gateway)
                .output_interface(index)
                .build(),
        )
        .execute()
        .await
        .map_err(nl("default route"))
}

/// Every IPv4 address of this network namespace.
pub(crate) async fn local_ipv4(
    handle: &Handle,
) -> Result<std::collections::HashSet<Ipv4Addr>, NetError> {
    use rtnetlink::packet_route::address::AddressAttribute;
    let mut out = std::collections::HashSet::new();
    let mut addrs = handle.address().get().execute();
    while let Some(msg) = addrs.try_next().await.map_err(nl("list addresses"))? {
        for attr in msg.attributes {
            if let AddressAttribute::Address(IpAddr::V4(ip))
            | AddressAttribute::Local(IpAddr::V4(ip)) = attr
            {
                out.insert(ip);
            }
        }
    }
    Ok(out)
}

/// The IPv4 routes of the main table that carry routing protocol `protocol`, as destination and
/// gateway (routes without both are not ones rudder made and are left out).
pub(crate) async fn routes(
    handle: &Handle,
    protocol: u8,
) -> Result<std::collections::BTreeSet<NodeRoute>, NetError> {
    use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader};
    let mut out = std::collections::BTreeSet::new();
    let mut routes = handle
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    while let Some(msg) = routes.try_next().await.map_err(nl("list routes"))? {
        if u8::from(msg.header.protocol) != protocol
            || msg.header.table != RouteHeader::RT_TABLE_MAIN
        {
            continue;
        }
        let (mut dst, mut via) = (None, None);
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => via = Some(*a),
                _ => {}
            }
        }
        if let (Some(dst), Some(via)) = (dst, via)
            && let Ok(subnet) = ipnet::Ipv4Net::new(dst, msg.header.destination_prefix_length)
        {
            out.insert(NodeRoute { subnet, via });
        }
    }
    Ok(out)
}

fn route_message(r: &NodeRoute, protocol: u8) -> rtnetlink::packet_route::route::RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(r.subnet.network(), r.subnet.prefix_len())
        .gateway(r.via)
        .protocol(protocol.into())
        .build()
}

/// Adds the route (or replaces one to the same subnet). The kernel finds the link from the
/// gateway, which must be directly reachable.
pub(crate) async fn add_route(
    handle: &Handle,
    r: &NodeRoute,
    protocol: u8,
) -> Result<(), NetError> {
    handle
        .route()
        .add(route_message(r, protocol))
        .replace()
        .execute()
        .await
        .map_err(nl("add route"))
}

/// Deletes the route; one already gone is not an error.
pub(crate) async fn delete_route(
    handle: &Handle,
    r: &NodeRoute,
    protocol: u8,
) -> Result<(), NetError> {
    match handle
        .route()
        .del(route_message(r, protocol))
        .execute()
        .await
    {
        // No such process: the route is gone already.
        Err(rtnetlink::Error::NetlinkError(m)) if m.raw_code() == -3 => Ok(()),
        other => other.map_err(nl("delete route")),
    }
}
