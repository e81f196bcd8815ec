//! The ResourceQuota controller: keeps `status.hard` and `status.used` of every quota in step
//! with its namespace (pods and services from the shared caches, other kinds counted through
//! the API), on changes of pods and services and every 30 s for the rest. A quota with scopes
//! or a scope selector counts only the pods [`scopes`] says it tracks. [`decide`] computes
//! usage.

// The accounting is shared with the API server's quota admission.
pub use rudder_machinery::quota::{scopes, usage as decide};

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, Service};
use kube::api::{ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt, api::DynamicObject};
use serde_json::json;

use crate::context::run_controller;
use crate::informer::{Informer, own_triggers};
use crate::{Context, Result};

const COMPONENT: &str = "resourcequota-controller";
/// Resync for kinds without a shared cache.
const RESYNC: Duration = Duration::from_secs(30);

/// Runs the ResourceQuota controller.
pub async fn run(ctx: Context) -> Result<()> {
    let quotas: Informer<ResourceQuota> =
        Informer::start(&ctx.client, "resourcequotas", ctx.stopped());
    let in_ns = |store: Store<ResourceQuota>| {
        move |ns: Option<String>| -> Vec<ObjectRef<ResourceQuota>> {
            store
                .state()
                .iter()
                .filter(|q| q.namespace() == ns)
                .map(|q| ObjectRef::from_obj(q.as_ref()))
                .collect()
        }
    };
    let for_pod = in_ns(quotas.store.clone());
    let for_svc = in_ns(quotas.store.clone());
    let triggers = vec![
        own_triggers(&quotas),
        ctx.pods
            .triggers(quotas.store.clone(), move |p: &Pod| for_pod(p.namespace())),
        ctx.services
            .triggers(quotas.store.clone(), move |s: &Service| {
                for_svc(s.namespace())
            }),
    ];
    run_controller(
        COMPONENT,
        quotas.store.clone(),
        triggers,
        Arc::new(ctx.clone()),
        |q, ctx| Box::pin(reconcile(q, ctx)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

async fn reconcile(quota: Arc<ResourceQuota>, ctx: Arc<Context>) -> Result<Action> {
    let ns = quota.namespace().unwrap_or_default();
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let keys: Vec<String> = hard.keys().cloned().collect();
    let quota_spec = quota.spec.clone().unwrap_or_default();
    let mut pods: Vec<Arc<Pod>> = ctx.pods_in(&ns);
    pods.retain(|p| scopes::tracks(&quota_spec, p));
    let services: Vec<Arc<Service>> = ctx
        .services
        .store
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let counts = object_counts(&ctx, &ns, &keys).await?;
    let pod_refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
    let svc_refs: Vec<&Service> = services.iter().map(|s| s.as_ref()).collect();
    let used = decide::usage(&keys, &pod_refs, &svc_refs, &counts);
    let status = quota.status.clone().unwrap_or_default();
    let old_used: BTreeMap<String, String> = status
        .used
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let old_hard: BTreeMap<String, String> = status
        .hard
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    let new_hard: BTreeMap<String, String> = hard.into_iter().map(|(k, v)| (k, v.0)).collect();
    if old_used != used || old_hard != new_hard {
        let api: Api<ResourceQuota> = Api::namespaced(ctx.client.clone(), &ns);
        let patch = json!({"status": {"hard": new_hard, "used": used}});
        match api
            .patch_status(
                &quota.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// Counts of the namespaced kinds `keys` name (`configmaps`, `count/deployments.apps`, …),
/// listed through the API (metadata only).
async fn object_counts(
    ctx: &Context,
    ns: &str,
    keys: &[String],
) -> Result<BTreeMap<String, usize>> {
    let wanted: Vec<&str> = keys
        .iter()
        .map(|k| k.strip_prefix("count/").unwrap_or(k))
        .filter(|k| {
            !k.contains('/')
                && !matches!(
                    *k,
                    "pods" | "services" | "cpu" | "memory" | "ephemeral-storage"
                )
        })
        .filter(|k| {
            !k.starts_with("requests.") && !k.starts_with("limits.") && !k.starts_with("services.")
        })
        .collect();
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let discovery = Discovery::new(ctx.client.clone()).run().await?;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            let key = if ar.group.is_empty() {
                ar.plural.clone()
            } else {
                format!("{}.{}", ar.plural, ar.group)
            };
            if caps.scope != Scope::Namespaced
                || !caps.supports_operation(verbs::LIST)
                || !wanted.contains(&key.as_str())
            {
                continue;
            }
            let api: Api<PartialObjectMeta<DynamicObject>> =
                Api::namespaced_with(ctx.client.clone(), ns, &ar);
            let n = api.list_metadata(&ListParams::default()).await?.items.len();
            out.insert(key, n);
        }
    }
    Ok(out)
}
