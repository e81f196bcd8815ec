//! ResourceQuota admission: a create that would take a quota's usage past its hard limits is
//! refused with upstream's `exceeded quota` message; one that passes is charged to
//! `status.used` first, each quota written with a compare-and-swap on its revision, so two
//! concurrent creates cannot both take the last unit (the quota controller later recomputes
//! the true usage). Pods must name the compute resources a quota tracks. Usage and scopes
//! are the controller's own (`rudder_machinery::quota`).

use std::collections::BTreeMap;

use bytes::Bytes;
use rudder_api::k8s_openapi::api::core::v1::{Pod, ResourceQuotaSpec, Service};
use rudder_machinery::quantity::to_milli;
use rudder_machinery::quota::{scopes, usage};
use rudder_store::WriteOutcome;
use serde_json::{Map, Value, json};

use super::Attributes;
use crate::cache::CachedObject;
use crate::keys;
use crate::objects;
use crate::server::ApiServer;
use crate::status::ApiError;

/// The compute resources a pod's containers must name when a quota tracks them.
const MUST_SPECIFY: [&str; 6] = [
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
    "cpu",
    "memory",
];

/// A quota's hard limits: the controller's `status.hard`, else the spec's.
fn hard(quota: &Value) -> Map<String, Value> {
    quota
        .pointer("/status/hard")
        .or_else(|| quota.pointer("/spec/hard"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// What creating `obj` (of `group`/`plural`) adds to each of the quota's hard resources,
/// zero amounts left out; `None` if the quota does not track the object at all.
fn delta(
    group: &str,
    plural: &str,
    obj: &Value,
    quota: &Value,
) -> Option<BTreeMap<String, String>> {
    let keys: Vec<String> = hard(quota).keys().cloned().collect();
    let spec: ResourceQuotaSpec =
        serde_json::from_value(quota.get("spec").cloned().unwrap_or(json!({}))).unwrap_or_default();
    let scoped =
        spec.scopes.as_ref().is_some_and(|s| !s.is_empty()) || spec.scope_selector.is_some();
    let mut counts = BTreeMap::new();
    let (mut pods, mut services) = (Vec::new(), Vec::new());
    match (group, plural) {
        ("", "pods") => {
            let pod: Pod = serde_json::from_value(obj.clone()).ok()?;
            if !scopes::tracks(&spec, &pod) {
                return None;
            }
            pods.push(pod);
        }
        _ if scoped => return None,
        ("", "services") => services.push(serde_json::from_value::<Service>(obj.clone()).ok()?),
        ("", p) => {
            counts.insert(p.to_owned(), 1);
        }
        (g, p) => {
            counts.insert(format!("{p}.{g}"), 1);
        }
    }
    let pod_refs: Vec<&Pod> = pods.iter().collect();
    let svc_refs: Vec<&Service> = services.iter().collect();
    let mut used = usage::usage(&keys, &pod_refs, &svc_refs, &counts);
    used.retain(|_, v| to_milli(v).is_some_and(|m| m != 0));
    Some(used)
}

/// Upstream's pod constraint: every container names each compute resource the quota
/// limits. Returns the missing names, sorted.
fn missing_compute(pod: &Value, quota: &Value) -> Vec<String> {
    let hard = hard(quota);
    let mut missing: Vec<String> = Vec::new();
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten();
    for c in containers {
        for key in MUST_SPECIFY.iter().filter(|k| hard.contains_key(**k)) {
            let (which, resource) = key.split_once('.').unwrap_or(("requests", key));
            if c.pointer(&format!("/resources/{which}/{resource}"))
                .is_none()
                && !missing.iter().any(|m| m == key)
            {
                missing.push((*key).to_owned());
            }
        }
    }
    missing.sort();
    missing
}

/// `key=value` pairs sorted by key, as upstream's `prettyPrint`.
fn pretty(list: &BTreeMap<String, String>) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The quota's new `status.used` with `delta` added, or why the create is refused.
fn charge(quota: &Value, delta: &BTreeMap<String, String>) -> Result<Map<String, Value>, String> {
    let name = quota
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let hard = hard(quota);
    let mut used = quota
        .pointer("/status/used")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let unknown: Vec<&str> = delta
        .keys()
        .filter(|k| !used.contains_key(*k))
        .map(String::as_str)
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "status unknown for quota: {name}, resources: {}",
            unknown.join(",")
        ));
    }
    let (mut requested, mut was, mut limited) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    for (k, add) in delta {
        let current = used
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_owned();
        let limit = hard
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("0")
            .to_owned();
        let total = to_milli(&current).unwrap_or(0) + to_milli(add).unwrap_or(0);
        if total > to_milli(&limit).unwrap_or(0) {
            requested.insert(k.clone(), add.clone());
            was.insert(k.clone(), current);
            limited.insert(k.clone(), limit);
        } else {
            used.insert(k.clone(), json!(usage::format_milli(total)));
        }
    }
    if !requested.is_empty() {
        return Err(format!(
            "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
            pretty(&requested),
            pretty(&was),
            pretty(&limited)
        ));
    }
    Ok(used)
}

