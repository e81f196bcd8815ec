//! The ReplicaSet and ReplicationController controllers: keep `replicas` pods from the template,
//! adopting and releasing pods by selector, and report status. [`decide`] holds the decision;
//! this module reads the caches and applies the plan through the API.

pub mod decide;

use std::cell::LazyCell;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
    // Both read the pod index (this owner's pods, the namespace's orphans), not every cached
    // pod: at 150,000 pods a scan per sync was most of the controller's CPU. The live UIDs are
    // built only when a delete is pending, in a block: the cell is not Send and must not live
    // across an await.
    let manage = {
        let seen = |n: &str| ctx.controlled_pod_cached(&ns, &uid, n);
        let live_uids = LazyCell::new(|| {
            ctx.controlled_pods(&ns, &uid)
                .iter()
                .filter(|p| !pods::is_terminating(p))
                .filter_map(|p| p.metadata.uid.clone())
                .collect::<HashSet<String>>()
        });
        ctx.expectations
            .satisfied(&key, seen, |u| live_uids.contains(u))
    };
    // Read after the expectations were checked, so it holds every pod that check saw (the
    // index only moves forward): a snapshot taken before could miss a pod the check counted as
    // created, and the sync would create it again.
    let ns_pods: Vec<Arc<Pod>> = ctx.claimable_pods(&ns, &uid);
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
        let api = &pods_api;
        let outcomes = delete_pods(
            &plan.delete,
            DELETE_CONCURRENCY,
            |name, pod_uid| async move {
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(pod_uid.to_owned()),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                api.delete(name, &dp).await.map(drop)
            },
        )
        .await;
        let mut deleted = Vec::new();
        let mut first_error = None;
        for ((name, pod_uid), outcome) in outcomes {
            match outcome {
                Deleted::Yes => {
                    deleted.push(pod_uid.clone());
                    state.recorder.record(
                        owner,
                        NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted pod: {name}"),
                    );
                }
                Deleted::Failed(e) => {
                    state.recorder.record(
                        owner,
                        WARNING,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    );
                    first_error.get_or_insert(e);
                }
                Deleted::Gone | Deleted::NotSent => {}
            }
        }
        // What was deleted is expected gone even when another delete failed.
        ctx.expectations.expect(key, vec![], deleted);
        if let Some(e) = first_error {
            return Err(e.into());
        }
    }
    Ok(())
}

/// How many of a sync's DELETEs are in flight at once. Upstream's controller sends all of a
/// sync's deletes (at most `burstReplicas`, [`decide::BURST`]) at once, a goroutine each, and
/// its client's rate limit paces them; this client has no rate limit, so the bound is here. 64
/// in flight hide the round trip (a 500-pod sync waits for ~8 round trips, not 500; serial
/// deletes took 10 s per 500-pod sync at 10,000 pods) and stay well under the API server's 200
/// mutating requests in flight, per user too for a controller manager outside
/// `system:masters`, so one scale-down neither draws 429s nor crowds out the agents' and the
/// other controllers' writes.
const DELETE_CONCURRENCY: usize = 64;

/// What became of one pod a sync meant to delete.
#[derive(Debug)]
enum Deleted {
    /// Deleted: expected gone from the cache (`SuccessfulDelete`).
    Yes,
    /// Already gone (404), or the name now belongs to another pod (409 on the UID
    /// precondition): nothing to expect, the cache will show it.
    Gone,
    /// The DELETE failed otherwise (`FailedDelete`; the sync returns the first such error).
    Failed(kube::Error),
    /// Not sent: another delete of this sync had failed.
    NotSent,
}

