//! The agent's side of pod networking: once the control plane has given the node a pod subnet
//! (`spec.podCIDR`), the bridge goes up; each pod's sandbox then gets an address and `eth0`
//! before its containers start, and gives them back when it is removed.
//!
//! With a CRI runtime the runtime attaches the sandbox itself (containerd runs CNI): the agent
//! writes a CNI config for the same bridge and subnet (bridge + host-local) and takes the address
//! the runtime reports (ADR 0021).

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
    cni_conf_dir: Option<std::path::PathBuf>,
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
                    if let Some(dir) = &cni_conf_dir
                        && let Err(e) = write_cni_config(dir, &opts, subnet).await
                    {
                        tracing::warn!(dir = %dir.display(), error = %e, "writing the CNI config; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
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
    // The runtime set the pod's network up (CRI + CNI): its address is the pod's.
    if let Some(ip) = status.ip {
        return Ok(Some(ip));
    }
    // Only a CRI host-network sandbox is Ready without a namespace of its own.
    let Some(netns) = status.netns_path else {
        return if status.state == rudder_runtime::SandboxState::Ready {
            Ok(Some(shared.host_ip.clone()))
        } else {
            Err("the pod's sandbox has no network namespace".to_owned())
        };
    };
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

/// The CNI config list (bridge + host-local) for a CRI runtime: the agent's bridge and the
/// node's subnet, so pods of either runtime sit on the same network. The gateway is host-local's
/// default (the subnet's first address), which is the address the agent puts on the bridge.
pub fn cni_config(opts: &rudder_net::NetworkOptions, subnet: ipnet::Ipv4Net) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "rudder",
        "plugins": [{
            "type": "bridge",
            "bridge": opts.bridge,
            "isGateway": true,
            // The service proxy masquerades what leaves the cluster range.
            "ipMasq": false,
            // A pod reaching itself through a Service comes back on the same port.
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": subnet.trunc().to_string()}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": opts.state_dir.join("cni"),
            },
        }],
    })
}

/// Writes [`cni_config`] as `<dir>/10-rudder.conflist`, atomically (the runtime watches the
/// directory and must never read half a file).
async fn write_cni_config(
    dir: &std::path::Path,
    opts: &rudder_net::NetworkOptions,
    subnet: ipnet::Ipv4Net,
) -> std::io::Result<()> {
    tokio::fs::create_dir_all(dir).await?;
    let tmp = dir.join(".10-rudder.conflist.tmp");
    let text =
        serde_json::to_vec_pretty(&cni_config(opts, subnet)).map_err(std::io::Error::other)?;
    tokio::fs::write(&tmp, text).await?;
    tokio::fs::rename(&tmp, dir.join("10-rudder.conflist")).await
}

#[cfg(test)]
mod tests {
    use super::cni_config;

    #[test]
    fn the_cni_config_is_the_agents_bridge_and_subnet() {
        let opts = rudder_net::NetworkOptions {
            bridge: "rudder0".into(),
            state_dir: "/var/lib/rudder/agent/network".into(),
        };
        let c = cni_config(&opts, "10.42.3.0/24".parse().expect("net"));
        let p = &c["plugins"][0];
        assert_eq!(p["type"], "bridge");
        assert_eq!(p["bridge"], "rudder0");
        assert_eq!(p["ipMasq"], false);
        assert_eq!(p["ipam"]["ranges"][0][0]["subnet"], "10.42.3.0/24");
        assert_eq!(p["ipam"]["dataDir"], "/var/lib/rudder/agent/network/cni");
    }
}
