//! The kubelet's Prometheus metrics on the agent's `/metrics`: pod start latency (first seen
//! → every container running, upstream's `kubelet_pod_start_duration_seconds`), running pods
//! and containers (counted from the runtime at each scrape, so several agents in one process
//! each report their own), and every container-runtime call by operation ([`MeteredRuntime`]).

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::PodStatus;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use rudder_metrics::{HistogramFamily, buckets, prometheus_client};
use rudder_runtime::{
    AttachRequest, Attachment, ContainerConfig, ContainerFilter, ContainerId, ContainerRuntime,
    ContainerState, ContainerStats, ContainerStatus, ExecProcess, ExecRequest, ExecResult,
    ExitForecast, Result, SandboxConfig, SandboxId, SandboxState, SandboxStatus,
};

type OperationLabel = [(&'static str, &'static str); 1];

struct Metrics {
    pod_start: Histogram,
    operations: Family<OperationLabel, Counter>,
    errors: Family<OperationLabel, Counter>,
    durations: HistogramFamily<OperationLabel>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        pod_start: Histogram::new(buckets::POD_START.iter().copied()),
        operations: Family::default(),
        errors: Family::default(),
        durations: rudder_metrics::histogram_family(buckets::RUNTIME_OPERATIONS),
    };
    rudder_metrics::register(
        "kubelet_pod_start_duration_seconds",
        "Duration in seconds from kubelet seeing a pod for the first time to the pod starting to run",
        m.pod_start.clone(),
    );
    rudder_metrics::register(
        "kubelet_runtime_operations",
        "Cumulative number of runtime operations by operation type",
        m.operations.clone(),
    );
    rudder_metrics::register(
        "kubelet_runtime_operations_errors",
        "Cumulative number of runtime operation errors by operation type",
        m.errors.clone(),
    );
    rudder_metrics::register(
        "kubelet_runtime_operations_duration_seconds",
        "Duration in seconds of runtime operations. Broken down by operation type",
        m.durations.clone(),
    );
    m
});

/// Registers the kubelet's metrics.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// A pod this agent first saw `since` ago has every container running.
pub fn pod_started(since: Duration) {
    METRICS.pod_start.observe(since.as_secs_f64());
}

/// Whether a pod status counts as started for the SLI: Running, with every container running.
pub fn all_running(status: &PodStatus) -> bool {
    status.phase.as_deref() == Some("Running")
        && status.container_statuses.as_ref().is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

/// `kubelet_running_pods` and `kubelet_running_containers{container_state}` from what the
/// runtime lists: ready sandboxes, and containers by state.
pub fn running(sandboxes: &[SandboxStatus], containers: &[ContainerStatus]) -> (i64, [i64; 3]) {
    let pods = sandboxes
        .iter()
        .filter(|s| s.state == SandboxState::Ready)
        .count() as i64;
    let mut by_state = [0i64; 3];
    for c in containers {
        by_state[match c.state {
            ContainerState::Created => 0,
            ContainerState::Running => 1,
            ContainerState::Exited => 2,
        }] += 1;
    }
    (pods, by_state)
}

/// The scrape-time part of `/metrics`: running pods and containers of `runtime`.
pub async fn scrape_registry(runtime: &dyn ContainerRuntime) -> Registry {
    let mut registry = Registry::default();
    // A runtime that cannot list leaves the gauges out rather than reporting zero.
    let (Ok(sandboxes), Ok(containers)) = (
        runtime.list_pod_sandboxes().await,
        runtime.list_containers(ContainerFilter::default()).await,
    ) else {
        return registry;
    };
    let (pods, by_state) = running(&sandboxes, &containers);
    let running_pods = Gauge::<i64>::default();
    running_pods.set(pods);
    registry.register(
        "kubelet_running_pods",
        "Number of pods that have a running pod sandbox",
        running_pods,
    );
    let family = Family::<[(&'static str, &'static str); 1], Gauge>::default();
    for (state, n) in ["created", "running", "exited"].into_iter().zip(by_state) {
        family.get_or_create(&[("container_state", state)]).set(n);
    }
    registry.register(
        "kubelet_running_containers",
        "Number of containers currently running",
        family,
    );
    registry
}

/// A [`ContainerRuntime`] that counts and times every call of the one underneath.
pub struct MeteredRuntime {
    inner: Arc<dyn ContainerRuntime>,
}

impl MeteredRuntime {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ContainerRuntime>) -> Self {
        init();
        Self { inner }
    }
}

/// Records one call of `operation` that began at `started`.
fn record<T>(operation: &'static str, started: Instant, result: &Result<T>) {
    let label = [("operation_type", operation)];
    let m = &*METRICS;
    m.operations.get_or_create(&label).inc();
    m.durations
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    if result.is_err() {
        m.errors.get_or_create(&label).inc();
    }
}

