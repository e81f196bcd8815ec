//! PersistentVolume binding and the local-path provisioner, as k3s ships them: a default
//! StorageClass `local-path` (WaitForFirstConsumer, reclaim Delete); claims bind to the
//! smallest fitting Available volume of their class; claims of the `local-path` class get a
//! `hostPath` volume under the data directory on the node of the first pod that uses them
//! (with node affinity to it); Released volumes with reclaim Delete are deleted. [`decide`]
//! picks volumes.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, Pod, VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::context::run_controller;
use crate::informer::{Informer, own_triggers};
use crate::{Context, Result};

const COMPONENT: &str = "persistentvolume-binder-controller";
/// Where local-path volumes live on their node (k3s: `/var/lib/rancher/k3s/storage`).
pub const LOCAL_PATH_DIR: &str = "/var/lib/rudder/storage";
/// The default class and its provisioner (k3s's names).
pub const LOCAL_PATH: &str = "local-path";
const PROVISIONER: &str = "rancher.io/local-path";
const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";

struct State {
    client: Client,
    pvs: Informer<PersistentVolume>,
    classes: Informer<StorageClass>,
    pods: kube::runtime::reflector::Store<Pod>,
    dir: std::path::PathBuf,
}

/// Runs the binder and the local-path provisioner; volumes live under `dir` on their node.
pub async fn run(ctx: Context, dir: std::path::PathBuf) -> Result<()> {
    ensure_default_class(&ctx.client).await?;
    let claims: Informer<PersistentVolumeClaim> =
        Informer::start(&ctx.client, "persistentvolumeclaims", ctx.stopped());
    let pvs: Informer<PersistentVolume> =
        Informer::start(&ctx.client, "persistentvolumes", ctx.stopped());
    let classes: Informer<StorageClass> =
        Informer::start(&ctx.client, "storageclasses", ctx.stopped());
    // New volumes and pods that use a claim may let a pending claim bind.
    let all = claims.store.clone();
    let pv_triggers = pvs.triggers(claims.store.clone(), move |_: &PersistentVolume| {
        all.state()
            .iter()
            .filter(|c| {
                c.spec
                    .as_ref()
                    .and_then(|s| s.volume_name.as_ref())
                    .is_none()
            })
            .map(|c| ObjectRef::from_obj(c.as_ref()))
            .collect()
    });
    let pod_triggers = ctx.pods.triggers(claims.store.clone(), |p: &Pod| {
        let ns = p.namespace().unwrap_or_default();
        p.spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| ObjectRef::new(&c.claim_name).within(&ns))
            .collect()
    });
    // Released volumes are reclaimed by a loop of their own.
    let reclaim = {
        let pvs = pvs.clone();
        let client = ctx.client.clone();
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                reclaim_released(&client, &pvs).await;
            }
        }
    };
    let state = Arc::new(State {
        client: ctx.client.clone(),
        pvs,
        classes,
        pods: ctx.pods.store.clone(),
        dir,
    });
    let controller = run_controller(
        COMPONENT,
        claims.store.clone(),
        vec![own_triggers(&claims), pv_triggers, pod_triggers],
        state,
        |pvc, state| Box::pin(reconcile(pvc, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    );
    tokio::select! {
        _ = controller => {}
        _ = reclaim => {}
    }
    Ok(())
}

async fn ensure_default_class(client: &Client) -> Result<()> {
    let api: Api<StorageClass> = Api::all(client.clone());
    let class = StorageClass {
        metadata: ObjectMeta {
            name: Some(LOCAL_PATH.into()),
            annotations: Some([(DEFAULT_CLASS.to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        provisioner: PROVISIONER.into(),
        reclaim_policy: Some("Delete".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &class).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile(pvc: Arc<PersistentVolumeClaim>, state: Arc<State>) -> Result<Action> {
    if pvc.metadata.deletion_timestamp.is_some()
        || pvc
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.as_ref())
            .is_some()
    {
        return Ok(Action::await_change());
    }
    let ns = pvc.namespace().unwrap_or_default();
    let name = pvc.name_any();
    let default_class = state
        .classes
        .store
        .state()
        .iter()
        .find(|c| c.annotations().get(DEFAULT_CLASS).map(String::as_str) == Some("true"))
        .map(|c| c.name_any());
    let class = match decide::claim_class(&pvc) {
        Some(c) => c.to_owned(),
        None => default_class.unwrap_or_default(),
    };
    let pvs: Vec<Arc<PersistentVolume>> = state.pvs.store.state();
    let refs: Vec<&PersistentVolume> = pvs.iter().map(|p| p.as_ref()).collect();
    let pv_name = match decide::choose(&pvc, &class, &refs) {
        Some(pv) => pv.name_any(),
        None => {
            let provisioned_here = state
                .classes
                .store
                .state()
                .iter()
                .any(|c| c.name_any() == class && c.provisioner == PROVISIONER);
            if !provisioned_here {
                return Ok(Action::await_change());
            }
            // WaitForFirstConsumer: the node of the first scheduled pod using the claim.
            let node = state.pods.state().iter().find_map(|p| {
                let spec = p.spec.as_ref()?;
                let uses = spec.volumes.as_deref().unwrap_or_default().iter().any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == name)
                });
                (uses && p.namespace().as_deref() == Some(ns.as_str()))
                    .then(|| spec.node_name.clone())
                    .flatten()
            });
            let Some(node) = node else {
                return Ok(Action::await_change());
            };
            provision(&state, &pvc, &class, &node).await?
        }
    };
    bind(&state.client, &pvc, &pv_name).await?;
    Ok(Action::await_change())
}

/// Creates a hostPath volume for the claim on `node`, pre-bound to it.
async fn provision(
    state: &State,
    pvc: &PersistentVolumeClaim,
    class: &str,
    node: &str,
) -> Result<String> {
    let uid = pvc.uid().unwrap_or_default();
    let pv_name = format!("pvc-{uid}");
    let path = state.dir.join(format!(
        "{pv_name}_{}_{}",
        pvc.namespace().unwrap_or_default(),
        pvc.name_any()
    ));
    let spec = pvc.spec.clone().unwrap_or_default();
    let pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(pv_name.clone()),
            annotations: Some(
                [(
                    "pv.kubernetes.io/provisioned-by".to_string(),
                    PROVISIONER.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity: spec.resources.and_then(|r| r.requests),
            access_modes: spec.access_modes,
            storage_class_name: Some(class.into()),
            persistent_volume_reclaim_policy: Some("Delete".into()),
            volume_mode: spec.volume_mode,
            host_path: Some(HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".into(),
                            operator: "In".into(),
                            values: Some(vec![node.into()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            claim_ref: Some(claim_ref(pvc)),
            ..Default::default()
        }),
        status: None,
    };
    let api: Api<PersistentVolume> = Api::all(state.client.clone());
    match api.create(&PostParams::default(), &pv).await {
        Ok(_) => tracing::info!(volume = %pv_name, node, "provisioned a local-path volume"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(pv_name)
}

fn claim_ref(pvc: &PersistentVolumeClaim) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        name: pvc.metadata.name.clone(),
        namespace: pvc.metadata.namespace.clone(),
        uid: pvc.metadata.uid.clone(),
        resource_version: pvc.metadata.resource_version.clone(),
        ..Default::default()
    }
}

/// Binds both ways: the volume's claimRef and phase, then the claim's volumeName and status.
async fn bind(client: &Client, pvc: &PersistentVolumeClaim, pv_name: &str) -> Result<()> {
    let pv_api: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pv_api
        .patch(
            pv_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"claimRef": claim_ref(pvc)}})),
        )
        .await?;
    pv_api
        .patch_status(
            pv_name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"phase": "Bound"}})),
        )
        .await?;
    let ns = pvc.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let name = pvc.name_any();
    api.patch(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"annotations": {
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes",
        }}, "spec": {"volumeName": pv_name}})),
    )
    .await?;
    let spec = pv.spec.unwrap_or_default();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(&json!({"status": {"phase": "Bound", "capacity": spec.capacity, "accessModes": spec.access_modes}})),
    )
    .await?;
    Ok(())
}