/// Checks the create against every quota of its namespace and charges them.
pub(crate) async fn admit(
    server: &ApiServer,
    attrs: &Attributes<'_>,
    obj: &Value,
) -> Result<(), ApiError> {
    let ns = attrs.namespace.unwrap_or("");
    let (group, plural) = (&attrs.resource.group, &attrs.resource.plural);
    let prefix = keys::collection_prefix("", "resourcequotas", Some(ns));
    let (quotas, _, _) = server.cache.list(&prefix, None, 0, |_| true);
    for cached in quotas {
        // A lost race re-reads the quota from the store and charges again.
        for _attempt in 0..16 {
            let Some(kv) = server.store.get(&cached.key, None).await?.kv else {
                break;
            };
            let quota = CachedObject::decode(&cached.key, &kv.value, kv.mod_revision)
                .and_then(|o| o.value())
                .map_err(ApiError::internal)?;
            let Some(delta) = delta(group, plural, obj, &quota) else {
                break;
            };
            if plural == "pods" && group.is_empty() {
                let missing = missing_compute(obj, &quota);
                if !missing.is_empty() {
                    let name = objects::meta_str(&quota, "name");
                    return Err(attrs.forbidden(&format!(
                        "failed quota: {name}: must specify {}",
                        missing.join(",")
                    )));
                }
            }
            if delta.is_empty() {
                break;
            }
            let used = charge(&quota, &delta).map_err(|e| attrs.forbidden(&e))?;
            if attrs.dry_run {
                break;
            }
            let mut updated = quota.clone();
            updated["status"]["used"] = Value::Object(used);
            let stored = objects::to_stored(&updated)?;
            match server
                .store
                .update(&cached.key, Bytes::from(stored), kv.mod_revision)
                .await?
            {
                WriteOutcome::Written(_) => break,
                WriteOutcome::Conflict(_) | WriteOutcome::AlreadyExists(_) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(hard: Value, used: Value) -> Value {
        json!({"metadata": {"name": "q"}, "spec": {"hard": hard}, "status": {"hard": hard, "used": used}})
    }

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": resources}]}})
    }

    #[test]
    fn charge_table() {
        let pods = quota(json!({"pods": "2"}), json!({"pods": "1"}));
        let full = quota(
            json!({"pods": "2", "configmaps": "5"}),
            json!({"pods": "2", "configmaps": "0"}),
        );
        let cpu = quota(
            json!({"requests.cpu": "1"}),
            json!({"requests.cpu": "750m"}),
        );
        let fresh = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}}});
        let cases: Vec<(&str, Value, &Value, Result<Value, &str>)> = vec![
            ("pods", pod(json!({})), &pods, Ok(json!({"pods": "2"}))),
            (
                "pods",
                pod(json!({})),
                &full,
                Err("exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"),
            ),
            (
                "configmaps",
                json!({}),
                &full,
                Ok(json!({"pods": "2", "configmaps": "1"})),
            ),
            (
                "pods",
                pod(json!({"requests": {"cpu": "250m"}})),
                &cpu,
                Ok(json!({"requests.cpu": "1"})),
            ),
            (
                "pods",
                pod(json!({"requests": {"cpu": "500m"}})),
                &cpu,
                Err(
                    "exceeded quota: q, requested: requests.cpu=500m, used: requests.cpu=750m, limited: requests.cpu=1",
                ),
            ),
            (
                "pods",
                pod(json!({})),
                &fresh,
                Err("status unknown for quota: q, resources: pods"),
            ),
        ];
        for (plural, obj, q, want) in cases {
            let d = delta("", plural, &obj, q).unwrap();
            let got = charge(q, &d).map(Value::Object);
            assert_eq!(
                got.as_ref().map_err(String::as_str),
                want.as_ref().map_err(|e| *e),
                "{plural} {obj}"
            );
        }
    }

    #[test]
    fn scopes_and_constraints() {
        let scoped = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "1"}, "scopes": ["BestEffort"]}, "status": {"used": {"pods": "0"}}});
        assert!(delta("", "pods", &pod(json!({})), &scoped).is_some());
        assert!(delta("", "pods", &pod(json!({"requests": {"cpu": "1"}})), &scoped).is_none());
        assert!(delta("", "configmaps", &json!({}), &scoped).is_none());
        let cpu = quota(
            json!({"limits.cpu": "2", "requests.memory": "1Gi", "pods": "3"}),
            json!({}),
        );
        assert_eq!(
            missing_compute(&pod(json!({})), &cpu),
            ["limits.cpu", "requests.memory"]
        );
        assert!(
            missing_compute(
                &pod(json!({"limits": {"cpu": "1"}, "requests": {"memory": "1"}})),
                &cpu
            )
            .is_empty()
        );
    }
}
