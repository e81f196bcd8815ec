//! Decodes request bodies captured from `kubectl` 1.33 (`-v=8` hex dumps of its generators'
//! protobuf requests) and checks the JSON against what upstream's decoder yields.

use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.pb", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    rudder_protobuf::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn generated_objects_decode_to_upstream_json() {
    type Checks = Vec<(&'static str, Value)>;
    let cases: Vec<(&str, &str, Checks)> = vec![
        (
            "configmap",
            "ConfigMap",
            vec![
                ("/apiVersion", json!("v1")),
                ("/metadata/name", json!("cap2")),
                // Go writes every non-pointer string, even empty; JSON omits them.
                ("/metadata/namespace", Value::Null),
                ("/metadata/uid", Value::Null),
                ("/data", json!({"a": "b", "n": "1"})),
            ],
        ),
        (
            "secret",
            "Secret",
            vec![
                ("/metadata/name", json!("s1")),
                // Upstream's JSON for []byte is base64: "hunter2".
                ("/data/password", json!("aHVudGVyMg==")),
            ],
        ),
        (
            "namespace",
            "Namespace",
            vec![("/metadata/name", json!("ns-pb"))],
        ),
        (
            "deployment",
            "Deployment",
            vec![
                ("/apiVersion", json!("apps/v1")),
                // An explicit zero must survive (it is a pointer upstream).
                ("/spec/replicas", json!(0)),
                ("/spec/selector/matchLabels", json!({"app": "web"})),
                ("/spec/template/metadata/labels", json!({"app": "web"})),
                ("/spec/template/spec/containers/0/name", json!("busybox")),
                (
                    "/spec/template/spec/containers/0/image",
                    json!("busybox:1.36"),
                ),
                (
                    "/spec/template/spec/containers/0/ports/0/containerPort",
                    json!(8080),
                ),
                // The zero creationTimestamp Go always encodes is absent in JSON.
                ("/metadata/creationTimestamp", Value::Null),
            ],
        ),
        (
            "job",
            "Job",
            vec![
                (
                    "/spec/template/spec/containers/0/command",
                    json!(["sh", "-c", "echo hi"]),
                ),
                ("/spec/template/spec/restartPolicy", json!("Never")),
            ],
        ),
        (
            "cronjob",
            "CronJob",
            vec![
                ("/apiVersion", json!("batch/v1")),
                ("/spec/schedule", json!("*/5 * * * *")),
                (
                    "/spec/jobTemplate/spec/template/spec/containers/0/image",
                    json!("busybox:1.36"),
                ),
            ],
        ),
        (
            "service",
            "Service",
            vec![
                ("/spec/type", json!("NodePort")),
                ("/spec/ports/0/port", json!(80)),
                // IntOrString renders as a bare number.
                ("/spec/ports/0/targetPort", json!(8080)),
                ("/spec/selector", json!({"app": "np"})),
            ],
        ),
        (
            "role",
            "Role",
            vec![
                ("/apiVersion", json!("rbac.authorization.k8s.io/v1")),
                ("/rules/0/verbs", json!(["get", "list"])),
                ("/rules/0/resources", json!(["pods"])),
            ],
        ),
        (
            "quota",
            "ResourceQuota",
            vec![
                // Quantities are strings.
                (
                    "/spec/hard",
                    json!({"cpu": "1", "memory": "1Gi", "pods": "10"}),
                ),
            ],
        ),
        (
            "pdb",
            "PodDisruptionBudget",
            vec![
                ("/apiVersion", json!("policy/v1")),
                ("/spec/minAvailable", json!("50%")),
                ("/spec/selector/matchLabels", json!({"app": "x"})),
            ],
        ),
        (
            "ingress",
            "Ingress",
            vec![
                ("/spec/rules/0/host", json!("foo.com")),
                ("/spec/rules/0/http/paths/0/path", json!("/bar")),
                (
                    "/spec/rules/0/http/paths/0/backend/service/name",
                    json!("svc1"),
                ),
                (
                    "/spec/rules/0/http/paths/0/backend/service/port/number",
                    json!(8080),
                ),
                ("/spec/tls/0/secretName", json!("my-cert")),
            ],
        ),
    ];
    for (name, kind, checks) in cases {
        let obj = fixture(name);
        assert_eq!(obj["kind"], kind, "{name}: {obj}");
        for (pointer, want) in checks {
            let got = obj.pointer(pointer).cloned().unwrap_or(Value::Null);
            assert_eq!(got, want, "{name} {pointer}: {obj}");
        }
    }
}

#[test]
fn bad_bodies_are_errors_not_panics() {
    use rudder_protobuf::ProtobufError;
    assert_eq!(
        rudder_protobuf::decode(b"{}"),
        Err(ProtobufError::MissingMagic)
    );
    assert!(matches!(
        rudder_protobuf::decode(b"k8s\0\xff\xff\xff"),
        Err(ProtobufError::Envelope(_))
    ));
    let mut body = std::fs::read(format!(
        "{}/tests/fixtures/configmap.pb",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture");
    // Cut the object short: a truncated message is a decode error.
    body.truncate(body.len() - 5);
    assert!(matches!(
        rudder_protobuf::decode(&body),
        Err(ProtobufError::Envelope(_) | ProtobufError::Decode { .. })
    ));
    // A kind with no protobuf schema (custom resources are JSON-only upstream too).
    let unknown_kind = b"k8s\0\x0a\x18\x0a\x0dexample.com/v1\x12\x06Widget\x12\x00";
    assert!(matches!(
        rudder_protobuf::decode(unknown_kind),
        Err(ProtobufError::UnknownKind { .. })
    ));
}

#[test]
fn every_served_kind_has_a_message() {
    for (api_version, kind) in [
        ("v1", "Pod"),
        ("v1", "Service"),
        ("apps/v1", "StatefulSet"),
        ("batch/v1", "CronJob"),
        ("autoscaling/v2", "HorizontalPodAutoscaler"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("coordination.k8s.io/v1", "Lease"),
        ("discovery.k8s.io/v1", "EndpointSlice"),
        ("events.k8s.io/v1", "Event"),
        ("policy/v1", "Eviction"),
        ("scheduling.k8s.io/v1", "PriorityClass"),
        ("storage.k8s.io/v1", "StorageClass"),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview"),
        ("authentication.k8s.io/v1", "TokenRequest"),
        ("meta.k8s.io/v1", "DeleteOptions"),
    ] {
        assert!(
            rudder_protobuf::message_for(api_version, kind).is_some(),
            "{api_version} {kind}"
        );
    }
}
