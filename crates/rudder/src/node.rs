//! Running a node agent on the embedded runtime or a CRI runtime (containerd): what
//! `rudder server` does in-process and `rudder agent` does on another machine, from the same
//! flags.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

/// The node's flags, shared by `rudder server` and `rudder agent`.
#[derive(Args, Debug, Clone)]
pub struct NodeArgs {
    /// Name of this machine's Node (default: the host name).
    #[arg(long)]
    pub node_name: Option<String>,
    /// Most pods the node accepts.
    #[arg(long, default_value_t = 110)]
    pub max_pods: u32,
    /// Port of the node agent's HTTPS endpoint (what `kubectl logs`, `exec` and `port-forward`
    /// go through).
    #[arg(long, default_value_t = 10250)]
    pub kubelet_port: u16,
    /// Name of the node's pod bridge.
    #[arg(long, default_value = "rudder0")]
    pub pod_bridge: String,
    /// Run pods without pod networking (no bridge; pods have loopback only and no IP).
    #[arg(long)]
    pub disable_pod_network: bool,
    /// Run pods on an external CRI runtime at this endpoint
    /// (`unix:///run/containerd/containerd.sock`) instead of the embedded runtime.
    #[arg(long)]
    pub container_runtime_endpoint: Option<String>,
    /// With `--container-runtime-endpoint`: the CNI config directory of the runtime, where the
    /// agent writes the pod network's config (bridge + host-local on the node's pod subnet).
    #[arg(long, default_value = "/etc/cni/net.d")]
    pub cni_conf_dir: std::path::PathBuf,
    /// Do not run the service proxy (ClusterIP and NodePort rules in nftables).
    #[arg(long)]
    pub disable_proxy: bool,
    /// The nftables table (family `ip`) the service proxy owns; removed when it stops.
    #[arg(long, default_value = "rudder")]
    pub proxy_table: String,
    /// Do not enforce NetworkPolicies on this node's pods.
    #[arg(long)]
    pub disable_network_policy: bool,
    /// The nftables table (family `inet`) the NetworkPolicy enforcer owns (default:
    /// `<proxy-table>-netpol`); removed when it stops.
    #[arg(long)]
    pub network_policy_table: Option<String>,
    /// Do not run the cluster DNS server on this node.
    #[arg(long)]
    pub disable_dns: bool,
    /// The cluster domain (`<svc>.<ns>.svc.<domain>`).
    #[arg(long, default_value = rudder_dns::DEFAULT_CLUSTER_DOMAIN)]
    pub cluster_domain: String,
    /// The nameserver written into pods' resolv.conf (default: the `kube-system/kube-dns`
    /// Service's ClusterIP).
    #[arg(long)]
    pub cluster_dns: Option<std::net::IpAddr>,
    /// Where this node's DNS server listens, UDP and TCP (default: the node's pod bridge
    /// address, port 53).
    #[arg(long)]
    pub dns_listen: Option<std::net::SocketAddr>,
    /// The node's resolv.conf: upstream resolvers of the DNS server, and what pods with
    /// `dnsPolicy: Default` get.
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: std::path::PathBuf,
    /// How long the logs of a deleted pod stay on the node, readable through
    /// `/api/v1/nodes/NODE/proxy/logs/pods/` (Go duration: `1h`, `10m`; `0s` removes them at
    /// the next collection).
    #[arg(long, default_value = "1h", value_parser = crate::server::parse_duration)]
    pub pod_logs_retention: std::time::Duration,
}

impl NodeArgs {
    /// The Node's name.
    pub fn name(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(rudder_node::machine::hostname)
    }
}

/// A client with the credentials of `kubeconfig`.
pub async fn client(kubeconfig: &Path) -> Result<kube::Client> {
    client_of(kubeconfig, &[]).await
}

/// A client with the credentials of `kubeconfig`, talking to `servers` (failing over between
/// them, [`crate::failover`]) instead of the kubeconfig's server when any are given.
pub async fn client_of(kubeconfig: &Path, servers: &[String]) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).context("reading the kubeconfig")?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .context("client configuration")?;
    crate::failover::client(config, servers)
}

