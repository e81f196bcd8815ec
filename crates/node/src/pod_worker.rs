//! One task per pod bound to this node: pulls images, creates the sandbox, runs init containers
//! in order and then the app containers, restarts them by the pod's `restartPolicy` with
//! exponential back-off (`CrashLoopBackOff`), reports status, and on deletion stops everything
//! within the grace period and removes the pod.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use rudder_runtime::{ContainerId, ContainerRuntime, ContainerState, ExitForecast, SandboxId};
use tokio::sync::watch;

use crate::pod_spec::{self, EnvSources};
use crate::pod_status::{self, ContainerView, State, Terminated};
use crate::prober;

mod containers;
mod dns_files;
mod events;
mod probing;
mod references;

use containers::drive;
use events::{NORMAL, container_event};
use probing::{Probes, netns_of, ports_of, probe};
use references::env_sources;

/// First restart delay, doubled after each crash up to [`MAX_BACKOFF`] (upstream's values).
const INITIAL_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often running containers are checked for exits.
const POLL: Duration = Duration::from_millis(250);
/// The same on simulated nodes, where only modelled programs (`sleep N`) exit on their own and
/// thousands of workers share two cores.
const POLL_SIMULATED: Duration = Duration::from_secs(2);

/// What a pod worker shares with the others.
pub struct Shared {
    pub client: kube::Client,
    pub runtime: Arc<dyn ContainerRuntime>,
    /// The node's images; `None` on simulated nodes, where every image is present.
    pub images: Option<Arc<dyn rudder_runtime::ImageService>>,
    pub node_name: String,
    pub host_ip: String,
    /// The agent's data directory (pods' volumes live in `pods/<uid>/volumes`).
    pub root: std::path::PathBuf,
    /// The pod network, if the agent gives pods addresses.
    pub network: Option<Arc<crate::pod_network::NetworkSlot>>,
    /// Set on simulated nodes: fake pod addresses, and no files for containers that never
    /// read them (volumes, resolv.conf), so no ConfigMap, Secret or Service reads either.
    pub simulated: Option<Arc<crate::simulated::SimulatedNetwork>>,
    /// The cluster's DNS for pods' resolv.conf (`None`: pods get the node's resolvers).
    pub cluster_dns: Option<crate::pod_dns::ClusterDns>,
    /// The node's resolv.conf (`Default` policy, and search domains appended for the others).
    pub resolv_conf: std::path::PathBuf,
    /// Where pod events go (`kubectl describe pod`).
    pub events: rudder_events::Recorder,
}

/// What a step prepared for every container of the pod.
struct Prepared {
    env: EnvSources,
    /// The pod's address ("" without pod networking).
    pod_ip: String,
    /// Why the pod's volumes could not be set up, if they could not.
    volumes: Option<String>,
}

