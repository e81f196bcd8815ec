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
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
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
    let health = health_of(&node, lease_renewed, now);
    if health == Health::Starting {
        return Ok(Action::requeue(MONITOR));
    }
    let current: Vec<Taint> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let taints = decide::taints_for(&current, health, |k, e| lifecycle_taint(k, e, now_ts));
    let taints = if taints == current && !marks_unknown(&node, health) {
        taints
    } else {
        match sync_node(&state, &name, lease_renewed, now_ts).await? {
            Some(t) => t,
            // Gone, or it kept changing under us: look again soon.
            None => return Ok(Action::requeue(Duration::from_millis(200))),
        }
    };

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

/// A node's health from its Ready condition, its Lease's renewal and its age.
fn health_of(node: &Node, lease_renewed: Option<i64>, now: i64) -> Health {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let ready_heartbeat = ready
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0.as_second());
    let created = node
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second());
    decide::health(
        ready.map(|c| c.status.as_str()),
        lease_renewed.max(ready_heartbeat),
        created,
        now,
    )
}

fn lifecycle_taint(key: &str, effect: &str, now: Timestamp) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: Some(Time(now)),
    }
}

/// Whether a node in this health is to be marked Unknown (once: not if it already is).
fn marks_unknown(node: &Node, health: Health) -> bool {
    health == Health::Unknown && ready_condition(node).is_none_or(|c| c.status != "Unknown")
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// A silent node's conditions: Unknown, as upstream's `NodeStatusUnknown`.
fn unknown_conditions(node: &Node, now: Timestamp) -> Vec<NodeCondition> {
    let mut conds = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    for t in CONDITIONS {
        match conds.iter_mut().find(|c| c.type_ == *t) {
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
            }
            None if *t == "Ready" => conds.push(NodeCondition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: Some("NodeStatusNeverUpdated".into()),
                message: Some("Kubelet never posted node status.".into()),
                last_transition_time: Some(Time(now)),
                last_heartbeat_time: None,
            }),
            None => {}
        }
    }
    conds
}

/// Reads of the Node before a sync gives up for now.
const ATTEMPTS: usize = 5;

/// Marks node `name` Unknown if it is silent and brings its lifecycle taints in step with its
/// health, as upstream's `tryUpdateNodeHealth` and `SwapNodeControllerTaint` do: from a fresh
/// read of the Node, not the cache that woke us, which may be behind (behind this controller's
/// own writes too: deciding from it, the controller wrote the same Unknown status again and
/// again while its cache lagged), and, before calling the node silent, of its Lease. The
/// status write is guarded by the resourceVersion read, so it cannot overwrite a status the
/// agent has just written (a 409 reads again); the taint patch changes `spec.taints` only,
/// guarded by a test of the taints read ([`decide::taint_patch`]), so status writes never fail
/// it (a failed test reads again). Returns the taints the node now has; `None` when the node
/// is gone or every attempt lost a race.
async fn sync_node(
    state: &State,
    name: &str,
    lease_renewed: Option<i64>,
    now: Timestamp,
) -> Result<Option<Vec<Taint>>> {
    let client = &state.ctx.client;
    let api: Api<Node> = Api::all(client.clone());
    let path = format!("/api/v1/nodes/{name}");
    let (mut lease_renewed, mut lease_read) = (lease_renewed, false);
    for _ in 0..ATTEMPTS {
        let get = request(http::Request::get(&path), Vec::new())?;
        let mut raw = match client.request::<serde_json::Value>(get).await {
            Ok(raw) => raw,
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let node: Node = serde_json::from_value(raw.clone())?;
        let mut health = health_of(&node, lease_renewed, now.as_second());
        if health == Health::Unknown && !lease_read {
            // The Lease cache may lag as well (its watch carries every node's renewal every
            // 10 s): read the Lease before calling a node silent.
            lease_read = true;
            let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
            let fresh = leases
                .get_opt(name)
                .await?
                .and_then(|l| l.spec?.renew_time.map(|t| t.0.as_second()));
            lease_renewed = lease_renewed.max(fresh);
            health = health_of(&node, lease_renewed, now.as_second());
        }
        if marks_unknown(&node, health) {
            tracing::info!(node = %name, "node stopped posting status; marking it Unknown");
            let status = json!({
                "metadata": {"resourceVersion": node.metadata.resource_version},
                "status": {"conditions": unknown_conditions(&node, now)},
            });
            match api
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await
            {
                Ok(written) => {
                    state.recorder.record(
                        &written,
                        NORMAL,
                        "NodeNotReady",
                        format!("Node {name} status is now: NodeNotReady"),
                    );
                    // The spec is as read; only the resourceVersion moved on.
                    raw["metadata"]["resourceVersion"] = json!(written.metadata.resource_version);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let current = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let wanted = decide::taints_for(&current, health, |k, e| lifecycle_taint(k, e, now));
        if wanted == current {
            return Ok(Some(current));
        }
        let patch = serde_json::to_vec(&decide::taint_patch(&raw, &wanted))?;
        let req = request(
            http::Request::patch(&path)
                .header(http::header::CONTENT_TYPE, "application/json-patch+json"),
            patch,
        )?;
        match client.request::<Node>(req).await {
            Ok(_) => return Ok(Some(wanted)),
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(None),
            Err(kube::Error::Api(e)) if taints_changed(&e) => {
                tracing::debug!(node = %name, "the node's taints changed under us; reading it again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

fn request(builder: http::request::Builder, body: Vec<u8>) -> Result<http::Request<Vec<u8>>> {
    let uri = builder
        .uri_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    builder
        .body(body)
        .map_err(|e| crate::ControllerError::Invalid {
            kind: "Node",
            name: uri,
            message: e.to_string(),
        })
}

/// Whether a failed taint patch lost a race (its `test` found other taints, 422 as upstream
/// answers a failed test; or a 409) rather than being wrong.
fn taints_changed(e: &kube::core::Status) -> bool {
    e.code == 409 || (e.code == 422 && e.message.contains("test failed"))
}
