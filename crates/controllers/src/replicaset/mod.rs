//! The ReplicaSet and ReplicationController controllers: keep `replicas` pods from the template,
//! adopting and releasing pods by selector, and report status. [`decide`] holds the decision;
//! this module reads the caches and applies the plan through the API.

pub mod decide;

use std::cell::LazyCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use rudder_machinery::LabelSelector;
use serde_json::json;

use self::decide::{Counts, Owner, Plan};
use crate::context::{Context, run_controller};
use crate::events::{NORMAL, Recorder, WARNING};
use crate::informer::own_triggers;
use crate::{ControllerError, Result, pods};

/// What the two kinds have in common for this controller.
pub trait Replicated:
    Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// `source.component` of its events.
    const COMPONENT: &'static str;
    /// Desired replicas (default 1).
    fn replicas(&self) -> i32;
    /// The pod selector.
    fn selector(&self) -> std::result::Result<LabelSelector, String>;
    /// The pod template.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// `minReadySeconds`.
    fn min_ready_seconds(&self) -> i64;
    /// The status counts and observed generation it reports now.
    fn reported(&self) -> (Counts, Option<i64>);
}

/// The counts a ReplicaSet or ReplicationController status reports (same fields, two types).
macro_rules! reported {
    ($obj:expr) => {{
        let Some(s) = &$obj.status else {
            return (Counts::default(), None);
        };
        let counts = Counts {
            replicas: s.replicas,
            fully_labeled: s.fully_labeled_replicas.unwrap_or(0),
            ready: s.ready_replicas.unwrap_or(0),
            available: s.available_replicas.unwrap_or(0),
        };
        (counts, s.observed_generation)
    }};
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn selector(&self) -> std::result::Result<LabelSelector, String> {
        LabelSelector::from_api(Some(&self.spec.selector)).map_err(|e| e.to_string())
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i64 {
        self.spec.min_ready_seconds.map_or(0, i64::from)
    }
    fn reported(&self) -> (Counts, Option<i64>) {
        reported!(self)
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn selector(&self) -> std::result::Result<LabelSelector, String> {
        // An RC without a selector selects by its template's labels (upstream defaulting).
        let map = self
            .spec
            .as_ref()
            .and_then(|s| s.selector.clone())
            .or_else(|| {
                self.template()
                    .and_then(|t| t.metadata.as_ref()?.labels.clone())
            })
            .unwrap_or_default();
        if map.is_empty() {
            return Ok(LabelSelector::nothing());
        }
        let sel = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(map),
            match_expressions: None,
        };
        LabelSelector::from_api(Some(&sel)).map_err(|e| e.to_string())
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn min_ready_seconds(&self) -> i64 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .map_or(0, i64::from)
    }
    fn reported(&self) -> (Counts, Option<i64>) {
        reported!(self)
    }
}

/// Runs the ReplicaSet controller.
pub async fn run_replicasets(ctx: Context) -> Result<()> {
    let informer = ctx.replicasets.clone();
    run_kind::<ReplicaSet>(ctx, informer).await
}

/// Runs the ReplicationController controller.
pub async fn run_replication_controllers(ctx: Context) -> Result<()> {
    let informer = ctx.replication_controllers.clone();
    run_kind::<ReplicationController>(ctx, informer).await
}

struct State<K: Replicated> {
    ctx: Context,
    recorder: Recorder,
    _kind: std::marker::PhantomData<K>,
}

async fn run_kind<K: Replicated>(
    ctx: Context,
    informer: crate::informer::Informer<K>,
) -> Result<()> {
    let owners = informer.store.clone();
    let kind = K::kind(&()).into_owned();
    let pod_triggers = ctx.pods.triggers(owners.clone(), move |pod: &Pod| {
        match pods::controller_ref(&pod.metadata) {
            Some(r) if r.kind == kind => {
                vec![ObjectRef::new(&r.name).within(pod.namespace().as_deref().unwrap_or(""))]
            }
            Some(_) => vec![],
            // An orphan wakes every owner of its namespace whose selector matches it.
            None => {
                let labels = pod.labels().clone();
                owners
                    .state()
                    .iter()
                    .filter(|o| o.namespace() == pod.namespace())
                    .filter(|o| {
                        o.selector()
                            .is_ok_and(|s| !s.matches_nothing() && s.matches(&labels))
                    })
                    .map(|o| ObjectRef::from_obj(o.as_ref()))
                    .collect()
            }
        }
    });
    let state = Arc::new(State::<K> {
        recorder: ctx.recorder(K::COMPONENT),
        ctx: ctx.clone(),
        _kind: std::marker::PhantomData,
    });
    run_controller(
        K::COMPONENT,
        informer.store.clone(),
        vec![own_triggers(&informer), pod_triggers],
        state,
        |obj, state| Box::pin(reconcile(obj, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

async fn reconcile<K: Replicated>(owner: Arc<K>, state: Arc<State<K>>) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = owner.namespace().unwrap_or_default();
    let name = owner.name_any();
    let key = format!("{}/{ns}/{name}", K::kind(&()));
    let Some(uid) = owner.uid() else {
        return Ok(Action::await_change());
    };
    let selector = match owner.selector() {
        Ok(s) => s,
        Err(message) => {
            return Err(ControllerError::Invalid {
                kind: "ReplicaSet",
                name: format!("{ns}/{name}"),
                message,
            });
        }
    };
    let ns_pods: Vec<Arc<Pod>> = ctx.pods_in(&ns);
    // Looked up once per pending create or delete: a scan of the namespace's pods for each was
    // O(pending × pods), 12 % of the server's CPU while 10,000 pods churned. Built only when
    // something is pending, in a block: the cells are not Send and must not live across an await.
    let manage = {
        let names = LazyCell::new(|| {
            ns_pods
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .collect::<HashSet<&str>>()
        });
        let live_uids = LazyCell::new(|| {
            ns_pods
                .iter()
                .filter(|p| !pods::is_terminating(p))
                .filter_map(|p| p.metadata.uid.as_deref())
                .collect::<HashSet<&str>>()
        });
        ctx.expectations
            .satisfied(&key, |n| names.contains(n), |u| live_uids.contains(u))
    };
    let template_labels: BTreeMap<String, String> = owner
        .template()
        .and_then(|t| t.metadata.as_ref()?.labels.clone())
        .unwrap_or_default();
    let view = Owner {
        uid: &uid,
        replicas: owner.replicas(),
        selector: &selector,
        template_labels: &template_labels,
        min_ready_seconds: owner.min_ready_seconds(),
        deleting: owner.meta().deletion_timestamp.is_some(),
    };
    let plan = decide::decide(&view, &ns_pods, now(), manage);
    apply(&state, owner.as_ref(), &key, &uid, &ns_pods, &plan).await?;

    let (reported, observed) = owner.reported();
    let generation = owner.meta().generation;
    if reported != plan.counts || observed != generation {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        let c = plan.counts;
        let status = json!({"status": {
            "replicas": c.replicas,
            "fullyLabeledReplicas": c.fully_labeled,
            "readyReplicas": c.ready,
            "availableReplicas": c.available,
            "observedGeneration": generation,
        }});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match (manage, plan.recheck_after) {
        // Expectations pending: the cache will catch up and wake us; check again soon anyway.
        (false, _) => Action::requeue(Duration::from_secs(1)),
        (true, Some(s)) => {
            Action::requeue(Duration::from_secs(u64::try_from(s.max(1)).unwrap_or(1)))
        }
        (true, None) => Action::await_change(),
    })
}

/// Applies a plan: ownership patches, then creates and deletes, recording expectations first
/// so a sync that fails halfway still accounts for what it did.
async fn apply<K: Replicated>(
    state: &State<K>,
    owner: &K,
    key: &str,
    uid: &str,
    ns_pods: &[Arc<Pod>],
    plan: &Plan,
) -> Result<()> {
    let ctx = &state.ctx;
    let ns = owner.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let find = |n: &str| {
        ns_pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(n))
    };
    for n in &plan.adopt {
        if let Some(p) = find(n) {
            let mut refs = p.metadata.owner_references.clone().unwrap_or_default();
            refs.push(pods::new_controller_ref(
                &K::api_version(&()),
                &K::kind(&()),
                &owner.name_any(),
                uid,
            ));
            patch_owner_refs(&pods_api, p, refs).await?;
        }
    }
    for n in &plan.release {
        if let Some(p) = find(n) {
            let refs: Vec<_> = p
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|r| r.uid != uid)
                .collect();
            patch_owner_refs(&pods_api, p, refs).await?;
        }
    }
    if plan.create > 0 {
        let Some(template) = owner.template() else {
            return Ok(());
        };
        let pod = pod_from_template(owner, uid, template);
        let created = create_pods(state, owner, &pods_api, &pod, plan.create).await;
        ctx.expectations.expect(key, created, vec![]);
    }
    if !plan.delete.is_empty() {
        let mut deleted = Vec::new();
        for (name, pod_uid) in &plan.delete {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(pod_uid.clone()),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match pods_api.delete(name, &dp).await {
                Ok(_) => {
                    deleted.push(pod_uid.clone());
                    state.recorder.record(
                        owner,
                        NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    );
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => {
                    state.recorder.record(
                        owner,
                        WARNING,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    );
                    ctx.expectations.expect(key, vec![], deleted);
                    return Err(e.into());
                }
            }
        }
        ctx.expectations.expect(key, vec![], deleted);
    }
    Ok(())
}

/// Creates `count` pods in upstream's slow-start batches (1, 2, 4, …) so a template the API
/// server rejects fails once, not `count` times. Returns the names created.
async fn create_pods<K: Replicated>(
    state: &State<K>,
    owner: &K,
    api: &Api<Pod>,
    pod: &Pod,
    count: usize,
) -> Vec<String> {
    let mut created = Vec::new();
    let mut batch = 1;
    while created.len() < count {
        let n = batch.min(count - created.len());
        let pp = PostParams::default();
        let results = futures::future::join_all((0..n).map(|_| api.create(&pp, pod))).await;
        let mut failed = false;
        for r in results {
            match r {
                Ok(p) => {
                    let name = p.name_any();
                    state.recorder.record(
                        owner,
                        NORMAL,
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    );
                    created.push(name);
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(owner = %owner.name_any(), error = %e, "creating a pod failed");
                    state.recorder.record(
                        owner,
                        WARNING,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                }
            }
        }
        if failed {
            break;
        }
        batch *= 2;
    }
    created
}

/// The pod a controller creates from its template: named `<owner>-<random>` by the API
/// server's `generateName`, controlled by the owner.
pub(crate) fn pod_from_template<K: Resource<DynamicType = ()>>(
    owner: &K,
    uid: &str,
    template: &PodTemplateSpec,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    let mut pod = Pod {
        metadata: Default::default(),
        spec: template.spec.clone(),
        status: None,
    };
    pod.metadata.generate_name = Some(format!("{}-", owner.meta().name.as_deref().unwrap_or("")));
    pod.metadata.namespace = owner.meta().namespace.clone();
    pod.metadata.labels = meta.labels;
    pod.metadata.annotations = meta.annotations;
    pod.metadata.finalizers = meta.finalizers;
    pod.metadata.owner_references = Some(vec![pods::new_controller_ref(
        &K::api_version(&()),
        &K::kind(&()),
        owner.meta().name.as_deref().unwrap_or(""),
        uid,
    )]);
    pod
}

/// Sets a pod's owner references, guarded by its UID and resourceVersion so a pod replaced or
/// changed since the cache saw it is not claimed by mistake.
async fn patch_owner_refs(
    api: &Api<Pod>,
    pod: &Pod,
    refs: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference>,
) -> Result<()> {
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "uid": pod.metadata.uid,
        "resourceVersion": pod.metadata.resource_version,
    }});
    match api
        .patch(
            &pod.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone or changed: the next sync sees the new state.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
