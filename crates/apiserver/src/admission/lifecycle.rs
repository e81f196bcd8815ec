//! NamespaceLifecycle: nothing is created in a namespace that does not exist or is being
//! terminated, and the namespaces the system relies on cannot be deleted.

use serde_json::Value;

use crate::keys;
use crate::objects;
use crate::resources::Resource;
use crate::server::ApiServer;
use crate::status::ApiError;

/// Namespaces upstream refuses to delete.
const IMMORTAL: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Fails unless namespace `ns` exists and is not being deleted. Reads the store, not the
/// cache: a namespace created a moment ago must be usable at once.
pub(crate) async fn check_namespace_open(server: &ApiServer, ns: &str) -> Result<(), ApiError> {
    let key = keys::object_key("", "namespaces", None, ns);
    // The watch cache answers nearly every time; a namespace created a moment ago may not be
    // there yet, and only then is the store asked (upstream's informer plus live lookup).
    if let Some(cached) = server.cache.get(&key) {
        let value = cached.value().map_err(ApiError::internal)?;
        return refuse_create(ns, &value).map_err(ApiError::forbidden);
    }
    let got = server.store.get(&key, None).await?;
    let Some(kv) = got.kv else {
        return Err(ApiError::not_found("", "namespaces", ns));
    };
    let value: Value =
        serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
    refuse_create(ns, &value).map_err(ApiError::forbidden)
}

/// Why nothing may be created in `namespace` (named `ns`), if so.
fn refuse_create(ns: &str, namespace: &Value) -> Result<(), String> {
    let terminating =
        namespace.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating");
    if objects::is_deleting(namespace) || terminating {
        return Err(format!(
            "unable to create new content in namespace {ns} because it is being terminated"
        ));
    }
    Ok(())
}

/// Refuses deleting one of the namespaces the system relies on.
pub(crate) fn check_delete(resource: &Resource, name: &str) -> Result<(), ApiError> {
    if resource.group.is_empty() && resource.plural == "namespaces" && IMMORTAL.contains(&name) {
        return Err(super::forbidden(
            resource,
            name,
            "this namespace may not be deleted",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refuse_create_table() {
        let cases = [
            (json!({"metadata": {"name": "a"}}), true),
            (
                json!({"metadata": {"name": "a"}, "status": {"phase": "Active"}}),
                true,
            ),
            (
                json!({"metadata": {"name": "a"}, "status": {"phase": "Terminating"}}),
                false,
            ),
            (
                json!({"metadata": {"name": "a", "deletionTimestamp": "2026-01-01T00:00:00Z"}}),
                false,
            ),
        ];
        for (ns, open) in cases {
            let got = refuse_create("a", &ns);
            assert_eq!(got.is_ok(), open, "{ns}");
            if let Err(e) = got {
                assert_eq!(
                    e,
                    "unable to create new content in namespace a because it is being terminated"
                );
            }
        }
    }
}
