//! Objects every cluster starts with: the four system namespaces and the built-in
//! PriorityClasses.

use bytes::Bytes;
use rudder_store::{Store, WriteOutcome};
use serde_json::json;

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
