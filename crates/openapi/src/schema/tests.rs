//! Table tests of schema conversion: `$ref` rewriting and the v2 fix-ups kubectl depends on.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{SchemaConverter, rewrite_ref};

#[test]
fn references_are_rewritten_to_their_v2_homes() {
    let cases = [
        (
            "#/components/schemas/io.k8s.api.core.v1.Pod",
            Some("#/definitions/io.k8s.api.core.v1.Pod"),
        ),
        (
            "#/components/parameters/namespace",
            Some("#/parameters/namespace"),
        ),
        (
            "#/components/responses/NotFound",
            Some("#/responses/NotFound"),
        ),
        ("#/components/examples/x", None),
        ("other.json#/definitions/X", None),
        ("#/definitions/AlreadyV2", None),
    ];
    for (v3, v2) in cases {
        assert_eq!(rewrite_ref(v3).as_deref(), v2, "{v3}");
    }
}

fn convert(schema: Value) -> Value {
    let known: HashSet<String> = ["A", "io.k8s.api.core.v1.PodSpec"]
        .into_iter()
        .map(String::from)
        .collect();
    SchemaConverter::new(&known).convert(&schema)
}

#[test]
fn schemas_convert_as_upstream_v2_has_them() {
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "plain reference",
            json!({"$ref": "#/components/schemas/A"}),
            json!({"$ref": "#/definitions/A"}),
        ),
        (
            "allOf wrapper becomes a described reference",
            json!({"allOf": [{"$ref": "#/components/schemas/io.k8s.api.core.v1.PodSpec"}], "description": "spec", "default": {}}),
            json!({"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec", "description": "spec", "default": {}}),
        ),
        (
            "references nested in properties, items and additionalProperties",
            json!({"type": "object", "properties": {
                "list": {"type": "array", "items": {"$ref": "#/components/schemas/A"}},
                "map": {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/A"}},
                "open": {"type": "object", "additionalProperties": true},
            }}),
            json!({"type": "object", "properties": {
                "list": {"type": "array", "items": {"$ref": "#/definitions/A"}},
                "map": {"type": "object", "additionalProperties": {"$ref": "#/definitions/A"}},
                "open": {"type": "object", "additionalProperties": true},
            }}),
        ),
        (
            "a dangling reference leaves an untyped field",
            json!({"allOf": [{"$ref": "#/components/schemas/Missing"}], "description": "d"}),
            json!({"description": "d"}),
        ),
        (
            "a reference drops siblings kubectl rejects",
            json!({"$ref": "#/components/schemas/A", "type": "object", "properties": {"x": {}}, "description": "d"}),
            json!({"$ref": "#/definitions/A", "description": "d"}),
        ),
        (
            "oneOf, anyOf, not, nullable and writeOnly have no v2 form",
            json!({"description": "either", "oneOf": [{"type": "string"}], "anyOf": [], "not": {}, "writeOnly": true}),
            json!({"description": "either"}),
        ),
        (
            "nullable drops type, items and properties",
            json!({"type": "object", "nullable": true, "properties": {"a": {"type": "string"}}}),
            json!({}),
        ),
        (
            "a type list with null is nullable",
            json!({"type": ["string", "null"], "description": "d"}),
            json!({"description": "d"}),
        ),
        (
            "unknown types and multiple types are dropped",
            json!({"type": "file", "properties": {"a": {"type": ["string", "integer"]}, "b": {"type": ["integer"]}}}),
            json!({"properties": {"a": {}, "b": {"type": "integer"}}}),
        ),
        (
            "int-or-string is a string with a format",
            json!({"x-kubernetes-int-or-string": true, "anyOf": [{"type": "integer"}, {"type": "string"}]}),
            json!({"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": true}),
        ),
        (
            "preserve-unknown-fields objects are open",
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": {"a": {"type": "string"}}}),
            json!({"x-kubernetes-preserve-unknown-fields": true}),
        ),
        (
            "an array without one item schema is untyped",
            json!({"type": "array", "description": "d"}),
            json!({"description": "d"}),
        ),
        (
            "nullable fields are not required",
            json!({"type": "object", "required": ["a", "b"], "properties": {"a": {"type": "string", "nullable": true}, "b": {"type": "string"}}}),
            json!({"type": "object", "required": ["b"], "properties": {"a": {}, "b": {"type": "string"}}}),
        ),
        (
            "constraints, enums, defaults and extensions are kept",
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 5, "enum": [1, 2], "default": 1,
                   "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]}),
            json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 5, "enum": [1, 2], "default": 1,
                   "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]}),
        ),
        (
            "discriminator is a property name in v2",
            json!({"type": "object", "discriminator": {"propertyName": "kind"}, "properties": {}}),
            json!({"type": "object", "discriminator": "kind", "properties": {}}),
        ),
        ("boolean schemas accept anything", json!(true), json!({})),
    ];
    for (name, input, want) in cases {
        assert_eq!(convert(input), want, "{name}");
    }
}
