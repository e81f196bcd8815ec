//! Finding the fields of a JSON object that its schema does not know (`fieldValidation=Strict`
//! rejects them, `Warn` reports them).
//!
//! The walk follows the shape of the value, not of the schema: for each object it looks up the
//! member names in the schema's `properties` (also those of `allOf`/`anyOf`/`oneOf` branches),
//! descends into `additionalProperties` for maps (labels, annotations, `data`), into `items` for
//! arrays, and through `$ref`s into the root's definitions (`$defs`, `definitions`, or OpenAPI's
//! `components/schemas`, whatever the reference names). A schema with neither `properties` nor
//! `additionalProperties` (`RawExtension`, `JSON`, `FieldsV1`, `IntOrString`, an empty schema)
//! is untyped and accepts anything; `x-kubernetes-preserve-unknown-fields: true` accepts unknown
//! members at that level while still checking the known ones, and
//! `x-kubernetes-embedded-resource: true` adds `apiVersion`, `kind` and `metadata` to the known
//! names, as for structural CRD schemas.

use std::borrow::Cow;

use schemars::Schema;
use serde_json::{Map, Value};

/// How many `$ref`s in a row are followed before the schema is treated as untyped.
const MAX_REF_HOPS: usize = 32;

/// How deep `allOf`/`anyOf`/`oneOf` nesting is followed when collecting properties.
const MAX_COMBINATOR_DEPTH: usize = 8;

/// The members of `value` unknown to `schema`, as paths from the root like
/// `.spec.containers[0].imagee` or `.metadata.labelz`, sorted (so the answer does not depend
/// on whether `serde_json` preserves member order).
///
/// Upstream's strict-decoding warnings print the same paths without the leading dot
/// (`unknown field "spec.containers[0].imagee"`).
pub fn unknown_fields(schema: &Schema, value: &Value) -> Vec<String> {
    let root = schema.as_value();
    let mut walker = Walker {
        root,
        path: String::new(),
        found: Vec::new(),
    };
    walker.walk(root, value);
    walker.found.sort_unstable();
    walker.found
}

struct Walker<'a> {
    root: &'a Value,
    path: String,
    found: Vec<String>,
}

/// What an object schema says about the members of an object.
#[derive(Default)]
struct ObjectShape<'a> {
    properties: Vec<&'a Map<String, Value>>,
    additional: Option<&'a Value>,
    preserve_unknown: bool,
    embedded_resource: bool,
}

impl<'a> ObjectShape<'a> {
    fn is_untyped(&self) -> bool {
        self.properties.is_empty() && self.additional.is_none() && !self.embedded_resource
    }

    fn property(&self, name: &str) -> Option<&'a Value> {
        self.properties.iter().find_map(|props| props.get(name))
    }
}

impl<'a> Walker<'a> {
    fn walk(&mut self, schema: &'a Value, value: &Value) {
        let Some(schema) = self.resolve(schema) else {
            return;
        };
        match value {
            Value::Object(members) => self.walk_object(schema, members),
            Value::Array(items) => self.walk_array(schema, items),
            _ => {}
        }
    }

    fn walk_object(&mut self, schema: &'a Value, members: &Map<String, Value>) {
        let mut shape = ObjectShape::default();
        self.collect(schema, &mut shape, 0);
        if shape.is_untyped() {
            return;
        }
        for (name, member) in members {
            let len = self.path.len();
            self.path.push('.');
            self.path.push_str(name);
            if let Some(property) = shape.property(name) {
                self.walk(property, member);
            } else if shape.embedded_resource
                && matches!(name.as_str(), "apiVersion" | "kind" | "metadata")
            {
                // Embedded objects carry their own type information; accepted as they are.
            } else {
                match shape.additional {
                    Some(Value::Bool(false)) | None => {
                        if !shape.preserve_unknown {
                            self.found.push(self.path.clone());
                        }
                    }
                    Some(additional) => self.walk(additional, member),
                }
            }
            self.path.truncate(len);
        }
    }

