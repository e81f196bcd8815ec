//! Schema conversion from OpenAPI v3 (`components.schemas`) to Swagger 2.0 (`definitions`).
//!
//! Beyond renaming `$ref`s, the output has to survive kubectl's v2 parser (kube-openapi
//! `pkg/util/proto`), which rejects a whole document for one schema it dislikes: a `$ref` with a
//! `type` or `properties` beside it, an array without exactly one item schema, more than one
//! type, a primitive type it does not know, or a reference to a definition that does not exist.
//! The fix-ups for v3-only keywords follow upstream's `ToStructuralOpenAPIV2` (used for CRDs).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

/// Prefix of schema references in OpenAPI v3 documents.
pub const V3_SCHEMAS: &str = "#/components/schemas/";
/// Prefix of schema references in Swagger 2.0 documents.
pub const V2_DEFINITIONS: &str = "#/definitions/";

/// v3 reference prefixes and their Swagger 2.0 counterparts.
const REF_PREFIXES: &[(&str, &str)] = &[
    (V3_SCHEMAS, V2_DEFINITIONS),
    ("#/components/parameters/", "#/parameters/"),
    ("#/components/responses/", "#/responses/"),
];

/// The Swagger 2.0 form of a v3 `$ref` (`#/components/schemas/X` → `#/definitions/X`), or `None`
/// when v2 has nothing it could point to (`#/components/examples/...`, external documents).
pub fn rewrite_ref(reference: &str) -> Option<String> {
    REF_PREFIXES
        .iter()
        .find_map(|(v3, v2)| reference.strip_prefix(v3).map(|name| format!("{v2}{name}")))
}

/// Types kubectl's parser accepts; anything else (`null`, `file`) makes it fail.
const KNOWN_TYPES: &[&str] = &["string", "number", "integer", "boolean", "object", "array"];

/// Keywords copied unchanged when their JSON type is right. The rest of v3's vocabulary
/// (`nullable`, `oneOf`, `anyOf`, `not`, `writeOnly`, `deprecated`, ...) has no v2 form.
fn copy_keyword(key: &str, value: &Value) -> bool {
    match key {
        "format" | "title" | "description" | "pattern" => value.is_string(),
        "default" | "example" => true,
        "enum" => value.is_array(),
        "multipleOf" | "maximum" | "minimum" => value.is_number(),
        "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties" => {
            value.is_u64()
        }
        "exclusiveMaximum" | "exclusiveMinimum" | "uniqueItems" | "readOnly" => value.is_boolean(),
        "xml" | "externalDocs" => value.is_object(),
        k => k.starts_with("x-"),
    }
}

/// Converts schemas, knowing which definitions exist so no reference dangles.
pub struct SchemaConverter<'a> {
    definitions: &'a HashSet<String>,
}

impl<'a> SchemaConverter<'a> {
    /// A converter for a document whose definitions are `definitions` (names, without prefix).
    pub fn new(definitions: &'a HashSet<String>) -> Self {
        Self { definitions }
    }

