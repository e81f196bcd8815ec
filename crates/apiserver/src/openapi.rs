//! OpenAPI v3 documents (`/openapi/v3` and one per group-version), as kubectl uses them: to learn
//! that PATCH supports `fieldValidation` (server-side validation) and for `kubectl explain`.

use std::collections::BTreeMap;

use rudder_api::schemars::SchemaGenerator;
use rudder_api::schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::resources::{Resource, Resources};

/// The `/openapi/v3` discovery index: each group-version's document URL, with a content hash so
/// clients can cache them.
pub fn index(resources: &Resources) -> Value {
    let mut paths = Map::new();
    for (gv, _) in group_versions(resources) {
        if let Some(doc) = document(resources, &gv) {
            let hash = fnv64(&serde_json::to_vec(&doc).unwrap_or_default());
            paths.insert(
                gv.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash:016X}")}),
            );
        }
    }
    json!({"paths": paths})
}

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Group-version path segments (`api/v1`, `apis/apps/v1`) with their resources.
fn group_versions(resources: &Resources) -> BTreeMap<String, Vec<std::sync::Arc<Resource>>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for r in resources.all() {
        let gv = if r.group.is_empty() {
            format!("api/{}", r.version)
        } else {
            format!("apis/{}/{}", r.group, r.version)
        };
        out.entry(gv).or_default().push(r);
    }
    out
}

fn param(name: &str, location: &str, required: bool, ty: &str) -> Value {
    json!({"name": name, "in": location, "required": required, "schema": {"type": ty}, "uniqueItems": true})
}

/// Definition name of a custom kind, as upstream names it (`com.example.v1.Widget`).
fn custom_definition_name(r: &Resource) -> String {
    let mut parts: Vec<&str> = r.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{}", parts.join("."), r.version, r.kind)
}

/// Adds the schema of a built-in kind and everything it references to `generator`, returning
/// the definition name (`io.k8s.api.core.v1.Pod`).
fn builtin_definition(r: &Resource, generator: &mut SchemaGenerator) -> Option<String> {
    let info = rudder_api::by_plural(&r.group, &r.version, &r.plural)?;
    let reference = rudder_api::subschema(info, generator).ok()?;
    let target = reference.get("$ref").and_then(Value::as_str)?;
    Some(target.trim_start_matches(DEFINITIONS).to_owned())
}

const DEFINITIONS: &str = "#/components/schemas/";

fn operation(
    r: &Resource,
    action: &str,
    verb_id: &str,
    params: Vec<Value>,
    response: Option<String>,
) -> Value {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let mut op = json!({
        "operationId": format!("{verb_id}{}", r.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
    });
    if let Some(def) = response {
        op["responses"]["200"]["content"] = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{def}")}}});
    }
    op
}

fn write_params() -> Vec<Value> {
    vec![
        param("dryRun", "query", false, "string"),
        param("fieldManager", "query", false, "string"),
        param("fieldValidation", "query", false, "string"),
    ]
}

/// The document of one group-version (`api/v1`, `apis/apps/v1`), if it exists.
pub fn document(resources: &Resources, gv: &str) -> Option<Value> {
    let all = group_versions(resources);
    let list = all.get(gv)?;
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut kinds = Vec::new();
    for r in list {
        let def = if r.custom {
            custom_definition_name(r)
        } else {
            builtin_definition(r, &mut generator).unwrap_or_else(|| custom_definition_name(r))
        };
        let list_def = format!("{def}List");
        let base = format!("/{gv}");
        let (collection, item) = if r.namespaced {
            (
                format!("{base}/namespaces/{{namespace}}/{}", r.plural),
                format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural),
            )
        } else {
            (
                format!("{base}/{}", r.plural),
                format!("{base}/{}/{{name}}", r.plural),
            )
        };
        let ns_param: Vec<Value> = if r.namespaced {
            vec![param("namespace", "path", true, "string")]
        } else {
            Vec::new()
        };
        let mut coll = Map::new();
        if r.allows("list") {
            let mut ps = vec![
                param("labelSelector", "query", false, "string"),
                param("fieldSelector", "query", false, "string"),
                param("limit", "query", false, "integer"),
                param("continue", "query", false, "string"),
                param("resourceVersion", "query", false, "string"),
                param("watch", "query", false, "boolean"),
            ];
            ps.extend(ns_param.iter().cloned());
            coll.insert(
                "get".into(),
                operation(r, "list", "list", ps, Some(list_def.clone())),
            );
        }
        if r.allows("create") {
            let mut ps = write_params();
            ps.extend(ns_param.iter().cloned());
            coll.insert(
                "post".into(),
                operation(r, "post", "create", ps, Some(def.clone())),
            );
        }
        if r.allows("deletecollection") {
            coll.insert(
                "delete".into(),
                operation(
                    r,
                    "deletecollection",
                    "deleteCollection",
                    ns_param.clone(),
                    None,
                ),
            );
        }
        if !coll.is_empty() {
            paths.insert(collection, Value::Object(coll));
        }
        let mut it = Map::new();
        let mut name_params = ns_param.clone();
        name_params.push(param("name", "path", true, "string"));
        if r.allows("get") {
            it.insert(
                "get".into(),
                operation(r, "get", "read", name_params.clone(), Some(def.clone())),
            );
        }
        if r.allows("update") {
            let mut ps = write_params();
            ps.extend(name_params.iter().cloned());
            it.insert(
                "put".into(),
                operation(r, "put", "replace", ps, Some(def.clone())),
            );
        }
        if r.allows("patch") {
            let mut ps = write_params();
            ps.push(param("force", "query", false, "boolean"));
            ps.extend(name_params.iter().cloned());
            it.insert(
                "patch".into(),
                operation(r, "patch", "patch", ps, Some(def.clone())),
            );
        }
        if r.allows("delete") {
            it.insert(
                "delete".into(),
                operation(r, "delete", "delete", name_params.clone(), None),
            );
        }
        if !it.is_empty() {
            paths.insert(item, Value::Object(it));
        }
        // Custom resources and the built-ins without a k8s-openapi type (metrics) bring
        // their own schema.
        if r.custom || r.schema.is_some() {
            let schema = custom_schema(r).unwrap_or_else(
                || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
            schemas.insert(def.clone(), schema);
        }
        kinds.push((
            def.clone(),
            json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
        ));
        schemas.entry(list_def).or_insert_with(|| {
            json!({
                "type": "object",
                "description": format!("{}List is a list of {}.", r.kind, r.kind),
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "items": {"type": "array", "items": {"$ref": format!("#/components/schemas/{def}")}},
                },
                "x-kubernetes-group-version-kind": [{"group": r.group, "version": r.version, "kind": format!("{}List", r.kind)}],
            })
        });
    }
    for (name, schema) in generator.take_definitions(true) {
        schemas.entry(name).or_insert(schema);
    }
    for (def, gvk) in kinds {
        if let Some(Value::Object(m)) = schemas.get_mut(&def) {
            m.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{}.{}.0", crate::KUBE_MAJOR, crate::KUBE_MINOR)},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

fn custom_schema(r: &Resource) -> Option<Value> {
    let mut s = r.schema.clone()?;
    if let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        props.insert(
            "metadata".into(),
            json!({"type": "object", "description": "Standard object's metadata."}),
        );
    }
    Some(s)
}
