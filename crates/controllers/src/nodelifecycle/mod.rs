//! The node lifecycle controller: every few seconds it checks each node's heartbeat (its Lease
//! in `kube-node-lease` and its Ready condition), marks silent nodes Ready=Unknown
//! (`NodeStatusUnknown`), keeps the `unreachable`/`not-ready` taints in step, and evicts pods
//! from nodes with NoExecute taints once their tolerations run out (upstream's taint manager).
//! [`decide`] holds the decisions.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use self::decide::Health;
use crate::context::run_controller;
use crate::events::{NORMAL, Recorder};
use crate::informer::{Informer, own_triggers};
use crate::{Context, Result};

const COMPONENT: &str = "node-lifecycle-controller";
/// How often each node is checked (upstream's `--node-monitor-period`).
const MONITOR: Duration = Duration::from_secs(5);
const CONDITIONS: &[&str] = &["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

struct State {
    ctx: Context,
    leases: Informer<Lease>,
    recorder: Recorder,
}

/// Runs the node lifecycle controller.
pub async fn run(ctx: Context) -> Result<()> {
    let nodes: Informer<Node> = Informer::start(&ctx.client, "nodes", ctx.stopped());
    let leases: Informer<Lease> = Informer::start(&ctx.client, "leases", ctx.stopped());
    let state = Arc::new(State {
        recorder: ctx.recorder(COMPONENT),
        leases,
        ctx: ctx.clone(),
    });
    run_controller(
        COMPONENT,
        nodes.store.clone(),
        vec![own_triggers(&nodes)],
        state,
        |node, state| Box::pin(reconcile(node, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

async fn reconcile(node: Arc<Node>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let name = node.name_any();
    let now_ts = Timestamp::now();
    let now = now_ts.as_second();
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    let lease_renewed = state
        .leases
        .store
        .get(&ObjectRef::new(&name).within("kube-node-lease"))
        .and_then(|l| {
            l.spec
                .as_ref()?
                .renew_time
                .as_ref()
                .map(|t| t.0.as_second())
        });
    let ready_heartbeat = ready
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.as_second());
    let heartbeat = lease_renewed.max(ready_heartbeat);
    let health = decide::health(ready.map(|c| c.status.as_str()), heartbeat, now);
    let api: Api<Node> = Api::all(ctx.client.clone());

    // A silent node's conditions become Unknown (once).
    if health == Health::Unknown && ready.is_none_or(|c| c.status != "Unknown") {
        let mut conds = conditions.clone();
        for t in CONDITIONS {
            match conds.iter_mut().find(|c| c.type_ == *t) {
                Some(c) => {
                    c.status = "Unknown".into();
                    c.reason = Some("NodeStatusUnknown".into());
                    c.message = Some("Kubelet stopped posting node status.".into());
                    c.last_transition_time = Some(Time(now_ts));
                }
                None if *t == "Ready" => conds.push(k8s_openapi::api::core::v1::NodeCondition {
                    type_: "Ready".into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_transition_time: Some(Time(now_ts)),
                    last_heartbeat_time: None,
                }),
                None => {}
            }
        }
        tracing::info!(node = %name, "node stopped posting status; marking it Unknown");
        api.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": {"conditions": conds}})),
        )
        .await?;
        state.recorder.record(
            node.as_ref(),
            NORMAL,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        );
    }

    let current: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taints = decide::taints_for(&current, health, |k, e| Taint {
        key: k.into(),
        effect: e.into(),
        value: None,
        time_added: Some(Time(now_ts)),
    });
    if taints != current {
        let patch = json!({"metadata": {"resourceVersion": node.metadata.resource_version}, "spec": {"taints": taints}});
        match api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                return Ok(Action::requeue(Duration::from_millis(200)));
            }
            Err(e) => return Err(e.into()),
        }
    }

    // Taint manager: evict pods whose tolerations ran out.
    let mut next_check = MONITOR;
    if taints.iter().any(|t| t.effect == "NoExecute") {
        let victims: Vec<Arc<Pod>> = ctx
            .pods
            .store
            .state()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        for p in victims {
            let tolerations = p
                .spec
                .as_ref()
                .and_then(|s| s.tolerations.clone())
                .unwrap_or_default();
            let Some(at) = decide::eviction_time(&taints, &tolerations, now) else {
                continue;
            };
            if at > now {
                next_check =
                    next_check.min(Duration::from_secs(u64::try_from(at - now).unwrap_or(1)));
                continue;
            }
            let ns = p.namespace().unwrap_or_default();
            let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
            match pods.delete(&p.name_any(), &DeleteParams::default()).await {
                Ok(_) => {
                    let msg = format!("Marking for deletion Pod {ns}/{}", p.name_any());
                    state
                        .recorder
                        .record(p.as_ref(), NORMAL, "TaintManagerEviction", msg);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::requeue(next_check))
}
