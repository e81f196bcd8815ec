//! `rudder server`: data directory, certificates, store, API server, kubeconfig; clean shutdown
//! on SIGTERM or Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use rudder_store::Store;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The embedded store in the data directory (one machine, no set-up).
    Embedded,
    /// An etcd v3 cluster (several servers).
    Etcd,
}

#[derive(Args, Debug)]
pub struct ServerArgs {
    /// Directory for the store, certificates and kubeconfig.
    #[arg(long, default_value = ".rudder", env = "RUDDER_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address to bind the API server to.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// HTTPS port of the API server.
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// Which store to keep cluster state in.
    #[arg(long, value_enum, default_value = "embedded")]
    pub store: StoreKind,
    /// etcd client URLs, comma-separated (with `--store etcd`).
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// Another server's `pki/` directory (or a copy of it) to take the cluster's CA,
    /// service-account signing key and admin certificate from at first start: how further
    /// servers of a highly available cluster (same `--store etcd`) share its identity. Each
    /// server still makes a serving certificate of its own.
    #[arg(long)]
    pub pki_from: Option<PathBuf>,
    /// Extra names or IPs for the serving certificate.
    #[arg(long, value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Seconds between compactions of store history.
    #[arg(long, default_value_t = 300)]
    pub compaction_interval: u64,
    /// How long Events are kept after their last update (Go duration: `1h`, `10m`).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub event_ttl: Duration,
    /// Do not run a node agent in this process (a control-plane-only server).
    #[arg(long)]
    pub disable_agent: bool,
    /// The cluster's pod address range; each node gets a subnet of it (`spec.podCIDR`).
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: ipnet::Ipv4Net,
    /// The Service address range: ClusterIPs are allocated from it; its first address is the
    /// `kubernetes` Service's and its tenth cluster DNS's.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cluster_ip_range: ipnet::Ipv4Net,
    /// Address the `kubernetes` Service's endpoints point at (default: the bind address, or
    /// this machine's address on its default route when binding to all or loopback addresses).
    #[arg(long)]
    pub advertise_address: Option<std::net::Ipv4Addr>,
    /// Prefix length of each node's pod subnet.
    #[arg(long, default_value_t = 24)]
    pub node_cidr_mask_size: u8,
    /// Do not run the controller manager in this process.
    #[arg(long)]
    pub disable_controllers: bool,
    /// Controllers to run, upstream's syntax: `*` (the default set), `name`, `-name`.
    #[arg(long, value_delimiter = ',', default_value = "*")]
    pub controllers: Vec<String>,
    /// Terminated pods kept before the pod garbage collector deletes the oldest (0: keep all).
    #[arg(long, default_value_t = rudder_controllers::podgc::DEFAULT_TERMINATED_POD_THRESHOLD)]
    pub terminated_pod_gc_threshold: usize,
    /// Directory the local-path provisioner creates volumes in (on the node running the pod).
    #[arg(long, default_value = rudder_controllers::volume::LOCAL_PATH_DIR)]
    pub local_path_dir: PathBuf,
    /// How often each HorizontalPodAutoscaler is evaluated (Go duration: `15s`, `1m`).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub horizontal_pod_autoscaler_sync_period: std::time::Duration,
    /// How often the API server scrapes each node's resource metrics for `kubectl top`
    /// (metrics-server's `--metric-resolution`; Go duration).
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub metric_resolution: std::time::Duration,
    /// Do not run the scheduler in this process.
    #[arg(long)]
    pub disable_scheduler: bool,
    /// KubeSchedulerConfiguration file: profiles, plugins enabled/disabled, score weights.
    #[arg(long)]
    pub scheduler_config: Option<PathBuf>,
    /// Do not run the Ingress controller in this process.
    #[arg(long)]
    pub disable_ingress: bool,
    /// Port the Ingress controller serves plain HTTP on (at the bind address).
    #[arg(long, default_value_t = 80)]
    pub ingress_http_port: u16,
    /// Port the Ingress controller serves HTTPS on (at the bind address).
    #[arg(long, default_value_t = 443)]
    pub ingress_https_port: u16,
    #[command(flatten)]
    pub node: crate::node::NodeArgs,
    #[command(flatten)]
    pub simulate: crate::simulate::SimulateArgs,
    #[command(flatten)]
    pub auth: crate::auth::AuthArgs,
    #[command(flatten)]
    pub security: crate::security::SecurityArgs,
    #[command(flatten)]
    pub limits: crate::limits::LimitArgs,
}

