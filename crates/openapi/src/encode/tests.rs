//! Tests of the gnostic protobuf encoding: exact bytes for tiny inputs (so a wrong field number
//! fails), and a decode round trip read the way kubectl reads it.

use prost::Message;
use serde_json::{Value, json};

use super::{decode, document, encode, parameter};
use crate::gnostic as g;

#[test]
fn a_tiny_document_encodes_to_the_expected_bytes() {
    let swagger = json!({
        "swagger": "2.0",
        "info": {"title": "T", "version": "v1"},
        "paths": {},
        "definitions": {"D": {"type": "string", "x-a": "b"}},
    });
    let mut want: Vec<u8> = Vec::new();
    want.extend([0x0a, 0x03]); // Document.swagger = 1
    want.extend(b"2.0");
    want.extend([0x12, 0x07]); // Document.info = 2
    want.extend([0x0a, 0x01, b'T']); // Info.title = 1
    want.extend([0x12, 0x02, b'v', b'1']); // Info.version = 2
    want.extend([0x42, 0x00]); // Document.paths = 8, present but empty
    want.extend([0x4a, 0x20]); // Document.definitions = 9
    want.extend([0x0a, 0x1e]); // Definitions.additional_properties = 1
    want.extend([0x0a, 0x01, b'D']); // NamedSchema.name = 1
    want.extend([0x12, 0x19]); // NamedSchema.value = 2
    want.extend([0xb2, 0x01, 0x08]); // Schema.type = 22
    want.extend([0x0a, 0x06]); // TypeItem.value = 1
    want.extend(b"string");
    want.extend([0xfa, 0x01, 0x0b]); // Schema.vendor_extension = 31
    want.extend([0x0a, 0x03]); // NamedAny.name = 1
    want.extend(b"x-a");
    want.extend([0x12, 0x04]); // NamedAny.value = 2
    want.extend([0x12, 0x02, b'b', b'\n']); // Any.yaml = 2
    assert_eq!(encode(&swagger).expect("encode"), want);
}

#[test]
fn parameters_encode_as_the_oneof_variant_of_their_location() {
    let cases: Vec<(Value, Vec<u8>)> = vec![
        (
            json!({"name": "n", "in": "query", "type": "string"}),
            [
                &[0x12, 0x14][..], // Parameter.non_body_parameter = 2
                &[0x1a, 0x12],     // NonBodyParameter.query_parameter_sub_schema = 3
                &[0x12, 0x05],     // QueryParameterSubSchema.in = 2
                b"query",
                &[0x22, 0x01, b'n'], // .name = 4
                &[0x32, 0x06],       // .type = 6
                b"string",
            ]
            .concat(),
        ),
        (
            json!({"name": "n", "in": "path", "required": true, "type": "string"}),
            [
                &[0x12, 0x15][..], // Parameter.non_body_parameter = 2
                &[0x22, 0x13],     // NonBodyParameter.path_parameter_sub_schema = 4
                &[0x08, 0x01],     // PathParameterSubSchema.required = 1
                &[0x12, 0x04],     // .in = 2
                b"path",
                &[0x22, 0x01, b'n'], // .name = 4
                &[0x2a, 0x06],       // .type = 5
                b"string",
            ]
            .concat(),
        ),
        (
            json!({"name": "b", "in": "body", "schema": {"$ref": "#/definitions/X"}}),
            [
                &[0x0a, 0x1c][..],   // Parameter.body_parameter = 1
                &[0x12, 0x01, b'b'], // BodyParameter.name = 2
                &[0x1a, 0x04],       // .in = 3
                b"body",
                &[0x2a, 0x11], // .schema = 5
                &[0x0a, 0x0f], // Schema._ref = 1
                b"#/definitions/X",
            ]
            .concat(),
        ),
    ];
    for (json, want) in cases {
        let got = parameter(&json).expect("parameter").encode_to_vec();
        assert_eq!(got, want, "{json}");
    }
}

/// A v2 document in the shape `swagger_from_v3` produces for one kind.
fn pod_swagger() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.34.0"},
        "paths": {
            "/api/v1/namespaces/{namespace}/pods/{name}": {
                "parameters": [{"$ref": "#/parameters/name"}],
                "patch": {
                    "operationId": "patchCoreV1NamespacedPod",
                    "consumes": ["application/merge-patch+json"],
                    "produces": ["application/json"],
                    "parameters": [
                        {"in": "body", "name": "body", "required": true, "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}},
                        {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true},
                        {"name": "dryRun", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "multi"},
                    ],
                    "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/io.k8s.api.core.v1.Pod"}}},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": {"group": "", "kind": "Pod", "version": "v1"},
                },
            },
        },
        "parameters": {"name": {"name": "name", "in": "path", "required": true, "type": "string"}},
        "definitions": {
            "io.k8s.api.core.v1.Pod": {
                "type": "object",
                "description": "Pod is a collection of containers.",
                "required": ["spec"],
                "properties": {
                    "spec": {"$ref": "#/definitions/io.k8s.api.core.v1.PodSpec", "description": "Specification."},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "policy": {"type": "string", "enum": ["Always", "Never"], "default": "Always"},
                    "ports": {"type": "array", "items": {"type": "integer", "format": "int32", "maximum": 65535}},
                    "open": {"type": "object", "additionalProperties": true},
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
            },
            "io.k8s.api.core.v1.PodSpec": {"type": "object", "properties": {}},
        },
    })
}

