//! The service proxy, kube-proxy's role in nftables: watches Services and EndpointSlices,
//! computes the table this node should have ([`model::desired`], pure), and changes the kernel's
//! copy by the difference to what it applied last ([`ruleset::diff`]) through `nft -f -`.
//! One table per proxy ([`ProxyOptions::table`]), deleted on a clean stop.

pub mod model;
mod nft;
pub mod ruleset;

use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::Notify;

pub use model::NodeInfo;
pub use ruleset::Ruleset;

/// Shortest time between two syncs: a burst of changes (a Deployment scaling) becomes one
/// transaction, as upstream's `minSyncPeriod`.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// Wait before retrying after `nft` failed.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// What can go wrong running the proxy.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The `nft` program could not be started (Debian package `nftables`).
    #[error("running nft (is the nftables package installed?): {0}")]
    NftMissing(std::io::Error),
    /// `nft` refused a script.
    #[error("nft: {0}")]
    Nft(String),
    /// The table name is not one nft accepts.
    #[error("invalid table name {0:?}: letters, digits, '-' and '_', starting with a letter")]
    TableName(String),
}

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

fn valid_table(name: &str) -> bool {
    name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Runs the proxy until `stop` resolves, then deletes its table.
pub async fn run(
    client: kube::Client,
    opts: ProxyOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), ProxyError> {
    if !valid_table(&opts.table) {
        return Err(ProxyError::TableName(opts.table));
    }
    // Fails early, with a clear message, when nft is missing.
    tokio::task::spawn_blocking({
        let table = opts.table.clone();
        move || nft::delete_table(&table)
    })
    .await
    .map_err(|e| ProxyError::Nft(e.to_string()))??;
    nft::kernel_settings();
    tracing::info!(table = %opts.table, "service proxy starting");
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
    let work = sync_loop(&opts, &services.0, &slices.0, &nodes.0, &changed);
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {}
        () = work => {}
    }
    for task in [services.1, slices.1, nodes.1] {
        task.abort();
    }
    let table = opts.table.clone();
    let removed = tokio::task::spawn_blocking(move || nft::delete_table(&table)).await;
    match removed {
        Ok(Ok(())) => tracing::info!(table = %opts.table, "service proxy stopped, table removed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "removing the proxy's table"),
        Err(e) => tracing::warn!(error = %e, "removing the proxy's table"),
    }
    Ok(())
}

async fn sync_loop(
    opts: &ProxyOptions,
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
    // What the kernel holds, as far as this proxy knows; `None` after a failure, so the next
    // sync rewrites the whole table.
    let mut applied: Option<Ruleset> = None;
    let mut waiting_logged = false;
    loop {
        let Some(node) = node_info(opts, nodes) else {
            if !waiting_logged {
                tracing::info!("service proxy waiting for the node's pod CIDR");
                waiting_logged = true;
            }
            changed.notified().await;
            continue;
        };
        let svcs: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
        let eps: Vec<EndpointSlice> = slices.state().iter().map(|s| (**s).clone()).collect();
        let want = model::desired(&svcs, &eps, &node);
        let script = match &applied {
            Some(old) => ruleset::diff(&opts.table, old, &want),
            None => ruleset::full(&opts.table, &want),
        };
        let first = applied.is_none();
        if script.is_empty() {
            changed.notified().await;
            tokio::time::sleep(MIN_SYNC_INTERVAL).await;
            continue;
        }
        let result = tokio::task::spawn_blocking(move || nft::apply(&script)).await;
        match result {
            Ok(Ok(())) => {
                let services = want.maps["service-ips"].elements.len();
                if first {
                    tracing::info!(table = %opts.table, services, "service proxy table written");
                } else {
                    tracing::debug!(services, "service proxy table updated");
                }
                applied = Some(want);
                changed.notified().await;
                tokio::time::sleep(MIN_SYNC_INTERVAL).await;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "service proxy sync failed; rewriting the table next");
                applied = None;
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "service proxy sync task");
                applied = None;
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
        }
    }
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
            let _ = nft::delete_table(&self.0);
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
        let table = format!("rudder-unit-{}", std::process::id());
        let _guard = TableGuard(table.clone());
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
            .args(["list", "table", "ip", &table])
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

    #[test]
    fn table_names() {
        for (name, ok) in [
            ("rudder", true),
            ("rudder-40123", true),
            ("a_b", true),
            ("1abc", false),
            ("", false),
            ("bad name", false),
            ("x;flush ruleset", false),
        ] {
            assert_eq!(valid_table(name), ok, "{name}");
        }
    }
}
