//! Table tests of strategic merge patch on built-in kinds: merge keys, directives, ordering, errors.

use rudder_machinery::{MachineryError, MergeSchema, strategic_merge};
use serde_json::{Value, json};

fn apply(
    group: &str,
    kind: &str,
    original: &Value,
    patch: &Value,
) -> Result<Value, MachineryError> {
    let schema = MergeSchema::for_kind(group, "v1", kind).expect("built-in kind");
    strategic_merge(original, patch, &schema)
}

fn containers(list: Value) -> Value {
    json!({"spec": {"containers": list}})
}

#[test]
fn merges_pods() {
    let cases = [
        (
            "containers merge by name",
            containers(json!([{"name": "a", "image": "a1"}, {"name": "b", "image": "b1"}])),
            containers(json!([{"name": "b", "image": "b2"}])),
            containers(json!([{"name": "a", "image": "a1"}, {"name": "b", "image": "b2"}])),
        ),
        (
            "a new container comes before server-only ones (no $setElementOrder)",
            containers(json!([{"name": "a"}, {"name": "b"}])),
            containers(json!([{"name": "c", "image": "c1"}])),
            containers(json!([{"name": "c", "image": "c1"}, {"name": "a"}, {"name": "b"}])),
        ),
        (
            "$patch: delete removes an env entry",
            containers(
                json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]),
            ),
            containers(json!([{"name": "a", "env": [{"name": "X", "$patch": "delete"}]}])),
            containers(json!([{"name": "a", "env": [{"name": "Y", "value": "2"}]}])),
        ),
        (
            "$patch: delete removes every duplicate",
            containers(
                json!([{"name": "a", "env": [{"name": "X"}, {"name": "Y"}, {"name": "X", "value": "2"}]}]),
            ),
            containers(json!([{"name": "a", "env": [{"name": "X", "$patch": "delete"}]}])),
            containers(json!([{"name": "a", "env": [{"name": "Y"}]}])),
        ),
        (
            "$setElementOrder orders the merged list",
            containers(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}])),
            json!({"spec": {
                "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}],
                "containers": [{"name": "a", "image": "new"}]
            }}),
            containers(json!([{"name": "c"}, {"name": "a", "image": "new"}, {"name": "b"}])),
        ),
        (
            "the patch's order wins for the items it names",
            containers(json!([{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}])),
            containers(
                json!([{"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "tty": true}]),
            ),
            containers(
                json!([{"name": "3", "image": "c"}, {"name": "1", "image": "a"}, {"name": "2", "image": "b", "tty": true}]),
            ),
        ),
        (
            "server-only items keep their place relative to the patch's",
            containers(json!([{"name": "1"}, {"name": "2", "image": "b"}, {"name": "3"}])),
            containers(json!([{"name": "3", "image": "c"}, {"name": "1", "image": "a"}])),
            containers(
                json!([{"name": "2", "image": "b"}, {"name": "3", "image": "c"}, {"name": "1", "image": "a"}]),
            ),
        ),
        (
            "empty merging lists stay empty",
            containers(json!([])),
            containers(json!([])),
            containers(json!([])),
        ),
        (
            "$retainKeys in a volume switches its source",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}]}}),
        ),
        (
            "$patch: replace item replaces the list",
            containers(json!([{"name": "a"}, {"name": "b"}])),
            containers(json!([{"$patch": "replace"}, {"name": "z", "image": "z1"}])),
            containers(json!([{"name": "z", "image": "z1"}])),
        ),
        (
            "container ports merge by containerPort",
            containers(json!([{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}])),
            containers(
                json!([{"name": "a", "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443}]}]),
            ),
            containers(json!([{"name": "a", "ports": [
                {"containerPort": 80, "name": "http", "protocol": "TCP"}, {"containerPort": 443}
            ]}])),
        ),
        (
            "volumes by name, volumeMounts by mountPath",
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}],
                "containers": [{"name": "a", "volumeMounts": [{"mountPath": "/d", "name": "v"}]}]}}),
            json!({"spec": {"volumes": [{"name": "w", "emptyDir": {}}],
                "containers": [{"name": "a", "volumeMounts": [{"mountPath": "/d", "readOnly": true}]}]}}),
            json!({"spec": {"volumes": [{"name": "w", "emptyDir": {}}, {"name": "v", "emptyDir": {}}],
                "containers": [{"name": "a", "volumeMounts": [{"mountPath": "/d", "name": "v", "readOnly": true}]}]}}),
        ),
        (
            "tolerations have no merge key: replaced",
            json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
            json!({"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}),
        ),
        (
            "null deletes a field; other labels stay",
            json!({"metadata": {"labels": {"app": "web", "tier": "db"}}, "spec": {"nodeName": "n1"}}),
            json!({"metadata": {"labels": {"tier": null, "v": "2"}}, "spec": {"nodeName": null}}),
            json!({"metadata": {"labels": {"app": "web", "v": "2"}}, "spec": {}}),
        ),
        (
            "$patch: replace in a map",
            json!({"spec": {"nodeSelector": {"a": "1", "b": "2"}}}),
            json!({"spec": {"nodeSelector": {"$patch": "replace", "c": "3"}}}),
            json!({"spec": {"nodeSelector": {"c": "3"}}}),
        ),
        (
            "$patch: delete in a map empties it",
            json!({"spec": {"nodeSelector": {"a": "1"}}}),
            json!({"spec": {"nodeSelector": {"$patch": "delete"}}}),
            json!({"spec": {"nodeSelector": {}}}),
        ),
        (
            "finalizers merge as a set",
            json!({"metadata": {"finalizers": ["a", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList removes finalizers",
            json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b", "x"]}}),
            json!({"metadata": {"finalizers": ["a", "c"]}}),
        ),
        (
            "$deleteFromPrimitiveList of an absent list adds nothing",
            json!({"metadata": {}}),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}}),
            json!({"metadata": {}}),
        ),
        (
            "ownerReferences merge by uid",
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a"}, {"uid": "u2", "name": "b"}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "controller": true}]}}),
            json!({"metadata": {"ownerReferences": [{"uid": "u1", "name": "a", "controller": true}, {"uid": "u2", "name": "b"}]}}),
        ),
        (
            "status conditions merge by type, keeping the live order",
            json!({"status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "Initialized", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
        ),
        (
            "a new subtree arrives without its nulls and directives",
            json!({"spec": {}}),
            json!({"spec": {"affinity": {"nodeAffinity": null, "podAffinity": {}},
                "containers": [{"name": "a", "env": [{"name": "X", "value": null}]}]}}),
            json!({"spec": {"affinity": {"podAffinity": {}}, "containers": [{"name": "a", "env": [{"name": "X"}]}]}}),
        ),
        (
            "a value of another type replaces",
            json!({"spec": {"nodeSelector": {"a": "1"}}}),
            json!({"spec": {"nodeSelector": "x"}}),
            json!({"spec": {"nodeSelector": "x"}}),
        ),
        (
            "$patch: replace at the top",
            json!({"metadata": {"name": "p"}, "spec": {"nodeName": "n1"}}),
            json!({"$patch": "replace", "metadata": {"name": "q"}}),
            json!({"metadata": {"name": "q"}}),
        ),
    ];
    for (name, original, patch, expected) in cases {
        assert_eq!(apply("", "Pod", &original, &patch), Ok(expected), "{name}");
    }
}

#[test]
fn merges_other_kinds() {
    let template = |list: Value| json!({"spec": {"template": {"spec": {"containers": list}}}});
    let cases = [
        (
            "Deployment: containers under spec.template",
            ("apps", "Deployment"),
            template(json!([{"name": "a", "image": "1"}, {"name": "b"}])),
            template(json!([{"name": "a", "image": "2"}])),
            template(json!([{"name": "a", "image": "2"}, {"name": "b"}])),
        ),
        (
            "Deployment: $retainKeys clears the old strategy",
            ("apps", "Deployment"),
            json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
            json!({"spec": {"strategy": {"type": "Recreate"}}}),
        ),
        (
            "CronJob: containers under spec.jobTemplate",
            ("batch", "CronJob"),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}}}),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "x"}]}}}}}}),
            json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b", "image": "x"}]}}}}}}),
        ),
        (
            "Service: ports merge by port",
            ("", "Service"),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
            json!({"spec": {"ports": [{"port": 443, "targetPort": 8443}]}}),
            json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}),
        ),
        (
            "Node: podCIDRs merge as a set and follow $setElementOrder",
            ("", "Node"),
            json!({"spec": {"podCIDRs": ["a", "b"]}}),
            json!({"spec": {"$setElementOrder/podCIDRs": ["b", "a", "c"], "podCIDRs": ["c"]}}),
            json!({"spec": {"podCIDRs": ["b", "a", "c"]}}),
        ),
        (
            "PodDisruptionBudget: spec.selector is replaced whole",
            ("policy", "PodDisruptionBudget"),
            json!({"spec": {"selector": {"matchLabels": {"a": "b"}}, "minAvailable": 1}}),
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}}}),
            json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Exists"}]}, "minAvailable": 1}}),
        ),
        (
            "ConfigMap: plain maps merge",
            ("", "ConfigMap"),
            json!({"data": {"a": "1", "b": "2"}}),
            json!({"data": {"a": null, "c": "3"}}),
            json!({"data": {"b": "2", "c": "3"}}),
        ),
        (
            "MutatingWebhookConfiguration: webhooks by name, matchConditions by name",
            (
                "admissionregistration.k8s.io",
                "MutatingWebhookConfiguration",
            ),
            json!({"webhooks": [{"name": "w", "matchConditions": [{"name": "c", "expression": "true"}]}]}),
            json!({"webhooks": [{"name": "w", "matchConditions": [{"name": "c", "expression": "false"}]}]}),
            json!({"webhooks": [{"name": "w", "matchConditions": [{"name": "c", "expression": "false"}]}]}),
        ),
    ];
    for (name, (group, kind), original, patch, expected) in cases {
        assert_eq!(
            apply(group, kind, &original, &patch),
            Ok(expected),
            "{name}"
        );
    }
}

