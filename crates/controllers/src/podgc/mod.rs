//! The pod garbage collector (upstream's podgc), every 20 s: deletes terminated pods beyond
//! `--terminated-pod-gc-threshold`, pods bound to nodes gone for 40 s (marked Failed with a
//! `DisruptionTarget` condition first, as upstream), pods being deleted on a not-ready node
//! tainted `node.kubernetes.io/out-of-service`, and pods being deleted that were never
//! scheduled. Deletions are forced (grace 0): no node agent is left to finish them. [`decide`]
//! picks the pods.

pub mod decide;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, ResourceExt};
use serde_json::json;

pub use decide::DEFAULT_TERMINATED_POD_THRESHOLD;
use decide::{Quarantine, Why};

use crate::informer::Informer;
use crate::{Context, ControllerError, Result};

const COMPONENT: &str = "pod-garbage-collector";
/// Upstream's gcCheckPeriod.
const PERIOD: Duration = Duration::from_secs(20);

/// Runs the pod garbage collector until the controller manager stops.
pub async fn run(ctx: Context) -> Result<()> {
    let nodes: Informer<Node> = Informer::start(&ctx.client, "nodes", ctx.stopped());
    nodes
        .store
        .wait_until_ready()
        .await
        .map_err(|_| ControllerError::CacheNotReady("nodes"))?;
    tracing::info!(controller = COMPONENT, "controller started");
    let mut quarantine = Quarantine::default();
    let stop = ctx.stopped();
    tokio::pin!(stop);
    loop {
        if let Err(e) = sweep(&ctx, &nodes, &mut quarantine).await {
            tracing::warn!(controller = COMPONENT, error = %e, "pod garbage collection failed; retrying");
        }
        tokio::select! {
            () = &mut stop => break,
            () = tokio::time::sleep(PERIOD) => {}
        }
    }
    tracing::info!(controller = COMPONENT, "controller stopped");
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

async fn sweep(ctx: &Context, nodes: &Informer<Node>, quarantine: &mut Quarantine) -> Result<()> {
    let pods = ctx.pods.store.state();
    let refs: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    let node_list = nodes.store.state();
    let known: BTreeSet<String> = node_list.iter().map(|n| n.name_any()).collect();
    let out_of_service: BTreeSet<String> = node_list
        .iter()
        .filter(|n| decide::out_of_service(n))
        .map(|n| n.name_any())
        .collect();
    let missing = decide::missing_nodes(&refs, &known);
    let node_api: Api<Node> = Api::all(ctx.client.clone());
    let mut gone = BTreeSet::new();
    // The node cache may lag behind a node that was just (re)created: ask the API server.
    for name in quarantine.update(&missing, now()) {
        if node_api.get_opt(&name).await?.is_none() {
            gone.insert(name);
        }
    }
    let threshold = ctx.options.terminated_pod_gc_threshold;
    for (pod, why) in decide::plan(&refs, threshold, &gone, &out_of_service) {
        delete(ctx, pod, why).await?;
    }
    Ok(())
}

async fn delete(ctx: &Context, pod: &Pod, why: Why) -> Result<()> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    // Released pods are marked failed first, as upstream: they never ran to an end. A pod whose
    // node is gone also says why (`DisruptionTarget`).
    if matches!(why, Why::Orphaned | Why::OutOfService) && !decide::terminated(pod) {
        let mut status = json!({"status": {"phase": "Failed"}});
        if why == Why::Orphaned {
            status["status"]["conditions"] = json!([{
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": "PodGC: node no longer exists",
                "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
            }]);
        }
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&status))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: pod.metadata.uid.clone().map(|uid| Preconditions {
            uid: Some(uid),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {
            tracing::info!(controller = COMPONENT, pod = %format!("{ns}/{name}"), reason = ?why, "deleted pod");
            Ok(())
        }
        // Gone already, or replaced by a pod of the same name (uid precondition).
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
