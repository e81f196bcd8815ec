//! The namespace controller: empties a namespace being deleted (every namespaced resource
//! discovery lists), reports upstream's deletion conditions, then removes the `kubernetes`
//! finalizer through `namespaces/{name}/finalize`. Content left behind in a namespace that no
//! longer exists (an API server that removed it at once) is deleted as well.

pub mod decide;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt, api::DynamicObject};
use serde_json::json;

use self::decide::{KUBERNETES, Pass};
use crate::context::run_controller;
use crate::informer::{Change, Informer, own_triggers};
use crate::{Context, Result};

const COMPONENT: &str = "namespace-controller";
/// How often a namespace whose content is still going is checked again.
const RECHECK: Duration = Duration::from_secs(2);

/// Runs the namespace controller.
pub async fn run(ctx: Context) -> Result<()> {
    let namespaces: Informer<Namespace> = ctx.namespaces.clone();
    // Namespaces removed outright leave their content behind: clean up after them.
    let mut changes = namespaces.subscribe();
    let client = ctx.client.clone();
    let store = namespaces.store.clone();
    tokio::spawn(async move {
        while let Ok(change) = changes.recv().await {
            if let Change::Deleted(ns) = change {
                let client = client.clone();
                let store = store.clone();
                let name = ns.name_any();
                tokio::spawn(async move { sweep_orphaned(client, store, name).await });
            }
        }
    });
    run_controller(
        COMPONENT,
        namespaces.store.clone(),
        vec![own_triggers(&namespaces)],
        Arc::new(ctx.client.clone()),
        |ns, client| Box::pin(reconcile(ns, client)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

async fn reconcile(ns: Arc<Namespace>, client: Arc<Client>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == KUBERNETES) {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let pass = empty(&client, &name).await;
    let old = ns
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let conds = decide::conditions(&pass, &old, k8s_openapi::jiff::Timestamp::now());
    let api: Api<Namespace> = Api::all((*client).clone());
    if conds != old {
        let patch = json!({"status": {"phase": "Terminating", "conditions": conds}});
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if !pass.done() {
        return Ok(Action::requeue(RECHECK));
    }
    // Empty: hand the namespace back without our finalizer.
    let mut current = match api.get_opt(&name).await? {
        Some(n) => n,
        None => return Ok(Action::await_change()),
    };
    let spec = current.spec.get_or_insert_default();
    spec.finalizers = Some(finalizers.into_iter().filter(|f| f != KUBERNETES).collect());
    let body = serde_json::to_vec(&current)?;
    let req = http_put(&format!("/api/v1/namespaces/{name}/finalize"), body)?;
    match client.request::<Namespace>(req).await {
        Ok(_) => tracing::info!(namespace = %name, "namespace emptied; finalizer removed"),
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        // An API server without the finalize subresource: change spec.finalizers through the
        // namespace itself (upstream keeps spec.finalizers on plain updates; ours does not).
        Err(kube::Error::Api(e)) if e.code == 405 => {
            let patch = json!({"spec": {"finalizers": current.spec.as_ref().and_then(|s| s.finalizers.clone())}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(namespace = %name, "namespace emptied; finalizer removed (no finalize subresource)")
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

fn http_put(path: &str, body: Vec<u8>) -> Result<http::Request<Vec<u8>>> {
    http::Request::put(path)
        .header("content-type", "application/json")
        .body(body)
        .map_err(|e| crate::ControllerError::Invalid {
            kind: "Namespace",
            name: path.into(),
            message: e.to_string(),
        })
}

/// One pass: deletes every namespaced object in `ns` and counts what remains.
async fn empty(client: &Client, ns: &str) -> Pass {
    let mut pass = Pass::default();
    let discovery = match Discovery::new(client.clone()).run().await {
        Ok(d) => d,
        Err(e) => {
            pass.discovery_errors.push(e.to_string());
            return pass;
        }
    };
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || !caps.supports_operation(verbs::DELETE)
                || (ar.group.is_empty() && ar.plural == "events")
            {
                continue;
            }
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::namespaced_with(client.clone(), ns, &ar);
            let items = match api.list_metadata(&ListParams::default()).await {
                Ok(l) => l.items,
                Err(e) => {
                    pass.delete_errors
                        .push(format!("{}.{}: {e}", ar.plural, ar.group));
                    continue;
                }
            };
            if items.is_empty() {
                continue;
            }
            let key = format!("{}.{}", ar.plural, ar.group);
            pass.remaining.insert(key.clone(), items.len());
            for item in &items {
                for f in item.metadata.finalizers.as_deref().unwrap_or_default() {
                    *pass.finalizers.entry(f.clone()).or_default() += 1;
                }
            }
            let dyn_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            for item in items
                .iter()
                .filter(|i| i.metadata.deletion_timestamp.is_none())
            {
                let name = item.metadata.name.clone().unwrap_or_default();
                match dyn_api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => {
                        pass.delete_errors.push(format!("{key}: {e}"));
                        break;
                    }
                }
            }
        }
    }
    // Events go last and are not waited for, as upstream does not block on them either.
    let events: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::Event>(&()),
    );
    if pass.remaining.is_empty() {
        let _ = events
            .delete_collection(&DeleteParams::background(), &ListParams::default())
            .await;
    }
    pass
}

/// Deletes what is left in a namespace that no longer exists, until it is empty (bounded).
async fn sweep_orphaned(
    client: Client,
    namespaces: kube::runtime::reflector::Store<Namespace>,
    ns: String,
) {
    for _ in 0..30 {
        // Recreated meanwhile: its content is live again.
        if namespaces.state().iter().any(|n| n.name_any() == ns) {
            return;
        }
        let pass = empty(&client, &ns).await;
        if pass.done() {
            if !pass.remaining.is_empty() {
                tracing::info!(namespace = %ns, "deleted content of a removed namespace");
            }
            return;
        }
        tokio::time::sleep(RECHECK).await;
    }
}
