//! The root CA publisher (upstream's root-ca-cert-publisher): every namespace that is not being
//! deleted has a ConfigMap `kube-root-ca.crt` whose `ca.crt` is the cluster CA, so pods can
//! verify the API server (the `kube-api-access-*` projected volumes read it). Recreated when
//! deleted, corrected when changed. [`decide`] says what one namespace needs.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};

use crate::context::run_controller;
use crate::informer::{Informer, own_triggers};
use crate::{Context, Result};
use decide::{NAME, Plan};

const COMPONENT: &str = "root-ca-cert-publisher";

struct State {
    client: Client,
    config_maps: Informer<ConfigMap>,
    ca: String,
}

/// Runs the publisher; returns at once when the server handed no CA.
pub async fn run(ctx: Context) -> Result<()> {
    let Some(ca) = ctx.options.root_ca_pem.clone() else {
        tracing::warn!(
            controller = COMPONENT,
            "no cluster CA given; kube-root-ca.crt is not published"
        );
        return Ok(());
    };
    // Only the published ConfigMaps matter: the API server filters the watch by name.
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let config_maps: Informer<ConfigMap> = Informer::start_with(
        &ctx.client,
        "kube-root-ca.crt configmaps",
        config,
        ctx.stopped(),
    );
    let namespaces = ctx.namespaces.clone();
    let cm_triggers = config_maps.triggers(namespaces.store.clone(), |cm: &ConfigMap| {
        cm.namespace()
            .filter(|_| cm.name_any() == NAME)
            .map(|ns| vec![ObjectRef::new(&ns)])
            .unwrap_or_default()
    });
    let state = Arc::new(State {
        client: ctx.client.clone(),
        config_maps,
        ca,
    });
    run_controller(
        COMPONENT,
        namespaces.store.clone(),
        vec![own_triggers(&namespaces), cm_triggers],
        state,
        |ns, state| Box::pin(reconcile(ns, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

/// Whether a namespace is on its way out (no new content may be created in it).
fn deleting(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
}

async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action> {
    let name = ns.name_any();
    let existing = state
        .config_maps
        .store
        .get(&ObjectRef::new(NAME).within(&name));
    let api: Api<ConfigMap> = Api::namespaced(state.client.clone(), &name);
    let result = match decide::decide(deleting(&ns), existing.as_deref(), &state.ca) {
        Plan::Nothing => return Ok(Action::await_change()),
        Plan::Create => api
            .create(
                &PostParams::default(),
                &decide::new_config_map(&name, &state.ca),
            )
            .await
            .map(|_| ()),
        Plan::Replace(fixed) => api
            .replace(NAME, &PostParams::default(), &fixed)
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => {
            tracing::debug!(namespace = %name, "published kube-root-ca.crt");
            Ok(Action::await_change())
        }
        // 409: the cache lags behind a create or a change; the watch event that follows
        // wakes the namespace again, the requeue covers a lost race. 403/404: the namespace
        // is going away or gone.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Action::requeue(Duration::from_secs(1))),
        Err(kube::Error::Api(e)) if matches!(e.code, 403 | 404) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}