pub async fn run(args: ServerArgs) -> Result<()> {
    rudder_apiserver::service_range::check(args.service_cluster_ip_range, Some(args.cluster_cidr))
        .context("--service-cluster-ip-range")?;
    let data_dir = args.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let data_dir = data_dir
        .canonicalize()
        .with_context(|| format!("resolving {}", data_dir.display()))?;
    tracing::info!(dir = %data_dir.display(), "[1/5] data directory ready");

    let pki_opts = rudder_pki::PkiOptions {
        extra_sans: args.tls_san.clone(),
        ..Default::default()
    };
    if let Some(from) = &args.pki_from {
        let seeded = rudder_pki::seed_from(from, &data_dir.join("pki"))
            .with_context(|| format!("--pki-from {}", from.display()))?;
        tracing::info!(from = %from.display(), ?seeded, "cluster identity shared");
    }
    let pki = Arc::new(
        rudder_pki::Pki::load_or_create(&data_dir.join("pki"), &pki_opts)
            .context("certificates")?,
    );
    tracing::info!("[2/5] certificates ready");

    // The embedded store is kept by its own type too, to fold its log into its file on the way out.
    let mut embedded = None;
    let store: Arc<dyn Store> = match args.store {
        StoreKind::Embedded => {
            let opened = Arc::new(
                rudder_store_embedded::EmbeddedStore::open(crate::snapshot::store_file(&data_dir))
                    .context("opening the embedded store")?,
            );
            embedded = Some(opened.clone());
            opened
        }
        StoreKind::Etcd => {
            anyhow::ensure!(
                !args.etcd_endpoints.is_empty(),
                "--store etcd needs --etcd-endpoints"
            );
            Arc::new(
                rudder_store_etcd::EtcdStore::connect(
                    &args.etcd_endpoints,
                    rudder_store_etcd::EtcdOptions::default(),
                )
                .await
                .context("connecting to etcd")?,
            )
        }
    };
    let revision = store
        .current_revision()
        .await
        .context("reading the store")?;
    tracing::info!(store = ?args.store, revision, "[3/5] store open");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = rudder_apiserver::Config {
        listen: SocketAddr::new(args.bind_address, args.port),
        advertise: format!("{}:{}", advertised_host(args.bind_address), args.port),
        tls: pki.server_config().context("TLS configuration")?,
        compaction_interval: Duration::from_secs(args.compaction_interval.max(1)),
        event_ttl: args.event_ttl,
        kubelet_client: Some(kubelet_client(&pki)?),
        auth: crate::auth::options(&args.auth, &pki)?,
        service_cluster_ip_range: args.service_cluster_ip_range,
        kubernetes_endpoint: SocketAddr::new(
            kubernetes_endpoint_ip(args.advertise_address, args.bind_address),
            args.port,
        ),
        metric_resolution: args.metric_resolution,
        encryption: crate::security::encryption(&args.security)?,
        audit: crate::security::audit(&args.security)?,
        limits: args.limits.limits(),
    };
    let running = rudder_apiserver::start(store, config, async {
        let _ = stop_rx.await;
    })
    .await
    .context("starting the API server")?;
    tracing::info!(addr = %running.addr, "[4/5] API server serving");

    let kubeconfig = data_dir.join("kubeconfig");
    let url = format!(
        "https://{}:{}",
        advertised_host(args.bind_address),
        running.addr.port()
    );
    rudder_pki::kubeconfig::write(&kubeconfig, &url, &pki, "rudder-admin", "rudder")
        .context("writing the kubeconfig")?;
    tracing::info!(path = %kubeconfig.display(), "[5/5] kubeconfig written");
    println!(
        "rudder is running. export KUBECONFIG={}",
        kubeconfig.display()
    );

    let (agent_stop, agent_task) = if args.disable_agent {
        (None, None)
    } else {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = crate::node::start(
            &args.node,
            &data_dir,
            &kubeconfig,
            &[],
            pki.server_config()?,
            Some(args.cluster_cidr),
            rx,
        )
        .await?;
        (Some(tx), Some(task))
    };

    let (simulated_stop, simulated_rx) = tokio::sync::oneshot::channel::<()>();
    let simulated_task =
        crate::simulate::start(&args.simulate, &kubeconfig, &[], simulated_rx).await?;

    // One identity for both Leases: `hostname_<random>`, unique per process, as upstream's.
    let identity = rudder_leader::default_identity();
    tracing::info!(%identity, "leader election identity of the scheduler and controller manager");
    let controllers_stop = if args.disable_controllers {
        None
    } else {
        Some(start_controllers(&args, &kubeconfig, &pki, identity.clone()).await?)
    };

    let scheduler_stop = if args.disable_scheduler {
        None
    } else {
        Some(start_scheduler(&args, &kubeconfig, identity).await?)
    };

    let ingress_stop = if args.disable_ingress {
        None
    } else {
        Some(start_ingress(&args, &kubeconfig).await?)
    };

    wait_for_signal().await;
    if let Some(tx) = ingress_stop {
        let _ = tx.send(());
    }
    if let Some((tx, task)) = scheduler_stop {
        // The scheduler releases its Lease on the way out; the API server must still be up.
        let _ = tx.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    if let Some(tx) = controllers_stop {
        let _ = tx.send(());
    }
    tracing::info!("shutting down");
    if let Some(tx) = agent_stop {
        let _ = tx.send(());
    }
    if let Some(task) = agent_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = simulated_stop.send(());
    if let Some(task) = simulated_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), running.done).await;
    if let Some(store) = embedded
        && let Err(e) = store.checkpoint().await
    {
        // Nothing is lost: the log is replayed at the next start.
        tracing::warn!(error = %e, "could not checkpoint the store on the way out");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Starts the controller manager and the node IPAM, API clients like the agent, while this
/// server holds the `kube-system/kube-controller-manager` Lease. Returns its stop switch.
async fn start_controllers(
    args: &ServerArgs,
    kubeconfig: &std::path::Path,
    pki: &rudder_pki::Pki,
    identity: String,
) -> Result<tokio::sync::oneshot::Sender<()>> {
    let client = crate::node::client(kubeconfig).await?;
    let options = rudder_controllers::Options {
        controllers: args.controllers.clone(),
        // Published as kube-root-ca.crt and written into token Secrets.
        root_ca_pem: Some(pki.ca_cert_pem().to_owned()),
        // The key the API server signs and verifies service-account tokens with.
        service_account_key_pem: Some(pki.service_account_key_pem().0.to_owned()),
        terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
        local_path_dir: args.local_path_dir.clone(),
        hpa_sync_period: args.horizontal_pod_autoscaler_sync_period,
    };
    rudder_controllers::registry::select(&options.controllers).context("--controllers")?;
    let (cidr, mask) = (args.cluster_cidr, args.node_cidr_mask_size);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        // Losing the Lease drops the work: every controller task goes with it.
        let work = || {
            let (client, options) = (client.clone(), options.clone());
            async move {
                let ipam =
                    rudder_net::allocator::run(client.clone(), cidr, mask, std::future::pending());
                let controllers = rudder_controllers::run(client, options, std::future::pending());
                let (_, result) = tokio::join!(ipam, controllers);
                if let Err(e) = result {
                    tracing::error!(error = %e, "controller manager stopped");
                }
            }
        };
        let elected = rudder_leader::run_as_leader(
            client.clone(),
            "kube-system",
            "kube-controller-manager",
            &identity,
            rudder_leader::Timing::default(),
            stop,
            work,
        )
        .await;
        if let Err(e) = elected {
            tracing::error!(error = %e, "controller manager leader election stopped");
        }
    });
    Ok(tx)
}

