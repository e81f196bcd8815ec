//! Watches the pods bound to this node and keeps one [`pod_worker`](crate::pod_worker) task per
//! pod, feeding it each new version of its Pod. Simulated nodes share one watch of every bound
//! pod ([`run_many`]) instead of one watch per node.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;

use crate::pod_worker::{self, Shared};

/// Runs until `shutdown` resolves; workers keep their containers running when it does (a
/// restarted agent adopts them).
pub async fn run(shared: Arc<Shared>, shutdown: impl std::future::Future<Output = ()>) {
    let client = shared.client.clone();
    let nodes = HashMap::from([(shared.node_name.clone(), shared)]);
    run_many(client, nodes, shutdown).await;
}

/// [`run`] for several nodes of this process at once, keyed by node name: one watch (of the
/// node's pods when there is one node, of every bound pod otherwise) feeds every node's
/// workers; pods of other nodes are ignored.
pub async fn run_many(
    client: kube::Client,
    nodes: HashMap<String, Arc<Shared>>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let pods: Api<Pod> = Api::all(client);
    let selector = match nodes.keys().next() {
        Some(name) if nodes.len() == 1 => format!("spec.nodeName={name}"),
        _ => "spec.nodeName!=".to_owned(),
    };
    let config = watcher::Config::default().fields(&selector);
    // Workers never read managedFields; without them each held pod is smaller.
    let mut events = watcher(pods, config)
        .modify(|p| p.metadata.managed_fields = None)
        .boxed();
    let mut workers: HashMap<String, watch::Sender<Pod>> = HashMap::new();
    let mut since_sweep = 0usize;
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            _ = &mut shutdown => return,
            e = events.next() => e,
        };
        match event {
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                // A finished worker (its pod was being deleted) is replaced if the pod is
                // still there, as the sweep below may not have dropped it yet.
                match workers.get(&uid).filter(|tx| !tx.is_closed()) {
                    Some(tx) => {
                        let _ = tx.send(pod);
                    }
                    None => {
                        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
                        if let Some(shared) = node.and_then(|n| nodes.get(n)) {
                            let shared = shared.clone();
                            let (tx, rx) = watch::channel(pod);
                            tokio::spawn(pod_worker::run(shared, rx));
                            workers.insert(uid, tx);
                        }
                    }
                }
            }
            Some(Ok(watcher::Event::Delete(mut pod))) => {
                // Gone from the API without the agent's final delete (a forced delete): stop
                // everything at once.
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if let Some(tx) = workers.remove(&uid) {
                    if pod.metadata.deletion_timestamp.is_none() {
                        pod.metadata.deletion_timestamp =
                            Some(Time(k8s_openapi::jiff::Timestamp::now()));
                    }
                    pod.metadata.deletion_grace_period_seconds = Some(0);
                    let _ = tx.send(pod);
                }
            }
            Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => {}
            Some(Err(e)) => {
                tracing::warn!(error = %e, "watching this node's pods");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            None => return,
        }
        // Drop senders of workers that finished (their pods were deleted). A sweep costs one
        // look per worker, so it runs once per as many events as there are workers: sweeping
        // on every event made a simulated agent with 30,000 pods quadratic.
        since_sweep += 1;
        if since_sweep >= workers.len() {
            workers.retain(|_, tx| !tx.is_closed());
            since_sweep = 0;
        }
    }
}
