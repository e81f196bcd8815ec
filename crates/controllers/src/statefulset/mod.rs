//! The StatefulSet controller: pods `<set>-<ordinal>` with stable hostnames (`subdomain` = the
//! governing Service), PersistentVolumeClaims `<claim>-<set>-<ordinal>` from
//! `volumeClaimTemplates` (owned by the set or a scaled-away pod under the retention policy),
//! ordinals from `ordinals.start`, OrderedReady or Parallel pod management, RollingUpdate with a
//! partition and maxUnavailable (or OnDelete), and revisions as ControllerRevisions
//! `<set>-<hash>` so `kubectl rollout status|history|undo` work. [`decide`] holds the
//! decisions.

pub mod decide;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use self::decide::{Slot, Spec};
use crate::context::run_controller;
use crate::events::{NORMAL, Recorder, WARNING};
use crate::informer::{Informer, own_triggers};
use crate::revisions::{self, REVISION_HASH};
use crate::{Context, Result, pods};

const COMPONENT: &str = "statefulset-controller";

struct State {
    ctx: Context,
    revisions: Informer<ControllerRevision>,
    recorder: Recorder,
}

/// Runs the StatefulSet controller.
pub async fn run(ctx: Context) -> Result<()> {
    let sets: Informer<StatefulSet> = Informer::start(&ctx.client, "statefulsets", ctx.stopped());
    let revisions: Informer<ControllerRevision> =
        Informer::start(&ctx.client, "controllerrevisions", ctx.stopped());
    let pod_triggers =
        ctx.pods.triggers(sets.store.clone(), |pod: &Pod| {
            match pods::controller_ref(&pod.metadata) {
                Some(r) if r.kind == "StatefulSet" => {
                    vec![
                        ObjectRef::new(&r.name)
                            .within(pod.metadata.namespace.as_deref().unwrap_or("")),
                    ]
                }
                _ => vec![],
            }
        });
    let state = Arc::new(State {
        recorder: ctx.recorder(COMPONENT),
        revisions,
        ctx: ctx.clone(),
    });
    run_controller(
        COMPONENT,
        sets.store.clone(),
        vec![own_triggers(&sets), pod_triggers],
        state,
        |set, state| Box::pin(reconcile(set, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

fn ordinal(set: &str, pod: &str) -> Option<i32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

async fn reconcile(set: Arc<StatefulSet>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let Some(uid) = set.uid() else {
        return Ok(Action::await_change());
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = format!("StatefulSet/{ns}/{name}");

    // Revisions: the current template's, created when new, renumbered on a rollback; unused
    // ones pruned beyond revisionHistoryLimit.
    let owned_revisions = revisions::owned_by(&state.revisions.store.state(), &ns, &uid);
    let hash = crate::hash::template_hash(
        &set.spec.template,
        set.status.as_ref().and_then(|s| s.collision_count),
    );
    let mine: Vec<Arc<Pod>> = ctx.controlled_pods(&ns, &uid);
    let mut in_use: BTreeSet<String> = mine
        .iter()
        .filter_map(|p| p.labels().get(REVISION_HASH).cloned())
        .collect();
    in_use.extend(set.status.as_ref().and_then(|s| s.current_revision.clone()));
    let owner = revisions::Owner {
        kind: "StatefulSet",
        namespace: &ns,
        name: &name,
        uid: &uid,
        labels: set.spec.selector.match_labels.clone().unwrap_or_default(),
        annotations: BTreeMap::new(),
        template: &set.spec.template,
        hash: &hash,
        history_limit: set
            .spec
            .revision_history_limit
            .unwrap_or(revisions::DEFAULT_HISTORY_LIMIT),
    };
    let update_revision = revisions::sync(&ctx.client, &owner, &owned_revisions, &in_use).await?;
    let current_revision = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .unwrap_or_else(|| update_revision.clone());
    let template_of = |rev: &str| -> PodTemplateSpec {
        if rev == update_revision {
            return set.spec.template.clone();
        }
        owned_revisions
            .iter()
            .find(|r| r.name_any() == rev)
            .and_then(|r| revisions::template(r))
            .unwrap_or_else(|| set.spec.template.clone())
    };

    let min_ready = set.spec.min_ready_seconds.map_or(0, i64::from);
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let slots: Vec<Slot> = mine
        .iter()
        .filter_map(|p| {
            let n = p.name_any();
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            Some(Slot {
                ordinal: ordinal(&name, &n)?,
                running_ready: running && pods::is_ready(p),
                available: running && pods::is_available(p, min_ready, now),
                failed: p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"),
                terminating: pods::is_terminating(p),
                revision: p.labels().get(REVISION_HASH).cloned().unwrap_or_default(),
                name: n,
            })
        })
        .collect();
    let strategy = set.spec.update_strategy.clone().unwrap_or_default();
    let replicas = set.spec.replicas.unwrap_or(1);
    let max_unavailable = strategy
        .rolling_update
        .as_ref()
        .and_then(|r| r.max_unavailable.as_ref())
        .map_or(1, |v| {
            crate::deployment::decide::scaled_value(v, replicas, true).max(1)
        });
    let spec = Spec {
        replicas,
        start: set
            .spec
            .ordinals
            .as_ref()
            .and_then(|o| o.start)
            .unwrap_or(0),
        max_unavailable,
        parallel: set.spec.pod_management_policy.as_deref() == Some("Parallel"),
        partition: (strategy.type_.as_deref() != Some("OnDelete")).then(|| {
            strategy
                .rolling_update
                .and_then(|r| r.partition)
                .unwrap_or(0)
        }),
        update_revision: update_revision.clone(),
        current_revision: current_revision.clone(),
    };
    let manage = ctx.expectations.satisfied(
        &key,
        |n| mine.iter().any(|p| p.metadata.name.as_deref() == Some(n)),
        |u| {
            mine.iter()
                .any(|p| p.metadata.uid.as_deref() == Some(u) && !pods::is_terminating(p))
        },
    );
    if manage {
        let plan = decide::plan(&spec, &slots);
        // Before a condemned pod goes, its claims learn whether to go with it.
        retain_claims(&state, &set, &uid, &spec, &mine).await?;
        let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
        let mut created = Vec::new();
        for (o, rev) in &plan.create {
            let pod = stateful_pod(&set, &uid, *o, rev, &template_of(rev));
            ensure_claims(&state, &set, *o).await?;
            match pods_api.create(&PostParams::default(), &pod).await {
                Ok(p) => {
                    let n = p.name_any();
                    let msg = format!("create Pod {n} in StatefulSet {name} successful");
                    state
                        .recorder
                        .record(set.as_ref(), NORMAL, "SuccessfulCreate", msg);
                    created.push(n);
                }
                // The previous pod of that name is still terminating.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    let msg =
                        format!("create Pod {name}-{o} in StatefulSet {name} failed error: {e}");
                    state
                        .recorder
                        .record(set.as_ref(), WARNING, "FailedCreate", msg);
                    return Err(e.into());
                }
            }
        }
        ctx.expectations.expect(&key, created, vec![]);
        let mut deleted = Vec::new();
        for n in &plan.delete {
            match pods_api.delete(n, &DeleteParams::default()).await {
                Ok(_) => {
                    deleted.extend(
                        mine.iter()
                            .find(|p| &p.name_any() == n)
                            .and_then(|p| p.uid()),
                    );
                    let msg = format!("delete Pod {n} in StatefulSet {name} successful");
                    state
                        .recorder
                        .record(set.as_ref(), NORMAL, "SuccessfulDelete", msg);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        ctx.expectations.expect(&key, vec![], deleted);
    }

    // Status: the current revision catches up once every pod runs the update.
    let live: Vec<&Slot> = slots.iter().filter(|s| !s.terminating).collect();
    let updated = live
        .iter()
        .filter(|s| s.revision == update_revision)
        .count();
    let current = live
        .iter()
        .filter(|s| s.revision == current_revision)
        .count();
    let ready = live.iter().filter(|s| s.running_ready).count();
    // Nothing changes when a ready pod becomes available: look again then.
    let recheck = mine
        .iter()
        .filter(|p| !pods::is_available(p, min_ready, now))
        .filter_map(|p| pods::ready_since(p))
        .map(|since| since.saturating_add(min_ready).saturating_sub(now).max(1))
        .min()
        .map(|secs| Duration::from_secs(u64::try_from(secs).unwrap_or(1)));
    let available = mine
        .iter()
        .filter(|p| !pods::is_terminating(p) && pods::is_available(p, min_ready, now))
        .count();
    let all_updated = i32::try_from(updated).unwrap_or(0) == spec.replicas && live.len() == updated;
    let (current_revision, current) = if all_updated {
        (update_revision.clone(), updated)
    } else {
        (current_revision, current)
    };
    let status = json!({
        "replicas": live.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current,
        "updatedReplicas": updated,
        "currentRevision": current_revision,
        "updateRevision": update_revision,
        "observedGeneration": set.metadata.generation,
    });
    let old = serde_json::to_value(&set.status)?;
    let changed = status
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, v)| old.get(k) != Some(v)));
    if changed {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({"status": status})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match (manage, recheck) {
        (false, _) => Action::requeue(Duration::from_secs(1)),
        (true, Some(after)) => Action::requeue(after),
        (true, None) => Action::await_change(),
    })
}

/// The pod at `ordinal`: stable name and hostname, revision labels, claims as volumes.
fn stateful_pod(
    set: &StatefulSet,
    uid: &str,
    ordinal: i32,
    revision: &str,
    template: &PodTemplateSpec,
) -> Pod {
    let set_name = set.name_any();
    let pod_name = format!("{set_name}-{ordinal}");
    let mut pod = crate::replicaset::pod_from_template(set, uid, template);
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name.clone());
    let labels = pod.metadata.labels.get_or_insert_default();
    labels.insert(REVISION_HASH.into(), revision.into());
    labels.insert(
        "statefulset.kubernetes.io/pod-name".into(),
        pod_name.clone(),
    );
    labels.insert("apps.kubernetes.io/pod-index".into(), ordinal.to_string());
    let spec = pod.spec.get_or_insert_default();
    spec.hostname = Some(pod_name.clone());
    if let Some(svc) = set.spec.service_name.as_ref().filter(|s| !s.is_empty()) {
        spec.subdomain = Some(svc.clone());
    }
    for claim in set
        .spec
        .volume_claim_templates
        .as_deref()
        .unwrap_or_default()
    {
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let volumes = spec.volumes.get_or_insert_default();
        volumes.retain(|v| v.name != claim_name);
        volumes.push(Volume {
            name: claim_name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: format!("{claim_name}-{pod_name}"),
                read_only: None,
            }),
            ..Default::default()
        });
    }
    pod
}

/// The set's `persistentVolumeClaimRetentionPolicy`.
fn retention(set: &StatefulSet) -> decide::Retention {
    let policy = set.spec.persistent_volume_claim_retention_policy.as_ref();
    decide::Retention {
        delete_with_set: policy.and_then(|p| p.when_deleted.as_deref()) == Some("Delete"),
        delete_when_scaled: policy.and_then(|p| p.when_scaled.as_deref()) == Some("Delete"),
    }
}

/// Sets the owners of the pods' claims by the retention policy (upstream's claim owner
/// management): the garbage collector then deletes a claim with the set or with its pod.
async fn retain_claims(
    state: &State,
    set: &StatefulSet,
    uid: &str,
    spec: &Spec,
    mine: &[Arc<Pod>],
) -> Result<()> {
    let templates = set
        .spec
        .volume_claim_templates
        .as_deref()
        .unwrap_or_default();
    if templates.is_empty() {
        return Ok(());
    }
    let ns = set.namespace().unwrap_or_default();
    let set_name = set.name_any();
    let set_ref = OwnerReference {
        controller: None,
        ..pods::new_controller_ref("apps/v1", "StatefulSet", &set_name, uid)
    };
    let wanted = decide::ordinals(spec);
    let api: Api<PersistentVolumeClaim> = Api::namespaced(state.ctx.client.clone(), &ns);
    for pod in mine.iter().filter(|p| !pods::is_terminating(p)) {
        let pod_name = pod.name_any();
        let Some(o) = ordinal(&set_name, &pod_name) else {
            continue;
        };
        let pod_ref = pod.uid().map(|pod_uid| OwnerReference {
            controller: None,
            ..pods::new_controller_ref("v1", "Pod", &pod_name, &pod_uid)
        });
        for claim in templates {
            let claim_name = format!(
                "{}-{pod_name}",
                claim.metadata.name.as_deref().unwrap_or_default()
            );
            let Some(pvc) = api.get_opt(&claim_name).await? else {
                continue;
            };
            let existing = pvc.metadata.owner_references.clone().unwrap_or_default();
            let Some(owners) = decide::claim_owners(
                &existing,
                retention(set),
                &set_ref,
                pod_ref.as_ref(),
                !wanted.contains(&o),
            ) else {
                continue;
            };
            // Guarded by resourceVersion: a concurrent change makes this sync retry.
            let patch = json!({"metadata": {
                "ownerReferences": owners,
                "resourceVersion": pvc.metadata.resource_version,
            }});
            api.patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
        }
    }
    Ok(())
}

/// Creates the pod's claims that do not exist yet (`<claim>-<set>-<ordinal>`); whether they
/// outlive the pod and the set is [`retain_claims`]'s business.
async fn ensure_claims(state: &State, set: &StatefulSet, ordinal: i32) -> Result<()> {
    let ns = set.namespace().unwrap_or_default();
    let set_name = set.name_any();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(state.ctx.client.clone(), &ns);
    for claim in set
        .spec
        .volume_claim_templates
        .as_deref()
        .unwrap_or_default()
    {
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let name = format!("{claim_name}-{set_name}-{ordinal}");
        if api.get_opt(&name).await?.is_some() {
            continue;
        }
        let mut labels: BTreeMap<String, String> =
            claim.metadata.labels.clone().unwrap_or_default();
        labels.extend(set.spec.selector.match_labels.clone().unwrap_or_default());
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                labels: Some(labels),
                annotations: claim.metadata.annotations.clone(),
                ..Default::default()
            },
            spec: claim.spec.clone(),
            status: None,
        };
        match api.create(&PostParams::default(), &pvc).await {
            Ok(_) => {
                let msg = format!(
                    "create Claim {name} Pod {set_name}-{ordinal} in StatefulSet {set_name} success"
                );
                state.recorder.record(set, NORMAL, "SuccessfulCreate", msg);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