/// Unclaimed volumes become Available; volumes whose claim is gone become Released; Released volumes with reclaim Delete go (a
/// local directory on this machine with them).
async fn reclaim_released(client: &Client, pvs: &Informer<PersistentVolume>) {
    let api: Api<PersistentVolume> = Api::all(client.clone());
    for pv in pvs.store.state() {
        let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
            // Unclaimed volumes are Available, as upstream's binder marks them.
            if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Available") {
                let patch = json!({"status": {"phase": "Available"}});
                let pp = PatchParams::default();
                let _ = api
                    .patch_status(&pv.name_any(), &pp, &Patch::Merge(&patch))
                    .await;
            }
            continue;
        };
        let (Some(ns), Some(name)) = (r.namespace.clone(), r.name.clone()) else {
            continue;
        };
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
        let gone = match claims.get_opt(&name).await {
            Ok(None) => true,
            Ok(Some(c)) => r.uid.is_some() && c.metadata.uid != r.uid,
            Err(_) => false,
        };
        if !gone {
            continue;
        }
        let policy = pv
            .spec
            .as_ref()
            .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
            .unwrap_or("Retain");
        if policy == "Delete" {
            if let Some(hp) = pv.spec.as_ref().and_then(|s| s.host_path.as_ref())
                && pv
                    .annotations()
                    .get("pv.kubernetes.io/provisioned-by")
                    .map(String::as_str)
                    == Some(PROVISIONER)
            {
                let _ = std::fs::remove_dir_all(&hp.path);
            }
            let _ = api.delete(&pv.name_any(), &DeleteParams::default()).await;
        } else if pv.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Released") {
            let _ = api
                .patch_status(
                    &pv.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"status": {"phase": "Released"}})),
                )
                .await;
        }
    }
}
