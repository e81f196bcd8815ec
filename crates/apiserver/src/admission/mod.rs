//! The admission chain: kube-apiserver's built-in admission plugins in upstream's order, run
//! after defaulting. Every mutating step runs before any validating one, as upstream's two
//! phases do; each plugin's decision is a pure function in its own file, and this module
//! gathers what they read (namespaces, service accounts, limit ranges, quotas, classes) from
//! the watch cache.
//!
//! Mutating: NamespaceLifecycle → LimitRanger → ServiceAccount → Priority →
//! DefaultStorageClass → MutatingAdmissionWebhook. Validating: NamespaceLifecycle (deletes)
//! → LimitRanger → NodeRestriction and RBAC escalation (`authz::admit`) → PodSecurity →
//! ValidatingAdmissionPolicy → ValidatingAdmissionWebhook → ResourceQuota, the last because it
//! charges `status.used` for what the others let through.

mod lifecycle;
mod limit_ranger;
mod pod_security;
mod policy;
mod priority;
mod quota;
mod service_account;
mod storage_class;
mod webhook;
mod webhook_call;

use std::time::Duration;

use serde_json::Value;

use crate::http::ApiRequest;
use crate::keys;
use crate::resources::Resource;
use crate::server::ApiServer;
use crate::status::{ApiError, qualified};

pub(crate) use lifecycle::{check_delete, check_namespace_open};

/// What a write does to its object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Update,
}

/// One write as the admission plugins see it.
pub(crate) struct Attributes<'a> {
    pub op: Operation,
    pub resource: &'a Resource,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    /// The object before an update.
    pub old: Option<&'a Value>,
    pub dry_run: bool,
}

impl Attributes<'_> {
    /// Whether the write is to the main resource `group`/`plural` (not a subresource).
    fn is(&self, group: &str, plural: &str) -> bool {
        self.resource.group == group && self.resource.plural == plural && self.subresource.is_none()
    }

    /// Upstream's `admission.NewForbidden`: `pods "x" is forbidden: <why>`.
    fn forbidden(&self, why: &str) -> ApiError {
        forbidden(self.resource, self.name, why)
    }
}

fn forbidden(resource: &Resource, name: &str, why: &str) -> ApiError {
    ApiError::forbidden(format!(
        "{} {name:?} is forbidden: {why}",
        qualified(&resource.group, &resource.plural)
    ))
}

/// Upstream's `utilerrors.NewAggregate` text: one error as itself, several in brackets.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The objects of `group`/`plural` in `namespace` (all namespaces for `None`) from the cache.
fn cached(server: &ApiServer, group: &str, plural: &str, namespace: Option<&str>) -> Vec<Value> {
    let prefix = keys::collection_prefix(group, plural, namespace);
    let (objects, _, _) = server.cache.list(&prefix, None, 0, |_| true);
    objects.iter().filter_map(|o| o.value().ok()).collect()
}

/// Runs the mutating plugins on an object about to be created or updated.
pub(crate) async fn mutate(
    server: &ApiServer,
    req: &ApiRequest,
    attrs: &Attributes<'_>,
    obj: &mut Value,
) -> Result<Vec<String>, ApiError> {
    let ns = attrs.namespace.unwrap_or("");
    let pod_create = attrs.op == Operation::Create && attrs.is("", "pods");
    if pod_create || (attrs.op == Operation::Create && attrs.is("", "persistentvolumeclaims")) {
        let ranges = cached(server, "", "limitranges", Some(ns));
        let kind = if pod_create {
            "Pod"
        } else {
            "PersistentVolumeClaim"
        };
        limit_ranger::set_defaults(kind, obj, &ranges);
    }
    if pod_create {
        let sa_name = service_account::name_of(obj);
        let sa = if service_account::needs_account(obj) {
            Some(wait_for_service_account(server, ns, &sa_name).await)
        } else {
            None
        };
        let suffix = crate::objects::name_suffix();
        service_account::admit(obj, sa.as_ref().map(Option::as_ref), &suffix)
            .map_err(|e| attrs.forbidden(&e))?;
        let classes = cached(server, "scheduling.k8s.io", "priorityclasses", None);
        priority::resolve(obj, &classes).map_err(|e| attrs.forbidden(&e))?;
    }
    if attrs.op == Operation::Create && attrs.is("", "persistentvolumeclaims") {
        let classes = cached(server, "storage.k8s.io", "storageclasses", None);
        storage_class::set_default(obj, &classes);
    }
    webhook_call::run(server, req, attrs, webhook_call::Phase::Mutating, obj).await
}

/// Runs the validating plugins; returns warnings for the response.
pub(crate) async fn validate(
    server: &ApiServer,
    req: &ApiRequest,
    attrs: &Attributes<'_>,
    obj: &Value,
) -> Result<Vec<String>, ApiError> {
    let ns = attrs.namespace.unwrap_or("");
    let create = attrs.op == Operation::Create;
    let mut warnings = Vec::new();
    if create && (attrs.is("", "pods") || attrs.is("", "persistentvolumeclaims")) {
        let ranges = cached(server, "", "limitranges", Some(ns));
        let kind = if attrs.is("", "pods") {
            "Pod"
        } else {
            "PersistentVolumeClaim"
        };
        let errors = limit_ranger::validate(kind, obj, &ranges);
        if !errors.is_empty() {
            return Err(attrs.forbidden(&aggregate(&errors)));
        }
    }
    crate::authz::admit(server, req, attrs.resource, obj).await?;
    if create && attrs.is("", "pods") {
        let namespace = server
            .cache
            .get(&keys::object_key("", "namespaces", None, ns))
            .and_then(|n| n.value().ok())
            .unwrap_or(Value::Null);
        let decision = pod_security::evaluate(&namespace, obj);
        if let Some(denied) = decision.denied {
            return Err(attrs.forbidden(&denied));
        }
        warnings.extend(decision.warnings);
    }
    policy::check_definition(attrs, obj)?;
    warnings.extend(policy::run(server, req, attrs, obj)?);
    let mut seen = obj.clone();
    warnings.extend(
        webhook_call::run(
            server,
            req,
            attrs,
            webhook_call::Phase::Validating,
            &mut seen,
        )
        .await?,
    );
    if create && attrs.namespace.is_some() {
        quota::admit(server, attrs, obj).await?;
    }
    Ok(warnings)
}

/// The pod's service account; a namespace that was just created may not have its `default`
/// account yet (the controller makes it), so a missing one is looked for again for a moment,
/// as upstream's admission retries a live lookup before refusing.
async fn wait_for_service_account(server: &ApiServer, ns: &str, name: &str) -> Option<Value> {
    let key = keys::object_key("", "serviceaccounts", Some(ns), name);
    for _ in 0..40 {
        if let Some(sa) = server.cache.get(&key).and_then(|o| o.value().ok()) {
            return Some(sa);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if server.cache.sync().await.is_ok() {
        return server.cache.get(&key).and_then(|o| o.value().ok());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::aggregate;

    #[test]
    fn aggregate_table() {
        assert_eq!(aggregate(&["a".into()]), "a");
        assert_eq!(aggregate(&["a".into(), "b".into()]), "[a, b]");
    }
}
