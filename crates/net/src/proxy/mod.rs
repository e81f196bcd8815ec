//! The service proxy, kube-proxy's role in nftables: watches Services and EndpointSlices,
//! computes the table this node should have ([`model::desired`], pure), and changes the kernel's
//! copy by the difference to what it applied last ([`ruleset::diff`], [`crate::nft::sync`])
//! through `nft -f -`.
//! One table per proxy ([`ProxyOptions::table`]), deleted on a clean stop.

pub mod model;

use std::sync::Arc;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::Notify;

pub use crate::nft::ruleset;
use crate::nft::{self, Table};

pub use model::NodeInfo;
pub use ruleset::Ruleset;

/// What can go wrong running the proxy.
pub type ProxyError = nft::NftError;

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// The node it runs on.
    pub node_name: String,
    /// The nftables table it owns (`ip` family).
    pub table: String,
    /// The cluster's pod range; when `None`, the node's `spec.podCIDR` (upstream's
    /// `--detect-local-mode=NodeCIDR`).
    pub cluster_cidr: Option<Ipv4Net>,
}

/// The proxy's table called `name`.
fn table(name: &str) -> Table<'_> {
    Table::ip(name, "rudder service proxy")
}

/// Runs the proxy until `stop` resolves, then deletes its table.
pub async fn run(
    client: kube::Client,
    opts: ProxyOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ProxyError> {
    let table = table(&opts.table);
    nft::sync::prepare(&table).await?;
    nft::kernel_settings();
    tracing::info!(%table, "service proxy starting");
    let changed = Arc::new(Notify::new());
    let services = crate::reflect::reflect::<Service>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "watch",
    );
    let slices = crate::reflect::reflect::<EndpointSlice>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "watch",
    );
    let nodes = crate::reflect::reflect::<Node>(
        Api::all(client),
        watcher::Config::default().fields(&format!("metadata.name={}", opts.node_name)),
        &changed,
        "watch",
    );
    let work = sync_loop(&opts, &table, &services.0, &slices.0, &nodes.0, &changed);
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {}
        () = work => {}
    }
    for task in [services.1, slices.1, nodes.1] {
        task.abort();
    }
    nft::sync::remove(&table, "service proxy").await;
    Ok(())
}

async fn sync_loop(
    opts: &ProxyOptions,
    table: &Table<'_>,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
    nodes: &Store<Node>,
    changed: &Notify,
) {
    for (what, ready) in [
        ("services", services.wait_until_ready().await.is_ok()),
        ("endpointslices", slices.wait_until_ready().await.is_ok()),
        ("node", nodes.wait_until_ready().await.is_ok()),
    ] {
        if !ready {
            tracing::warn!(what, "proxy watch ended before its first list");
            return;
        }
    }
    tracing::info!("service proxy caches synced");
    nft::sync::keep_in_step(table, "service proxy", changed, || {
        let node = node_info(opts, nodes).ok_or("the node's pod CIDR")?;
        let svcs: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
        let eps: Vec<EndpointSlice> = slices.state().iter().map(|s| (**s).clone()).collect();
        Ok(model::desired(&svcs, &eps, &node))
    })
    .await;
}

fn node_info(opts: &ProxyOptions, nodes: &Store<Node>) -> Option<NodeInfo> {
    let cluster_cidr = opts.cluster_cidr.or_else(|| {
        nodes
            .state()
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(opts.node_name.as_str()))?
            .spec
            .as_ref()?
            .pod_cidr
            .as_deref()?
            .parse()
            .ok()
    })?;
    Some(NodeInfo {
        name: opts.node_name.clone(),
        cluster_cidr,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Deletes the test's table however the test ends.
    struct TableGuard(String);
    impl Drop for TableGuard {
        fn drop(&mut self) {
            let _ = nft::delete_table(&table(&self.0));
        }
    }

    fn objects(ready_b: bool, affinity: bool) -> (Vec<Service>, Vec<EndpointSlice>) {
        let svc = json!({
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"clusterIP": "100.127.255.5", "type": "NodePort",
                "sessionAffinity": if affinity { "ClientIP" } else { "None" },
                "externalTrafficPolicy": "Local",
                "ports": [{"name": "http", "port": 80, "nodePort": 32767}]},
        });
        let empty = json!({
            "metadata": {"name": "empty", "namespace": "ns"},
            "spec": {"clusterIP": "100.127.255.6", "ports": [{"port": 81, "protocol": "UDP"}]},
        });
        let slice = json!({
            "metadata": {"name": "web-1", "namespace": "ns",
                "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}],
            "endpoints": [
                {"addresses": ["10.255.255.2"], "nodeName": "n1"},
                {"addresses": ["10.255.255.3"], "conditions": {"ready": ready_b}},
            ],
        });
        (
            vec![
                serde_json::from_value(svc).expect("svc"),
                serde_json::from_value(empty).expect("svc"),
            ],
            vec![serde_json::from_value(slice).expect("slice")],
        )
    }

    /// The scripts are real nft: written to the kernel, then changed by a diff (root, nft).
    #[test]
    fn nft_accepts_full_and_diff_scripts() {
        let name = format!("rudder-unit-{}", std::process::id());
        let _guard = TableGuard(name.clone());
        let table = table(&name);
        let node = NodeInfo {
            name: "n1".into(),
            cluster_cidr: "10.255.255.0/24".parse().expect("cidr"),
        };
        let (svcs, slices) = objects(true, false);
        let first = model::desired(&svcs, &slices, &node);
        nft::apply(&ruleset::full(&table, &first)).expect("full script");
        let (svcs, slices) = objects(false, true);
        let second = model::desired(&svcs, &slices, &node);
        let script = ruleset::diff(&table, &first, &second);
        assert!(
            !script.contains("add table"),
            "a diff, not a rewrite: {script}"
        );
        nft::apply(&script).unwrap_or_else(|e| panic!("{e}\n{script}"));
        let back = ruleset::diff(&table, &second, &first);
        nft::apply(&back).unwrap_or_else(|e| panic!("{e}\n{back}"));
        let listed = std::process::Command::new("nft")
            .args(["list", "table", "ip", &name])
            .output()
            .expect("nft list");
        let listed = String::from_utf8_lossy(&listed.stdout);
        assert!(listed.contains("10.255.255.3"), "{listed}");
        assert!(
            !listed.contains("aff-"),
            "affinity sets gone again: {listed}"
        );
        nft::delete_table(&table).expect("delete");
        nft::delete_table(&table).expect("deleting a missing table is fine");
    }
}
