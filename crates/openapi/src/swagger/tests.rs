//! Table tests of the v3 → Swagger 2.0 document conversion: parameters, operations, merging.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{Converter, swagger_from_v3};
use crate::schema::SchemaConverter;

fn with_converter<T>(f: impl FnOnce(&Converter<'_>) -> T) -> T {
    let names: HashSet<String> = ["A".to_owned()].into_iter().collect();
    f(&Converter {
        schemas: SchemaConverter::new(&names),
    })
}

#[test]
fn parameters_carry_their_type_instead_of_a_schema() {
    let cases: Vec<(&str, Value, Option<Value>)> = vec![
        (
            "query scalar",
            json!({"name": "limit", "in": "query", "required": false, "schema": {"type": "integer"}, "uniqueItems": true}),
            Some(
                json!({"name": "limit", "in": "query", "required": false, "type": "integer", "uniqueItems": true}),
            ),
        ),
        (
            "path parameters are always required",
            json!({"name": "name", "in": "path", "schema": {"type": "string"}, "description": "name of the Pod"}),
            Some(
                json!({"name": "name", "in": "path", "required": true, "type": "string", "description": "name of the Pod"}),
            ),
        ),
        (
            "enum, default and format move up from the schema",
            json!({"name": "propagationPolicy", "in": "query", "schema": {"type": "string", "enum": ["Orphan", "Background"], "default": "Background", "format": "x"}}),
            Some(
                json!({"name": "propagationPolicy", "in": "query", "type": "string", "enum": ["Orphan", "Background"], "default": "Background", "format": "x"}),
            ),
        ),
        (
            "exploded query arrays are multi",
            json!({"name": "dryRun", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}}),
            Some(
                json!({"name": "dryRun", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"}),
            ),
        ),
        (
            "unexploded query arrays are csv",
            json!({"name": "ids", "in": "query", "explode": false, "schema": {"type": "array", "items": {"type": "integer"}}}),
            Some(
                json!({"name": "ids", "in": "query", "type": "array", "items": {"type": "integer"}, "collectionFormat": "csv"}),
            ),
        ),
        (
            "an object schema travels as a string",
            json!({"name": "filter", "in": "query", "schema": {"$ref": "#/components/schemas/A"}}),
            Some(json!({"name": "filter", "in": "query", "type": "string"})),
        ),
        (
            "headers keep their extensions",
            json!({"name": "X-Trace", "in": "header", "schema": {"type": "string"}, "x-internal": true}),
            Some(json!({"name": "X-Trace", "in": "header", "type": "string", "x-internal": true})),
        ),
        (
            "references point at the top-level parameters",
            json!({"$ref": "#/components/parameters/pretty"}),
            Some(json!({"$ref": "#/parameters/pretty"})),
        ),
        (
            "cookies have no v2 form",
            json!({"name": "session", "in": "cookie", "schema": {"type": "string"}}),
            None,
        ),
    ];
    for (name, v3, want) in cases {
        assert_eq!(with_converter(|c| c.parameter(&v3)), want, "{name}");
    }
}

#[test]
fn request_bodies_become_body_parameters_and_media_types_move_up() {
    let op = json!({
        "operationId": "patchCoreV1NamespacedPod",
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestBody": {
            "required": true,
            "content": {
                "application/json-patch+json": {"schema": {"$ref": "#/components/schemas/A"}},
                "application/merge-patch+json": {"schema": {"$ref": "#/components/schemas/A"}},
            },
        },
        "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "OK", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/A"}},
                "application/yaml": {"schema": {"$ref": "#/components/schemas/A"}},
            }},
            "401": {"description": "Unauthorized"},
        },
        "servers": [],
    });
    let got = with_converter(|c| c.operation(op.as_object().expect("object"), &json!({})));
    let want = json!({
        "operationId": "patchCoreV1NamespacedPod",
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": "Pod"},
        "consumes": ["application/json-patch+json", "application/merge-patch+json"],
        "produces": ["application/json", "application/yaml"],
        "parameters": [
            {"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/A"}},
            {"name": "fieldValidation", "in": "query", "type": "string"},
        ],
        "responses": {
            "200": {"description": "OK", "schema": {"$ref": "#/definitions/A"}},
            "401": {"description": "Unauthorized"},
        },
    });
    assert_eq!(got, want);
}

