//! Objects every cluster starts with: the four system namespaces.

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