    /// The Swagger 2.0 form of one v3 schema. Never fails: what v2 cannot say is left out, which
    /// at worst makes a field untyped (anything goes) for kubectl.
    pub fn convert(&self, schema: &Value) -> Value {
        let Some(m) = schema.as_object() else {
            // Boolean schemas (`true`) accept anything; so does an empty v2 schema.
            return json!({});
        };
        if let Some(reference) = m.get("$ref").and_then(Value::as_str) {
            return self.reference(reference, m);
        }
        if let Some(collapsed) = self.single_ref_all_of(m) {
            return collapsed;
        }
        let mut out = Map::new();
        for (key, value) in m {
            match key.as_str() {
                "type" => {
                    if let Some(t) = normalize_type(value) {
                        out.insert("type".into(), Value::String(t));
                    }
                }
                "items" => {
                    let single = match value {
                        Value::Array(list) if list.len() == 1 => list.first(),
                        Value::Object(_) => Some(value),
                        _ => None,
                    };
                    if let Some(item) = single {
                        out.insert("items".into(), self.convert(item));
                    }
                }
                "properties" => {
                    if let Some(props) = value.as_object() {
                        let converted = props
                            .iter()
                            .map(|(name, s)| (name.clone(), self.convert(s)))
                            .collect();
                        out.insert("properties".into(), Value::Object(converted));
                    }
                }
                "additionalProperties" => match value {
                    Value::Bool(_) => {
                        out.insert(key.clone(), value.clone());
                    }
                    Value::Object(_) => {
                        out.insert(key.clone(), self.convert(value));
                    }
                    _ => {}
                },
                "required" => {
                    if let Some(list) = value.as_array()
                        && list.iter().all(Value::is_string)
                        && !list.is_empty()
                    {
                        out.insert(key.clone(), value.clone());
                    }
                }
                "discriminator" => {
                    let name = value
                        .as_str()
                        .or_else(|| value.get("propertyName").and_then(Value::as_str));
                    if let Some(name) = name {
                        out.insert(key.clone(), Value::String(name.to_owned()));
                    }
                }
                k if copy_keyword(k, value) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        fix_up(m, &mut out);
        Value::Object(out)
    }

    /// `{"$ref": ...}` keeping only what kubectl's parser tolerates beside a reference.
    fn reference(&self, reference: &str, m: &Map<String, Value>) -> Value {
        let mut out = Map::new();
        let target = rewrite_ref(reference).filter(|r| {
            r.strip_prefix(V2_DEFINITIONS)
                .is_some_and(|name| self.definitions.contains(name))
        });
        if let Some(target) = target {
            out.insert("$ref".into(), Value::String(target));
        }
        for (key, value) in m {
            if matches!(key.as_str(), "description" | "default" | "readOnly")
                || key.starts_with("x-")
            {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    /// v3 wraps a reference in `allOf` to give it a description (`{"allOf": [{"$ref": X}],
    /// "description": D}`); v2 puts the description beside the `$ref`, as upstream's v2 does.
    fn single_ref_all_of(&self, m: &Map<String, Value>) -> Option<Value> {
        let [only] = m.get("allOf")?.as_array()?.as_slice() else {
            return None;
        };
        let reference = only.get("$ref")?.as_str()?;
        if ["type", "properties", "items", "additionalProperties"]
            .iter()
            .any(|k| m.contains_key(*k))
        {
            return None;
        }
        let mut merged = m.clone();
        merged.remove("allOf");
        Some(self.reference(reference, &merged))
    }
}

/// The single v2 type of a v3 `type`: `null` is dropped from type lists (v3.0 spells it
/// `nullable`), and anything kubectl cannot parse becomes no type at all.
fn normalize_type(value: &Value) -> Option<String> {
    let known = |t: &str| KNOWN_TYPES.contains(&t).then(|| t.to_owned());
    match value {
        Value::String(t) => known(t),
        Value::Array(list) => {
            let types: Vec<&str> = list
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            match types.as_slice() {
                [t] => known(t),
                _ => None,
            }
        }
        _ => None,
    }
}

fn is_true(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Upstream's v2 rewrites for what kubectl's v2 validation mishandles (`ToStructuralOpenAPIV2`).
fn fix_up(v3: &Map<String, Value>, out: &mut Map<String, Value>) {
    let nullable = is_true(v3, "nullable")
        || v3
            .get("type")
            .and_then(Value::as_array)
            .is_some_and(|ts| ts.iter().any(|t| t == "null"));
    if nullable {
        // An untyped value with items or properties breaks kubectl.
        out.remove("type");
        out.remove("items");
        out.remove("properties");
    }
    if is_true(v3, "x-kubernetes-preserve-unknown-fields") {
        // kubectl would reject the unknown fields the schema explicitly allows.
        out.remove("items");
        out.remove("properties");
        if out.get("type").is_some_and(|t| t == "object") {
            out.remove("type");
        }
    }
    if out.get("type").is_some_and(|t| t == "array") && !out.contains_key("items") {
        out.remove("type");
    }
    if is_true(v3, "x-kubernetes-int-or-string") && !out.contains_key("type") {
        // How upstream's v2 describes IntOrString: kubectl's "string" accepts numbers too.
        out.insert("type".into(), json!("string"));
        out.insert("format".into(), json!("int-or-string"));
    }
    // A nullable field may be sent as null, which kubectl counts as missing.
    let nullable_fields: Vec<String> = v3
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .filter(|(_, s)| is_true_schema_nullable(s))
                .map(|(name, _)| name.clone())
                .collect()
        })
        .unwrap_or_default();
    let nullable_values = v3
        .get("additionalProperties")
        .is_some_and(is_true_schema_nullable);
    if nullable_values {
        out.remove("required");
    } else if !nullable_fields.is_empty()
        && let Some(Value::Array(required)) = out.get_mut("required")
    {
        required.retain(|r| {
            !r.as_str()
                .is_some_and(|r| nullable_fields.iter().any(|f| f == r))
        });
        if required.is_empty() {
            out.remove("required");
        }
    }
}

fn is_true_schema_nullable(s: &Value) -> bool {
    s.as_object().is_some_and(|m| is_true(m, "nullable"))
}

#[cfg(test)]
mod tests;
