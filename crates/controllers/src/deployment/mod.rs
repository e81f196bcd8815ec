//! The Deployment controller: ReplicaSets per pod template (`<deployment>-<pod-template-hash>`),
//! RollingUpdate and Recreate rollouts, revisions for `kubectl rollout history|undo`,
//! pause/resume, proportional scaling, history cleanup, status and conditions for
//! `kubectl rollout status`. [`decide`] and [`status`] hold the decisions; this module reads the
//! caches and applies them.

pub mod decide;
pub mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector as ApiSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use rudder_machinery::LabelSelector;
use serde_json::json;

use self::decide::{
    DESIRED_REPLICAS, MAX_REPLICAS, POD_TEMPLATE_HASH, REVISION, REVISION_HISTORY, Rs, Spec,
};
use crate::context::{Context, run_controller};
use crate::events::{NORMAL, Recorder};
use crate::informer::own_triggers;
use crate::{ControllerError, Result, pods};

const COMPONENT: &str = "deployment-controller";

struct State {
    ctx: Context,
    recorder: Recorder,
}

/// Runs the Deployment controller.
pub async fn run(ctx: Context) -> Result<()> {
    let deployments = ctx.deployments.store.clone();
    let rs_triggers = ctx
        .replicasets
        .triggers(deployments.clone(), move |rs: &ReplicaSet| {
            let ns = rs.namespace().unwrap_or_default();
            match pods::controller_ref(&rs.metadata) {
                Some(r) if r.kind == "Deployment" => vec![ObjectRef::new(&r.name).within(&ns)],
                Some(_) => vec![],
                None => deployments
                    .state()
                    .iter()
                    .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
                    .filter(|d| selector(d).is_ok_and(|s| s.matches(rs.labels())))
                    .map(|d| ObjectRef::from_obj(d.as_ref()))
                    .collect(),
            }
        });
    let state = Arc::new(State {
        recorder: ctx.recorder(COMPONENT),
        ctx: ctx.clone(),
    });
    run_controller(
        COMPONENT,
        ctx.deployments.store.clone(),
        vec![own_triggers(&ctx.deployments), rs_triggers],
        state,
        |d, state| Box::pin(reconcile(d, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

fn selector(d: &Deployment) -> std::result::Result<LabelSelector, String> {
    LabelSelector::from_api(Some(&d.spec.selector)).map_err(|e| e.to_string())
}

fn spec_of(d: &Deployment) -> Spec {
    let strategy = d.spec.strategy.clone().unwrap_or_default();
    let rolling = strategy.type_.as_deref() != Some("Recreate");
    let ru = strategy.rolling_update.unwrap_or_default();
    let pct = |s: &str| IntOrString::String(s.into());
    Spec {
        replicas: d.spec.replicas.unwrap_or(1),
        rolling,
        max_surge: ru.max_surge.unwrap_or_else(|| pct("25%")),
        max_unavailable: ru.max_unavailable.unwrap_or_else(|| pct("25%")),
    }
}

fn annotation(meta: &ObjectMeta, key: &str) -> Option<String> {
    meta.annotations.as_ref()?.get(key).cloned()
}

fn view(rs: &ReplicaSet) -> Rs {
    let st = rs.status.clone().unwrap_or_default();
    let num = |k: &str| annotation(&rs.metadata, k).and_then(|v| v.parse::<i64>().ok());
    Rs {
        name: rs.name_any(),
        replicas: rs.spec.replicas.unwrap_or(1),
        actual: st.replicas,
        ready: st.ready_replicas.unwrap_or(0),
        available: st.available_replicas.unwrap_or(0),
        created: rs
            .metadata
            .creation_timestamp
            .as_ref()
            .map_or(0, |t| t.0.as_second()),
        revision: num(REVISION).unwrap_or(0),
        max_replicas: num(MAX_REPLICAS).and_then(|v| i32::try_from(v).ok()),
        desired_replicas: num(DESIRED_REPLICAS).and_then(|v| i32::try_from(v).ok()),
    }
}

/// The template as JSON without the hash label, for comparing a Deployment's template with a
/// ReplicaSet's (upstream's `EqualIgnoreHash`).
fn template_key(t: &PodTemplateSpec) -> serde_json::Value {
    let mut t = t.clone();
    if let Some(m) = t.metadata.as_mut() {
        if let Some(l) = m.labels.as_mut() {
            l.remove(POD_TEMPLATE_HASH);
            if l.is_empty() {
                m.labels = None;
            }
        }
        if *m == ObjectMeta::default() {
            t.metadata = None;
        }
    }
    serde_json::to_value(t).unwrap_or_default()
}

fn now() -> i64 {
    k8s_openapi::jiff::Timestamp::now().as_second()
}

async fn reconcile(d: Arc<Deployment>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let Some(uid) = d.uid() else {
        return Ok(Action::await_change());
    };
    let sel = selector(&d).map_err(|message| ControllerError::Invalid {
        kind: "Deployment",
        name: format!("{ns}/{name}"),
        message,
    })?;
    if sel.is_empty() {
        // Upstream refuses to select every ReplicaSet of the namespace.
        state.recorder.record(
            d.as_ref(),
            crate::events::WARNING,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(Action::await_change());
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);

    // Claim: our ReplicaSets that still match, orphans that match; release the rest.
    let mut owned: Vec<Arc<ReplicaSet>> = Vec::new();
    for rs in ctx.replicasets.store.state() {
        if rs.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let matches = sel.matches(rs.labels());
        match pods::controller_ref(&rs.metadata) {
            Some(r) if r.uid == uid => {
                if matches {
                    owned.push(rs);
                } else if rs.metadata.deletion_timestamp.is_none() {
                    let refs: Vec<_> = rs
                        .owner_references()
                        .iter()
                        .filter(|r| r.uid != uid)
                        .cloned()
                        .collect();
                    patch_rs(
                        &rs_api,
                        &rs.name_any(),
                        json!({"metadata": {"ownerReferences": refs, "uid": rs.uid()}}),
                    )
                    .await?;
                }
            }
            None if matches
                && rs.metadata.deletion_timestamp.is_none()
                && d.metadata.deletion_timestamp.is_none() =>
            {
                let mut refs = rs.owner_references().to_vec();
                refs.push(pods::new_controller_ref(
                    "apps/v1",
                    "Deployment",
                    &name,
                    &uid,
                ));
                patch_rs(
                    &rs_api,
                    &rs.name_any(),
                    json!({"metadata": {"ownerReferences": refs, "uid": rs.uid()}}),
                )
                .await?;
                owned.push(rs);
            }
            _ => {}
        }
    }

    let spec = spec_of(&d);
    let want = template_key(&d.spec.template);
    let new_rs = owned
        .iter()
        .filter(|rs| {
            rs.spec
                .template
                .as_ref()
                .is_some_and(|t| template_key(t) == want)
        })
        .min_by_key(|rs| rs.metadata.creation_timestamp.clone())
        .cloned();
    let old_rs: Vec<Arc<ReplicaSet>> = owned
        .iter()
        .filter(|rs| new_rs.as_ref().is_none_or(|n| n.uid() != rs.uid()))
        .cloned()
        .collect();
    let mut conds = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let now = now();
    let deadline = d.spec.progress_deadline_seconds.map(i64::from);
    let paused = d.spec.paused.unwrap_or(false);

    if d.metadata.deletion_timestamp.is_some() {
        return finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, false).await;
    }
    // Pause and resume show in Progressing.
    let progressing_reason =
        status::get(&conds, status::PROGRESSING).and_then(|c| c.reason.clone());
    if paused && progressing_reason.as_deref() != Some(status::PAUSED) {
        status::set(
            &mut conds,
            status::condition(
                status::PROGRESSING,
                "Unknown",
                status::PAUSED,
                "Deployment is paused".into(),
                now,
            ),
        );
    } else if !paused && progressing_reason.as_deref() == Some(status::PAUSED) {
        status::set(
            &mut conds,
            status::condition(
                status::PROGRESSING,
                "Unknown",
                status::RESUMED,
                "Deployment is resumed".into(),
                now,
            ),
        );
    }

    // Revisions: the new set carries the highest revision (a rollback moves an old set to the top).
    let max_old = old_rs.iter().map(|r| view(r).revision).max().unwrap_or(0);
    let mut new_rs = new_rs;
    if let Some(n) = new_rs.clone() {
        let rev = view(&n).revision;
        if rev <= max_old || rev == 0 {
            let mut ann = json!({REVISION: (max_old + 1).to_string()});
            if rev > 0 {
                let mut hist = annotation(&n.metadata, REVISION_HISTORY).unwrap_or_default();
                if !hist.is_empty() {
                    hist.push(',');
                }
                hist.push_str(&rev.to_string());
                ann[REVISION_HISTORY] = json!(hist);
            }
            new_rs = Some(Arc::new(
                patch_rs(
                    &rs_api,
                    &n.name_any(),
                    json!({"metadata": {"annotations": ann}}),
                )
                .await?,
            ));
        }
        if !paused && status::get(&conds, status::PROGRESSING).is_none() && deadline.is_some() {
            status::set(
                &mut conds,
                status::condition(
                    status::PROGRESSING,
                    "True",
                    status::FOUND_NEW_RS,
                    format!("Found new replica set \"{}\"", n.name_any()),
                    now,
                ),
            );
        }
        let rev = annotation(&new_rs.as_ref().unwrap_or(&n).metadata, REVISION);
        if rev.is_some() && annotation(&d.metadata, REVISION) != rev {
            let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ns);
            api.patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": {REVISION: rev}}})),
            )
            .await?;
        }
    }

    let new_view = new_rs.as_deref().map(view);
    let old_views: Vec<Rs> = old_rs.iter().map(|r| view(r)).collect();
    let old_refs: Vec<&Rs> = old_views.iter().collect();
    let scaling_event = new_view
        .iter()
        .chain(old_views.iter())
        .filter(|r| r.replicas > 0)
        .any(|r| r.desired_replicas.is_some_and(|x| x != spec.replicas));

    if paused || scaling_event {
        let sizes = decide::proportional(&spec, new_view.as_ref(), &old_refs);
        scale_all(&state, &d, &spec, &owned, &sizes).await?;
        if paused {
            cleanup(&state, &d, &old_views, &rs_api).await?;
        }
        return finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, false).await;
    }

    if spec.rolling {
        let Some(new) = new_view else {
            let all: Vec<&Rs> = old_refs.clone();
            let replicas = decide::new_rs_replicas(&spec, &all, &Rs::default());
            create_new_rs(
                &state,
                &d,
                &uid,
                &spec,
                replicas,
                max_old + 1,
                &mut conds,
                now,
            )
            .await?;
            return finish(&state, &d, &spec, None, &old_rs, conds, true).await;
        };
        let mut all = old_refs.clone();
        all.push(&new);
        let target = if new.replicas > spec.replicas {
            spec.replicas
        } else {
            decide::new_rs_replicas(&spec, &all, &new)
        };
        if target != new.replicas {
            scale_all(&state, &d, &spec, &owned, &[(new.name.clone(), target)]).await?;
            return finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, true).await;
        }
        let downs = decide::scale_down_old(&spec, &new, &old_refs);
        if !downs.is_empty() {
            scale_all(&state, &d, &spec, &owned, &downs).await?;
            return finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, true).await;
        }
        let c = decide::counts(&spec, Some(&new), &old_refs);
        if decide::complete(&spec, &c) {
            cleanup(&state, &d, &old_views, &rs_api).await?;
        }
        return finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, true).await;
    }

    // Recreate: old sets to zero, wait for their pods to be gone, then the new set at full size.
    let downs: Vec<(String, i32)> = old_views
        .iter()
        .filter(|r| r.replicas > 0)
        .map(|r| (r.name.clone(), 0))
        .collect();
    if !downs.is_empty() {
        scale_all(&state, &d, &spec, &owned, &downs).await?;
        return finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, true).await;
    }
    let old_pods_running = old_views.iter().any(|r| r.actual > 0)
        || old_rs.iter().filter_map(|r| r.uid()).any(|uid| {
            ctx.controlled_pods(&ns, &uid).iter().any(|p| {
                !matches!(
                    p.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                )
            })
        });
    if old_pods_running {
        finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, true).await?;
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    match &new_view {
        None => {
            create_new_rs(
                &state,
                &d,
                &uid,
                &spec,
                spec.replicas,
                max_old + 1,
                &mut conds,
                now,
            )
            .await?;
            return finish(&state, &d, &spec, None, &old_rs, conds, true).await;
        }
        Some(new) if new.replicas != spec.replicas => {
            scale_all(
                &state,
                &d,
                &spec,
                &owned,
                &[(new.name.clone(), spec.replicas)],
            )
            .await?;
        }
        Some(new) => {
            if decide::complete(&spec, &decide::counts(&spec, Some(new), &old_refs)) {
                cleanup(&state, &d, &old_views, &rs_api).await?;
            }
        }
    }
    finish(&state, &d, &spec, new_rs.as_deref(), &old_rs, conds, true).await
}

