//! NetworkPolicy enforcement (`networking.k8s.io/v1`) for the pods of one node, in nftables
//! (ADR 0018): watches Pods, Namespaces, NetworkPolicies and cluster DNS's EndpointSlices,
//! computes per local pod what it may receive and send ([`model::desired`], pure), turns that
//! into an `inet` table ([`rules::ruleset`], pure) and keeps the kernel's table in step by
//! differences ([`crate::nft::sync`]). One table per enforcer ([`PolicyOptions::table`]),
//! deleted on a clean stop.
//!
//! Packets between pods of one bridge reach the `inet` hooks through `br_netfilter`
//! (`net.bridge.bridge-nf-call-iptables=1`, which the service proxy needs too); routed traffic
//! (other nodes, the outside, Services after their DNAT) passes `forward` anyway.

pub mod model;
pub mod rules;

#[cfg(test)]
mod model_tests;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use tokio::sync::Notify;

use crate::nft::{self, NftError, Table};

/// What can go wrong running the enforcer.
pub type PolicyError = NftError;

/// How the enforcer runs.
#[derive(Clone, Debug)]
pub struct PolicyOptions {
    /// The node whose pods it enforces policies for.
    pub node_name: String,
    /// The nftables table it owns (`inet` family).
    pub table: String,
}

/// The enforcer's table called `name`.
pub fn table(name: &str) -> Table<'_> {
    Table::inet(name, "rudder network policy")
}

/// Runs the enforcer until `stop` resolves, then deletes its table.
pub async fn run(
    client: kube::Client,
    opts: PolicyOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), PolicyError> {
    let table = table(&opts.table);
    nft::sync::prepare(&table).await?;
    if !nft::kernel_settings() {
        tracing::error!(
            "bridged traffic skips netfilter: NetworkPolicies are not enforced between pods of this node's bridge"
        );
    }
    tracing::info!(%table, "network policy enforcer starting");
    let changed = Arc::new(Notify::new());
    let pods = crate::reflect::reflect::<Pod>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "watch",
    );
    let namespaces = crate::reflect::reflect::<Namespace>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "watch",
    );
    let policies = crate::reflect::reflect::<NetworkPolicy>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "watch",
    );
    let dns = crate::reflect::reflect::<EndpointSlice>(
        Api::namespaced(client, model::DNS_NAMESPACE),
        watcher::Config::default().labels(&format!(
            "kubernetes.io/service-name={}",
            model::DNS_SERVICE
        )),
        &changed,
        "watch",
    );
    let stores = Stores {
        pods: pods.0,
        namespaces: namespaces.0,
        policies: policies.0,
        dns: dns.0,
    };
    let work = sync_loop(&opts, &table, &stores, &changed);
    tokio::pin!(stop);
    tokio::select! {
        () = &mut stop => {}
        () = work => {}
    }
    for task in [pods.1, namespaces.1, policies.1, dns.1] {
        task.abort();
    }
    nft::sync::remove(&table, "network policy enforcer").await;
    Ok(())
}

struct Stores {
    pods: Store<Pod>,
    namespaces: Store<Namespace>,
    policies: Store<NetworkPolicy>,
    dns: Store<EndpointSlice>,
}

fn cloned<K>(store: &Store<K>) -> Vec<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + 'static,
{
    store.state().iter().map(|o| (**o).clone()).collect()
}

async fn sync_loop(opts: &PolicyOptions, table: &Table<'_>, stores: &Stores, changed: &Notify) {
    for (what, ready) in [
        ("pods", stores.pods.wait_until_ready().await.is_ok()),
        (
            "namespaces",
            stores.namespaces.wait_until_ready().await.is_ok(),
        ),
        (
            "networkpolicies",
            stores.policies.wait_until_ready().await.is_ok(),
        ),
        (
            "kube-dns endpointslices",
            stores.dns.wait_until_ready().await.is_ok(),
        ),
    ] {
        if !ready {
            tracing::warn!(what, "network policy watch ended before its first list");
            return;
        }
    }
    tracing::info!("network policy caches synced");
    nft::sync::keep_in_step(table, "network policy enforcer", changed, || {
        let (pods, namespaces) = (cloned(&stores.pods), cloned(&stores.namespaces));
        let (policies, dns_slices) = (cloned(&stores.policies), cloned(&stores.dns));
        let model = model::desired(&model::Inputs {
            node: &opts.node_name,
            pods: &pods,
            namespaces: &namespaces,
            policies: &policies,
            dns_slices: &dns_slices,
        });
        Ok(rules::ruleset(&model))
    })
    .await;
}
