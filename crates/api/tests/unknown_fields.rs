//! Unknown-field detection against the k8s-openapi schemas and hand-written structural schemas.

use rudder_api::schemars::Schema;
use rudder_api::{ApiError, ResourceInfo, resolve, unknown_fields, unknown_fields_of};
use serde_json::{Value, json};

fn info(name: &str) -> &'static ResourceInfo {
    resolve(name).unwrap_or_else(|| panic!("{name} is served"))
}

#[test]
fn unknown_fields_of_built_in_kinds() {
    // (resource, object, expected unknown paths)
    let cases: Vec<(&str, Value, Vec<&str>)> = vec![
        (
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "p", "labelz": {"a": "b"}, "labels": {"app": "web", "any/key.with.dots": "x"},
                             "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
                "spec": {"containers": [{"name": "c", "imagee": "busybox", "image": "busybox",
                                         "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}),
            vec![".metadata.labelz", ".spec.containers[0].imagee"],
        ),
        (
            "pods",
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b", "ports": [{"containerPort": 80, "hostPortt": 1}]}],
                            "nodeSelector": {"kubernetes.io/os": "linux"}}}),
            vec![".spec.containers[1].ports[0].hostPortt"],
        ),
        (
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                   "data": {"anything": "x", "app.properties": "y"}, "binaryData": {"blob": "aGk="}}),
            vec![],
        ),
        (
            "configmaps",
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"}, "extra": 1, "spec": {"a": 1}}),
            vec![".extra", ".spec"],
        ),
        ("configmaps", json!({"status": {}}), vec![".status"]),
        (
            "deployments",
            json!({"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                            "strategy": {"rollingUpdate": {"maxSurge": "25%"}},
                            "template": {"metadata": {"labels": {"app": "web"}},
                                         "spec": {"containerz": [], "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x", "typo": 1}}}]}]}}}}),
            vec![
                ".spec.template.spec.containers[0].env[0].valueFrom.fieldRef.typo",
                ".spec.template.spec.containerz",
            ],
        ),
        (
            // RawExtension members are untyped.
            "controllerrevisions",
            json!({"revision": 1, "data": {"spec": {"template": {"anything": {"goes": [1, 2]}}}}}),
            vec![],
        ),
        (
            // FieldsV1 is untyped; ManagedFieldsEntry is not.
            "pods",
            json!({"metadata": {"managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:containers": {}}}, "extra": true}]}}),
            vec![".metadata.managedFields[0].extra"],
        ),
        (
            // JSONSchemaProps is recursive (a `$ref` to its own definition); JSON is untyped.
            "customresourcedefinitions",
            json!({"spec": {"group": "x.io", "versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {"spec": {"type": "object", "default": {"free": {"form": 1}},
                    "properties": {"size": {"type": "integer", "typo": 1}},
                    "additionalProperties": {"type": "string"},
                    "x-kubernetes-preserve-unknown-fields": true}}}}}]}}),
            vec![".spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.size.typo"],
        ),
        (
            "services",
            json!({"spec": {"ports": [{"port": 80, "targetPort": "http"}], "selector": {"app": "web"}, "clusterIPs": ["10.0.0.1"]}}),
            vec![],
        ),
        (
            "services",
            json!({"spec": {"ports": [{"port": 80, "targetPort": {"x": 1}}]}}),
            vec![],
        ),
        (
            "secrets",
            json!({"stringData": {"password": "x"}, "type": "Opaque", "immutable": true}),
            vec![],
        ),
        (
            "nodes",
            json!({"status": {"capacity": {"cpu": "2"}, "conditions": [{"type": "Ready", "stauts": "True"}]}}),
            vec![".status.conditions[0].stauts"],
        ),
        (
            "tokenreviews",
            json!({"spec": {"token": "t"}, "status": {"user": {"extra": {"k": ["v"]}}}}),
            vec![],
        ),
        (
            "pods",
            json!({"spec": null, "metadata": {"labels": null}}),
            vec![],
        ),
        ("pods", json!("not an object"), vec![]),
    ];
    for (resource, object, expected) in cases {
        let found = unknown_fields_of(info(resource), &object).expect("the kind is served");
        assert_eq!(found, expected, "{resource}: {object}");
    }
}