async fn patch_rs(
    api: &Api<ReplicaSet>,
    name: &str,
    patch: serde_json::Value,
) -> Result<ReplicaSet> {
    Ok(api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?)
}

/// Sets the sizes of sets (with the desired/max annotations proportional scaling reads) and
/// records upstream's ScalingReplicaSet events.
async fn scale_all(
    state: &State,
    d: &Deployment,
    spec: &Spec,
    owned: &[Arc<ReplicaSet>],
    sizes: &[(String, i32)],
) -> Result<()> {
    let ns = d.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(state.ctx.client.clone(), &ns);
    for (name, size) in sizes {
        let Some(rs) = owned.iter().find(|r| &r.name_any() == name) else {
            continue;
        };
        let from = rs.spec.replicas.unwrap_or(1);
        let patch = json!({
            "metadata": {"annotations": {
                DESIRED_REPLICAS: spec.replicas.to_string(),
                MAX_REPLICAS: (spec.replicas + decide::max_surge(spec)).to_string(),
            }},
            "spec": {"replicas": size},
        });
        patch_rs(&api, name, patch).await?;
        if from != *size {
            let dir = if *size > from { "up" } else { "down" };
            state.recorder.record(
                d,
                NORMAL,
                "ScalingReplicaSet",
                format!("Scaled {dir} replica set {name} to {size} from {from}"),
            );
        }
    }
    Ok(())
}