/// Starts the node agent as the client of `kubeconfig` (at `servers` when any are given),
/// serving its endpoint with
/// `endpoint_tls`, keeping its state in `data_dir`, and the service proxy beside it (which
/// treats `cluster_cidr`, or the node's pod subnet when `None`, as the pod range). Runs until
/// `stop` fires.
pub async fn start(
    args: &NodeArgs,
    data_dir: &Path,
    kubeconfig: &Path,
    servers: &[String],
    endpoint_tls: Arc<rustls::ServerConfig>,
    cluster_cidr: Option<ipnet::Ipv4Net>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<tokio::task::JoinHandle<()>> {
    let client = client_of(kubeconfig, servers).await?;
    let proxy = (!args.disable_proxy).then(|| {
        start_proxy(
            client.clone(),
            rudder_net::proxy::ProxyOptions {
                node_name: args.name(),
                table: args.proxy_table.clone(),
                cluster_cidr,
            },
        )
    });
    // Policies filter pod traffic, so they need pods on a network.
    let policy = (!args.disable_network_policy && !args.disable_pod_network).then(|| {
        let client = client.clone();
        let opts = rudder_net::policy::PolicyOptions {
            node_name: args.name(),
            table: args
                .network_policy_table
                .clone()
                .unwrap_or_else(|| format!("{}-netpol", args.proxy_table)),
        };
        spawn_stoppable("network policy enforcer", move |stop| {
            rudder_net::policy::run(client, opts, stop)
        })
    });
    // Routes to the other nodes' pods belong with the pod network.
    let routes = (!args.disable_pod_network).then(|| {
        let client = client.clone();
        let opts = rudder_net::routes::RouteOptions {
            node_name: args.name(),
        };
        spawn_stoppable("routes to other nodes", move |stop| {
            rudder_net::routes::run(client, opts, stop)
        })
    });
    let dns = (!args.disable_dns).then(|| {
        start_dns(
            client.clone(),
            rudder_dns::DnsOptions {
                node_name: args.name(),
                cluster_domain: args.cluster_domain.clone(),
                listen: args
                    .dns_listen
                    .map_or(rudder_dns::Listen::PodGateway(53), rudder_dns::Listen::Addr),
                resolv_conf: args.resolv_conf.clone(),
            },
        )
    });
    let node = rudder_node::node_object::NodeOptions {
        name: args.name(),
        max_pods: args.max_pods,
        labels: Default::default(),
        kubelet_port: args.kubelet_port,
    };
    let mut agent_config = rudder_node::AgentConfig::new(node, data_dir.join("agent"));
    agent_config.kubelet_tls = Some(endpoint_tls);
    agent_config.resolv_conf = args.resolv_conf.clone();
    agent_config.pod_logs_retention = args.pod_logs_retention;
    agent_config.cluster_dns =
        cluster_dns(&client, args)
            .await
            .map(|ip| rudder_node::pod_dns::ClusterDns {
                nameservers: vec![ip.to_string()],
                domain: args.cluster_domain.trim_end_matches('.').to_owned(),
            });
    agent_config.network = (!args.disable_pod_network).then(|| rudder_net::NetworkOptions {
        bridge: args.pod_bridge.clone(),
        state_dir: data_dir.join("agent/network"),
    });
    let (runtime, images) = match &args.container_runtime_endpoint {
        Some(endpoint) => {
            // containerd attaches sandboxes to the network through CNI: the agent only writes
            // the config for its bridge and subnet.
            if agent_config.network.is_some() {
                agent_config.cni_conf_dir = Some(args.cni_conf_dir.clone());
            }
            cri_runtime(endpoint, data_dir).await?
        }
        None => embedded_runtime(data_dir)?,
    };
    tracing::info!(runtime = %runtime.name(), "container runtime");
    let agent = rudder_node::Agent::new(client, agent_config)
        .context("node agent")?
        .with_runtime(runtime, images);
    tracing::info!(node = %agent.node_name(), "starting the node agent");
    Ok(tokio::spawn(async move {
        if let Err(e) = agent
            .run(async {
                let _ = stop.await;
            })
            .await
        {
            tracing::error!(error = %e, "node agent stopped");
        }
        // The proxy removes its table on the way out.
        if let Some((tx, task)) = proxy {
            let _ = tx.send(());
            let _ = task.await;
        }
        for (tx, task) in [dns, routes, policy].into_iter().flatten() {
            let _ = tx.send(());
            let _ = task.await;
        }
    }))
}

/// Spawns `work(stop)`, logging its error as `what`; returns its stop switch and task.
fn spawn_stoppable<F, E>(
    what: &'static str,
    work: impl FnOnce(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) -> F,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)
where
    F: std::future::Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display,
{
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = Box::pin(async move {
        let _ = rx.await;
    });
    let work = work(stop);
    let task = tokio::spawn(async move {
        if let Err(e) = work.await {
            tracing::error!(error = %e, "{what} stopped");
        }
    });
    (tx, task)
}

/// Starts the service proxy; returns its stop switch and task.
fn start_proxy(
    client: kube::Client,
    opts: rudder_net::proxy::ProxyOptions,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        if let Err(e) = rudder_net::proxy::run(client, opts, stop).await {
            tracing::error!(error = %e, "service proxy stopped");
        }
    });
    (tx, task)
}