/// Deletes `victims` (name, uid) through `delete`, at most `limit` at once, returning each
/// victim's outcome in completion order. Once a delete fails no more are sent (those in flight
/// finish), as the serial loop stopped at its first failure: an API server refusing deletes
/// sees a few of them and the next sync retries the rest, rather than 500 failures and events.
async fn delete_pods<'a, F, Fut>(
    victims: &'a [(String, String)],
    limit: usize,
    delete: F,
) -> Vec<(&'a (String, String), Deleted)>
where
    F: Fn(&'a str, &'a str) -> Fut,
    Fut: std::future::Future<Output = kube::Result<()>>,
{
    use futures::StreamExt;
    let failed = AtomicBool::new(false);
    // The futures are made up front, not in a stream's `map` closure: a closure taking a
    // reference, held across the awaits, trips the compiler's proof that the reconcile
    // future is Send ("implementation of `FnOnce` is not general enough").
    let sends: Vec<_> = victims
        .iter()
        .map(|victim| delete_one(victim, &failed, &delete))
        .collect();
    futures::stream::iter(sends)
        .buffer_unordered(limit.max(1))
        .collect()
        .await
}

async fn delete_one<'a, F, Fut>(
    victim: &'a (String, String),
    failed: &AtomicBool,
    delete: &F,
) -> (&'a (String, String), Deleted)
where
    F: Fn(&'a str, &'a str) -> Fut,
    Fut: std::future::Future<Output = kube::Result<()>>,
{
    if failed.load(Ordering::Relaxed) {
        return (victim, Deleted::NotSent);
    }
    let outcome = match delete(&victim.0, &victim.1).await {
        Ok(()) => Deleted::Yes,
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Deleted::Gone,
        Err(e) => {
            failed.store(true, Ordering::Relaxed);
            Deleted::Failed(e)
        }
    };
    (victim, outcome)
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn victims(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("p{i}"), format!("u{i}"))).collect()
    }

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("refused", "Refused")
                .with_code(code)
                .boxed(),
        )
    }

    /// Outcomes by victim name, in victim order.
    fn by_name(
        victims: &[(String, String)],
        outcomes: Vec<(&(String, String), Deleted)>,
    ) -> Vec<(String, String)> {
        let mut out: Vec<(usize, String, String)> = outcomes
            .into_iter()
            .map(|(v, o)| {
                let i = victims.iter().position(|x| x == v).expect("a victim");
                let o = match o {
                    Deleted::Failed(kube::Error::Api(e)) => format!("Failed {}", e.code),
                    other => format!("{other:?}"),
                };
                (i, v.0.clone(), o)
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, n, o)| (n, o)).collect()
    }

    #[tokio::test]
    async fn deletes_run_concurrently_up_to_the_limit() {
        let v = victims(200);
        let (in_flight, most, sent) =
            (AtomicUsize::new(0), AtomicUsize::new(0), Mutex::new(vec![]));
        let outcomes = delete_pods(&v, 64, |name, uid| {
            let (in_flight, most, sent) = (&in_flight, &most, &sent);
            async move {
                let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                in_flight.fetch_sub(1, Ordering::SeqCst);
                sent.lock()
                    .expect("lock")
                    .push((name.to_owned(), uid.to_owned()));
                Ok(())
            }
        })
        .await;
        assert_eq!(outcomes.len(), 200);
        assert!(outcomes.iter().all(|(_, o)| matches!(o, Deleted::Yes)));
        assert_eq!(most.load(Ordering::SeqCst), 64, "in flight at once");
        // Each pod deleted once, by its own UID (the precondition).
        let mut sent = sent.into_inner().expect("lock");
        sent.sort();
        let mut want = v.clone();
        want.sort();
        assert_eq!(sent, want);
    }

    #[tokio::test]
    async fn outcomes_by_response() {
        struct Case {
            name: &'static str,
            limit: usize,
            /// The API server's answer per victim (0: deleted).
            codes: &'static [u16],
            want: &'static [&'static str],
        }
        let cases = [
            Case {
                name: "all deleted",
                limit: 64,
                codes: &[0, 0, 0],
                want: &["Yes", "Yes", "Yes"],
            },
            Case {
                name: "already gone (404) or replaced under the same name (409): ignored",
                limit: 64,
                codes: &[404, 0, 409],
                want: &["Gone", "Yes", "Gone"],
            },
            Case {
                name: "a failure stops the deletes not yet sent",
                limit: 1,
                codes: &[0, 500, 0, 0],
                want: &["Yes", "Failed 500", "NotSent", "NotSent"],
            },
            Case {
                name: "deletes in flight when one fails still finish",
                limit: 3,
                codes: &[0, 500, 0, 0, 0],
                want: &["Yes", "Failed 500", "Yes", "NotSent", "NotSent"],
            },
        ];
        for c in cases {
            let v = victims(c.codes.len());
            let started = AtomicUsize::new(0);
            let outcomes = delete_pods(&v, c.limit, |name, _| {
                let code = c.codes[name[1..].parse::<usize>().expect("index")];
                let started = &started;
                let in_flight = c.limit.min(c.codes.len());
                async move {
                    started.fetch_add(1, Ordering::SeqCst);
                    if code == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        return Ok(());
                    }
                    // Refused once every delete that can be in flight has been sent.
                    while started.load(Ordering::SeqCst) < in_flight {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err(api_error(code))
                }
            })
            .await;
            let got: Vec<String> = by_name(&v, outcomes).into_iter().map(|(_, o)| o).collect();
            assert_eq!(got, c.want, "{}", c.name);
        }
    }
}
