//! The ServiceAccount controller: every namespace that is not being deleted has a `default`
//! ServiceAccount, recreated when deleted.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client, ResourceExt};

use crate::context::run_controller;
use crate::informer::{Informer, own_triggers};
use crate::{Context, Result};

const COMPONENT: &str = "serviceaccount-controller";
/// The accounts every namespace gets.
const ACCOUNTS: &[&str] = &["default"];

struct State {
    client: Client,
    accounts: Informer<ServiceAccount>,
}

/// Runs the ServiceAccount controller.
pub async fn run(ctx: Context) -> Result<()> {
    let accounts: Informer<ServiceAccount> =
        Informer::start(&ctx.client, "serviceaccounts", ctx.stopped());
    let namespaces = ctx.namespaces.clone();
    // A deleted account wakes its namespace.
    let account_triggers = accounts.triggers(namespaces.store.clone(), |sa: &ServiceAccount| {
        sa.namespace()
            .filter(|_| ACCOUNTS.contains(&sa.name_any().as_str()))
            .map(|ns| vec![ObjectRef::new(&ns)])
            .unwrap_or_default()
    });
    let state = Arc::new(State {
        client: ctx.client.clone(),
        accounts,
    });
    run_controller(
        COMPONENT,
        namespaces.store.clone(),
        vec![own_triggers(&namespaces), account_triggers],
        state,
        |ns, state| Box::pin(reconcile(ns, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    // The cache may not have listed yet; creating an existing account is harmless (409).
    for account in ACCOUNTS {
        let present = state
            .accounts
            .store
            .get(&ObjectRef::new(account).within(&name))
            .is_some();
        if present {
            continue;
        }
        let api: Api<ServiceAccount> = Api::namespaced(state.client.clone(), &name);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some((*account).into()),
                namespace: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        match api.create(&PostParams::default(), &sa).await {
            Ok(_) => tracing::debug!(namespace = %name, account, "created service account"),
            // Exists, or the namespace is going away.
            Err(kube::Error::Api(e)) if matches!(e.code, 409 | 403 | 404) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}
