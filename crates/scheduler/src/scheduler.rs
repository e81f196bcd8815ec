//! The scheduler at run time: watches into the cache, the scheduling loop, and the API writes
//! it decides on (bindings, events, pod status, victims' deletion). Runs only while this
//! process holds the `kube-system/kube-scheduler` Lease.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    Binding, Namespace, Node, ObjectReference, PersistentVolume, PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event as WatchEvent};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;

use crate::SchedulerError;
use crate::cache::{Cache, key_of};
use crate::config::Config;
use crate::metrics::Outcome;
use crate::preemption::{Candidate, NoCandidate, preempt};
use crate::queue::{Popped, Queue};
use crate::schedule::Algorithm;
use crate::snapshot::PodInfo;

/// Lease the scheduler elects its leader with, as kube-scheduler.
pub const LEASE_NAMESPACE: &str = "kube-system";
pub const LEASE_NAME: &str = "kube-scheduler";
/// Most bindings in flight at once.
const BIND_CONCURRENCY: usize = 256;
/// Number of watches that must finish their initial list before scheduling starts.
const WATCHES: usize = 6;

/// Runs the scheduler, leader-elected, until `stop` completes.
pub async fn run(
    client: kube::Client,
    config: Config,
    identity: String,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), SchedulerError> {
    let config = Arc::new(config);
    let names: Vec<&str> = config
        .profiles
        .iter()
        .map(|p| p.scheduler_name.as_str())
        .collect();
    tracing::info!(profiles = ?names, %identity, "scheduler waiting for leadership");
    rudder_leader::run_as_leader(
        client.clone(),
        LEASE_NAMESPACE,
        LEASE_NAME,
        &identity,
        rudder_leader::Timing::default(),
        stop,
        || Scheduler::new(client.clone(), config.clone(), identity.clone()).run(),
    )
    .await?;
    Ok(())
}

struct Shared {
    cache: Mutex<Cache>,
    queue: Mutex<Queue>,
    wake: Notify,
    synced: AtomicUsize,
    events: rudder_events::Recorder,
}