#[test]
fn request_body_references_are_resolved_within_their_document() {
    let doc = json!({"components": {"requestBodies": {"Patch": {
        "description": "the patch",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}},
    }}}});
    let op = json!({"requestBody": {"$ref": "#/components/requestBodies/Patch"}, "responses": {}});
    let got = with_converter(|c| c.operation(op.as_object().expect("object"), &doc));
    assert_eq!(
        got["parameters"][0],
        json!({"in": "body", "name": "body", "required": false, "description": "the patch", "schema": {"$ref": "#/definitions/A"}})
    );
    assert_eq!(got["consumes"], json!(["application/json"]));
}

fn group_version_doc(gv: &str, kind: &str, shared: Value) -> Value {
    let def = format!("io.k8s.{gv}.{kind}");
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.34.0"},
        "paths": {
            format!("/{gv}/{kind}s/{{name}}"): {
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": {
                    "x-kubernetes-group-version-kind": {"group": "", "version": "v1", "kind": kind},
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{def}")}}}}},
                },
                "trace": {"responses": {}},
            },
        },
        "components": {"schemas": {
            def.clone(): {
                "type": "object",
                "properties": {"metadata": {"allOf": [{"$ref": "#/components/schemas/Meta"}], "description": "meta"}},
                "x-kubernetes-group-version-kind": [{"group": "", "version": "v1", "kind": kind}],
            },
            "Meta": shared,
        }},
    })
}

#[test]
fn documents_merge_into_one_swagger_document() {
    let docs = [
        group_version_doc(
            "api/v1",
            "Pod",
            json!({"type": "object", "description": "first"}),
        ),
        group_version_doc(
            "apis/x/v1",
            "Widget",
            json!({"type": "object", "description": "second"}),
        ),
    ];
    let got = swagger_from_v3(&docs, "Kubernetes", "v1.34.0");
    assert_eq!(got["swagger"], "2.0");
    assert_eq!(
        got["info"],
        json!({"title": "Kubernetes", "version": "v1.34.0"})
    );
    let paths = got["paths"].as_object().expect("paths");
    assert_eq!(paths.len(), 2);
    let pod = &paths["/api/v1/Pods/{name}"];
    assert!(pod.get("trace").is_none(), "{pod}");
    assert_eq!(pod["parameters"][0]["type"], "string");
    assert_eq!(
        pod["get"]["responses"]["200"]["schema"]["$ref"],
        "#/definitions/io.k8s.api/v1.Pod"
    );
    assert_eq!(pod["get"]["x-kubernetes-group-version-kind"]["kind"], "Pod");
    let defs = got["definitions"].as_object().expect("definitions");
    assert_eq!(defs.len(), 3);
    // The first document's copy of a shared schema wins.
    assert_eq!(defs["Meta"]["description"], "first");
    assert_eq!(
        defs["io.k8s.apis/x/v1.Widget"]["properties"]["metadata"],
        json!({"$ref": "#/definitions/Meta", "description": "meta"})
    );
    assert_eq!(
        defs["io.k8s.api/v1.Pod"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "version": "v1", "kind": "Pod"}])
    );
    assert!(got.get("parameters").is_none() && got.get("securityDefinitions").is_none());
}

#[test]
fn shared_components_and_security_schemes_convert() {
    let doc = json!({
        "paths": {},
        "components": {
            "parameters": {"pretty": {"name": "pretty", "in": "query", "schema": {"type": "string"}}},
            "responses": {"Gone": {"description": "gone", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}},
            "securitySchemes": {
                "BearerToken": {"type": "http", "scheme": "bearer", "description": "Bearer Token authentication"},
                "mutual": {"type": "mutualTLS"},
            },
        },
        "security": [{"BearerToken": []}],
    });
    let got = swagger_from_v3(&[doc], "Kubernetes", "v1");
    assert_eq!(
        got["parameters"]["pretty"],
        json!({"name": "pretty", "in": "query", "type": "string"})
    );
    // `A` is not among the documents' schemas, so the reference is dropped.
    assert_eq!(
        got["responses"]["Gone"],
        json!({"description": "gone", "schema": {}})
    );
    assert_eq!(
        got["securityDefinitions"],
        json!({"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}})
    );
    assert_eq!(got["security"], json!([{"BearerToken": []}]));
}
