//! CustomResourceDefinitions: turns each CRD in the cache into served resources, and marks CRDs
//! `NamesAccepted` and `Established` (what `kubectl wait --for condition=established` waits for).

use std::sync::Arc;

use bytes::Bytes;
use rudder_printers::Printer;
use rudder_store::Store;
use serde_json::{Value, json};

use crate::cache::WatchCache;
use crate::keys;
use crate::objects;
use crate::resources::{Resource, Resources};

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_PLURAL: &str = "customresourcedefinitions";

/// The resources a CRD serves: one per served version.
pub fn resources_of(crd: &Value) -> Vec<Resource> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let strings = crate::objects::strings;
    let kind = s(&names["kind"]);
    let plural = s(&names["plural"]);
    let group = s(&spec["group"]);
    if kind.is_empty() || plural.is_empty() || group.is_empty() {
        return Vec::new();
    }
    let singular = match s(&names["singular"]) {
        x if x.is_empty() => kind.to_lowercase(),
        x => x,
    };
    let storage_version = spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|v| v["storage"] == json!(true))
        .map(|v| s(&v["name"]));
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"] != json!(true) {
            continue;
        }
        let mut subresources = Vec::new();
        if v.pointer("/subresources/status").is_some() {
            subresources.push("status".to_owned());
        }
        if v.pointer("/subresources/scale").is_some() {
            subresources.push("scale".to_owned());
        }
        out.push(Resource {
            group: group.clone(),
            version: s(&v["name"]),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced: spec["scope"] == "Namespaced",
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            verbs: [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
            .map(String::from)
            .to_vec(),
            subresources,
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            custom: true,
            storage_version: storage_version.clone(),
            storage_group: None,
            conversion: rudder_machinery::conversion::Conversion::ApiVersionOnly,
            printer: printer_of(spec, v),
        });
    }
    out
}

/// The printer of a served version: its `additionalPrinterColumns`, or the CRD-wide list an
/// old `v1beta1` definition carries.
fn printer_of(spec: &Value, version: &Value) -> Printer {
    let columns = version
        .get("additionalPrinterColumns")
        .or_else(|| spec.get("additionalPrinterColumns"))
        .filter(|c| !c.is_null());
    Printer::for_custom_resource(columns)
}

fn is_established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Established" && c["status"] == "True")
        })
}

/// Keeps the served custom resources in line with the CRDs, and establishes new CRDs.
pub fn spawn_sync(
    store: Arc<dyn Store>,
    cache: Arc<WatchCache>,
    resources: Arc<Resources>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let prefix = keys::resource_prefix(CRD_GROUP, CRD_PLURAL);
        loop {
            // Subscribe first, then read: no CRD change can fall between the two.
            let mut live = match cache.watch(&prefix, Some(cache.revision())) {
                Ok(start) => start.live,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            refresh(&*store, &cache, &resources, &prefix).await;
            loop {
                match live.recv().await {
                    Ok(ev) if ev.object.key.starts_with(&prefix) => {
                        refresh(&*store, &cache, &resources, &prefix).await
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        }
    })
}

async fn refresh(store: &dyn Store, cache: &WatchCache, resources: &Resources, prefix: &str) {
    let (crds, _, _) = cache.list(prefix, None, 0, |_| true);
    let mut all = Vec::new();
    for obj in crds {
        let Ok(crd) = obj.value() else { continue };
        if objects::is_deleting(&crd) {
            continue;
        }
        all.extend(resources_of(&crd));
        if !is_established(&crd) {
            establish(store, &obj.key, &crd).await;
        }
    }
    resources.set_custom(all);
}

async fn establish(store: &dyn Store, key: &str, crd: &Value) {
    let Ok(got) = store.get(key, None).await else {
        return;
    };
    let Some(kv) = got.kv else { return };
    let mut updated = crd.clone();
    let now = objects::now_rfc3339();
    updated["status"] = json!({
        "acceptedNames": crd["spec"]["names"],
        "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten()
            .filter(|v| v["storage"] == json!(true)).map(|v| v["name"].clone()).collect::<Vec<_>>(),
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    let Ok(bytes) = objects::to_stored(&updated) else {
        return;
    };
    // A concurrent change wins; the next refresh sees it and tries again.
    let _ = store.update(key, Bytes::from(bytes), kv.mod_revision).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_to_resources() {
        let crd = json!({
            "spec": {
                "group": "example.com",
                "scope": "Namespaced",
                "names": {"kind": "Widget", "plural": "widgets", "shortNames": ["wg"]},
                "versions": [
                    {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "additionalPrinterColumns": [
                        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"}]},
                    {"name": "v1beta1", "served": false, "storage": false},
                ],
            }
        });
        let rs = resources_of(&crd);
        assert_eq!(rs.len(), 1);
        let r = &rs[0];
        assert_eq!(
            (
                r.group.as_str(),
                r.version.as_str(),
                r.plural.as_str(),
                r.singular.as_str()
            ),
            ("example.com", "v1", "widgets", "widget")
        );
        assert!(r.namespaced && r.custom && r.has_sub("status") && !r.has_sub("scale"));
        assert_eq!(r.short_names, ["wg"]);
        let headers: Vec<String> = r.printer.columns().into_iter().map(|c| c.name).collect();
        assert_eq!(headers, ["Name", "Size"]);
        let row = r
            .printer
            .row(&json!({"metadata": {"name": "w"}, "spec": {"size": 4}}), 0);
        assert_eq!(row.cells, [json!("w"), json!(4)]);
        assert!(resources_of(&json!({"spec": {}})).is_empty());
    }
}