/// The runtime's view of one container of the pod, plus restart bookkeeping.
#[derive(Default)]
struct Slot {
    id: Option<ContainerId>,
    /// The last exited container, kept for its logs (`kubectl logs --previous`) until the next
    /// one starts.
    previous: Option<ContainerId>,
    attempt: u32,
    restarts: i32,
    last_exit: Option<Terminated>,
    waiting: Option<(String, Option<String>)>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// Probe tallies of the current run (reset when a new container starts).
    probes: Option<Probes>,
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

fn time_of(t: Option<std::time::SystemTime>) -> Option<Time> {
    let t = t?;
    let ts = k8s_openapi::jiff::Timestamp::try_from(t).ok()?;
    Some(Time(ts))
}

/// Runs the pod until it is deleted (then cleans up) or its receiver closes.
pub async fn run(shared: Arc<Shared>, mut pod_rx: watch::Receiver<Pod>) {
    // A pod that already ran before this worker (adopted after an agent restart) or a
    // simulated one does not count in `kubelet_pod_start_duration_seconds`.
    let already_running = pod_rx
        .borrow()
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        == Some("Running");
    let start_reported = already_running || shared.simulated.is_some();
    let mut worker = Worker {
        shared,
        sandbox: None,
        init: BTreeMap::new(),
        app: BTreeMap::new(),
        ephemeral: BTreeMap::new(),
        last_status: None,
        first_seen: Instant::now(),
        start_reported,
        volumes_synced: None,
        objects: Default::default(),
        service_env: Vec::new(),
        pod_ip: None,
    };
    let poll = if worker.shared.simulated.is_some() {
        POLL_SIMULATED
    } else {
        POLL
    };
    // The copies of the pod live in blocks that end before the worker waits: a copy held
    // across the wait is a second decoded pod per worker for its whole life (tens of KB, which
    // at 150,000 simulated pods ran the agents' process out of memory).
    {
        let first = pod_rx.borrow().clone();
        if let Err(e) = worker.adopt(&first).await {
            tracing::warn!(pod = ?first.metadata.name, error = %e, "adopting running containers");
        }
    }
    loop {
        let wait = {
            let pod = pod_rx.borrow_and_update().clone();
            if pod.metadata.deletion_timestamp.is_some() {
                worker.terminate(&pod).await;
                return;
            }
            match worker.step(&pod).await {
                Ok(()) => worker.next_look(&pod, poll).await,
                Err(e) => {
                    tracing::warn!(pod = ?pod.metadata.name, error = %e, "pod worker step failed");
                    poll
                }
            }
        };
        tokio::select! {
            changed = pod_rx.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    sandbox: Option<SandboxId>,
    init: BTreeMap<String, Slot>,
    app: BTreeMap<String, Slot>,
    /// Ephemeral containers (`kubectl debug`): run once each, never restarted.
    ephemeral: BTreeMap<String, Slot>,
    last_status: Option<PodStatus>,
    /// When volumes were last written (ConfigMap and Secret contents are refreshed every few
    /// seconds, as the kubelet's sync period does).
    volumes_synced: Option<(Instant, Option<String>)>,
    /// The ConfigMaps and Secrets the pod refers to, as last read.
    objects: crate::volumes::Objects,
    /// The Service environment variables, as last read (with the ConfigMaps and Secrets).
    service_env: Vec<(String, String)>,
    /// The pod's address once its sandbox is on the pod network.
    pod_ip: Option<String>,
    /// When this worker first saw the pod, and whether its start was reported since.
    first_seen: Instant,
    start_reported: bool,
}

/// How often a steady pod is looked at when nothing about it can change unseen (upstream's
/// `syncFrequency`).
const RESYNC: Duration = Duration::from_secs(60);
/// The shortest wait between steps, so a forecast in the past cannot make a worker spin.
const MIN_WAIT: Duration = Duration::from_millis(50);

/// How often file volumes are refreshed from their ConfigMaps and Secrets.
const VOLUME_RESYNC: Duration = Duration::from_secs(3);

type StepResult = Result<(), String>;

impl Worker {
    async fn step(&mut self, pod: &Pod) -> StepResult {
        let Some(spec) = pod.spec.clone() else {
            return Ok(());
        };
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let sandbox = match &self.sandbox {
            Some(s) => s.clone(),
            None => {
                let id = self
                    .shared
                    .runtime
                    .run_pod_sandbox(pod_spec::sandbox_config(pod, 0, self.log_directory(pod)))
                    .await
                    .map_err(|e| e.to_string())?;
                self.sandbox = Some(id.clone());
                id
            }
        };
        if self.pod_ip.is_none() {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            self.pod_ip = crate::pod_network::attach(&self.shared, &uid, &sandbox).await?;
        }
        // ConfigMaps and Secrets are re-read, and file volumes rewritten, every few seconds
        // (the kubelet's sync period), not on every step.
        let due = self.shared.simulated.is_none()
            && self
                .volumes_synced
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= VOLUME_RESYNC);
        if due {
            self.objects = references::fetch(&self.shared.client, pod, &self.objects).await;
            if let Some(vars) = references::service_env(&self.shared.client, pod).await {
                self.service_env = vars;
            }
            let root = self.shared.root.clone();
            let pod_copy = pod.clone();
            let objects = self.objects.clone();
            let result = tokio::task::spawn_blocking(move || {
                crate::volumes::sync(&root, &pod_copy, &objects)
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .err();
            self.volumes_synced = Some((Instant::now(), result));
            let pod_ip = self.pod_ip.clone().unwrap_or_default();
            if let Err(e) = dns_files::write(&self.shared, pod, &pod_ip).await {
                tracing::warn!(pod = ?pod.metadata.name, error = %e, "pod DNS files");
            }
        }
        let sources = Prepared {
            env: EnvSources {
                services: self.service_env.clone(),
                ..env_sources(&self.objects)
            },
            pod_ip: self.pod_ip.clone().unwrap_or_default(),
            volumes: self.volumes_synced.as_ref().and_then(|(_, r)| r.clone()),
        };
        // Init containers, one at a time, each to success.
        let mut init_done = true;
        for c in spec.init_containers.iter().flatten() {
            let slot = self.init.entry(c.name.clone()).or_default();
            let exited_ok =
                slot.last_exit.as_ref().is_some_and(|t| t.exit_code == 0) && slot.id.is_none();
            if exited_ok {
                continue;
            }
            init_done = false;
            let policy_for_init = if policy == "Always" {
                "OnFailure"
            } else {
                policy.as_str()
            };
            drive(
                &self.shared,
                pod,
                c,
                &sandbox,
                slot,
                policy_for_init,
                &sources,
            )
            .await;
            break;
        }
        if init_done {
            for c in &spec.containers {
                let slot = self.app.entry(c.name.clone()).or_default();
                drive(&self.shared, pod, c, &sandbox, slot, &policy, &sources).await;
                probe(&self.shared, pod, c, &sandbox, slot).await;
            }
            for c in ephemeral_containers(&spec) {
                let slot = self.ephemeral.entry(c.name.clone()).or_default();
                drive(&self.shared, pod, &c, &sandbox, slot, "Never", &sources).await;
            }
        }
        self.report(pod, &policy).await
    }

    /// How long the worker may wait for a change of the pod before it must look again: `poll`
    /// while something may change unseen (a process that may exit at any moment, due probes, a
    /// container not yet running, init containers at work); the end of a restart back-off or of
    /// a program whose end the runtime forecasts; [`RESYNC`] when the pod is steady. A
    /// simulated node's thousands of steady pods then cost nothing between resyncs.
    async fn next_look(&self, pod: &Pod, poll: Duration) -> Duration {
        let every_app_container_has_run = pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .all(|c| self.app.contains_key(&c.name));
        if self.sandbox.is_none() || !every_app_container_has_run {
            return poll;
        }
        let (now, wall) = (Instant::now(), std::time::SystemTime::now());
        let mut wait = RESYNC;
        for slot in self
            .init
            .values()
            .chain(self.app.values())
            .chain(self.ephemeral.values())
        {
            if slot.probes.as_ref().is_some_and(Probes::any)
                || (slot.waiting.is_some() && slot.retry_at.is_none())
            {
                return poll;
            }
            if let Some(at) = slot.retry_at {
                wait = wait.min(at.saturating_duration_since(now));
            }
            let Some(id) = &slot.id else { continue };
            match self.shared.runtime.exit_forecast(id).await {
                ExitForecast::Unknown => return poll,
                ExitForecast::Never => {}
                ExitForecast::At(t) => wait = wait.min(t.duration_since(wall).unwrap_or_default()),
            }
        }
        wait.max(MIN_WAIT)
    }

    /// Takes over what a previous agent left running for this pod (same uid): its ready sandbox
    /// and, per container, the latest run (running, or exited and not yet handled) and the one
    /// before it (for `--previous`). Everything else of the pod is removed.
    async fn adopt(&mut self, pod: &Pod) -> StepResult {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let rt = self.shared.runtime.clone();
        let mut sandboxes: Vec<_> = rt
            .list_pod_sandboxes()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|s| s.labels.get(pod_spec::labels::POD_UID) == Some(&uid))
            .collect();
        sandboxes.sort_by_key(|s| s.created_at);
        let keep = sandboxes
            .iter()
            .rev()
            .find(|s| s.state == rudder_runtime::SandboxState::Ready)
            .map(|s| s.id.clone());
        for s in &sandboxes {
            if Some(&s.id) != keep.as_ref() {
                let _ = rt.stop_pod_sandbox(&s.id).await;
                let _ = rt.remove_pod_sandbox(&s.id).await;
            }
        }
        let Some(sandbox) = keep else { return Ok(()) };
        let filter = rudder_runtime::ContainerFilter {
            sandbox_id: Some(sandbox.clone()),
            ..Default::default()
        };
        let mut containers = rt
            .list_containers(filter)
            .await
            .map_err(|e| e.to_string())?;
        containers.sort_by_key(|c| c.metadata.attempt);
        let spec = pod.spec.clone().unwrap_or_default();
        let is_init = |name: &str| {
            spec.init_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
        };
        let is_ephemeral = |name: &str| {
            spec.ephemeral_containers
                .iter()
                .flatten()
                .any(|c| c.name == name)
        };
        let mut by_name: BTreeMap<String, Vec<rudder_runtime::ContainerStatus>> = BTreeMap::new();
        for c in containers {
            by_name.entry(c.metadata.name.clone()).or_default().push(c);
        }
        for (name, mut runs) in by_name {
            let Some(latest) = runs.pop() else { continue };
            let previous = runs.pop();
            for stale in runs {
                let _ = rt.remove_container(&stale.id).await;
            }
            let slots = if is_init(&name) {
                &mut self.init
            } else if is_ephemeral(&name) {
                &mut self.ephemeral
            } else {
                &mut self.app
            };
            let slot = slots.entry(name).or_default();
            slot.attempt = latest.metadata.attempt + 1;
            slot.restarts = i32::try_from(latest.metadata.attempt).unwrap_or(i32::MAX);
            slot.last_exit = previous
                .as_ref()
                .filter(|p| p.state == ContainerState::Exited)
                .map(|p| exit_of(p, &self.shared.runtime.name()));
            slot.previous = previous.map(|p| p.id);
            slot.id = Some(latest.id);
        }
        tracing::info!(pod = ?pod.metadata.name, sandbox = %sandbox, "adopted running pod");
        self.sandbox = Some(sandbox);
        Ok(())
    }

    /// Builds the status from the slots and writes it when it changed.
    async fn report(&mut self, pod: &Pod, policy: &str) -> StepResult {
        let spec = pod.spec.clone().unwrap_or_default();
        let runtime = self.shared.runtime.name();
        let views =
            |containers: &[Container],
             slots: &BTreeMap<String, Slot>,
             statuses: &BTreeMap<String, rudder_runtime::ContainerStatus>| {
                containers
                    .iter()
                    .map(|c| view_of(c, slots.get(&c.name), statuses.get(&c.name), &runtime))
                    .collect::<Vec<_>>()
            };
        let mut statuses = BTreeMap::new();
        for (name, slot) in self
            .init
            .iter()
            .chain(self.app.iter())
            .chain(self.ephemeral.iter())
        {
            if let Some(id) = &slot.id
                && let Ok(st) = self.shared.runtime.container_status(id).await
            {
                statuses.insert(name.clone(), st);
            }
        }
        let init = views(
            spec.init_containers.as_deref().unwrap_or_default(),
            &self.init,
            &statuses,
        );
        let app = views(&spec.containers, &self.app, &statuses);
        let previous = pod.status.clone().unwrap_or_default();
        let observed = pod_status::Observed {
            restart_policy: policy,
            init: &init,
            app: &app,
            sandbox_ready: self.sandbox.is_some(),
            host_ip: &self.shared.host_ip,
            pod_ip: self.pod_ip.as_deref(),
        };
        let mut status = pod_status::pod_status(&previous, &observed, &now());
        let ephemeral = views(&ephemeral_containers(&spec), &self.ephemeral, &statuses);
        status.ephemeral_container_statuses =
            (!ephemeral.is_empty()).then(|| ephemeral.iter().map(pod_status::to_status).collect());
        // Keep times stable when nothing else changed, so an unchanged pod writes nothing.
        if let Some(last) = &self.last_status
            && same_but_times(last, &status)
        {
            return Ok(());
        }
        status.start_time = previous.start_time.clone().or(status.start_time);
        let api: Api<Pod> = Api::namespaced(
            self.shared.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let patch = serde_json::json!({"status": status});
        let params = PatchParams {
            field_manager: Some("rudder-agent".into()),
            ..Default::default()
        };
        api.patch_status(
            pod.metadata.name.as_deref().unwrap_or_default(),
            &params,
            &Patch::Merge(patch),
        )
        .await
        .map_err(|e| e.to_string())?;
        if !self.start_reported && crate::kubelet_metrics::all_running(&status) {
            crate::kubelet_metrics::pod_started(self.first_seen.elapsed());
            self.start_reported = true;
        }
        self.last_status = Some(status);
        Ok(())
    }

    /// Where the pod's containers log: the kubelet's layout under the data directory (none on
    /// simulated nodes, which write no files).
    fn log_directory(&self, pod: &Pod) -> Option<std::path::PathBuf> {
        let m = &pod.metadata;
        self.shared.simulated.is_none().then(|| {
            crate::pod_logs::pod_log_dir(
                &self.shared.root,
                m.namespace.as_deref().unwrap_or(""),
                m.name.as_deref().unwrap_or(""),
                m.uid.as_deref().unwrap_or(""),
            )
        })
    }

    /// Stops the pod within its grace period, removes what the runtime holds, then deletes the
    /// Pod object for good (the API server keeps it until the node confirms).
    async fn terminate(&mut self, pod: &Pod) {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30);
        let grace = Duration::from_secs(u64::try_from(grace).unwrap_or(0));
        let ids: Vec<ContainerId> = self
            .app
            .values()
            .chain(self.init.values())
            .chain(self.ephemeral.values())
            .flat_map(|s| s.id.iter().chain(s.previous.iter()).cloned())
            .collect();
        for (name, slot) in &self.app {
            if slot.id.is_some() {
                container_event(
                    &self.shared,
                    pod,
                    name,
                    NORMAL,
                    "Killing",
                    format!("Stopping container {name}"),
                );
            }
        }
        // preStop hooks run first, within the grace period; what is left of it goes to SIGTERM.
        let started = Instant::now();
        if let (Some(spec), Some(sandbox)) = (pod.spec.as_ref(), self.sandbox.clone()) {
            let hooks = spec.containers.iter().filter_map(|c| {
                let hook = c.lifecycle.as_ref()?.pre_stop.clone()?;
                let id = self.app.get(&c.name)?.id.clone()?;
                Some((c, hook, id))
            });
            let shared = &self.shared;
            let sandbox = &sandbox;
            let runs = hooks.map(|(c, hook, id)| async move {
                let netns = netns_of(shared, sandbox).await;
                let rt = &*shared.runtime;
                if !prober::run_hook(&hook, rt, &id, netns, &ports_of(c), grace).await {
                    tracing::info!(container = %c.name, "preStop hook failed");
                }
            });
            let _ = tokio::time::timeout(grace, futures::future::join_all(runs)).await;
        }
        let grace = grace.saturating_sub(started.elapsed());
        let stops = ids
            .iter()
            .map(|id| self.shared.runtime.stop_container(id, grace));
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "stopping a container");
            }
        }
        for id in &ids {
            let _ = self.shared.runtime.remove_container(id).await;
        }
        if let Some(sb) = self.sandbox.take() {
            let _ = self.shared.runtime.stop_pod_sandbox(&sb).await;
            let _ = self.shared.runtime.remove_pod_sandbox(&sb).await;
        }
        let root = self.shared.root.clone();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        crate::pod_network::detach(&self.shared, &uid).await;
        if self.shared.simulated.is_none() {
            let _ = tokio::task::spawn_blocking(move || crate::volumes::cleanup(&root, &uid)).await;
        }
        let api: Api<Pod> = Api::namespaced(
            self.shared.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        if let Err(e) = api
            .delete(pod.metadata.name.as_deref().unwrap_or_default(), &params)
            .await
        {
            tracing::warn!(pod = ?pod.metadata.name, error = %e, "removing a terminated pod");
        }
    }
}

fn same_but_times(a: &PodStatus, b: &PodStatus) -> bool {
    let strip = |s: &PodStatus| {
        let mut s = s.clone();
        s.start_time = None;
        for c in s.conditions.iter_mut().flatten() {
            c.last_transition_time = None;
            c.last_probe_time = None;
        }
        s
    };
    strip(a) == strip(b)
}

/// The agent's view of a container for status purposes.
/// A pod's ephemeral containers as containers (the same fields, less `targetContainerName`,
/// which `containers::drive` reads from the spec to put one in its target's PID namespace).
fn ephemeral_containers(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<Container> {
    spec.ephemeral_containers
        .iter()
        .flatten()
        .filter_map(|e| {
            let mut v = serde_json::to_value(e).ok()?;
            v.as_object_mut()?.remove("targetContainerName");
            serde_json::from_value(v).ok()
        })
        .collect()
}

fn view_of(
    c: &Container,
    slot: Option<&Slot>,
    st: Option<&rudder_runtime::ContainerStatus>,
    runtime: &str,
) -> ContainerView {
    let waiting = |reason: &str, message: Option<String>| State::Waiting {
        reason: reason.into(),
        message,
    };
    let state = match (slot, st) {
        (Some(s), _) if s.waiting.is_some() => {
            let (r, m) = s.waiting.clone().unwrap_or_default();
            waiting(&r, m)
        }
        (_, Some(st)) => match st.state {
            ContainerState::Running => State::Running {
                started_at: time_of(st.started_at).unwrap_or_else(now),
            },
            ContainerState::Exited => State::Terminated(exit_of(st, runtime)),
            ContainerState::Created => waiting("ContainerCreating", None),
        },
        (Some(s), None) => match &s.last_exit {
            Some(t) => State::Terminated(t.clone()),
            None => waiting("ContainerCreating", None),
        },
        (None, None) => waiting("ContainerCreating", None),
    };
    let last_terminated = slot.and_then(|s| {
        // While running or waiting, the previous exit is the last state.
        match &state {
            State::Terminated(_) => None,
            _ => s.last_exit.clone(),
        }
    });
    ContainerView {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: st.map(|s| s.image_id.clone()).unwrap_or_default(),
        container_id: st.map(|s| crate::node_object::container_id(runtime, &s.id)),
        state,
        last_terminated,
        restart_count: slot.map_or(0, |s| s.restarts),
        // Without probes a running container is started and ready.
        ready: slot
            .and_then(|s| s.probes.as_ref())
            .is_none_or(Probes::ready),
        started: slot
            .and_then(|s| s.probes.as_ref())
            .is_none_or(Probes::started),
    }
}

fn exit_of(st: &rudder_runtime::ContainerStatus, runtime: &str) -> Terminated {
    Terminated {
        exit_code: st.exit_code.unwrap_or(-1),
        reason: st
            .reason
            .map(|r| r.as_str().to_owned())
            .unwrap_or_else(|| "Error".into()),
        message: st.message.clone(),
        started_at: time_of(st.started_at),
        finished_at: time_of(st.finished_at),
        container_id: Some(crate::node_object::container_id(runtime, &st.id)),
    }
}
