//! Simulated ("hollow") nodes for scale tests and benchmarks (ADR 0015): `rudder server
//! --simulate-nodes N` runs them in the server's process with the admin identity, `rudder agent
//! --simulate N --kubeconfig FILE` in a process of their own against any server, with the
//! identity of FILE. Both take the same flags, defined once here.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;

/// The simulated nodes' flags.
#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Run this many simulated nodes: real Nodes, Leases and pod lifecycles through the API,
    /// no containers (pods get fake addresses from each node's pod subnet).
    #[arg(long, alias = "simulate", default_value_t = 0)]
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

/// Starts the simulated nodes, if any were asked for, as clients of `kubeconfig` (at `servers`
/// when any are given); they run until `stop` fires.
pub async fn start(
    args: &SimulateArgs,
    kubeconfig: &Path,
    servers: &[String],
    stop: tokio::sync::oneshot::Receiver<()>,
) -> Result<Option<tokio::task::JoinHandle<()>>> {
    if args.simulate_nodes == 0 {
        return Ok(None);
    }
    let client = crate::node::client_of(kubeconfig, servers)
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

/// What a simulated node does through the API, as (verb, group, resource, subresource,
/// namespace): registering and updating its Node, renewing its Lease, following and updating
/// the pods bound to it, deleting them, recording Events.
const NEEDED: &[(&str, &str, &str, &str, &str)] = &[
    ("create", "", "nodes", "", ""),
    ("patch", "", "nodes", "status", ""),
    (
        "create",
        "coordination.k8s.io",
        "leases",
        "",
        "kube-node-lease",
    ),
    (
        "update",
        "coordination.k8s.io",
        "leases",
        "",
        "kube-node-lease",
    ),
    ("watch", "", "pods", "", ""),
    ("patch", "", "pods", "status", ""),
    ("delete", "", "pods", "", ""),
    ("create", "", "events", "", ""),
];

/// `rudder agent --simulate N`: only the simulated nodes, as clients of `kubeconfig` (at
/// `servers`, failing over between them, when any are given), until SIGTERM or Ctrl-C. Refuses to start unless that identity may do what the nodes do for every
/// node (asked with SelfSubjectAccessReviews), so a node's own credentials fail up front rather
/// than with a Forbidden per node.
pub async fn run_alone(args: &SimulateArgs, kubeconfig: &Path, servers: &[String]) -> Result<()> {
    let client = crate::node::client_of(kubeconfig, servers)
        .await
        .context("simulated nodes' client")?;
    let denied = denied(&client).await?;
    if !denied.is_empty() {
        anyhow::bail!(
            "the identity in {} may not {}: simulated nodes need one allowed to manage every \
             node, lease and pod (the server's admin kubeconfig, or a ClusterRole granting these)",
            kubeconfig.display(),
            denied.join(", ")
        );
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = start(args, kubeconfig, servers, rx).await?;
    tracing::info!(nodes = args.simulate_nodes, "simulated nodes running");
    crate::server::wait_for_signal().await;
    let _ = tx.send(());
    if let Some(task) = task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    }
    Ok(())
}

/// The needed permissions the client's identity lacks, as `verb resource` texts.
async fn denied(client: &kube::Client) -> Result<Vec<String>> {
    use k8s_openapi::api::authorization::v1::SelfSubjectAccessReview;
    let api: kube::Api<SelfSubjectAccessReview> = kube::Api::all(client.clone());
    let mut denied = Vec::new();
    for &(verb, group, resource, subresource, namespace) in NEEDED {
        let review: SelfSubjectAccessReview = serde_json::from_value(serde_json::json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": {
                "verb": verb, "group": group, "resource": resource,
                "subresource": subresource, "namespace": namespace,
            }},
        }))?;
        let answer = api
            .create(&Default::default(), &review)
            .await
            .context("asking the server what the kubeconfig's identity may do")?;
        if !answer.status.is_some_and(|s| s.allowed) {
            let what = match subresource {
                "" => resource.to_owned(),
                sub => format!("{resource}/{sub}"),
            };
            denied.push(format!("{verb} {what}"));
        }
    }
    Ok(denied)
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
