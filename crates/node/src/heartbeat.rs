//! Registration and liveness: creates (or takes over) this machine's Node, renews its Lease in
//! `kube-node-lease` every few seconds, and refreshes the Node's status — what the node lifecycle
//! controller and the scheduler read to know the node is there and healthy.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use rudder_runtime::ContainerRuntime;
use rudder_runtime::ImageService;

use crate::NodeError;
use crate::machine::Machine;
use crate::node_object::{self, NodeOptions};
use crate::pod_worker::Shared;

/// The field manager of the agent's writes.
const MANAGER: &str = "rudder-agent";
/// Seconds a lease stays valid without renewal (upstream's default).
const LEASE_SECONDS: i32 = 40;

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The node's name, labels and pod limit.
    pub node: NodeOptions,
    /// Where the agent keeps its state (the filesystem measured as ephemeral storage).
    pub data_dir: PathBuf,
    /// How often the Lease is renewed.
    pub lease_interval: Duration,
    /// How often the Node's status is refreshed when nothing changed.
    pub status_interval: Duration,
    /// TLS of the agent's HTTPS endpoint (on `node.kubelet_port`); `None` serves none.
    pub kubelet_tls: Option<Arc<rustls::ServerConfig>>,
    /// The pod network (bridge and state); `None` leaves pods without addresses.
    pub network: Option<rudder_net::NetworkOptions>,
    /// With a CRI runtime that sets up pod networking itself (containerd runs CNI): the
    /// directory its CNI plugin reads, where the agent writes a bridge + host-local config for
    /// the node's pod subnet once it has one (ADR 0021).
    pub cni_conf_dir: Option<PathBuf>,
    /// The cluster's DNS written into pods' resolv.conf; `None` gives pods the node's.
    pub cluster_dns: Option<crate::pod_dns::ClusterDns>,
    /// The node's resolv.conf.
    pub resolv_conf: PathBuf,
    /// Whether the agent watches its pods itself; simulated nodes share one watch instead
    /// (`crate::simulated`), fed through [`Agent::pod_shared`].
    pub watch_pods: bool,
    /// How long the logs of a deleted pod are kept (`--pod-logs-retention`).
    pub pod_logs_retention: Duration,
}

impl AgentConfig {
    /// Upstream's intervals: lease every 10 s, status every minute.
    pub fn new(node: NodeOptions, data_dir: PathBuf) -> Self {
        Self {
            node,
            data_dir,
            lease_interval: Duration::from_secs(10),
            status_interval: Duration::from_secs(60),
            kubelet_tls: None,
            network: None,
            cni_conf_dir: None,
            cluster_dns: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            watch_pods: true,
            pod_logs_retention: crate::pod_logs::DEFAULT_RETENTION,
        }
    }
}

/// The runtime pods run on, and the image store (`None`: every image is present, simulated
/// nodes).
type PodRuntime = (Arc<dyn ContainerRuntime>, Option<Arc<dyn ImageService>>);

/// A node agent bound to one API server.
pub struct Agent {
    client: kube::Client,
    config: AgentConfig,
    machine: Machine,
    runtime: Option<PodRuntime>,
    /// Fake pod addresses of a simulated node.
    simulated: Option<Arc<crate::simulated::SimulatedNetwork>>,
    /// The event writer pod workers record through; one is started on first use when none
    /// was given (simulated nodes share one).
    events: Option<rudder_events::Recorder>,
    /// Told when the Node's Ready condition needs correcting, by a watch of Nodes the process
    /// shares (simulated nodes); without it the agent reads its Node at each lease renewal.
    ready_feed: Option<Arc<tokio::sync::Notify>>,
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

impl Agent {
    /// Reads the machine's facts; no request is made yet.
    pub fn new(client: kube::Client, config: AgentConfig) -> Result<Self, NodeError> {
        let machine = Machine::detect(&config.data_dir)?;
        Ok(Self::with_machine(client, config, machine))
    }

    /// An agent reporting `machine`'s facts instead of this machine's (simulated nodes).
    pub fn with_machine(client: kube::Client, config: AgentConfig, machine: Machine) -> Self {
        Self {
            client,
            config,
            machine,
            runtime: None,
            simulated: None,
            events: None,
            ready_feed: None,
        }
    }

    /// Learns that the Node's Ready condition needs correcting from `feed` (a watch shared by
    /// the simulated nodes of one process) instead of reading the Node every lease renewal.
    pub fn with_ready_feed(mut self, feed: Arc<tokio::sync::Notify>) -> Self {
        self.ready_feed = Some(feed);
        self
    }

    /// Records pod events through `events` (shared by the simulated nodes of one process).
    pub fn with_event_recorder(mut self, events: rudder_events::Recorder) -> Self {
        self.events = Some(events);
        self
    }

