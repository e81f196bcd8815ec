//! The DaemonSet controller: one pod per eligible node (placed by the scheduler through a
//! required node affinity on the node's name, as upstream does), the automatic daemon
//! tolerations, RollingUpdate within maxUnavailable or with maxSurge, or OnDelete, revisions
//! as ControllerRevisions `<daemonset>-<hash>` (`kubectl rollout history|undo`), and status for
//! `kubectl rollout status`. [`decide`] holds the decisions.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use rudder_machinery::LabelSelector;
use serde_json::json;

use self::decide::{REVISION_HASH, Rolling};
use crate::context::run_controller;
use crate::events::{NORMAL, Recorder, WARNING};
use crate::informer::{Informer, own_triggers};
use crate::revisions;
use crate::{Context, Result, pods};

const COMPONENT: &str = "daemonset-controller";

struct State {
    ctx: Context,
    nodes: Informer<Node>,
    revisions: Informer<ControllerRevision>,
    recorder: Recorder,
}

/// Runs the DaemonSet controller.
pub async fn run(ctx: Context) -> Result<()> {
    let daemonsets: Informer<DaemonSet> = Informer::start(&ctx.client, "daemonsets", ctx.stopped());
    let nodes: Informer<Node> = Informer::start(&ctx.client, "nodes", ctx.stopped());
    let revisions: Informer<ControllerRevision> =
        Informer::start(&ctx.client, "controllerrevisions", ctx.stopped());
    let pod_triggers =
        ctx.pods.triggers(
            daemonsets.store.clone(),
            |pod: &Pod| match pods::controller_ref(&pod.metadata) {
                Some(r) if r.kind == "DaemonSet" => {
                    vec![
                        ObjectRef::new(&r.name)
                            .within(pod.metadata.namespace.as_deref().unwrap_or("")),
                    ]
                }
                _ => vec![],
            },
        );
    // Any node change may change where daemons belong.
    let all = daemonsets.store.clone();
    let node_triggers = nodes.triggers(daemonsets.store.clone(), move |_: &Node| {
        all.state()
            .iter()
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect()
    });
    let state = Arc::new(State {
        recorder: ctx.recorder(COMPONENT),
        nodes,
        revisions,
        ctx: ctx.clone(),
    });
    run_controller(
        COMPONENT,
        daemonsets.store.clone(),
        vec![own_triggers(&daemonsets), pod_triggers, node_triggers],
        state,
        |ds, state| Box::pin(reconcile(ds, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

/// The pod for `node`: the template, its revision labels, the daemon tolerations, and a
/// required affinity to exactly that node.
fn daemon_pod(ds: &DaemonSet, uid: &str, hash: &str, node: &str) -> Pod {
    let mut pod = crate::replicaset::pod_from_template(ds, uid, &ds.spec.template);
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(REVISION_HASH.into(), hash.into());
    if let Some(g) = ds.metadata.generation {
        labels.insert("pod-template-generation".into(), g.to_string());
    }
    let spec = pod.spec.get_or_insert_default();
    let tolerations = spec.tolerations.get_or_insert_default();
    for t in decide::default_tolerations(spec.host_network.unwrap_or(false)) {
        if !tolerations
            .iter()
            .any(|x| x.key == t.key && x.effect == t.effect)
        {
            tolerations.push(t);
        }
    }
    let by_name = NodeSelectorRequirement {
        key: "metadata.name".into(),
        operator: "In".into(),
        values: Some(vec![node.into()]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = na
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(|| NodeSelector {
            node_selector_terms: vec![],
        });
    if required.node_selector_terms.is_empty() {
        required
            .node_selector_terms
            .push(NodeSelectorTerm::default());
    }
    for term in &mut required.node_selector_terms {
        term.match_fields = Some(vec![by_name.clone()]);
    }
    pod
}

/// Keeps the DaemonSet's ControllerRevisions: the current template's (renumbered on a
/// rollback), and unused ones within `revisionHistoryLimit`.
async fn sync_revisions(
    state: &State,
    ds: &DaemonSet,
    uid: &str,
    hash: &str,
    daemon_pods: &[Arc<Pod>],
) -> Result<()> {
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let owned = revisions::owned_by(&state.revisions.store.state(), &ns, uid);
    let in_use = daemon_pods
        .iter()
        .filter_map(|p| p.labels().get(REVISION_HASH))
        .map(|h| format!("{name}-{h}"))
        .collect();
    let mut annotations = ds.metadata.annotations.clone().unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    let owner = revisions::Owner {
        kind: "DaemonSet",
        namespace: &ns,
        name: &name,
        uid,
        labels: ds
            .spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
        annotations,
        template: &ds.spec.template,
        hash,
        history_limit: ds
            .spec
            .revision_history_limit
            .unwrap_or(revisions::DEFAULT_HISTORY_LIMIT),
    };
    revisions::sync(&state.ctx.client, &owner, &owned, &in_use).await?;
    Ok(())
}

async fn reconcile(ds: Arc<DaemonSet>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let Some(uid) = ds.uid() else {
        return Ok(Action::await_change());
    };
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = format!("DaemonSet/{ns}/{name}");
    let selector = LabelSelector::from_api(Some(&ds.spec.selector)).map_err(|e| {
        crate::ControllerError::Invalid {
            kind: "DaemonSet",
            name: format!("{ns}/{name}"),
            message: e.to_string(),
        }
    })?;
    let daemon_pods: Vec<Arc<Pod>> = ctx
        .controlled_pods(&ns, &uid)
        .into_iter()
        .filter(|p| selector.matches(p.labels()))
        .collect();
    let template_spec = ds.spec.template.spec.clone().unwrap_or_default();
    let mut eligible: Vec<String> = state
        .nodes
        .store
        .state()
        .iter()
        .filter(|n| decide::should_run(&template_spec, n))
        .map(|n| n.name_any())
        .collect();
    eligible.sort();
    let hash = crate::hash::template_hash(
        &ds.spec.template,
        ds.status.as_ref().and_then(|s| s.collision_count),
    );
    sync_revisions(&state, &ds, &uid, &hash, &daemon_pods).await?;
    let strategy = ds.spec.update_strategy.clone().unwrap_or_default();
    let desired = i32::try_from(eligible.len()).unwrap_or(i32::MAX);
    let rolling = (strategy.type_.as_deref() != Some("OnDelete")).then(|| {
        let r = strategy.rolling_update.unwrap_or_default();
        let scaled = |v: Option<IntOrString>, default: i32| {
            let v = v.unwrap_or(IntOrString::Int(default));
            crate::deployment::decide::scaled_value(&v, desired, true).max(0)
        };
        let (unavailable, surge) = (scaled(r.max_unavailable, 1), scaled(r.max_surge, 0));
        // Both zero would never progress; upstream then allows one unavailable.
        Rolling {
            max_unavailable: if unavailable == 0 && surge == 0 {
                1
            } else {
                unavailable
            },
            max_surge: surge,
        }
    });
    let min_ready = ds.spec.min_ready_seconds.map_or(0, i64::from);
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let plan = decide::plan(&eligible, &daemon_pods, &hash, rolling, min_ready, now);

    let manage = ctx.expectations.satisfied(
        &key,
        |n| {
            daemon_pods
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(n))
        },
        |u| {
            daemon_pods
                .iter()
                .any(|p| p.metadata.uid.as_deref() == Some(u) && !pods::is_terminating(p))
        },
    );
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    if manage {
        let mut created = Vec::new();
        for node in &plan.create_on {
            match api
                .create(&PostParams::default(), &daemon_pod(&ds, &uid, &hash, node))
                .await
            {
                Ok(p) => {
                    let n = p.name_any();
                    state.recorder.record(
                        ds.as_ref(),
                        NORMAL,
                        "SuccessfulCreate",
                        format!("Created pod: {n}"),
                    );
                    created.push(n);
                }
                Err(e) => {
                    state.recorder.record(
                        ds.as_ref(),
                        WARNING,
                        "FailedCreate",
                        format!("Error creating: {e}"),
                    );
                    ctx.expectations.expect(&key, created, vec![]);
                    return Err(e.into());
                }
            }
        }
        ctx.expectations.expect(&key, created, vec![]);
        let mut deleted = Vec::new();
        for pod_name in &plan.delete {
            let pod_uid = daemon_pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(pod_name))
                .and_then(|p| p.metadata.uid.clone());
            match api.delete(pod_name, &DeleteParams::background()).await {
                Ok(_) => {
                    deleted.extend(pod_uid);
                    state.recorder.record(
                        ds.as_ref(),
                        NORMAL,
                        "SuccessfulDelete",
                        format!("Deleted pod: {pod_name}"),
                    );
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        ctx.expectations.expect(&key, vec![], deleted);
    }

    let status = json!({"status": {
        "desiredNumberScheduled": plan.desired,
        "currentNumberScheduled": plan.current,
        "numberMisscheduled": plan.misscheduled,
        "numberReady": plan.ready,
        "numberAvailable": plan.available,
        "numberUnavailable": (plan.desired - plan.available).max(0),
        "updatedNumberScheduled": plan.updated,
        "observedGeneration": ds.metadata.generation,
    }});
    let current = serde_json::to_value(&ds.status)?;
    let changed = status["status"]
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, v)| current.get(k) != Some(v)));
    if changed {
        let dapi: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        match dapi
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(if manage {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(1))
    })
}
