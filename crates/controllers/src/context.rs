//! What every controller shares: the API client, the informers (caches plus change feeds) of
//! the kinds several controllers read, expectations, and the stop signal; and the loop that runs
//! one controller on `kube::runtime::applier`.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, ReplicationController, Service};
use kube::Client;
use kube::runtime::controller::{Action, Config, applier};
use kube::runtime::reflector::{ObjectRef, Store};

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informer::{Informer, queue};
use crate::{ControllerError, Result};

/// Shared state handed to each controller (cheap to clone).
#[derive(Clone)]
pub struct Context {
    /// The API client.
    pub client: Client,
    /// Every pod.
    pub pods: Informer<Pod>,
    /// Every ReplicaSet.
    pub replicasets: Informer<ReplicaSet>,
    /// Every ReplicationController.
    pub replication_controllers: Informer<ReplicationController>,
    /// Every Deployment.
    pub deployments: Informer<Deployment>,
    /// Every Namespace.
    pub namespaces: Informer<Namespace>,
    /// Every Service.
    pub services: Informer<Service>,
    /// Every Job.
    pub jobs: Informer<Job>,
    /// Pending creates and deletes per controller object, so a lagging cache does not cause
    /// duplicates.
    pub(crate) expectations: Arc<Expectations>,
    /// The background event writer every controller's recorder shares.
    events: rudder_events::Recorder,
    /// Where the local-path provisioner puts volumes.
    pub local_path_dir: std::path::PathBuf,
    /// What the server handed the controller manager (CA, signing key, thresholds).
    pub options: Arc<crate::Options>,
    stop: tokio::sync::watch::Receiver<bool>,
}

impl Context {
    /// Starts the shared informers and waits until pods and ReplicaSets have listed once: a
    /// controller deciding from an empty cache would create pods that already exist.
    pub async fn start(
        client: Client,
        stop: tokio::sync::watch::Receiver<bool>,
        options: Arc<crate::Options>,
    ) -> Result<Self> {
        let stopped = || wait_stop(stop.clone());
        let ctx = Context {
            // No controller reads a pod's container environment, probes or non-claim
            // volumes: cached pods go without them.
            pods: Informer::start_indexed(
                &client,
                "pods",
                crate::pods::controller_key,
                rudder_machinery::pod_trim::trim_spec,
                stopped(),
            ),
            replicasets: Informer::start(&client, "replicasets", stopped()),
            replication_controllers: Informer::start(&client, "replicationcontrollers", stopped()),
            deployments: Informer::start(&client, "deployments", stopped()),
            namespaces: Informer::start(&client, "namespaces", stopped()),
            services: Informer::start(&client, "services", stopped()),
            jobs: Informer::start(&client, "jobs", stopped()),
            events: rudder_events::Recorder::new(client.clone()),
            client,
            expectations: Arc::new(Expectations::default()),
            local_path_dir: options.local_path_dir.clone(),
            options,
            stop,
        };
        ctx.pods
            .store
            .wait_until_ready()
            .await
            .map_err(|_| ControllerError::CacheNotReady("pods"))?;
        ctx.replicasets
            .store
            .wait_until_ready()
            .await
            .map_err(|_| ControllerError::CacheNotReady("replicasets"))?;
        Ok(ctx)
    }