macro_rules! timed {
    ($op:literal, $call:expr) => {{
        let started = Instant::now();
        let result = $call.await;
        record($op, started, &result);
        result
    }};
}

#[async_trait]
impl ContainerRuntime for MeteredRuntime {
    fn name(&self) -> String {
        self.inner.name()
    }
    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<SandboxId> {
        timed!("run_podsandbox", self.inner.run_pod_sandbox(config))
    }
    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        timed!("stop_podsandbox", self.inner.stop_pod_sandbox(id))
    }
    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        timed!("remove_podsandbox", self.inner.remove_pod_sandbox(id))
    }
    async fn pod_sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus> {
        timed!("podsandbox_status", self.inner.pod_sandbox_status(id))
    }
    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        timed!("list_podsandbox", self.inner.list_pod_sandboxes())
    }
    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: ContainerConfig,
    ) -> Result<ContainerId> {
        timed!(
            "create_container",
            self.inner.create_container(sandbox, config)
        )
    }
    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        timed!("start_container", self.inner.start_container(id))
    }
    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        timed!("stop_container", self.inner.stop_container(id, grace))
    }
    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        timed!("remove_container", self.inner.remove_container(id))
    }
    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        timed!("container_status", self.inner.container_status(id))
    }
    async fn list_containers(&self, filter: ContainerFilter) -> Result<Vec<ContainerStatus>> {
        timed!("list_containers", self.inner.list_containers(filter))
    }
    async fn exit_forecast(&self, id: &ContainerId) -> ExitForecast {
        // Not a CRI call: nothing to time.
        self.inner.exit_forecast(id).await
    }
    async fn exec_sync(
        &self,
        id: &ContainerId,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecResult> {
        timed!("exec_sync", self.inner.exec_sync(id, cmd, timeout))
    }
    async fn exec(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecProcess> {
        timed!("exec", self.inner.exec(id, request))
    }
    async fn attach(&self, id: &ContainerId, request: AttachRequest) -> Result<Attachment> {
        timed!("attach", self.inner.attach(id, request))
    }
    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        timed!("container_stats", self.inner.container_stats(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerState as KState, ContainerStatus as KStatus};
    use rudder_runtime::simulated::SimulatedRuntime;

    fn status(phase: &str, running: &[bool]) -> PodStatus {
        PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(
                running
                    .iter()
                    .map(|r| KStatus {
                        state: Some(KState {
                            running: r.then(Default::default),
                            waiting: (!r).then(Default::default),
                            ..Default::default()
                        }),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    #[test]
    fn started_means_running_with_every_container_running() {
        let cases = [
            (status("Running", &[true, true]), true),
            (status("Running", &[true, false]), false),
            (status("Pending", &[true]), false),
            (status("Running", &[]), false),
            (PodStatus::default(), false),
        ];
        for (s, want) in cases {
            assert_eq!(all_running(&s), want, "{s:?}");
        }
    }

    fn sample(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
    }

    #[tokio::test]
    async fn runtime_calls_and_running_containers_are_reported() {
        let runtime = MeteredRuntime::new(Arc::new(SimulatedRuntime::new()));
        let count = |op: &str| {
            sample(
                &rudder_metrics::encode(),
                &format!("kubelet_runtime_operations_total{{operation_type=\"{op}\"}} "),
            )
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
        };
        let before = (count("run_podsandbox"), count("create_container"));
        let sandbox = runtime
            .run_pod_sandbox(SandboxConfig::default())
            .await
            .expect("sandbox");
        let a = runtime
            .create_container(&sandbox, ContainerConfig::default())
            .await
            .expect("create a");
        runtime
            .create_container(&sandbox, ContainerConfig::default())
            .await
            .expect("create b");
        runtime.start_container(&a).await.expect("start a");
        // Other tests share the process registry: compare increments.
        assert_eq!(count("run_podsandbox"), before.0 + 1);
        assert_eq!(count("create_container"), before.1 + 2);
        let text = rudder_metrics::encode_with(Some(&scrape_registry(&runtime).await));
        assert_eq!(
            sample(&text, "kubelet_running_pods ").as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            sample(
                &text,
                "kubelet_running_containers{container_state=\"running\"} "
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            sample(
                &text,
                "kubelet_running_containers{container_state=\"created\"} "
            )
            .as_deref(),
            Some("1")
        );
        assert!(text.contains("kubelet_runtime_operations_duration_seconds_bucket{le=\"0.005\",operation_type=\"start_container\"}"));
        assert!(text.contains("# TYPE kubelet_pod_start_duration_seconds histogram\n"));
    }
}