#[test]
fn rejects_bad_patches() {
    let cases = [
        (
            containers(json!([{"name": "a"}])),
            containers(json!([{"image": "x"}])),
            "map: map[image:x] does not contain declared merge key: name",
        ),
        (
            containers(json!([{"name": "a"}])),
            containers(json!([{"name": "a", "$patch": "merge"}])),
            "merging lists cannot yet be specified in the patch",
        ),
        (
            containers(json!([{"name": "a"}])),
            containers(json!([{"name": "a", "$patch": "frob"}])),
            "unknown patch type: frob in map: map[$patch:frob name:a]",
        ),
        (
            json!({"spec": {"nodeSelector": {"a": "1"}}}),
            json!({"spec": {"nodeSelector": {"$patch": "foo", "b": "2"}}}),
            "unknown patch type: foo in map: map[$patch:foo b:2]",
        ),
        (
            json!({"spec": {"nodeSelector": {"a": "1"}}}),
            json!({"spec": {"nodeSelector": {"$retainKeys": ["a"], "b": "2"}}}),
            "invalid patch format of retainKeys",
        ),
        (
            containers(json!([{"name": "a"}])),
            json!({"spec": {"$setElementOrder/containers": [{"name": "a"}], "containers": [{"name": "b"}]}}),
            "The order in patch list:\n[map[name:b]]\n doesn't match $setElementOrder list:\n[map[name:a]]\n",
        ),
        (
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
            "invalid patch format of primitive list",
        ),
        (
            json!({"metadata": {"finalizers": []}}),
            json!({"metadata": {"finalizers": [["a"]]}}),
            "lists of lists are not supported",
        ),
        (
            json!({"metadata": {"finalizers": ["a"]}}),
            json!({"metadata": {"finalizers": [1]}}),
            "list element types are not identical: [[a] [1]]",
        ),
        (
            json!({"spec": {"containers": [{"name": "a", "args": ["x"]}]}}),
            json!({"spec": {"$setElementOrder": []}}),
            "invalid patch format of setElementOrder list",
        ),
    ];
    for (original, patch, message) in cases {
        assert_eq!(
            apply("", "Pod", &original, &patch),
            Err(MachineryError::StrategicMergePatch(message.to_string())),
            "{patch}"
        );
    }
    let schema = MergeSchema::for_kind("", "v1", "Pod").expect("built-in");
    assert!(matches!(
        strategic_merge(&json!({}), &json!([1]), &schema),
        Err(MachineryError::MalformedPatch(_))
    ));
}

#[test]
fn knows_which_kinds_support_it() {
    let cases = [
        ("", "Pod", true),
        ("", "ConfigMap", true),
        ("apps", "Deployment", true),
        ("rbac.authorization.k8s.io", "ClusterRole", true),
        ("example.com", "Widget", false),
        ("stable.example.com", "CronTab", false),
    ];
    for (group, kind, supported) in cases {
        assert_eq!(
            MergeSchema::for_kind(group, "v1", kind).is_some(),
            supported,
            "{group}/{kind}"
        );
    }
    let pod = MergeSchema::for_kind("", "v1", "Pod").expect("built-in");
    let spec = pod.field("spec").schema;
    let containers = spec.field("containers");
    assert_eq!(containers.merge_key, Some("name"));
    assert_eq!(containers.schema.field("env").merge_key, Some("name"));
    assert!(spec.field("volumes").retain_keys);
    assert_eq!(spec.field("tolerations").merge_key, None);
}
