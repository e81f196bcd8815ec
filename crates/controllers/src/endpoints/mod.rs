//! The EndpointSlice and Endpoints controllers: for each Service with a selector, the pods
//! that back it, as `discovery.k8s.io/v1` EndpointSlices (`<service>-<random>`, labelled
//! `kubernetes.io/service-name`, owned by the Service) and as the legacy `v1` Endpoints of the
//! Service's name. [`decide`] computes the groups; this module writes them.

pub mod decide;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, ObjectReference, Pod,
    Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use self::decide::Group;
use crate::context::run_controller;
use crate::informer::{Change, Informer, own_triggers};
use crate::{Context, Result, pods};

/// Label naming a slice's Service.
pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// Label naming a slice's manager.
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY`] (upstream's).
pub const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const HEADLESS: &str = "service.kubernetes.io/headless";

struct State {
    client: Client,
    pods: Store<Pod>,
    slices: Option<Store<EndpointSlice>>,
    endpoints: Option<Store<Endpoints>>,
}

/// Pod changes wake every Service with a selector in the pod's namespace: a pod relabeled out
/// of a selector must leave it, and its old labels are gone.
fn pod_triggers(ctx: &Context) -> futures::stream::BoxStream<'static, ObjectRef<Service>> {
    let services = ctx.services.store.clone();
    ctx.pods
        .triggers(ctx.services.store.clone(), move |pod: &Pod| {
            services
                .state()
                .iter()
                .filter(|s| {
                    s.metadata.namespace == pod.metadata.namespace && decide::selector(s).is_some()
                })
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect()
        })
}

fn ns_pods(store: &Store<Pod>, ns: &str) -> Vec<Arc<Pod>> {
    store
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns))
        .collect()
}

/// Labels both kinds carry: the Service's own, plus the headless marker.
fn base_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.remove(SERVICE_NAME);
    labels.remove(MANAGED_BY);
    if svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None") {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels
}

fn target_ref(ns: &str, e: &decide::PodEndpoint) -> ObjectReference {
    ObjectReference {
        kind: Some("Pod".into()),
        namespace: Some(ns.into()),
        name: Some(e.pod.clone()),
        uid: Some(e.uid.clone()),
        ..Default::default()
    }
}

/// Runs the EndpointSlice controller.
pub async fn run_slices(ctx: Context) -> Result<()> {
    let slices: Informer<EndpointSlice> =
        Informer::start(&ctx.client, "endpointslices", ctx.stopped());
    let slice_triggers = slices.triggers(ctx.services.store.clone(), |s: &EndpointSlice| {
        match (
            s.labels().get(SERVICE_NAME),
            s.labels().get(MANAGED_BY),
            s.namespace(),
        ) {
            (Some(svc), Some(m), Some(ns)) if m == CONTROLLER => {
                vec![ObjectRef::new(svc).within(&ns)]
            }
            _ => vec![],
        }
    });
    let state = Arc::new(State {
        client: ctx.client.clone(),
        pods: ctx.pods.store.clone(),
        slices: Some(slices.store.clone()),
        endpoints: None,
    });
    run_controller(
        "endpointslice-controller",
        ctx.services.store.clone(),
        vec![
            own_triggers(&ctx.services),
            pod_triggers(&ctx),
            slice_triggers,
        ],
        state,
        |svc, state| Box::pin(reconcile_slices(svc, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

fn slice_body(svc: &Service, g: &Group) -> EndpointSlice {
    let ns = svc.namespace().unwrap_or_default();
    EndpointSlice {
        metadata: ObjectMeta::default(),
        address_type: g.address_type.into(),
        endpoints: Some(
            g.endpoints
                .iter()
                .map(|e| Endpoint {
                    addresses: vec![e.ip.clone()],
                    conditions: Some(EndpointConditions {
                        ready: Some(e.ready),
                        serving: Some(e.serving),
                        terminating: Some(e.terminating),
                    }),
                    hostname: e.hostname.clone(),
                    node_name: e.node_name.clone(),
                    target_ref: Some(target_ref(&ns, e)),
                    ..Default::default()
                })
                .collect(),
        ),
        ports: Some(
            g.ports
                .iter()
                .map(|p| EndpointPort {
                    name: Some(p.name.clone().unwrap_or_default()),
                    port: Some(p.port),
                    protocol: Some(p.protocol.clone()),
                    app_protocol: p.app_protocol.clone(),
                })
                .collect(),
        ),
    }
}

async fn reconcile_slices(svc: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let Some(uid) = svc.uid() else {
        return Ok(Action::await_change());
    };
    let mut existing: Vec<Arc<EndpointSlice>> = state
        .slices
        .as_ref()
        .map(|s| s.state())
        .unwrap_or_default()
        .into_iter()
        .filter(|s| {
            s.namespace().as_deref() == Some(ns.as_str())
                && s.labels().get(SERVICE_NAME) == Some(&name)
                && s.labels().get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER)
        })
        .collect();
    existing.sort_by_key(|s| s.name_any());
    let wanted: Vec<Group> = match decide::desired(&svc, &ns_pods(&state.pods, &ns), true) {
        Some(groups) => decide::slices(&groups),
        None => vec![],
    };
    let api: Api<EndpointSlice> = Api::namespaced(state.client.clone(), &ns);
    let mut labels = base_labels(&svc);
    labels.insert(SERVICE_NAME.into(), name.clone());
    labels.insert(MANAGED_BY.into(), CONTROLLER.into());
    let owner = pods::new_controller_ref("v1", "Service", &name, &uid);
    for (i, g) in wanted.iter().enumerate() {
        let mut body = slice_body(&svc, g);
        match existing.get(i) {
            Some(cur) => {
                let same = cur.address_type == body.address_type
                    && cur.endpoints == body.endpoints
                    && cur.ports == body.ports
                    && cur.metadata.labels.as_ref() == Some(&labels);
                if same {
                    continue;
                }
                body.metadata = cur.metadata.clone();
                body.metadata.labels = Some(labels.clone());
                match api
                    .replace(&cur.name_any(), &PostParams::default(), &body)
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                        return Ok(Action::requeue(std::time::Duration::from_millis(200)));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            None => {
                body.metadata = ObjectMeta {
                    generate_name: Some(format!("{name}-")),
                    namespace: Some(ns.clone()),
                    labels: Some(labels.clone()),
                    owner_references: Some(vec![owner.clone()]),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &body).await?;
            }
        }
    }
    for extra in existing.iter().skip(wanted.len()) {
        match api
            .delete(&extra.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

/// Runs the Endpoints controller.
pub async fn run_endpoints(ctx: Context) -> Result<()> {
    let endpoints: Informer<Endpoints> = Informer::start(&ctx.client, "endpoints", ctx.stopped());
    let ep_triggers = endpoints.triggers(ctx.services.store.clone(), |e: &Endpoints| {
        vec![ObjectRef::new(&e.name_any()).within(&e.namespace().unwrap_or_default())]
    });
    // A deleted Service takes its Endpoints along (they carry no owner reference).
    let mut changes = ctx.services.subscribe();
    let client = ctx.client.clone();
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            if let Change::Deleted(svc) = change
                && decide::selector(&svc).is_some()
            {
                let api: Api<Endpoints> =
                    Api::namespaced(client.clone(), &svc.namespace().unwrap_or_default());
                let _ = api.delete(&svc.name_any(), &DeleteParams::default()).await;
            }
        }
    });
    let state = Arc::new(State {
        client: ctx.client.clone(),
        pods: ctx.pods.store.clone(),
        slices: None,
        endpoints: Some(endpoints.store.clone()),
    });
    run_controller(
        "endpoints-controller",
        ctx.services.store.clone(),
        vec![own_triggers(&ctx.services), pod_triggers(&ctx), ep_triggers],
        state,
        |svc, state| {
            Box::pin(reconcile_endpoints(svc, state)) as BoxFuture<'static, Result<Action>>
        },
        ctx.stopped(),
    )
    .await;
    Ok(())
}

/// The legacy subsets: one per port set, ready and not-ready addresses apart.
fn subsets(ns: &str, groups: &[Group]) -> Vec<EndpointSubset> {
    groups
        .iter()
        .filter(|g| !g.endpoints.is_empty())
        .map(|g| {
            let addr = |e: &decide::PodEndpoint| EndpointAddress {
                ip: e.ip.clone(),
                hostname: e.hostname.clone(),
                node_name: e.node_name.clone(),
                target_ref: Some(target_ref(ns, e)),
            };
            let ready: Vec<EndpointAddress> =
                g.endpoints.iter().filter(|e| e.ready).map(addr).collect();
            let not_ready: Vec<EndpointAddress> =
                g.endpoints.iter().filter(|e| !e.ready).map(addr).collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!g.ports.is_empty()).then(|| {
                    g.ports
                        .iter()
                        .map(|p| CorePort {
                            name: p.name.clone(),
                            port: p.port,
                            protocol: Some(p.protocol.clone()),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

async fn reconcile_endpoints(svc: Arc<Service>, state: Arc<State>) -> Result<Action> {
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let Some(groups) = decide::desired(&svc, &ns_pods(&state.pods, &ns), false) else {
        // No selector: the Endpoints are the user's.
        return Ok(Action::await_change());
    };
    let subsets = subsets(&ns, &groups);
    let labels = base_labels(&svc);
    let current = state
        .endpoints
        .as_ref()
        .and_then(|s| s.get(&ObjectRef::new(&name).within(&ns)));
    let api: Api<Endpoints> = Api::namespaced(state.client.clone(), &ns);
    let want_subsets = (!subsets.is_empty()).then_some(subsets);
    match current {
        Some(cur) => {
            if cur.subsets == want_subsets
                && cur.metadata.labels.clone().unwrap_or_default() == labels
            {
                return Ok(Action::await_change());
            }
            let mut body = (*cur).clone();
            body.subsets = want_subsets;
            body.metadata.labels = Some(labels);
            match api.replace(&name, &PostParams::default(), &body).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {
                    return Ok(Action::requeue(std::time::Duration::from_millis(200)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        None => {
            let body = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: Some(labels),
                    ..Default::default()
                },
                subsets: want_subsets,
            };
            match api.create(&PostParams::default(), &body).await {
                Ok(_) => {}
                // The cache had not seen it yet: the watch event brings us back.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(Action::await_change())
}
