//! rudder's pod network, the built-in alternative to a CNI plugin: the control plane gives each
//! node a pod subnet (`spec.podCIDR`, [`allocator`]), and the node agent puts a bridge on it and
//! gives each pod an address from it on a veth pair ([`PodNetwork`]); [`routes`] sends traffic
//! for other nodes' subnets to those nodes (host-gw). [`proxy`] is the service proxy
//! (kube-proxy's role) in nftables, and [`policy`] enforces NetworkPolicies in nftables;
//! [`nft`] is what the two share.

pub mod allocator;
pub mod cidr;
pub mod ipam;
mod link;
pub mod nft;
pub mod policy;
pub mod proxy;
pub mod reflect;
pub mod routes;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use tokio::sync::Mutex;

pub use ipam::Ipam;

/// What can go wrong setting up pod networking.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The node's pod subnet has no free address.
    #[error("no free address in {0}")]
    Exhausted(Ipv4Net),
    /// A netlink request failed.
    #[error("netlink: {0}")]
    Netlink(String),
    /// The allocation file could not be read or written.
    #[error("pod network state: {0}")]
    State(String),
}

/// Where the node's pod network lives.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// The bridge's name (`rudder0`).
    pub bridge: String,
    /// Where allocations are kept.
    pub state_dir: PathBuf,
}

/// The node's pod network: a bridge on the node's subnet, and per pod an address and a veth.
pub struct PodNetwork {
    opts: NetworkOptions,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    host: rtnetlink::Handle,
    ipam: Mutex<Ipam>,
}

impl PodNetwork {
    /// Sets up the bridge for `subnet` (idempotent) and loads the allocations.
    pub async fn start(subnet: Ipv4Net, opts: NetworkOptions) -> Result<PodNetwork, NetError> {
        let gateway = cidr::gateway(subnet).ok_or(NetError::Exhausted(subnet))?;
        let host = link::host()?;
        link::ensure_bridge(&host, &opts.bridge, gateway, subnet.prefix_len()).await?;
        // A pair whose peer never left the host is what an interrupted attach leaves.
        remove_stale_pairs().await;
        let ipam = Ipam::load(&opts.state_dir.join("ipam.json"), subnet)?;
        tracing::info!(bridge = %opts.bridge, %subnet, "pod network ready");
        Ok(PodNetwork {
            opts,
            subnet,
            gateway,
            host,
            ipam: Mutex::new(ipam),
        })
    }

    /// The node's pod subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    /// Gives the pod `uid`, whose network namespace is `netns`, its address and interface, and
    /// returns the address. Idempotent: a pod set up before keeps what it has.
    pub async fn attach(&self, uid: &str, netns: &Path) -> Result<Ipv4Addr, NetError> {
        let ip = {
            let mut ipam = self.ipam.lock().await;
            let known = ipam.allocated.contains_key(uid);
            let ip = ipam.allocate(uid)?;
            if !known {
                ipam.save(&self.state_file())?;
            }
            ip
        };
        let host_end = host_end(uid);
        if link::pod_has_eth0(netns).await? {
            self.set_hairpin(&host_end).await;
            return Ok(ip);
        }
        link::attach(
            &self.host,
            &link::PodLink {
                bridge: &self.opts.bridge,
                host_end: &host_end,
                netns,
                ip,
                prefix: self.subnet.prefix_len(),
                gateway: self.gateway,
            },
        )
        .await?;
        self.set_hairpin(&host_end).await;
        Ok(ip)
    }

    /// Lets the bridge send a frame back out of the port it came in on, so a pod reaching a
    /// Service whose chosen endpoint is the pod itself gets its own (DNATed, masqueraded)
    /// packets back. Through netlink rather than sysfs: /sys shows the links of the namespace
    /// that mounted it, which need not be the agent's.
    async fn set_hairpin(&self, host_end: &str) {
        if let Err(e) = link::set_hairpin(&self.host, host_end).await {
            tracing::warn!(error = %e, port = %host_end, "could not turn on hairpin mode");
        }
    }

    /// The address pod `uid` has, if any.
    pub async fn ip_of(&self, uid: &str) -> Option<Ipv4Addr> {
        self.ipam.lock().await.allocated.get(uid).copied()
    }

    /// Removes the pod's interface (if its namespace still exists) and frees its address.
    pub async fn detach(&self, uid: &str) -> Result<(), NetError> {
        link::delete(&self.host, &host_end(uid)).await?;
        let mut ipam = self.ipam.lock().await;
        if ipam.release(uid).is_some() {
            ipam.save(&self.state_file())?;
        }
        Ok(())
    }

    fn state_file(&self) -> PathBuf {
        self.opts.state_dir.join("ipam.json")
    }
}

/// Deletes the node's bridge `name` (a node leaving the cluster, or a test cleaning up).
pub async fn remove_bridge(name: &str) -> Result<(), NetError> {
    link::delete(&link::host()?, name).await
}

/// Deletes veth pairs whose pod end is still on the host (`veth<hash>p`): an attach that was
/// interrupted between creating the pair and moving it into the pod.
pub async fn remove_stale_pairs() {
    let Ok(host) = link::host() else { return };
    let Ok(names) = link::names(&host).await else {
        return;
    };
    for name in names.into_iter().filter(|n| is_stale_peer(n)) {
        let _ = link::delete(&host, &name).await;
    }
}

/// Whether `name` is the pod end of a pair as [`host_end`] names them, plus `p`.
fn is_stale_peer(name: &str) -> bool {
    name.len() == 13
        && name.starts_with("veth")
        && name.ends_with('p')
        && name[4..12].chars().all(|c| c.is_ascii_hexdigit())
}

/// The host end of a pod's veth pair: `veth` and a hash of the pod's uid (interface names have
/// at most 15 bytes).
pub fn host_end(uid: &str) -> String {
    // FNV-1a: stable across versions, unlike std's hasher.
    let hash = uid.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("veth{hash:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_peers() {
        let end = host_end("uid");
        assert!(is_stale_peer(&format!("{end}p")));
        assert!(!is_stale_peer(&end));
        assert!(!is_stale_peer("vethzzzzzzzzp"));
        assert!(!is_stale_peer("eth0"));
    }

    #[test]
    fn host_end_names() {
        let a = host_end("8c0e5b6e-2f7a-4a8e-9a51-3b5d0c7f2e11");
        assert_eq!(a.len(), 12);
        assert!(a.starts_with("veth"));
        assert_eq!(a, host_end("8c0e5b6e-2f7a-4a8e-9a51-3b5d0c7f2e11"));
        assert_ne!(a, host_end("8c0e5b6e-2f7a-4a8e-9a51-3b5d0c7f2e12"));
    }
}