    fn walk_array(&mut self, schema: &'a Value, items: &[Value]) {
        let Some(item_schema) = self.items(schema, 0) else {
            return;
        };
        for (index, item) in items.iter().enumerate() {
            let len = self.path.len();
            self.path.push_str(&format!("[{index}]"));
            self.walk(item_schema, item);
            self.path.truncate(len);
        }
    }

    /// Gathers the object keywords of `schema` and of its combinator branches into `shape`.
    fn collect(&self, schema: &'a Value, shape: &mut ObjectShape<'a>, depth: usize) {
        let Some(object) = schema.as_object() else {
            // `true` (anything) and `false` (nothing) carry no member names.
            return;
        };
        if let Some(properties) = object.get("properties").and_then(Value::as_object) {
            shape.properties.push(properties);
        }
        if let Some(additional) = object.get("additionalProperties")
            && shape
                .additional
                .is_none_or(|known| known == &Value::Bool(false))
        {
            shape.additional = Some(additional);
        }
        if flag(object, "x-kubernetes-preserve-unknown-fields") {
            shape.preserve_unknown = true;
        }
        if flag(object, "x-kubernetes-embedded-resource") {
            shape.embedded_resource = true;
        }
        if depth >= MAX_COMBINATOR_DEPTH {
            return;
        }
        for combinator in ["allOf", "anyOf", "oneOf"] {
            let Some(branches) = object.get(combinator).and_then(Value::as_array) else {
                continue;
            };
            for branch in branches {
                if let Some(branch) = self.resolve(branch) {
                    self.collect(branch, shape, depth + 1);
                }
            }
        }
    }

    /// The item schema of an array schema, looking into combinator branches too.
    fn items(&self, schema: &'a Value, depth: usize) -> Option<&'a Value> {
        let object = schema.as_object()?;
        if let Some(items) = object.get("items").filter(|items| items.is_object()) {
            return Some(items);
        }
        if depth >= MAX_COMBINATOR_DEPTH {
            return None;
        }
        ["allOf", "anyOf", "oneOf"]
            .iter()
            .filter_map(|combinator| object.get(*combinator).and_then(Value::as_array))
            .flatten()
            .filter_map(|branch| self.resolve(branch))
            .find_map(|branch| self.items(branch, depth + 1))
    }

    /// Follows `$ref`s to the schema they name; `None` when a reference cannot be resolved
    /// (the value is then accepted as untyped).
    fn resolve(&self, mut schema: &'a Value) -> Option<&'a Value> {
        for _ in 0..MAX_REF_HOPS {
            let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
                return Some(schema);
            };
            schema = resolve_ref(self.root, reference)?;
        }
        None
    }
}

fn flag(object: &Map<String, Value>, name: &str) -> bool {
    object.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// Resolves a local reference (`#`, `#/$defs/io.k8s.api.core.v1.PodSpec`) against `root`.
fn resolve_ref<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let fragment = reference.strip_prefix('#')?;
    let pointer = percent_decode(fragment)?;
    if pointer.is_empty() {
        Some(root)
    } else {
        root.pointer(&pointer)
    }
}

/// Decodes `%XX` escapes (schemars percent-encodes unusual characters in reference names).
fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        let cases = [
            (
                "/$defs/io.k8s.api.core.v1.Pod",
                Some("/$defs/io.k8s.api.core.v1.Pod"),
            ),
            ("/$defs/a%20b", Some("/$defs/a b")),
            ("/$defs/%C2%A3", Some("/$defs/£")),
            ("/$defs/%2", None),
            ("/$defs/%zz", None),
        ];
        for (input, expected) in cases {
            assert_eq!(percent_decode(input).as_deref(), expected, "{input}");
        }
    }

    #[test]
    fn references_resolve_against_the_root() {
        let root = serde_json::json!({"$defs": {"a~b/c": {"type": "string"}}, "type": "object"});
        assert_eq!(resolve_ref(&root, "#"), Some(&root));
        assert_eq!(
            resolve_ref(&root, "#/$defs/a~0b~1c"),
            Some(&serde_json::json!({"type": "string"}))
        );
        assert_eq!(resolve_ref(&root, "#/$defs/missing"), None);
        assert_eq!(resolve_ref(&root, "other.json#/x"), None);
    }
}