/// The nameserver for pods: `--cluster-dns`, else the `kube-dns` Service's ClusterIP (the API
/// server creates it at start-up; a few tries cover an API server still coming up).
async fn cluster_dns(client: &kube::Client, args: &NodeArgs) -> Option<std::net::IpAddr> {
    if let Some(ip) = args.cluster_dns {
        return Some(ip);
    }
    for _ in 0..5 {
        match rudder_dns::cluster_dns_address(client.clone()).await {
            Ok(Some(ip)) => return Some(ip),
            Ok(None) => break,
            Err(e) => tracing::debug!(error = %e, "reading the kube-dns Service"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tracing::warn!(
        "no cluster DNS address (no kube-system/kube-dns Service); pods get the node's resolvers"
    );
    None
}

/// Starts the cluster DNS server; returns its stop switch and task.
fn start_dns(
    client: kube::Client,
    opts: rudder_dns::DnsOptions,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        if let Err(e) = rudder_dns::run(client, opts, stop).await {
            tracing::error!(error = %e, "cluster DNS stopped");
        }
    });
    (tx, task)
}

/// A pod runtime and the image service its containers come from.
type PodRuntime = (
    Arc<dyn rudder_runtime::ContainerRuntime>,
    Arc<dyn rudder_runtime::ImageService>,
);

/// The embedded runtime over `<data-dir>/containers`, with rudder's image store.
fn embedded_runtime(data_dir: &Path) -> Result<PodRuntime> {
    let images = crate::image::store(data_dir)?;
    let runtime = rudder_runtime::embedded::EmbeddedRuntime::new(
        rudder_runtime::embedded::RuntimeOptions {
            root: data_dir.join("containers"),
            shim: rudder_runtime::embedded::ShimCommand {
                program: std::env::current_exe().context("locating the rudder binary")?,
                args: vec!["shim".into()],
            },
            cgroup_parent: "rudder".into(),
        },
        images.clone(),
    )
    .context("container runtime")?;
    Ok((Arc::new(runtime), Arc::new(images)))
}

/// A CRI runtime (containerd) at `endpoint`, which also holds the images. Pod cgroups go under
/// `rudder/` as with the embedded runtime.
async fn cri_runtime(endpoint: &str, data_dir: &Path) -> Result<PodRuntime> {
    let cri = Arc::new(
        rudder_runtime::cri::CriRuntime::connect(rudder_runtime::cri::CriOptions {
            endpoint: endpoint.to_owned(),
            cgroup_root: "rudder".into(),
            log_root: data_dir.join("agent/cri-logs"),
        })
        .await
        .with_context(|| format!("container runtime at {endpoint}"))?,
    );
    Ok((cri.clone(), cri))
}
