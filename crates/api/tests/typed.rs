//! The typed hooks: decode checks with JSON paths, and the JSON schemas of every row.

use rudder_api::schemars::generate::SchemaSettings;
use rudder_api::{ApiError, RESOURCES, ResourceInfo, decode_check, resolve, schema, subschema};
use serde_json::{Value, json};

fn info(name: &str) -> &'static ResourceInfo {
    resolve(name).unwrap_or_else(|| panic!("{name} is served"))
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "web"}}, "spec": spec})
}

#[test]
fn decode_errors_carry_the_json_path() {
    // (resource, object, Some(path of the first error) or None when it decodes)
    let cases: Vec<(&str, Value, Option<&str>)> = vec![
        (
            "pods",
            pod(json!({"containers": [{"name": "c", "image": "busybox"}]})),
            None,
        ),
        (
            "pods",
            pod(json!({"containers": [{"name": "c", "ports": [{"containerPort": "80"}]}]})),
            Some(".spec.containers[0].ports[0].containerPort"),
        ),
        (
            "pods",
            pod(
                json!({"containers": [{"name": "c"}, {"name": "d", "env": [{"name": "A", "value": 1}]}]}),
            ),
            Some(".spec.containers[1].env[0].value"),
        ),
        (
            "pods",
            pod(json!({"containers": {"name": "c"}})),
            Some(".spec.containers"),
        ),
        (
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": 1}}}),
            Some(".metadata.labels.app"),
        ),
        (
            "pods",
            json!({"metadata": {"creationTimestamp": "yesterday"}}),
            Some(".metadata.creationTimestamp"),
        ),
        ("pods", json!([]), Some(".")),
        ("pods", json!("pod"), Some(".")),
        // apiVersion and kind may be left out, but must match when present.
        ("pods", json!({"metadata": {"name": "p"}}), None),
        (
            "pods",
            json!({"apiVersion": "v1", "kind": "Service"}),
            Some(".kind"),
        ),
        (
            "deployments",
            json!({"apiVersion": "apps/v1beta1", "kind": "Deployment"}),
            Some(".apiVersion"),
        ),
        (
            "deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "3", "selector": {}, "template": {}}}),
            Some(".spec.replicas"),
        ),
        (
            "deployments",
            json!({"spec": {"replicas": 1.5}}),
            Some(".spec.replicas"),
        ),
        (
            "deployments",
            json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}}}),
            None,
        ),
        ("secrets", json!({"data": {"key": "aGVsbG8="}}), None),
        (
            "secrets",
            json!({"data": {"key": "not base64!"}}),
            Some(".data.key"),
        ),
        (
            "configmaps",
            json!({"data": {"a": "b"}, "binaryData": {"c": "aGVsbG8="}}),
            None,
        ),
        ("configmaps", json!({"data": {"a": true}}), Some(".data.a")),
        // Go leaves a field at its zero value for null; so do we.
        (
            "pods",
            pod(json!({"containers": [{"name": null, "image": "busybox"}]})),
            None,
        ),
        (
            "pods",
            json!({"metadata": {"creationTimestamp": null}, "spec": null, "status": null}),
            None,
        ),
        // Untyped members accept anything.
        (
            "controllerrevisions",
            json!({"revision": 1, "data": {"any": ["thing", 1, null]}}),
            None,
        ),
        (
            "controllerrevisions",
            json!({"revision": "1"}),
            Some(".revision"),
        ),
        (
            "customresourcedefinitions",
            json!({"spec": {"group": "x.io", "names": {"plural": "foos", "kind": "Foo"}, "scope": "Namespaced",
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object", "default": {"a": 1}}}}}}]}}),
            None,
        ),
        (
            "customresourcedefinitions",
            json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"properties": {"spec": {"type": 3}}}}}]}}),
            Some(".spec.versions[0].schema.openAPIV3Schema.properties.spec.type"),
        ),
        (
            "tokenreviews",
            json!({"spec": {"token": "abc", "audiences": ["x"]}}),
            None,
        ),
        (
            "tokenreviews",
            json!({"spec": {"audiences": "x"}}),
            Some(".spec.audiences"),
        ),
        (
            "bindings",
            json!({"target": {"kind": "Node", "name": "n1"}}),
            None,
        ),
    ];
    for (resource, object, expected) in cases {
        let result = decode_check(info(resource), &object);
        match (expected, result) {
            (None, Ok(())) => {}
            (
                Some(path),
                Err(ApiError::Decode {
                    path: actual,
                    message,
                }),
            ) => {
                assert_eq!(actual, path, "{resource}: {object} ({message})");
                assert!(!message.is_empty());
            }
            (expected, result) => {
                panic!("{resource}: {object}: expected {expected:?}, got {result:?}")
            }
        }
    }
}

