//! `--simulate-nodes`: simulated ("hollow") nodes in the server's process, as clients of its
//! API with the admin identity, for scale tests and benchmarks (ADR 0014).

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;

/// The simulated nodes' flags.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Run this many simulated nodes: real Nodes, Leases and pod lifecycles through the API,
    /// no containers (pods get fake addresses from each node's pod subnet).
    #[arg(long, default_value_t = 0)]
    pub simulate_nodes: usize,
    /// Simulated nodes are named `<prefix>-<i>` (default: the host name).
    #[arg(long)]
    pub simulate_prefix: Option<String>,
    /// CPUs of each simulated node.
    #[arg(long, default_value_t = 32)]
    pub simulate_cpu: u64,
    /// Memory of each simulated node, as a Kubernetes quantity.
    #[arg(long, default_value = "256Gi", value_parser = parse_bytes)]
    pub simulate_memory: u64,
    /// Most pods each simulated node accepts.
    #[arg(long, default_value_t = 110)]
    pub simulate_pods: u32,
}

fn parse_bytes(text: &str) -> Result<u64, String> {
    rudder_machinery::quantity::to_units(text)
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("{text:?} is not a memory quantity (e.g. 256Gi)"))
}

/// Starts the simulated nodes, if any were asked for, as clients of `kubeconfig`; they run
/// until `stop` fires.
pub async fn start(
    args: &SimulateArgs,
    kubeconfig: &Path,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    if args.simulate_nodes == 0 {
        return Ok(None);
    }
    let client = crate::node::client(kubeconfig)
        .await
        .context("simulated nodes' client")?;
    let prefix = args
        .simulate_prefix
        .clone()
        .unwrap_or_else(rudder_node::machine::hostname);
    let mut opts = rudder_node::simulated::SimulationOptions::new(args.simulate_nodes, &prefix);
    opts.cpus = args.simulate_cpu;
    opts.memory_bytes = args.simulate_memory;
    opts.max_pods = args.simulate_pods;
    Ok(Some(tokio::spawn(rudder_node::simulated::run(
        client,
        opts,
        async {
            let _ = stop.await;
        },
    ))))
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_quantities() {
        assert_eq!(super::parse_bytes("256Gi"), Ok(256 << 30));
        assert_eq!(super::parse_bytes("1G"), Ok(1_000_000_000));
        assert!(super::parse_bytes("lots").is_err());
        assert!(super::parse_bytes("-1Gi").is_err());
    }
}
