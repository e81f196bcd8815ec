//! The agent's side of pod networking: once the control plane has given the node a pod subnet
//! (`spec.podCIDR`), the bridge goes up; each pod's sandbox then gets an address and `eth0`
//! before its containers start, and gives them back when it is removed.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use rudder_runtime::SandboxId;

use crate::pod_worker::Shared;

/// The node's pod network, set once the node has a pod subnet.
pub type NetworkSlot = tokio::sync::OnceCell<rudder_net::PodNetwork>;

/// Waits for the node's pod subnet, then brings the network up (retrying until it works).
pub(crate) async fn bring_up(
    client: kube::Client,
    node_name: String,
    opts: rudder_net::NetworkOptions,
    slot: Arc<NetworkSlot>,
) {
    let nodes: Api<Node> = Api::all(client);
    let mut waited_long = false;
    let started = std::time::Instant::now();
    loop {
        let subnet = nodes
            .get_opt(&node_name)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.spec?.pod_cidr)
            .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok());
        if let Some(subnet) = subnet {
            match rudder_net::PodNetwork::start(subnet, opts.clone()).await {
                Ok(net) => {
                    let _ = slot.set(net);
                    return;
                }
                Err(e) => tracing::warn!(error = %e, "pod network set-up failed; retrying"),
            }
        } else if !waited_long && started.elapsed() > Duration::from_secs(30) {
            waited_long = true;
            tracing::warn!(
                node = %node_name,
                "the node has no pod subnet yet (spec.podCIDR); pods wait for it"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The pod's address, attaching its sandbox to the network first if needed. `Ok(None)` when
/// the agent runs without pod networking; an error while the network is not up yet.
pub(crate) async fn attach(
    shared: &Shared,
    uid: &str,
    sandbox: &SandboxId,
) -> Result<Option<String>, String> {
    if let Some(sim) = &shared.simulated {
        return sim.attach(uid).map(Some);
    }
    let Some(slot) = &shared.network else {
        return Ok(None);
    };
    let Some(net) = slot.get() else {
        return Err("network is not ready: the node has no pod subnet yet".into());
    };
    let status = shared
        .runtime
        .pod_sandbox_status(sandbox)
        .await
        .map_err(|e| e.to_string())?;
    let netns = status
        .netns_path
        .ok_or_else(|| "the pod's sandbox has no network namespace".to_owned())?;
    let ip = net.attach(uid, &netns).await.map_err(|e| e.to_string())?;
    Ok(Some(ip.to_string()))
}

/// Gives the pod's address back and removes its interface.
pub(crate) async fn detach(shared: &Shared, uid: &str) {
    if let Some(sim) = &shared.simulated {
        sim.detach(uid);
    }
    if let Some(net) = shared.network.as_ref().and_then(|s| s.get())
        && let Err(e) = net.detach(uid).await
    {
        tracing::warn!(pod_uid = %uid, error = %e, "releasing the pod's network");
    }
}