    /// Runs the pods bound to this node on `runtime`, with images from `images`.
    pub fn with_runtime(
        mut self,
        runtime: Arc<dyn ContainerRuntime>,
        images: Arc<dyn ImageService>,
    ) -> Self {
        // Every call is counted and timed for `/metrics` (`kubelet_runtime_operations_*`).
        let runtime: Arc<dyn ContainerRuntime> =
            Arc::new(crate::kubelet_metrics::MeteredRuntime::new(runtime));
        self.runtime = Some((runtime, Some(images)));
        self
    }

    /// Runs the pods bound to this node on `runtime` without images (all count as present)
    /// and with addresses from `network`: a simulated node.
    pub fn with_simulated_runtime(
        mut self,
        runtime: Arc<dyn ContainerRuntime>,
        network: Arc<crate::simulated::SimulatedNetwork>,
    ) -> Self {
        self.runtime = Some((runtime, None));
        self.simulated = Some(network);
        self
    }

    /// What this node's pod workers share; `None` without a runtime. Brings the pod network
    /// up in the background when the agent has one.
    pub fn pod_shared(&self) -> Option<Arc<Shared>> {
        let (runtime, images) = self.runtime.clone()?;
        Some(Arc::new(Shared {
            client: self.client.clone(),
            runtime,
            images,
            node_name: self.node_name().to_owned(),
            host_ip: self
                .machine
                .internal_ip
                .clone()
                .unwrap_or_else(|| "127.0.0.1".into()),
            root: self.config.data_dir.clone(),
            network: self.config.network.clone().map(|opts| {
                let slot = Arc::new(crate::pod_network::NetworkSlot::new());
                tokio::spawn(crate::pod_network::bring_up(
                    self.client.clone(),
                    self.node_name().to_owned(),
                    opts,
                    self.config.cni_conf_dir.clone(),
                    slot.clone(),
                ));
                slot
            }),
            simulated: self.simulated.clone(),
            cluster_dns: self.config.cluster_dns.clone(),
            resolv_conf: self.config.resolv_conf.clone(),
            events: self
                .events
                .clone()
                .unwrap_or_else(|| rudder_events::Recorder::new(self.client.clone())),
        }))
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.config.node.name
    }

    /// Registers the node, then keeps its Lease and status fresh until `shutdown` resolves.
    /// Failed renewals are logged and retried on the next tick: the API server may restart.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        self.run_with(shutdown, || {}).await
    }