struct Scheduler {
    client: kube::Client,
    config: Arc<Config>,
    identity: String,
    shared: Arc<Shared>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep going with it.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Scheduler {
    fn new(client: kube::Client, config: Arc<Config>, identity: String) -> Self {
        Scheduler {
            client: client.clone(),
            config,
            identity,
            shared: Arc::new(Shared {
                cache: Mutex::new(Cache::default()),
                queue: Mutex::new(Queue::default()),
                wake: Notify::new(),
                synced: AtomicUsize::new(0),
                events: rudder_events::Recorder::new(client.clone()),
            }),
        }
    }

    /// Watches and schedules; everything stops when the future is dropped (leadership lost).
    async fn run(self) {
        let s = &self.shared;
        let config = self.config.clone();
        let c = self.client.clone();
        let pods = watch(Api::<Pod>::all(c.clone()), s, move |sh, ev| {
            let now = Instant::now();
            let (mut cache, mut queue) = (lock(&sh.cache), lock(&sh.queue));
            match ev {
                Change::Apply(p) => cache.apply_pod(p, &mut queue, &config, now),
                Change::Delete(key) => cache.delete_pod(&key, &mut queue, now),
                Change::Known(keys) => {
                    let gone: Vec<String> = cache
                        .placed
                        .keys()
                        .filter(|k| !keys.contains(*k))
                        .cloned()
                        .collect();
                    for k in gone {
                        cache.delete_pod(&k, &mut queue, now);
                    }
                }
            }
            sh.wake.notify_one();
        });
        let nodes = watch(Api::<Node>::all(c.clone()), s, |sh, ev| {
            let (mut cache, mut queue) = (lock(&sh.cache), lock(&sh.queue));
            match ev {
                Change::Apply(n) => cache.apply_node(n, &mut queue, Instant::now()),
                Change::Delete(key) => cache.delete_node(key.trim_start_matches('/')),
                Change::Known(keys) => {
                    let gone: Vec<String> = cache
                        .snapshot
                        .nodes
                        .iter()
                        .map(|n| format!("/{}", n.name))
                        .filter(|k| !keys.contains(k))
                        .collect();
                    for k in gone {
                        cache.delete_node(k.trim_start_matches('/'));
                    }
                }
            }
            sh.wake.notify_one();
        });
        let pvs = watch(Api::<PersistentVolume>::all(c.clone()), s, |sh, ev| {
            let (mut cache, mut queue) = (lock(&sh.cache), lock(&sh.queue));
            match ev {
                Change::Apply(v) => cache.apply_pv(v, &mut queue, Instant::now()),
                Change::Delete(key) => cache.delete_pv(key.trim_start_matches('/')),
                Change::Known(_) => {}
            }
        });
        let pvcs = watch(Api::<PersistentVolumeClaim>::all(c.clone()), s, |sh, ev| {
            let (mut cache, mut queue) = (lock(&sh.cache), lock(&sh.queue));
            match ev {
                Change::Apply(v) => cache.apply_pvc(v, &mut queue, Instant::now()),
                Change::Delete(key) => cache.delete_pvc(&key),
                Change::Known(_) => {}
            }
        });
        let classes = watch(Api::<PriorityClass>::all(c.clone()), s, |sh, ev| match ev {
            Change::Apply(pc) => lock(&sh.cache).apply_class(&pc),
            Change::Delete(key) => lock(&sh.cache).delete_class(key.trim_start_matches('/')),
            Change::Known(_) => {}
        });
        let namespaces = watch(Api::<Namespace>::all(c.clone()), s, |sh, ev| {
            let (mut cache, mut queue) = (lock(&sh.cache), lock(&sh.queue));
            match ev {
                Change::Apply(ns) => cache.apply_namespace(&ns, &mut queue, Instant::now()),
                Change::Delete(key) => cache.delete_namespace(key.trim_start_matches('/')),
                Change::Known(_) => {}
            }
        });
        let budgets = watch(Api::<PodDisruptionBudget>::all(c), s, |sh, ev| match ev {
            Change::Apply(pdb) => lock(&sh.cache).apply_budget(&pdb),
            Change::Delete(key) => lock(&sh.cache).delete_budget(&key),
            Change::Known(_) => {}
        });
        tokio::join!(
            pods,
            nodes,
            pvs,
            pvcs,
            classes,
            budgets,
            namespaces,
            self.schedule_loop()
        );
    }

    async fn schedule_loop(&self) {
        while self.shared.synced.load(Ordering::Acquire) < WATCHES {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tracing::info!("scheduler caches synced; scheduling");
        crate::metrics::init();
        let mut algorithm = Algorithm::default();
        let mut tasks = JoinSet::new();
        let binds = Arc::new(Semaphore::new(BIND_CONCURRENCY));
        let mut last_flush = Instant::now();
        loop {
            while tasks.try_join_next().is_some() {}
            let popped = {
                let mut q = lock(&self.shared.queue);
                if last_flush.elapsed() >= Duration::from_millis(500) {
                    q.flush(Instant::now());
                    last_flush = Instant::now();
                    crate::metrics::pending(q.pending());
                }
                q.pop()
            };
            let Some(popped) = popped else {
                tokio::select! {
                    () = self.shared.wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
                continue;
            };
            let Ok(permit) = binds.clone().acquire_owned().await else {
                return;
            };
            let started = Instant::now();
            match self.schedule_one(&mut algorithm, &popped, started) {
                Decision::Bind(node) => {
                    let api = self.api();
                    tasks.spawn(async move {
                        api.bind(popped, node, started).await;
                        drop(permit);
                    });
                }
                Decision::Unschedulable { message, candidate } => {
                    let api = self.api();
                    tasks.spawn(async move {
                        api.unschedulable(&popped.pod, &message, candidate).await
                    });
                }
                Decision::Skip => {}
            }
        }
    }

    /// The pure part of one attempt, under the cache lock: decide, and assume on success.
    fn schedule_one(
        &self,
        algorithm: &mut Algorithm,
        popped: &Popped,
        started: Instant,
    ) -> Decision {
        let pod = &popped.pod;
        let scheduler = profile_of(pod);
        let Some(profile) = self.config.profile(scheduler) else {
            lock(&self.shared.queue).done(&popped.key);
            return Decision::Skip;
        };
        let mut cache = lock(&self.shared.cache);
        let mut info = PodInfo::new(pod.clone(), cache.classes.resolve(pod));
        if info.selects_namespaces() {
            info.resolve_namespaces(&cache.namespaces);
        }
        let info = Arc::new(info);
        match algorithm.schedule(
            profile,
            self.config.percentage_of_nodes_to_score,
            &cache.snapshot,
            &info,
        ) {
            Ok(placement) => {
                cache.assume(&popped.key, &placement.node, info);
                Decision::Bind(placement.node)
            }
            Err(mut fit) => {
                let candidate = if profile.preemption {
                    crate::metrics::preemption_attempt();
                    let budgets: Vec<_> = cache.budgets.values().cloned().collect();
                    match preempt(profile, &cache.snapshot, &info, &fit, &budgets) {
                        Ok(c) => Some(c),
                        Err(NoCandidate(msg)) => {
                            fit.post_filter = Some(msg);
                            None
                        }
                    }
                } else {
                    None
                };
                drop(cache);
                lock(&self.shared.queue).unschedulable(&popped.key, Instant::now());
                crate::metrics::attempt(scheduler, Outcome::Unschedulable, started);
                Decision::Unschedulable {
                    message: fit.message(),
                    candidate,
                }
            }
        }
    }

    fn api(&self) -> Writer {
        Writer {
            client: self.client.clone(),
            identity: self.identity.clone(),
            shared: self.shared.clone(),
        }
    }
}

/// The profile (scheduler name) a pod asks for.
fn profile_of(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.scheduler_name.as_deref())
        .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME)
}

enum Decision {
    Bind(String),
    Unschedulable {
        message: String,
        candidate: Option<Candidate>,
    },
    Skip,
}

/// A watch event reduced to what the cache needs; `Known` lists every key after a (re)list, so
/// objects deleted while the watch was down are dropped.
enum Change<K> {
    Apply(K),
    Delete(String),
    Known(std::collections::HashSet<String>),
}

async fn watch<K, F>(api: Api<K>, shared: &Arc<Shared>, mut on: F)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: FnMut(&Shared, Change<K>),
{
    // The scheduler never reads managedFields; dropping them keeps each cached pod small.
    let stream = watcher::watcher(api, watcher::Config::default())
        .modify(|o| o.meta_mut().managed_fields = None)
        .default_backoff();
    futures::pin_mut!(stream);
    let mut relisting = std::collections::HashSet::new();
    let mut synced = false;
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(WatchEvent::Apply(o)) => on(shared, Change::Apply(o)),
            Ok(WatchEvent::Delete(o)) => on(shared, Change::Delete(key_of(o.meta()))),
            Ok(WatchEvent::Init) => relisting.clear(),
            Ok(WatchEvent::InitApply(o)) => {
                relisting.insert(key_of(o.meta()));
                on(shared, Change::Apply(o));
            }
            Ok(WatchEvent::InitDone) => {
                on(shared, Change::Known(std::mem::take(&mut relisting)));
                if !synced {
                    synced = true;
                    shared.synced.fetch_add(1, Ordering::AcqRel);
                }
            }
            Err(e) => tracing::warn!(error = %e, "scheduler watch failed; retrying"),
        }
    }
}

