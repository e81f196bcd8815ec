//! Running a node agent with the embedded runtime: what `rudder server` does in-process and
//! `rudder agent` does on another machine, from the same flags.

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
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).context("reading the kubeconfig")?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .context("client configuration")?;
    kube::Client::try_from(config).context("API client")
}

/// Starts the node agent as the client of `kubeconfig`, serving its endpoint with
/// `endpoint_tls`, keeping its state in `data_dir`. Runs until `stop` fires.
pub async fn start(
    args: &NodeArgs,
    data_dir: &Path,
    kubeconfig: &Path,
    endpoint_tls: Arc<rustls::ServerConfig>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<tokio::task::JoinHandle<()>> {
    let client = client(kubeconfig).await?;
    let node = rudder_node::node_object::NodeOptions {
        name: args.name(),
        max_pods: args.max_pods,
        labels: Default::default(),
        kubelet_port: args.kubelet_port,
    };
    let mut agent_config = rudder_node::AgentConfig::new(node, data_dir.join("agent"));
    agent_config.kubelet_tls = Some(endpoint_tls);
    agent_config.network = (!args.disable_pod_network).then(|| rudder_net::NetworkOptions {
        bridge: args.pod_bridge.clone(),
        state_dir: data_dir.join("agent/network"),
    });
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
    let agent = rudder_node::Agent::new(client, agent_config)
        .context("node agent")?
        .with_runtime(Arc::new(runtime), Arc::new(images));
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
    }))
}
