//! The control plane's node IPAM: every Node without `spec.podCIDR` gets the next free subnet
//! of the cluster range (as kube-controller-manager's node-ipam controller does with
//! `--allocate-node-cidrs`). [`assign`] holds the decisions; this loop feeds it the Node
//! watch and writes what it decides, several nodes at a time, as upstream's CIDR workers do.

pub mod assign;

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};

use self::assign::{Assigner, Decision, NodeFacts};

/// Subnet writes in flight at once: a burst of registrations (thousands of simulated nodes) is
/// served in step with it instead of one round trip at a time.
const WRITERS: usize = 16;
/// How often nodes still without a subnet (failed write, full range) are tried again.
const RETRY: Duration = Duration::from_secs(5);

/// Assigns pod subnets of `prefix` bits from `cluster` to nodes until `stop` resolves.
pub async fn run(
    client: kube::Client,
    cluster: Ipv4Net,
    prefix: u8,
    stop: impl std::future::Future<Output = ()>,
) {
    let Some(mut assigner) = Assigner::new(cluster, prefix) else {
        tracing::error!(%cluster, prefix, "node subnets do not fit in the cluster range; no pod subnets are assigned");
        return;
    };
    let nodes: Api<Node> = Api::all(client);
    let (store, writer) = reflector::store();
    let mut events = reflector(writer, watcher(nodes.clone(), watcher::Config::default()))
        .default_backoff()
        .boxed();
    let mut todo: VecDeque<Decision> = VecDeque::new();
    let mut writes = FuturesUnordered::new();
    let mut retry = tokio::time::interval(RETRY);
    // Nothing is assigned before the first full list: it says which subnets are taken.
    let mut listed = false;
    tokio::pin!(stop);
    loop {
        while writes.len() < WRITERS
            && let Some(decision) = todo.pop_front()
        {
            match decision {
                Decision::Patch { name, uid, subnet } => {
                    let nodes = nodes.clone();
                    writes.push(async move {
                        let result = write(&nodes, &name, subnet).await;
                        (name, uid, subnet, result)
                    });
                }
                Decision::Full { name, first } => {
                    if first {
                        tracing::warn!(node = %name, %cluster, prefix, capacity = assigner.capacity(), "no pod subnet left for the node: the cluster range is full");
                    }
                }
                Decision::Nothing => {}
            }
        }
        tokio::select! {
            () = &mut stop => return,
            Some((name, uid, subnet, result)) = writes.next(), if !writes.is_empty() => match result {
                Ok(()) => tracing::info!(node = %name, %subnet, "pod subnet assigned"),
                Err(e) => {
                    tracing::warn!(node = %name, %subnet, error = %e, "assigning a pod subnet");
                    assigner.failed(&name, &uid, subnet);
                }
            },
            // Decisions waiting to be written hold back the watch, so the queue stays short.
            ev = events.next(), if todo.is_empty() => match ev {
                Some(Ok(watcher::Event::Apply(node))) if listed => {
                    todo.push_back(assigner.seen(&NodeFacts::of(&node)));
                }
                Some(Ok(watcher::Event::Delete(node))) if listed => {
                    if assigner.gone(&NodeFacts::of(&node).name) {
                        todo.extend(retries(&mut assigner, &store));
                    }
                }
                Some(Ok(watcher::Event::InitDone)) => {
                    listed = true;
                    let all: Vec<NodeFacts> =
                        store.state().iter().map(|n| NodeFacts::of(n)).collect();
                    todo.extend(assigner.relisted(&all));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "node watch"),
                None => return,
            },
            _ = retry.tick(), if listed => todo.extend(retries(&mut assigner, &store)),
        }
    }
}

/// New decisions for the nodes waiting for a subnet, from their latest cached state.
fn retries(assigner: &mut Assigner, store: &reflector::Store<Node>) -> Vec<Decision> {
    let mut out = Vec::new();
    for name in assigner.retries() {
        match store.get(&ObjectRef::new(&name)) {
            Some(node) => out.push(assigner.seen(&NodeFacts::of(&node))),
            None => {
                assigner.gone(&name);
            }
        }
    }
    out
}

async fn write(nodes: &Api<Node>, name: &str, subnet: Ipv4Net) -> Result<(), kube::Error> {
    let patch = serde_json::json!({
        "spec": {"podCIDR": subnet.to_string(), "podCIDRs": [subnet.to_string()]}
    });
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
}