#[test]
fn decode_error_displays_path_and_message() {
    let error = decode_check(info("deployments"), &json!({"spec": {"replicas": "3"}}))
        .expect_err("a string is not an int32");
    let text = error.to_string();
    assert!(
        text.starts_with("error decoding .spec.replicas: invalid type: string \"3\""),
        "{text}"
    );
}

#[test]
fn every_row_decodes_its_minimal_object_and_rejects_another_kind() {
    for info in RESOURCES {
        let minimal =
            json!({"apiVersion": info.api_version, "kind": info.kind, "metadata": {"name": "x"}});
        assert_eq!(decode_check(info, &minimal), Ok(()), "{}", info.kind);
        let wrong = json!({"apiVersion": info.api_version, "kind": "NotAKind"});
        assert!(
            matches!(decode_check(info, &wrong), Err(ApiError::Decode { ref path, .. }) if path == ".kind"),
            "{}",
            info.kind
        );
    }
}

#[test]
fn kinds_outside_the_table_are_reported() {
    let mut foo = *info("pods");
    foo.group = "example.com";
    foo.kind = "Foo";
    let expected = ApiError::UnknownKind {
        group: "example.com".into(),
        version: "v1".into(),
        kind: "Foo".into(),
    };
    assert_eq!(decode_check(&foo, &json!({})), Err(expected.clone()));
    assert_eq!(schema(&foo).err(), Some(expected.clone()));
    assert_eq!(
        expected.to_string(),
        "no kind \"Foo\" is registered for version \"example.com/v1\""
    );
}

#[test]
fn every_row_has_an_object_schema_with_type_meta_and_metadata() {
    for info in RESOURCES {
        let schema = schema(info).expect("every row has a schema");
        let properties = schema
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or_else(|| panic!("{} has properties", info.kind));
        for field in ["apiVersion", "kind", "metadata"] {
            assert!(properties.contains_key(field), "{}.{field}", info.kind);
        }
        assert_eq!(schema.get("type"), Some(&json!("object")), "{}", info.kind);
        // Cached: the same schema comes back.
        assert!(std::ptr::eq(
            schema,
            rudder_api::schema(info).expect("cached")
        ));
    }
}

#[test]
fn schemas_reference_their_definitions() {
    let pod = schema(info("pods")).expect("pods have a schema");
    assert_eq!(
        pod.pointer("/properties/spec/$ref"),
        Some(&json!("#/$defs/io.k8s.api.core.v1.PodSpec"))
    );
    assert!(
        pod.pointer("/$defs/io.k8s.api.core.v1.Container/properties/image")
            .is_some()
    );
    assert!(
        pod.pointer("/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
            .is_some()
    );
}

#[test]
fn subschemas_collect_into_an_openapi_generator() {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let deployment = subschema(info("deployments"), &mut generator).expect("deployments");
    let pod = subschema(info("pods"), &mut generator).expect("pods");
    assert_eq!(
        deployment.get("$ref"),
        Some(&json!("#/components/schemas/io.k8s.api.apps.v1.Deployment"))
    );
    assert_eq!(
        pod.get("$ref"),
        Some(&json!("#/components/schemas/io.k8s.api.core.v1.Pod"))
    );
    let definitions = generator.definitions();
    for name in [
        "io.k8s.api.apps.v1.Deployment",
        "io.k8s.api.core.v1.Pod",
        "io.k8s.api.core.v1.PodTemplateSpec",
        "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    ] {
        assert!(definitions.contains_key(name), "{name}");
    }
}
