//! Simulated ("hollow") nodes: many node agents in one process over
//! [`SimulatedRuntime`], sharing one API client and one pod watch, so scale is measured
//! through the real API without running containers (ADR 0014, `docs/node-agent.md`).
//!
//! Each node is a real [`Agent`] — registration, Lease, status, pod workers — whose runtime
//! is the in-memory one and whose pods get fake addresses from the node's `spec.podCIDR`, as
//! kwok gives them. What differs from a real node, and why, is listed in the ADR.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use rudder_runtime::simulated::SimulatedRuntime;

use crate::heartbeat::{Agent, AgentConfig};
use crate::machine::Machine;
use crate::node_object::NodeOptions;
use crate::pod_worker::Shared;

/// How many simulated nodes register at once: the shared client speaks HTTP/1.1, so each
/// request in flight holds a connection; bounding start-up bounds the connection pool.
const REGISTER_CONCURRENCY: usize = 32;
/// The label every simulated node carries, `type=simulated`.
const LABEL: &str = "type";
const LABEL_VALUE: &str = "simulated";

/// The simulated nodes to run.
#[derive(Clone, Debug)]
pub struct SimulationOptions {
    /// How many nodes.
    pub nodes: usize,
    /// Nodes are named `<prefix>-<i>`, i from 0.
    pub prefix: String,
    /// Each node's CPUs.
    pub cpus: u64,
    /// Each node's memory, bytes.
    pub memory_bytes: u64,
    /// Each node's pod limit.
    pub max_pods: u32,
    /// Lease renewal interval (upstream: 10 s).
    pub lease_interval: Duration,
    /// Status refresh when nothing changed (upstream's `nodeStatusReportFrequency`: 5 min).
    pub status_interval: Duration,
}

impl SimulationOptions {
    /// `nodes` nodes named `<prefix>-<i>` with 32 CPUs, 256 GiB and 110 pods each.
    pub fn new(nodes: usize, prefix: &str) -> Self {
        Self {
            nodes,
            prefix: prefix.to_owned(),
            cpus: 32,
            memory_bytes: 256 << 30,
            max_pods: 110,
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(300),
        }
    }

    /// The name of node `i`.
    pub fn node_name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }
}

/// The facts a simulated node reports: fixed capacity, no addresses of its own.
pub fn machine(opts: &SimulationOptions, name: &str) -> Machine {
    Machine {
        hostname: name.to_owned(),
        cpus: opts.cpus,
        memory_bytes: opts.memory_bytes,
        disk_bytes: 100 << 30,
        kernel_version: "simulated".into(),
        os_image: "rudder simulated node".into(),
        architecture: crate::machine::go_arch(std::env::consts::ARCH).to_owned(),
        machine_id: String::new(),
        boot_id: String::new(),
        internal_ip: None,
    }
}

/// A node's fake pod addresses: lowest free host address of its subnet, skipping the network
/// address, the gateway (first host) and broadcast, as a bridge IPAM would. Pure.
#[derive(Debug)]
pub struct Addresses {
    subnet: Ipv4Net,
    by_pod: BTreeMap<String, Ipv4Addr>,
}

impl Addresses {
    /// An empty allocator over `subnet`.
    pub fn new(subnet: Ipv4Net) -> Self {
        Self {
            subnet,
            by_pod: BTreeMap::new(),
        }
    }

    /// The address of pod `uid`: the one it has, or a free one; `None` when the subnet is full.
    pub fn allocate(&mut self, uid: &str) -> Option<Ipv4Addr> {
        if let Some(ip) = self.by_pod.get(uid) {
            return Some(*ip);
        }
        let used: std::collections::BTreeSet<Ipv4Addr> = self.by_pod.values().copied().collect();
        let ip = self.subnet.hosts().skip(1).find(|ip| !used.contains(ip))?;
        self.by_pod.insert(uid.to_owned(), ip);
        Some(ip)
    }

    /// Gives pod `uid`'s address back.
    pub fn release(&mut self, uid: &str) {
        self.by_pod.remove(uid);
    }
}

/// A simulated node's address book, filled once the node has a pod subnet.
#[derive(Debug, Default)]
pub struct SimulatedNetwork {
    addresses: tokio::sync::OnceCell<Mutex<Addresses>>,
}

impl SimulatedNetwork {
    /// The address of pod `uid`; an error until the node has a subnet or when it is full.
    pub fn attach(&self, uid: &str) -> Result<String, String> {
        let book = self
            .addresses
            .get()
            .ok_or("network is not ready: the node has no pod subnet yet")?;
        let mut book = book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        book.allocate(uid)
            .map(|ip| ip.to_string())
            .ok_or_else(|| format!("no free address in {}", book.subnet))
    }

    /// Gives pod `uid`'s address back.
    pub fn detach(&self, uid: &str) {
        if let Some(book) = self.addresses.get() {
            book.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .release(uid);
        }
    }

    /// Takes `subnet` as the node's pod subnet (a node keeps its first one); whether this was
    /// the first.
    fn set_subnet(&self, subnet: Ipv4Net) -> bool {
        self.addresses
            .set(Mutex::new(Addresses::new(subnet)))
            .is_ok()
    }
}

/// What one watch of the simulated Nodes tells each node's agent.
struct NodeFeed {
    /// Given the node's `spec.podCIDR` once the node IPAM has set it.
    network: Arc<SimulatedNetwork>,
    /// Told when the Node's Ready condition is marked not True (the agent then reports its
    /// status at its next renewal, as the kubelet does within 10 s).
    ready: Arc<tokio::sync::Notify>,
}

