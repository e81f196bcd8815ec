//! Keeps the index current: reflectors of Services, EndpointSlices and Pods, and a rebuild of
//! the whole index after each burst of changes (an index of a few thousand objects builds in
//! well under a millisecond, simpler and safer than patching it).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::watcher;
use tokio::sync::Notify;

use crate::index::Index;
use crate::server::SharedIndex;

/// Changes closer together than this become one rebuild.
const COALESCE: Duration = Duration::from_millis(50);

/// Rebuilds `shared` from the cluster's objects whenever they change; runs until aborted.
pub(crate) async fn run(client: kube::Client, zone: String, shared: SharedIndex) {
    let changed = Arc::new(Notify::new());
    let (services, t1) = rudder_net::reflect::reflect::<Service>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "dns watch",
    );
    let (slices, t2) = rudder_net::reflect::reflect::<EndpointSlice>(
        Api::all(client.clone()),
        watcher::Config::default(),
        &changed,
        "dns watch",
    );
    let (pods, t3) = rudder_net::reflect::reflect::<Pod>(
        Api::all(client),
        watcher::Config::default(),
        &changed,
        "dns watch",
    );
    struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            for t in &self.0 {
                t.abort();
            }
        }
    }
    let _tasks = AbortOnDrop(vec![t1, t2, t3]);
    for store in [
        services.wait_until_ready().await.is_ok(),
        slices.wait_until_ready().await.is_ok(),
        pods.wait_until_ready().await.is_ok(),
    ] {
        if !store {
            tracing::warn!("dns watch ended before its first list");
            return;
        }
    }
    tracing::info!("cluster DNS caches synced");
    loop {
        let svcs: Vec<Service> = services.state().iter().map(|s| (**s).clone()).collect();
        let eps: Vec<EndpointSlice> = slices.state().iter().map(|s| (**s).clone()).collect();
        let pds: Vec<Pod> = pods.state().iter().map(|s| (**s).clone()).collect();
        let next = Arc::new(Index::build(&zone, &svcs, &eps, &pds));
        match shared.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        changed.notified().await;
        tokio::time::sleep(COALESCE).await;
    }
}
