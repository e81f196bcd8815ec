//! Objects every cluster starts with: the four system namespaces, the built-in
//! PriorityClasses, the `default/kubernetes` Service (its endpoints are
//! `endpoint_reconciler`'s), and the default RBAC roles and bindings.

use bytes::Bytes;
use rudder_store::{Store, WriteOutcome};
use serde_json::{Value, json};

use crate::keys;
use crate::objects;

/// Namespaces that always exist.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

/// Creates the system namespaces that are missing.
pub async fn ensure_namespaces(store: &dyn Store) -> Result<(), rudder_store::StoreError> {
    for ns in SYSTEM_NAMESPACES {
        let key = keys::object_key("", "namespaces", None, ns);
        let obj = json!({
            "kind": "Namespace",
            "apiVersion": "v1",
            "metadata": {
                "name": ns,
                "uid": objects::new_uid(),
                "creationTimestamp": objects::now_rfc3339(),
                "labels": {"kubernetes.io/metadata.name": ns},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        let bytes = serde_json::to_vec(&obj)
            .map_err(|e| rudder_store::StoreError::Backend(e.to_string()))?;
        match store.create(&key, Bytes::from(bytes)).await? {
            WriteOutcome::Written(_) => tracing::info!(namespace = ns, "created namespace"),
            WriteOutcome::AlreadyExists(_) | WriteOutcome::Conflict(_) => {}
        }
    }
    Ok(())
}

/// The PriorityClasses every cluster has: (name, value, description).
pub const SYSTEM_PRIORITY_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
];

/// Creates the built-in PriorityClasses that are missing.
pub async fn ensure_priority_classes(store: &dyn Store) -> Result<(), rudder_store::StoreError> {
    for (name, value, description) in SYSTEM_PRIORITY_CLASSES {
        let key = keys::object_key("scheduling.k8s.io", "priorityclasses", None, name);
        let obj = json!({
            "kind": "PriorityClass",
            "apiVersion": "scheduling.k8s.io/v1",
            "metadata": {
                "name": name,
                "uid": objects::new_uid(),
                "creationTimestamp": objects::now_rfc3339(),
            },
            "value": value,
            "description": description,
            "preemptionPolicy": "PreemptLowerPriority",
        });
        let bytes = serde_json::to_vec(&obj)
            .map_err(|e| rudder_store::StoreError::Backend(e.to_string()))?;
        if let WriteOutcome::Written(_) = store.create(&key, Bytes::from(bytes)).await? {
            tracing::info!(priority_class = name, "created priority class");
        }
    }
    Ok(())
}

/// Creates the `default/kubernetes` Service on the first address of `range`, targeting
/// `api_port`, if it is missing. Its endpoints are `endpoint_reconciler`'s.
pub async fn ensure_kubernetes_service(
    store: &dyn Store,
    range: ipnet::Ipv4Net,
    api_port: u16,
) -> Result<(), rudder_store::StoreError> {
    use crate::kubernetes_service as ks;
    let Some(ip) = crate::service_range::nth_address(range, 1) else {
        return Ok(());
    };
    let svc_key = keys::object_key("", "services", Some(ks::NAMESPACE), ks::NAME);
    let current = store.get(&svc_key, None).await?.kv;
    match current {
        None => {
            let allocations = crate::services::Allocations { store, range };
            // A reservation left by an earlier `kubernetes` Service is ours to reuse.
            if let Err(e) = allocations.reserve_ip(ip, "default/kubernetes").await {
                tracing::warn!(error = %e.message, "reserving the kubernetes Service address");
            }
            let svc = ks::service(ip, api_port);
            if create_new(store, &svc_key, svc).await? {
                tracing::info!(%ip, "created the kubernetes Service");
            }
        }
        Some(kv) => {
            let stored: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
            let held = stored.pointer("/spec/clusterIP").and_then(Value::as_str);
            if held != Some(ip.to_string().as_str()) {
                tracing::warn!(
                    cluster_ip = ?held, %range,
                    "the kubernetes Service's address is not the first of the service range; delete the Service to move it"
                );
            }
        }
    }
    Ok(())
}

/// Creates `key` with `obj` plus a uid and creation time; false when it already exists.
pub(crate) async fn create_new(
    store: &dyn Store,
    key: &str,
    mut obj: Value,
) -> Result<bool, rudder_store::StoreError> {
    obj["metadata"]["uid"] = json!(objects::new_uid());
    obj["metadata"]["creationTimestamp"] = json!(objects::now_rfc3339());
    let bytes =
        serde_json::to_vec(&obj).map_err(|e| rudder_store::StoreError::Backend(e.to_string()))?;
    Ok(matches!(
        store.create(key, Bytes::from(bytes)).await?,
        WriteOutcome::Written(_)
    ))
}

/// Creates the default ClusterRoles and ClusterRoleBindings that are missing, and brings back
/// what was removed from those still marked `rbac.authorization.kubernetes.io/autoupdate`.
pub async fn ensure_rbac(store: &dyn Store) -> Result<(), rudder_store::StoreError> {
    use rudder_auth::rbac::defaults;
    let objects = defaults::cluster_roles()
        .into_iter()
        .map(|o| ("clusterroles", o))
        .chain(
            defaults::cluster_role_bindings()
                .into_iter()
                .map(|o| ("clusterrolebindings", o)),
        );
    let encode = |v: &serde_json::Value| {
        serde_json::to_vec(v)
            .map(Bytes::from)
            .map_err(|e| rudder_store::StoreError::Backend(e.to_string()))
    };
    for (plural, mut obj) in objects {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_owned();
        let key = keys::object_key(rudder_auth::rbac::RBAC_GROUP, plural, None, &name);
        obj["metadata"]["uid"] = objects::new_uid().into();
        obj["metadata"]["creationTimestamp"] = objects::now_rfc3339().into();
        match store.create(&key, encode(&obj)?).await? {
            WriteOutcome::Written(_) => {
                tracing::debug!(%name, plural, "created default RBAC object")
            }
            WriteOutcome::AlreadyExists(_) | WriteOutcome::Conflict(_) => {
                let Some(kv) = store.get(&key, None).await?.kv else {
                    continue;
                };
                let Ok(stored) = serde_json::from_slice::<serde_json::Value>(&kv.value) else {
                    continue;
                };
                if let Some(fixed) = defaults::reconcile(&stored, &obj) {
                    // Losing a race with another writer only delays this to the next start.
                    store.update(&key, encode(&fixed)?, kv.mod_revision).await?;
                    tracing::info!(%name, plural, "reconciled default RBAC object");
                }
            }
        }
    }
    Ok(())
}
