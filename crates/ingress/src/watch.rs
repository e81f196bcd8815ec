//! Keeps the routing table and certificates current: reflectors of IngressClasses, Ingresses,
//! Services, EndpointSlices and Secrets, a rebuild of both after each burst of changes, and the
//! served Ingresses' `status.loadBalancer` set to the node's address.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use rustls::sign::CertifiedKey;
use tokio::sync::Notify;

use crate::proxy::SharedTable;
use crate::routes::Table;
use crate::tls::{Certs, Resolver};

/// Changes closer together than this become one rebuild.
const COALESCE: Duration = Duration::from_millis(50);

/// Rebuilds `table` and `certs` whenever the cluster's objects change and publishes `address`
/// in the status of the Ingresses served; runs until aborted.
pub(crate) async fn run(
    client: kube::Client,
    address: Option<IpAddr>,
    table: SharedTable,
    certs: Arc<Resolver>,
    default_cert: Arc<CertifiedKey>,
) {
    let changed = Arc::new(Notify::new());
    let (classes, t1) = rudder_net::reflect::reflect::<IngressClass>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "ingress watch",
    );
    let (ingresses, t2) = rudder_net::reflect::reflect::<Ingress>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "ingress watch",
    );
    let (services, t3) = rudder_net::reflect::reflect::<Service>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "ingress watch",
    );
    let (slices, t4) = rudder_net::reflect::reflect::<EndpointSlice>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "ingress watch",
    );
    // Only TLS Secrets: the controller needs no others.
    let (secrets, t5) = rudder_net::reflect::reflect::<Secret>(
        Api::all(client.clone()),
        watcher::Config::default().fields("type=kubernetes.io/tls"),
        &changed,
        "ingress watch",
    );
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
        }
    }
    let _tasks = AbortOnDrop(vec![t1, t2, t3, t4, t5]);
    let ready = [
        classes.wait_until_ready().await.is_ok(),
        ingresses.wait_until_ready().await.is_ok(),
        services.wait_until_ready().await.is_ok(),
        slices.wait_until_ready().await.is_ok(),
        secrets.wait_until_ready().await.is_ok(),
    ];
    if ready.contains(&false) {
        tracing::warn!("ingress watch ended before its first list");
        return;
    }
    tracing::info!("ingress caches synced");
    // Ingresses whose status already shows the address (by uid), so each is patched once.
    let mut published: HashSet<String> = HashSet::new();
    loop {
        let cls = snapshot(&classes);
        let ings = snapshot(&ingresses);
        let next = Table::build(&cls, &ings, &snapshot(&services), &snapshot(&slices));
        let served: Vec<&Ingress> = ings
            .iter()
            .filter(|i| {
                next.ingresses.iter().any(|(ns, name)| {
                    i.metadata.namespace.as_deref() == Some(ns)
                        && i.metadata.name.as_deref() == Some(name)
                })
            })
            .collect();
        let next_certs = Certs::build(default_cert.clone(), &served, &snapshot(&secrets));
        match certs.0.write() {
            Ok(mut g) => *g = Arc::new(next_certs),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next_certs),
        }
        match table.write() {
            Ok(mut g) => *g = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        if let Some(ip) = address {
            for ing in served {
                publish(&client, ing, ip, &mut published).await;
            }
        }
        changed.notified().await;
        tokio::time::sleep(COALESCE).await;
    }
}

fn snapshot<K: Clone + kube::Resource<DynamicType = ()>>(store: &Store<K>) -> Vec<K> {
    store.state().iter().map(|o| (**o).clone()).collect()
}

/// Sets `status.loadBalancer.ingress` to `[{ip}]` unless it already is.
async fn publish(client: &kube::Client, ing: &Ingress, ip: IpAddr, done: &mut HashSet<String>) {
    let (Some(ns), Some(name), Some(uid)) = (
        ing.metadata.namespace.as_deref(),
        ing.metadata.name.as_deref(),
        ing.metadata.uid.as_deref(),
    ) else {
        return;
    };
    let ip = ip.to_string();
    let current: Vec<Option<&str>> = ing
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|l| l.iter().map(|i| i.ip.as_deref()).collect())
        .unwrap_or_default();
    if current == [Some(ip.as_str())] {
        done.insert(uid.to_owned());
        return;
    }
    if done.contains(uid) && !current.is_empty() {
        // Someone else set it since (another server's controller): do not fight over it.
        return;
    }
    let api: Api<Ingress> = Api::namespaced(client.clone(), ns);
    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            tracing::info!(%ns, %name, %ip, "ingress status updated");
            done.insert(uid.to_owned());
        }
        Err(e) => tracing::warn!(%ns, %name, error = %e, "updating ingress status"),
    }
}
