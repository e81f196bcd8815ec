//! rudder's cluster DNS (CoreDNS's role): answers `<svc>.<ns>.svc.<zone>`, headless endpoints,
//! SRV for named ports and pod records from an in-memory [`index::Index`] kept current by
//! watches, and forwards every other name to the node's resolvers. The node agent's process runs
//! it on the node's pod bridge address and registers it in the `kube-system/kube-dns` Service.

pub mod forward;
pub mod index;
pub mod register;
pub mod server;
mod watch;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::Api;

pub use index::Index;

/// The cluster domain when none is configured (upstream's).
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";
/// How long an idle TCP client may hold a connection.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between attempts while the node's pod network is not there yet.
const RETRY: Duration = Duration::from_secs(1);

/// What can go wrong running the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The cluster domain is not a valid domain name.
    #[error("invalid cluster domain {0:?}")]
    Domain(String),
    /// An object could not be built.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// The node's pod bridge address (the first address of its `spec.podCIDR`) on this port:
    /// pods reach it directly and through the `kube-dns` ClusterIP.
    PodGateway(u16),
    /// A fixed address.
    Addr(SocketAddr),
}

/// How the DNS server runs.
#[derive(Clone, Debug)]
pub struct DnsOptions {
    /// The node it runs on.
    pub node_name: String,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Where it listens (UDP and TCP).
    pub listen: Listen,
    /// The resolv.conf whose `nameserver`s get the questions outside the cluster domain.
    pub resolv_conf: PathBuf,
}

/// Checks a cluster domain: dot-separated DNS labels.
pub fn valid_domain(domain: &str) -> bool {
    let d = domain.trim_end_matches('.');
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// The `kube-system/kube-dns` Service's ClusterIP, if the Service exists (what an agent joining
/// a cluster puts in its pods' resolv.conf).
pub async fn cluster_dns_address(client: kube::Client) -> Result<Option<IpAddr>, kube::Error> {
    let api: Api<Service> = Api::namespaced(client, register::NAMESPACE);
    Ok(api
        .get_opt(register::SERVICE)
        .await?
        .and_then(|s| s.spec?.cluster_ip)
        .and_then(|ip| ip.parse().ok()))
}

/// Runs the DNS server until `stop` resolves; then removes this node's endpoint from the
/// `kube-dns` Service.
pub async fn run(
    client: kube::Client,
    opts: DnsOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), DnsError> {
    if !valid_domain(&opts.cluster_domain) {
        return Err(DnsError::Domain(opts.cluster_domain));
    }
    let shared: server::SharedIndex = Arc::new(RwLock::new(Arc::new(Index::build(
        &opts.cluster_domain,
        &[],
        &[],
        &[],
    ))));
    let watcher = tokio::spawn(watch::run(
        client.clone(),
        opts.cluster_domain.clone(),
        shared.clone(),
    ));
    tokio::pin!(stop);
    let bound = tokio::select! {
        () = &mut stop => None,
        b = bind(&client, &opts) => Some(b),
    };
    let Some((addr, udp, tcp)) = bound else {
        watcher.abort();
        return Ok(());
    };
    let resolv = tokio::fs::read_to_string(&opts.resolv_conf)
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(path = %opts.resolv_conf.display(), error = %e, "no upstream resolvers");
            String::new()
        });
    let upstreams = forward::upstreams(&resolv, Some(addr));
    tracing::info!(%addr, domain = %opts.cluster_domain, ?upstreams, "cluster DNS listening");
    let mut dns = hickory_server::Server::new(server::Handler::new(shared, upstreams));
    dns.register_socket(udp);
    dns.register_listener(tcp, TCP_TIMEOUT, 64);
    // Only an address pods can reach belongs in the Service.
    let registration = async {
        if addr.ip().is_loopback() {
            stop.await;
            Ok(())
        } else {
            register::keep(client.clone(), &opts.node_name, addr, stop).await
        }
    };
    let result = registration.await;
    if let Err(e) = dns.shutdown_gracefully().await {
        tracing::debug!(error = %e, "stopping the DNS server");
    }
    watcher.abort();
    tracing::info!("cluster DNS stopped");
    Ok(result?)
}

/// Binds UDP and TCP at the configured address, waiting for the node's pod network when the
/// address is the bridge's (binding fails until the bridge has it).
async fn bind(
    client: &kube::Client,
    opts: &DnsOptions,
) -> (SocketAddr, tokio::net::UdpSocket, tokio::net::TcpListener) {
    let mut logged = false;
    loop {
        let addr = match &opts.listen {
            Listen::Addr(a) => Some(*a),
            Listen::PodGateway(port) => node_gateway(client, &opts.node_name)
                .await
                .map(|ip| SocketAddr::new(IpAddr::V4(ip), *port)),
        };
        if let Some(addr) = addr {
            match (
                tokio::net::UdpSocket::bind(addr).await,
                tokio::net::TcpListener::bind(addr).await,
            ) {
                (Ok(udp), Ok(tcp)) => return (addr, udp, tcp),
                (Err(e), _) | (_, Err(e)) if !logged => {
                    tracing::info!(%addr, error = %e, "cluster DNS waiting to bind");
                    logged = true;
                }
                _ => {}
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The node's bridge address: the first address of its pod subnet, once it has one.
async fn node_gateway(client: &kube::Client, node: &str) -> Option<std::net::Ipv4Addr> {
    let nodes: Api<Node> = Api::all(client.clone());
    let cidr = nodes.get_opt(node).await.ok()??.spec?.pod_cidr?;
    rudder_net::cidr::gateway(cidr.parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains() {
        for (d, ok) in [
            ("cluster.local", true),
            ("cluster.local.", true),
            ("corp-1.example", true),
            ("", false),
            ("a..b", false),
            ("-a.b", false),
            ("a_b.c", false),
        ] {
            assert_eq!(valid_domain(d), ok, "{d}");
        }
    }
}