    /// [`Agent::run`], calling `registered` once the Node exists.
    pub async fn run_with(
        self,
        shutdown: impl std::future::Future<Output = ()>,
        registered: impl FnOnce(),
    ) -> Result<(), NodeError> {
        let node = self.register().await?;
        registered();
        tracing::info!(node = %self.node_name(), "node registered");
        let uid = node.metadata.uid.clone().unwrap_or_default();
        let (stop_pods, pods_stopped) = tokio::sync::oneshot::channel::<()>();
        let pods_task = self
            .config
            .watch_pods
            .then(|| self.pod_shared())
            .flatten()
            .map(|shared| {
                tokio::spawn(crate::pods::run(shared, async {
                    let _ = pods_stopped.await;
                }))
            });
        let (stop_endpoint, endpoint_stopped) = tokio::sync::oneshot::channel::<()>();
        if let (Some(tls), Some((runtime, _))) =
            (self.config.kubelet_tls.clone(), self.runtime.clone())
        {
            let addr = std::net::SocketAddr::from(([0, 0, 0, 0], self.config.node.kubelet_port));
            let data_dir = self.config.data_dir.clone();
            let retention = self.config.pod_logs_retention;
            tokio::spawn(async move {
                // The port may be held for a moment (a process probing it, a previous instance
                // still exiting): keep trying rather than serve no logs for the node's lifetime.
                let mut endpoint_stopped = endpoint_stopped;
                let mut attempts = 0u32;
                let listener = loop {
                    match tokio::net::TcpListener::bind(addr).await {
                        Ok(l) => break l,
                        Err(e) => {
                            if attempts.is_multiple_of(30) {
                                tracing::error!(%addr, error = %e, "node endpoint (logs) not serving yet; retrying every second");
                            }
                            attempts += 1;
                            tokio::select! {
                                _ = &mut endpoint_stopped => return,
                                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                            }
                        }
                    }
                };
                tracing::info!(%addr, "node endpoint serving");
                let collector = tokio::spawn(crate::pod_logs::collect(
                    data_dir.clone(),
                    runtime.clone(),
                    retention,
                ));
                crate::kubelet_server::serve(listener, tls, runtime, data_dir, async {
                    // The deleted pods' logs are collected while the endpoint serves.
                    let _abort = AbortOnDrop(collector);
                    let _ = endpoint_stopped.await;
                })
                .await;
            });
        }
        let mut lease_tick = tokio::time::interval(self.config.lease_interval);
        // The last Lease written: renewing replaces it without reading it first.
        let mut lease: Option<Lease> = None;
        let mut status_tick = tokio::time::interval(self.config.status_interval);
        status_tick.tick().await; // registration just wrote the status
        // Set when the Node's Ready condition was seen not True; corrected at the next renewal,
        // so a flapping condition costs at most one status write per lease interval.
        let mut correct_ready = false;
        let ready_feed = self.ready_feed.clone();
        let ready_changed = async || match &ready_feed {
            Some(feed) => feed.notified().await,
            None => std::future::pending().await,
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => {
                    let _ = stop_endpoint.send(());
                    let _ = stop_pods.send(());
                    if let Some(task) = pods_task {
                        let _ = task.await;
                    }
                    return Ok(());
                }
                _ = lease_tick.tick() => {
                    if let Err(e) = self.renew_lease(&uid, &mut lease).await {
                        tracing::warn!(error = %e, "renewing the node lease");
                    }
                    if self.ready_feed.is_none() {
                        correct_ready = self.ready_needs_correcting().await;
                    }
                    if std::mem::take(&mut correct_ready) {
                        tracing::info!(node = %self.node_name(), "the Node is marked not Ready; reporting its status");
                        match self.report_status().await {
                            Ok(_) => status_tick.reset(),
                            Err(e) => tracing::warn!(error = %e, "updating the node status"),
                        }
                    }
                }
                () = ready_changed() => correct_ready = true,
                _ = status_tick.tick() => {
                    if let Err(e) = self.report_status().await {
                        tracing::warn!(error = %e, "updating the node status");
                    }
                }
            }
        }
    }

    /// Creates the Node, or takes over an existing one of the same name (a restart), setting
    /// its labels and status.
    pub async fn register(&self) -> Result<Node, NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let wanted = node_object::node(&self.machine, &self.config.node, &now());
        match nodes
            .create(
                &PostParams {
                    field_manager: Some(MANAGER.into()),
                    ..Default::default()
                },
                &wanted,
            )
            .await
        {
            Ok(created) => {
                // Create ignores status (a subresource): write it separately.
                self.report_status().await?;
                Ok(created)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let labels = serde_json::json!({"metadata": {"labels": wanted.metadata.labels}});
                nodes
                    .patch(
                        self.node_name(),
                        &PatchParams::default(),
                        &Patch::Merge(labels),
                    )
                    .await?;
                self.report_status().await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the Node and says whether its Ready condition needs correcting (a failed read
    /// says no: the next renewal reads again).
    async fn ready_needs_correcting(&self) -> bool {
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes.get_status(self.node_name()).await {
            Ok(node) => node_object::ready_needs_correcting(&node),
            Err(e) => {
                tracing::debug!(error = %e, "reading the Node");
                false
            }
        }
    }

    /// Writes the Node's current status.
    pub async fn report_status(&self) -> Result<Node, NodeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let previous = nodes
            .get_status(self.node_name())
            .await?
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default();
        let mut status =
            node_object::status(&self.machine, &self.config.node, &now(), true, &previous);
        if let (Some((runtime, _)), Some(info)) = (&self.runtime, status.node_info.as_mut()) {
            info.container_runtime_version = node_object::runtime_version(&runtime.name());
        }
        let patch = serde_json::json!({"status": status});
        let params = PatchParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        Ok(nodes
            .patch_status(self.node_name(), &params, &Patch::Merge(patch))
            .await?)
    }

    /// Renews (or creates) the node's Lease, replacing `cached` (the last one written) without
    /// reading it first, as the kubelet does; a failed write forgets it so the next renewal
    /// reads afresh.
    async fn renew_lease(
        &self,
        node_uid: &str,
        cached: &mut Option<Lease>,
    ) -> Result<(), NodeError> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), "kube-node-lease");
        let renew = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let spec = LeaseSpec {
            holder_identity: Some(self.node_name().to_owned()),
            lease_duration_seconds: Some(LEASE_SECONDS),
            renew_time: Some(renew),
            ..Default::default()
        };
        let current = match cached.take() {
            Some(lease) => Some(lease),
            None => leases.get_opt(self.node_name()).await?,
        };
        match current {
            Some(mut lease) => {
                lease.spec = Some(spec);
                *cached = Some(
                    leases
                        .replace(self.node_name(), &PostParams::default(), &lease)
                        .await?,
                );
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.node_name().to_owned()),
                        namespace: Some("kube-node-lease".into()),
                        // Deleting the Node deletes its lease (garbage collection).
                        owner_references: (!node_uid.is_empty()).then(|| {
                            vec![OwnerReference {
                                api_version: "v1".into(),
                                kind: "Node".into(),
                                name: self.node_name().to_owned(),
                                uid: node_uid.to_owned(),
                                ..Default::default()
                            }]
                        }),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                *cached = Some(leases.create(&PostParams::default(), &lease).await?);
            }
        }
        Ok(())
    }
}

/// Aborts a background task when dropped (with the future that owns it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