fn yaml(any: Option<&g::Any>) -> Value {
    let text = any.map(|a| a.yaml.as_str()).unwrap_or_default();
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not YAML: {e}"))
}

#[test]
fn the_protobuf_decodes_back_to_what_was_encoded() {
    let swagger = pod_swagger();
    let bytes = encode(&swagger).expect("encode");
    let decoded = decode(&bytes).expect("decode");
    assert_eq!(decoded, document(&swagger).expect("document"));

    let info = decoded.info.as_ref().expect("info");
    assert_eq!(
        (info.title.as_str(), info.version.as_str()),
        ("Kubernetes", "v1.34.0")
    );

    // What kubectl's fieldValidation check walks: the PATCH operation of the kind's path.
    let paths = decoded.paths.as_ref().expect("paths");
    let item = paths.path[0].value.as_ref().expect("path item");
    assert!(matches!(
        item.parameters[0].oneof,
        Some(g::parameters_item::Oneof::JsonReference(ref r)) if r.x_ref == "#/parameters/name"
    ));
    let patch = item.patch.as_ref().expect("patch");
    let gvk = patch
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .expect("gvk extension");
    assert_eq!(
        yaml(gvk.value.as_ref()),
        json!({"group": "", "kind": "Pod", "version": "v1"})
    );
    let params: Vec<&g::parameter::Oneof> = patch
        .parameters
        .iter()
        .filter_map(|p| match &p.oneof {
            Some(g::parameters_item::Oneof::Parameter(p)) => p.oneof.as_ref(),
            _ => None,
        })
        .collect();
    let names: Vec<&str> = params
        .iter()
        .filter_map(|p| match p {
            g::parameter::Oneof::NonBodyParameter(g::NonBodyParameter {
                oneof: Some(g::non_body_parameter::Oneof::QueryParameterSubSchema(q)),
            }) => Some(q.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["fieldValidation", "dryRun"]);
    match params.first() {
        Some(g::parameter::Oneof::BodyParameter(b)) => {
            assert!(b.required && b.name == "body" && b.r#in == "body");
            let schema = b.schema.as_ref().expect("body schema");
            assert_eq!(schema.x_ref, "#/definitions/io.k8s.api.core.v1.Pod");
        }
        other => panic!("first parameter is not the body: {other:?}"),
    }
    let ok = &patch.responses.as_ref().expect("responses").response_code[0];
    assert_eq!(ok.name, "200");
    match ok.value.as_ref().and_then(|v| v.oneof.as_ref()) {
        Some(g::response_value::Oneof::Response(r)) => match &r.schema {
            Some(g::SchemaItem {
                oneof: Some(g::schema_item::Oneof::Schema(s)),
            }) => assert_eq!(s.x_ref, "#/definitions/io.k8s.api.core.v1.Pod"),
            other => panic!("response schema: {other:?}"),
        },
        other => panic!("200 response: {other:?}"),
    }

    // What kubectl's validation and explain walk: definitions.
    let defs = &decoded
        .definitions
        .as_ref()
        .expect("definitions")
        .additional_properties;
    let pod = defs
        .iter()
        .find(|d| d.name == "io.k8s.api.core.v1.Pod")
        .and_then(|d| d.value.as_ref())
        .expect("Pod definition");
    assert_eq!(
        pod.r#type.as_ref().map(|t| t.value.clone()),
        Some(vec!["object".to_owned()])
    );
    assert_eq!(pod.description, "Pod is a collection of containers.");
    assert_eq!(pod.required, ["spec"]);
    assert_eq!(
        yaml(pod.vendor_extension[0].value.as_ref()),
        json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    let field = |name: &str| {
        pod.properties
            .as_ref()
            .and_then(|p| p.additional_properties.iter().find(|f| f.name == name))
            .and_then(|f| f.value.as_ref())
            .unwrap_or_else(|| panic!("field {name}"))
    };
    assert_eq!(
        field("spec").x_ref,
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    assert_eq!(field("spec").description, "Specification.");
    match &field("labels").additional_properties {
        Some(g::AdditionalPropertiesItem {
            oneof: Some(g::additional_properties_item::Oneof::Schema(s)),
        }) => assert_eq!(
            s.r#type.as_ref().map(|t| t.value.clone()),
            Some(vec!["string".to_owned()])
        ),
        other => panic!("labels: {other:?}"),
    }
    assert!(matches!(
        &field("open").additional_properties,
        Some(g::AdditionalPropertiesItem {
            oneof: Some(g::additional_properties_item::Oneof::Boolean(true))
        })
    ));
    let policy = field("policy");
    let enums: Vec<Value> = policy.r#enum.iter().map(|a| yaml(Some(a))).collect();
    assert_eq!(enums, [json!("Always"), json!("Never")]);
    assert_eq!(yaml(policy.default.as_ref()), json!("Always"));
    let ports = field("ports");
    let item = &ports.items.as_ref().expect("items").schema;
    assert_eq!(item.len(), 1);
    assert_eq!(
        (item[0].format.as_str(), item[0].maximum),
        ("int32", 65535.0)
    );
}

#[test]
fn only_objects_are_documents_and_garbage_does_not_decode() {
    assert!(matches!(encode(&json!([])), Err(crate::Error::NotAnObject)));
    assert!(matches!(
        decode(&[0x0a, 0x05, b'x']),
        Err(crate::Error::Decode(_))
    ));
}