#[test]
fn unknown_fields_of_an_unserved_kind_is_an_error() {
    let mut foo = *info("pods");
    foo.kind = "Foo";
    assert!(matches!(
        unknown_fields_of(&foo, &json!({})),
        Err(ApiError::UnknownKind { .. })
    ));
}

fn check(schema: Value, value: Value) -> Vec<String> {
    let schema = Schema::try_from(schema).expect("a schema is an object or a bool");
    unknown_fields(&schema, &value)
}

#[test]
fn structural_schema_keywords() {
    let cases: Vec<(&str, Value, Value, Vec<&str>)> = vec![
        (
            "properties only",
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            json!({"a": "x", "b": 1}),
            vec![".b"],
        ),
        (
            "additionalProperties false",
            json!({"type": "object", "properties": {"a": {}}, "additionalProperties": false}),
            json!({"a": 1, "b": 1}),
            vec![".b"],
        ),
        (
            "additionalProperties true",
            json!({"type": "object", "properties": {"a": {}}, "additionalProperties": true}),
            json!({"a": 1, "b": {"c": 1}}),
            vec![],
        ),
        (
            "map of objects",
            json!({"type": "object", "additionalProperties": {"type": "object", "properties": {"x": {}}}}),
            json!({"k1": {"x": 1}, "k2": {"y": 1}}),
            vec![".k2.y"],
        ),
        (
            "preserve unknown still checks known properties",
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                   "properties": {"known": {"type": "object", "properties": {"a": {}}}}}),
            json!({"free": {"b": 1}, "known": {"a": 1, "b": 2}}),
            vec![".known.b"],
        ),
        (
            "embedded resource",
            json!({"type": "object", "properties": {"obj": {"type": "object", "x-kubernetes-embedded-resource": true,
                   "properties": {"spec": {"type": "object", "properties": {}}}}}}),
            json!({"obj": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {"q": 1}, "other": 1}}),
            vec![".obj.other", ".obj.spec.q"],
        ),
        (
            "arrays of arrays",
            json!({"type": "array", "items": {"type": "array", "items": {"type": "object", "properties": {"a": {}}}}}),
            json!([[{"a": 1}], [{"a": 1}, {"b": 1}]]),
            vec!["[1][1].b"],
        ),
        (
            "combinators and refs",
            json!({"$defs": {"A": {"type": "object", "properties": {"a": {}}}, "B": {"$ref": "#/$defs/A"}},
                   "allOf": [{"$ref": "#/$defs/B"}, {"properties": {"b": {}}}]}),
            json!({"a": 1, "b": 2, "c": 3}),
            vec![".c"],
        ),
        (
            "recursive root reference",
            json!({"type": "object", "properties": {"name": {}, "child": {"$ref": "#"}}}),
            json!({"name": "a", "child": {"name": "b", "child": {"nmae": "c"}}}),
            vec![".child.child.nmae"],
        ),
        (
            "unresolvable references accept anything",
            json!({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}),
            json!({"a": {"anything": 1}}),
            vec![],
        ),
        (
            "reference cycles accept anything",
            json!({"$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"$ref": "#/$defs/A"}}, "$ref": "#/$defs/A"}),
            json!({"x": 1}),
            vec![],
        ),
        ("empty schema", json!({}), json!({"x": {"y": 1}}), vec![]),
        ("boolean schema", json!(true), json!({"x": 1}), vec![]),
    ];
    for (name, schema, value, expected) in cases {
        assert_eq!(check(schema, value), expected, "{name}");
    }
}