/// Feeds every simulated node of the process from one watch of their Nodes: its pod subnet
/// once the node IPAM has set it, and a nudge when its Ready condition needs correcting. (A
/// GET per node every second for the subnet was 5,000 GETs a second at 5,000 nodes: it
/// saturated the server the IPAM writes through; a GET per node per lease renewal, as a lone
/// agent does, would be 500 a second.)
async fn follow_nodes(
    client: kube::Client,
    feeds: HashMap<String, NodeFeed>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let nodes: Api<Node> = Api::all(client);
    let config = watcher::Config::default().labels(&format!("{LABEL}={LABEL_VALUE}"));
    let mut events = watcher(nodes, config).default_backoff().boxed();
    let mut without_subnet = feeds.len();
    tokio::pin!(shutdown);
    loop {
        let event = tokio::select! {
            () = &mut shutdown => return,
            e = events.next() => e,
        };
        match event {
            Some(Ok(watcher::Event::Apply(node) | watcher::Event::InitApply(node))) => {
                let name = node.metadata.name.as_deref().unwrap_or_default();
                let Some(feed) = feeds.get(name) else {
                    continue;
                };
                let subnet = node
                    .spec
                    .as_ref()
                    .and_then(|s| s.pod_cidr.as_deref())
                    .and_then(|c| c.parse::<Ipv4Net>().ok());
                if let Some(subnet) = subnet
                    && feed.network.set_subnet(subnet)
                {
                    without_subnet -= 1;
                    if without_subnet == 0 {
                        tracing::info!("every simulated node has its pod subnet");
                    }
                }
                if crate::node_object::ready_needs_correcting(&node) {
                    feed.ready.notify_one();
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => tracing::warn!(error = %e, "watching the simulated nodes"),
            None => return,
        }
    }
}

/// Runs `opts.nodes` simulated nodes as clients of `client` until `shutdown` resolves.
pub async fn run(
    client: kube::Client,
    opts: SimulationOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shareds: HashMap<String, Arc<Shared>> = HashMap::with_capacity(opts.nodes);
    let mut feeds: HashMap<String, NodeFeed> = HashMap::with_capacity(opts.nodes);
    let mut agents = Vec::with_capacity(opts.nodes);
    // One event writer for every simulated node, as one hollow kubelet process has one.
    let events = rudder_events::Recorder::new(client.clone());
    for i in 0..opts.nodes {
        let name = opts.node_name(i);
        let mut config = AgentConfig::new(
            NodeOptions {
                name: name.clone(),
                max_pods: opts.max_pods,
                labels: BTreeMap::from([(LABEL.to_owned(), LABEL_VALUE.to_owned())]),
                kubelet_port: 0,
            },
            std::path::PathBuf::new(),
        );
        config.lease_interval = opts.lease_interval;
        config.status_interval = opts.status_interval;
        config.watch_pods = false;
        let feed = NodeFeed {
            network: Arc::new(SimulatedNetwork::default()),
            ready: Arc::new(tokio::sync::Notify::new()),
        };
        let agent = Agent::with_machine(client.clone(), config, machine(&opts, &name))
            .with_simulated_runtime(Arc::new(SimulatedRuntime::new()), feed.network.clone())
            .with_event_recorder(events.clone())
            .with_ready_feed(feed.ready.clone());
        if let Some(shared) = agent.pod_shared() {
            shareds.insert(name.clone(), shared);
        }
        feeds.insert(name, feed);
        agents.push(agent);
    }
    // One watch of every bound pod, fanned out here, instead of one per node.
    let pods = tokio::spawn(crate::pods::run_many(client.clone(), shareds, {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }));
    let nodes = tokio::spawn(follow_nodes(client.clone(), feeds, {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }));
    let gate = Arc::new(tokio::sync::Semaphore::new(REGISTER_CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for agent in agents {
        let gate = gate.clone();
        let mut rx = stop_rx.clone();
        tasks.spawn(async move {
            // Registration is the burst; renewals then stay spread by when each node joined.
            let permit = gate.acquire_owned().await;
            let registered = agent.run_with(
                async move {
                    let _ = rx.wait_for(|s| *s).await;
                },
                move || drop(permit),
            );
            if let Err(e) = registered.await {
                tracing::warn!(error = %e, "simulated node stopped");
            }
        });
    }
    tracing::info!(nodes = opts.nodes, prefix = %opts.prefix, "simulated nodes starting");
    shutdown.await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    let _ = pods.await;
    let _ = nodes.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_network_gateway_and_broadcast() {
        let mut a = Addresses::new("10.1.2.0/29".parse().unwrap());
        // /29: .0 network, .1 gateway, .2-.6 pods, .7 broadcast.
        let got: Vec<_> = (0..5)
            .map(|i| a.allocate(&format!("p{i}")).unwrap().to_string())
            .collect();
        assert_eq!(
            got,
            ["10.1.2.2", "10.1.2.3", "10.1.2.4", "10.1.2.5", "10.1.2.6"]
        );
        assert_eq!(a.allocate("full"), None);
        // The same pod keeps its address; a released one is reused lowest-first.
        assert_eq!(a.allocate("p3").unwrap().to_string(), "10.1.2.5");
        a.release("p1");
        assert_eq!(a.allocate("new").unwrap().to_string(), "10.1.2.3");
        a.release("unknown");
    }

    #[test]
    fn simulated_node_facts() {
        let opts = SimulationOptions::new(3, "hollow");
        assert_eq!(opts.node_name(2), "hollow-2");
        let m = machine(&opts, "hollow-2");
        assert_eq!((m.cpus, m.memory_bytes), (32, 256 << 30));
        assert_eq!(m.hostname, "hollow-2");
        assert!(m.internal_ip.is_none());
    }
}