/// Creates the ReplicaSet of the current template: `<deployment>-<hash>`, the hash in its
/// labels, selector and template, the revision and size annotations, the Deployment's
/// annotations (except those that describe a rollout).
#[allow(clippy::too_many_arguments)]
async fn create_new_rs(
    state: &State,
    d: &Deployment,
    uid: &str,
    spec: &Spec,
    replicas: i32,
    revision: i64,
    conds: &mut Vec<k8s_openapi::api::apps::v1::DeploymentCondition>,
    now: i64,
) -> Result<()> {
    let ns = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let collisions = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = crate::hash::template_hash(&d.spec.template, collisions);
    let rs_name = format!("{name}-{hash}");
    let mut template = d.spec.template.clone();
    let tmeta = template.metadata.get_or_insert_default();
    tmeta
        .labels
        .get_or_insert_default()
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let labels = tmeta.labels.clone();
    let mut selector: ApiSelector = d.spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_default()
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    const SKIP: &[&str] = &[
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    ];
    let mut annotations: BTreeMap<String, String> = d
        .annotations()
        .iter()
        .filter(|(k, _)| !SKIP.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(REVISION.into(), revision.to_string());
    annotations.insert(DESIRED_REPLICAS.into(), spec.replicas.to_string());
    annotations.insert(
        MAX_REPLICAS.into(),
        (spec.replicas + decide::max_surge(spec)).to_string(),
    );
    let rs = ReplicaSet {
        metadata: ObjectMeta {
            name: Some(rs_name.clone()),
            namespace: Some(ns.clone()),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![pods::new_controller_ref(
                "apps/v1",
                "Deployment",
                &name,
                uid,
            )]),
            ..Default::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(replicas),
            min_ready_seconds: d.spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    };
    let api: Api<ReplicaSet> = Api::namespaced(state.ctx.client.clone(), &ns);
    match api.create(&PostParams::default(), &rs).await {
        Ok(_) => {
            if replicas > 0 {
                state.recorder.record(
                    d,
                    NORMAL,
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {rs_name} to {replicas}"),
                );
            }
            if d.spec.progress_deadline_seconds.is_some() {
                status::refresh(
                    conds,
                    status::condition(
                        status::PROGRESSING,
                        "True",
                        status::NEW_RS_CREATED,
                        format!("Created new replica set \"{rs_name}\""),
                        now,
                    ),
                );
            }
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // A set of that name with another template (or one the cache has not seen yet):
            // if the template differs, count a collision so the next hash differs.
            let existing = api.get(&rs_name).await?;
            let same = existing
                .spec
                .template
                .as_ref()
                .is_some_and(|t| template_key(t) == template_key(&d.spec.template));
            let ours = pods::controller_ref(&existing.metadata).is_some_and(|r| r.uid == uid);
            if !(same && ours) {
                let count = collisions.unwrap_or(0).saturating_add(1);
                let dapi: Api<Deployment> = Api::namespaced(state.ctx.client.clone(), &ns);
                dapi.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"collisionCount": count}})),
                )
                .await?;
            }
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Deletes old sets beyond `revisionHistoryLimit`.
async fn cleanup(state: &State, d: &Deployment, old: &[Rs], api: &Api<ReplicaSet>) -> Result<()> {
    let Some(limit) = d.spec.revision_history_limit else {
        return Ok(());
    };
    let refs: Vec<&Rs> = old.iter().collect();
    for name in decide::history_to_delete(&refs, limit) {
        tracing::debug!(deployment = %d.name_any(), replicaset = %name, "cleaning up history");
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let _ = state;
    Ok(())
}

/// Computes and writes the status; requeues while a progress deadline runs.
async fn finish(
    state: &State,
    d: &Deployment,
    spec: &Spec,
    new_rs: Option<&ReplicaSet>,
    old_rs: &[Arc<ReplicaSet>],
    mut conds: Vec<k8s_openapi::api::apps::v1::DeploymentCondition>,
    rolled: bool,
) -> Result<Action> {
    let now = now();
    let new_view = new_rs.map(view);
    let old_views: Vec<Rs> = old_rs.iter().map(|r| view(r)).collect();
    let old_refs: Vec<&Rs> = old_views.iter().collect();
    let counts = decide::counts(spec, new_view.as_ref(), &old_refs);
    let deadline = d.spec.progress_deadline_seconds.map(i64::from);
    let paused = d.spec.paused.unwrap_or(false);
    let complete = decide::complete(spec, &counts)
        && d.status.as_ref().and_then(|s| s.observed_generation) <= d.metadata.generation;
    if rolled && !paused {
        status::after_rollout(
            &mut conds,
            d.status.as_ref(),
            &counts,
            complete,
            new_rs.map(|r| r.name_any()).as_deref(),
            deadline,
            now,
        );
    }
    status::availability(
        &mut conds,
        counts.available >= spec.replicas - decide::max_unavailable(spec),
        now,
    );
    let new_status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(counts.replicas),
        updated_replicas: Some(counts.updated),
        ready_replicas: Some(counts.ready),
        available_replicas: Some(counts.available),
        unavailable_replicas: Some(counts.unavailable),
        collision_count: d.status.as_ref().and_then(|s| s.collision_count),
        conditions: Some(conds.clone()),
        terminating_replicas: None,
    };
    if d.status.as_ref() != Some(&new_status) {
        let api: Api<Deployment> =
            Api::namespaced(state.ctx.client.clone(), &d.namespace().unwrap_or_default());
        match api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": new_status})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !paused
        && !complete
        && let Some(left) = status::time_left(&conds, deadline, now)
    {
        return Ok(Action::requeue(Duration::from_secs(
            u64::try_from(left).unwrap_or(1),
        )));
    }
    Ok(Action::await_change())
}