/// The API writes of one decision, run as their own task.
struct Writer {
    client: kube::Client,
    identity: String,
    shared: Arc<Shared>,
}

impl Writer {
    fn pods(&self, ns: &str) -> Api<Pod> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn bind(&self, popped: Popped, node: String, started: Instant) {
        let pod = &popped.pod;
        let (ns, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                uid: pod.metadata.uid.clone(),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..ObjectReference::default()
            },
        };
        let result: Result<serde_json::Value, kube::Error> = self
            .pods(&ns)
            .create_subresource("binding", &name, &PostParams::default(), &binding)
            .await;
        match result {
            Ok(_) => {
                lock(&self.shared.queue).done(&popped.key);
                crate::metrics::attempt(profile_of(pod), Outcome::Scheduled, started);
                tracing::debug!(pod = %popped.key, %node, attempts = popped.attempts, latency = ?popped.added.elapsed(), "bound");
                self.event(
                    pod,
                    "Normal",
                    "Scheduled",
                    &format!("Successfully assigned {ns}/{name} to {node}"),
                );
            }
            Err(e) => {
                lock(&self.shared.cache).forget(&popped.key);
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404);
                {
                    let mut q = lock(&self.shared.queue);
                    if gone {
                        q.done(&popped.key)
                    } else {
                        q.failed(&popped.key, Instant::now())
                    }
                }
                tracing::warn!(pod = %popped.key, %node, error = %e, "binding failed");
                crate::metrics::attempt(profile_of(pod), Outcome::Error, started);
                if !gone {
                    self.event(
                        pod,
                        "Warning",
                        "FailedScheduling",
                        &format!("Binding rejected: {e}"),
                    );
                }
            }
        }
    }

    /// Reports a pod that fits nowhere: the event, the PodScheduled condition, and, when
    /// preemption found room, the nomination and the victims' deletion.
    async fn unschedulable(&self, pod: &Pod, message: &str, candidate: Option<Candidate>) {
        let (ns, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        tracing::info!(pod = %format!("{ns}/{name}"), %message, "unschedulable");
        self.event(pod, "Warning", "FailedScheduling", message);
        let current = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let same =
            current.is_some_and(|c| c.status == "False" && c.message.as_deref() == Some(message));
        let mut status = serde_json::Map::new();
        if !same {
            status.insert("conditions".into(), json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                "message": message, "lastProbeTime": null, "lastTransitionTime": Timestamp::now().to_string()}]));
        }
        if let Some(c) = &candidate {
            status.insert("nominatedNodeName".into(), json!(c.node));
        }
        if !status.is_empty() {
            let patch = Patch::Strategic(json!({"status": status}));
            if let Err(e) = self
                .pods(&ns)
                .patch_status(&name, &PatchParams::default(), &patch)
                .await
            {
                tracing::warn!(pod = %format!("{ns}/{name}"), error = %e, "updating pod status failed");
            }
        }
        let Some(candidate) = candidate else {
            return;
        };
        for victim in candidate.victims {
            let api = self.pods(&victim.namespace);
            match api.delete(&victim.name, &DeleteParams::default()).await {
                Ok(_) => {
                    let msg = format!("Preempted by {ns}/{name} on node {}", candidate.node);
                    self.event(&victim.pod, "Normal", "Preempted", &msg);
                }
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(victim = %victim.key(), error = %e, "deleting a preemption victim failed")
                }
            }
        }
    }

    /// Records a core/v1 Event about `pod` (what `kubectl describe pod` lists), in the
    /// background: a binding never waits for its event.
    fn event(&self, pod: &Pod, kind: &str, reason: &str, message: &str) {
        self.shared.events.record(rudder_events::Draft {
            involved: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                ..ObjectReference::default()
            },
            type_: kind.into(),
            reason: reason.into(),
            message: message.into(),
            component: "default-scheduler".into(),
            instance: self.identity.clone(),
            host: None,
        });
    }
}