    /// Resolves when the controller manager stops.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        wait_stop(self.stop.clone())
    }

    /// The cached pods of namespace `ns`.
    pub fn pods_in(&self, ns: &str) -> Vec<Arc<Pod>> {
        self.pods
            .store
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
            .collect()
    }

    /// The cached pods of namespace `ns` whose controller is the object with `uid`.
    pub fn controlled_pods(&self, ns: &str, uid: &str) -> Vec<Arc<Pod>> {
        let mut pods = match &self.pods.index {
            Some(ix) => ix.get(uid),
            None => self.pods_in(ns),
        };
        pods.retain(|p| {
            p.metadata.namespace.as_deref() == Some(ns)
                && crate::pods::controller_ref(&p.metadata).is_some_and(|r| r.uid == uid)
        });
        pods
    }

    /// The cached pods a controller of `ns` with `uid` may claim: its own and the namespace's
    /// pods without a controller (read from the index, not by scanning every pod).
    pub fn claimable_pods(&self, ns: &str, uid: &str) -> Vec<Arc<Pod>> {
        match &self.pods.index {
            Some(ix) => {
                let mut pods = ix.get(uid);
                pods.retain(|p| p.metadata.namespace.as_deref() == Some(ns));
                pods.extend(ix.get(&crate::pods::orphans_key(ns)));
                pods
            }
            None => self.pods_in(ns),
        }
    }

    /// Whether the pod `name` of `ns`, controlled by `uid`, is cached (as the index has it:
    /// a reader of [`Context::claimable_pods`] after this sees at least that pod).
    pub fn controlled_pod_cached(&self, ns: &str, uid: &str, name: &str) -> bool {
        match &self.pods.index {
            Some(ix) => ix.contains(uid, name),
            None => self
                .pods
                .store
                .get(&ObjectRef::new(name).within(ns))
                .is_some(),
        }
    }

    /// An event recorder for `component` (upstream's `source.component`).
    pub(crate) fn recorder(&self, component: &'static str) -> Recorder {
        Recorder::new(self.events.clone(), component)
    }
}

async fn wait_stop(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// How long a failed reconcile waits before it is retried.
const RETRY: Duration = Duration::from_secs(5);

/// Runs one controller: reconciles each `K` named by `triggers` (one at a time per object, as
/// `applier` guarantees) until the controller manager stops. `C` is the controller's own state.
pub async fn run_controller<K, C>(
    name: &'static str,
    store: Store<K>,
    triggers: Vec<BoxStream<'static, ObjectRef<K>>>,
    state: Arc<C>,
    reconcile: fn(Arc<K>, Arc<C>) -> BoxFuture<'static, Result<Action>>,
    stop: impl Future<Output = ()> + Send + 'static,
) where
    K: kube::Resource<DynamicType = ()> + Clone + Send + Sync + std::fmt::Debug + 'static,
    C: Send + Sync + 'static,
{
    tracing::info!(controller = name, "controller started");
    let metrics = Arc::new(crate::queue_metrics::QueueMetrics::new(name));
    let (on_add, on_run, on_drop) = (metrics.clone(), metrics.clone(), metrics);
    let requests = queue(triggers).inspect(move |r| {
        if let Ok(obj) = r {
            on_add.added(obj.namespace.as_deref(), &obj.name);
        }
    });
    let timed = move |obj: Arc<K>, state: Arc<C>| -> BoxFuture<'static, Result<Action>> {
        let meta = obj.meta();
        let started = on_run.started(
            meta.namespace.as_deref(),
            meta.name.as_deref().unwrap_or(""),
        );
        let metrics = on_run.clone();
        let run = reconcile(obj, state);
        Box::pin(async move {
            let result = run.await;
            metrics.finished(started);
            result
        })
    };
    let results = applier(
        timed,
        move |obj: Arc<K>, err: &ControllerError, _| {
            tracing::warn!(controller = name, object = %ObjectRef::from_obj(obj.as_ref()), error = %err, "reconcile failed; retrying");
            Action::requeue(RETRY)
        },
        state,
        store,
        requests,
        Config::default(),
    )
    .take_until(stop)
    .for_each(move |res| {
        if let Err(kube::runtime::controller::Error::ObjectNotFound(obj)) = &res {
            on_drop.dropped(obj.namespace.as_deref(), &obj.name);
        }
        if let Err(e) = res {
            // ObjectNotFound: the object was deleted between the trigger and the run.
            tracing::debug!(controller = name, error = %e, "reconcile request dropped");
        }
        std::future::ready(())
    });
    results.await;
    tracing::info!(controller = name, "controller stopped");
}