/// Starts the scheduler (leader-elected through the `kube-system/kube-scheduler` Lease), an API
/// client like the agent. Returns its stop switch.
async fn start_scheduler(
    args: &ServerArgs,
    kubeconfig: &std::path::Path,
    identity: String,
) -> Result<(
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
)> {
    let config = match &args.scheduler_config {
        Some(path) => rudder_scheduler::config::Config::from_file(path)?,
        None => rudder_scheduler::config::Config::default(),
    };
    let client = crate::node::client(kubeconfig).await?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        if let Err(e) = rudder_scheduler::run(client, config, identity, stop).await {
            tracing::error!(error = %e, "scheduler stopped");
        }
    });
    Ok((tx, task))
}

/// Starts the Ingress controller on the bind address, publishing the node's address in Ingress
/// statuses. Returns its stop switch.
async fn start_ingress(
    args: &ServerArgs,
    kubeconfig: &std::path::Path,
) -> Result<tokio::sync::oneshot::Sender<()>> {
    let client = crate::node::client(kubeconfig).await?;
    let opts = rudder_ingress::IngressOptions {
        http: SocketAddr::new(args.bind_address, args.ingress_http_port),
        https: SocketAddr::new(args.bind_address, args.ingress_https_port),
        address: Some(kubernetes_endpoint_ip(
            args.advertise_address,
            args.bind_address,
        )),
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let stop = async {
            let _ = rx.await;
        };
        if let Err(e) = rudder_ingress::run(client, opts, stop).await {
            tracing::error!(error = %e, "ingress controller stopped");
        }
    });
    Ok(tx)
}

/// The API server's TLS to node agents: the admin certificate, HTTP/1.1 only (log streams).
fn kubelet_client(pki: &rudder_pki::Pki) -> Result<Arc<rustls::ClientConfig>> {
    let mut config = (*pki.admin_client_config().context("node client TLS")?).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The address the `kubernetes` Service's endpoints name: the one given, the bind address, or
/// the machine's address (pods cannot reach a loopback address through a Service).
fn kubernetes_endpoint_ip(advertise: Option<std::net::Ipv4Addr>, bind: IpAddr) -> IpAddr {
    if let Some(ip) = advertise {
        return IpAddr::V4(ip);
    }
    if !bind.is_unspecified() && !bind.is_loopback() {
        return bind;
    }
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    rudder_node::machine::default_route_ipv4(&read("/proc/net/route"), &read("/proc/net/fib_trie"))
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(bind)
}

fn advertised_host(bind: IpAddr) -> String {
    if bind.is_unspecified() || bind.is_loopback() {
        "127.0.0.1".to_owned()
    } else {
        match bind {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        }
    }
}

pub(crate) async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// A Go duration flag value (`15s`, `1m30s`), as upstream's flags take them.
pub(crate) fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    rudder_machinery::duration::parse_go_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration (examples: 15s, 1m30s, 500ms)"))
}
