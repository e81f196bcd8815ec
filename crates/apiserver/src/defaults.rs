//! Defaulting: the field values upstream's API server fills in when a client leaves them out
//! (restart policy, DNS policy, rollout strategy, service port protocols, ...). Pure.

use serde_json::{Map, Value, json};

use crate::resources::Resource;

fn obj_mut<'a>(v: &'a mut Value, field: &str) -> Option<&'a mut Map<String, Value>> {
    let map = v.as_object_mut()?;
    let entry = map.entry(field).or_insert_with(|| json!({}));
    if entry.is_null() {
        *entry = json!({});
    }
    entry.as_object_mut()
}

fn default(map: &mut Map<String, Value>, field: &str, value: Value) {
    match map.get(field) {
        None | Some(Value::Null) => {
            map.insert(field.into(), value);
        }
        _ => {}
    }
}

/// Defaults a field that is a plain (non-pointer) value upstream, where zero means unset; such
/// fields arrive as explicit zeros in protobuf bodies.
fn default_unless_nonzero(map: &mut Map<String, Value>, field: &str, value: Value) {
    match map.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_i64() == Some(0) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        _ => return,
    }
    map.insert(field.into(), value);
}

/// Applies the defaults for `resource` to `obj` in place.
pub fn apply(resource: &Resource, obj: &mut Value) {
    if resource.custom {
        return;
    }
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                pod_spec(spec);
                default_tolerations(spec);
            }
            if let Some(status) = obj_mut(obj, "status") {
                default(status, "phase", json!("Pending"));
            }
            let qos = qos_class(obj);
            if let Some(status) = obj_mut(obj, "status") {
                default(status, "qosClass", json!(qos));
            }
        }
        ("", "PodTemplate") => template(obj, "template"),
        ("", "ReplicationController") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "replicas", json!(1));
            }
            template_in_spec(obj);
        }
        ("apps", "Deployment") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
                if let Some(s) = strategy.as_object_mut() {
                    default(s, "type", json!("RollingUpdate"));
                    if s.get("type") == Some(&json!("RollingUpdate")) {
                        let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                        if let Some(ru) = ru.as_object_mut() {
                            default(ru, "maxUnavailable", json!("25%"));
                            default(ru, "maxSurge", json!("25%"));
                        }
                    }
                }
            }
            template_in_spec(obj);
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "replicas", json!(1));
            }
            template_in_spec(obj);
        }
        ("apps", "StatefulSet") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
                );
                default(
                    spec,
                    "persistentVolumeClaimRetentionPolicy",
                    json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
                );
            }
            template_in_spec(obj);
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "revisionHistoryLimit", json!(10));
                default(
                    spec,
                    "updateStrategy",
                    json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
                );
            }
            template_in_spec(obj);
        }
        ("batch", "Job") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                job_spec(spec);
            }
            job_selector(obj);
            template_in_spec(obj);
        }
        ("batch", "CronJob") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(jt) = spec.get_mut("jobTemplate")
                    && let Some(js) = obj_mut(jt, "spec")
                {
                    job_spec(js);
                    if let Some(t) = js.get_mut("template")
                        && let Some(ps) = obj_mut(t, "spec")
                    {
                        pod_spec(ps);
                    }
                }
            }
        }
        ("", "Service") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                service_spec(spec);
            }
        }
        ("networking.k8s.io", "NetworkPolicy") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                crate::network_policy::default_spec(spec);
            }
        }
        ("", "Namespace") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "finalizers", json!(["kubernetes"]));
            }
            if let Some(status) = obj_mut(obj, "status") {
                default(status, "phase", json!("Active"));
            }
        }
        ("", "Secret") => {
            if let Some(m) = obj.as_object_mut() {
                default(m, "type", json!("Opaque"));
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj_mut(obj, "status") {
                default(status, "phase", json!("Pending"));
            }
        }
        ("", "PersistentVolume") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
            }
            if let Some(status) = obj_mut(obj, "status") {
                default(status, "phase", json!("Pending"));
            }
        }
        _ => {}
    }
}

fn template_in_spec(obj: &mut Value) {
    if let Some(spec) = obj.get_mut("spec") {
        template(spec, "template");
    }
}

fn template(holder: &mut Value, field: &str) {
    if let Some(t) = holder.get_mut(field)
        && let Some(ps) = obj_mut(t, "spec")
    {
        pod_spec(ps);
    }
}

fn job_spec(spec: &mut Map<String, Value>) {
    // A Job with only `parallelism` is a work queue: it keeps no completion count.
    if !spec.contains_key("parallelism") {
        default(spec, "completions", json!(1));
    }
    default(spec, "parallelism", json!(1));
    // With a per-index limit the Job-wide one defaults to "no limit", as upstream.
    let backoff_limit = if spec
        .get("backoffLimitPerIndex")
        .is_some_and(|v| !v.is_null())
    {
        json!(i32::MAX)
    } else {
        json!(6)
    };
    default(spec, "backoffLimit", backoff_limit);
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    default(spec, "manualSelector", json!(false));
    default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
}

/// A Job without `manualSelector` selects its pods by its uid, and its pod template carries the
/// labels that selector matches (plus the job's name), as upstream's Job strategy does on create.
fn job_selector(obj: &mut Value) {
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let manual = obj.pointer("/spec/manualSelector") == Some(&json!(true));
    if uid.is_empty() || manual || obj.pointer("/spec/selector").is_some() {
        return;
    }
    obj["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    let labels = [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ];
    if let Some(template) = obj
        .pointer_mut("/spec/template")
        .and_then(Value::as_object_mut)
    {
        let meta = template.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let l = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = l.as_object_mut() {
                for (k, v) in labels {
                    l.insert(k.into(), json!(v));
                }
            }
        }
    }
}

/// Upstream's DefaultTolerationSeconds admission: a pod tolerates its node being not ready or
/// unreachable for 300 s before it is evicted, unless it says otherwise.
fn default_tolerations(spec: &mut Map<String, Value>) {
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = list.iter().any(|t| {
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let k = t.get("key").and_then(Value::as_str).unwrap_or("");
            let exists_all = k.is_empty() && t.get("operator") == Some(&json!("Exists"));
            (k == key || exists_all) && (effect.is_empty() || effect == "NoExecute")
        });
        if !covered {
            list.push(json!({
                "key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300,
            }));
        }
    }
}

fn service_spec(spec: &mut Map<String, Value>) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default_unless_nonzero(p, "targetPort", port);
            }
        }
    }
}

/// Pod spec defaults, also used inside workload templates.
pub fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "enableServiceLinks", json!(true));
    for field in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(cs) = spec.get_mut(field).and_then(Value::as_array_mut) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let image = c
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    default(c, "imagePullPolicy", json!(pull_policy(&image)));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    requests_from_limits(c);
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            default_unless_nonzero(p, "timeoutSeconds", json!(1));
            default_unless_nonzero(p, "periodSeconds", json!(10));
            default_unless_nonzero(p, "successThreshold", json!(1));
            default_unless_nonzero(p, "failureThreshold", json!(3));
        }
    }
}

/// A resource a container limits but does not request is requested at its limit (upstream's
/// pod defaulting, which LimitRanger's default requests must not override).
fn requests_from_limits(c: &mut Map<String, Value>) {
    let Some(resources) = c.get_mut("resources").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(limits) = resources.get("limits").and_then(Value::as_object).cloned() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let requests = resources.entry("requests").or_insert_with(|| json!({}));
    if let Some(requests) = requests.as_object_mut() {
        for (k, v) in limits {
            requests.entry(k).or_insert(v);
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise (upstream's rule).
pub fn pull_policy(image: &str) -> &'static str {
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ => "Always",
    }
}

/// The pod's QoS class from its containers' requests and limits.
pub fn qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_table() {
        let cases = [
            ("busybox", "Always"),
            ("busybox:latest", "Always"),
            ("busybox:1.36", "IfNotPresent"),
            ("localhost:5000/busybox", "Always"),
            ("localhost:5000/busybox:v1", "IfNotPresent"),
            ("busybox@sha256:abc", "IfNotPresent"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn qos_table() {
        let cases = [
            (
                json!({"spec": {"containers": [{"name": "a"}]}}),
                "BestEffort",
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}}),
                "Guaranteed",
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}]}}),
                "Burstable",
            ),
            (
                json!({"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}}]}}),
                "Burstable",
            ),
        ];
        for (pod, want) in cases {
            assert_eq!(qos_class(&pod), want, "{pod}");
        }
    }

    #[test]
    fn requests_default_to_limits() {
        let mut spec = json!({"containers": [
            {"name": "a", "resources": {"limits": {"cpu": "1"}, "requests": {"memory": "1Mi"}}},
            {"name": "b", "resources": {"limits": {"cpu": "2"}, "requests": {"cpu": "1"}}},
            {"name": "c"}
        ]});
        pod_spec(spec.as_object_mut().expect("object"));
        assert_eq!(
            spec["containers"][0]["resources"]["requests"],
            json!({"cpu": "1", "memory": "1Mi"})
        );
        assert_eq!(
            spec["containers"][1]["resources"]["requests"],
            json!({"cpu": "1"})
        );
        assert_eq!(spec["containers"][2]["resources"], json!({}));
    }

    #[test]
    fn pod_and_service_defaults() {
        let mut spec = json!({"containers": [{"name": "c", "image": "busybox:1", "ports": [{"containerPort": 80}]}]});
        pod_spec(spec.as_object_mut().expect("object"));
        assert_eq!(spec["restartPolicy"], "Always");
        assert_eq!(spec["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(spec["containers"][0]["ports"][0]["protocol"], "TCP");
        let mut svc = json!({"type": "NodePort", "ports": [{"port": 80}]});
        service_spec(svc.as_object_mut().expect("object"));
        assert_eq!(svc["ports"][0]["targetPort"], 80);
        assert_eq!(svc["externalTrafficPolicy"], "Cluster");
        let mut kept = json!({"restartPolicy": "Never"});
        pod_spec(kept.as_object_mut().expect("object"));
        assert_eq!(kept["restartPolicy"], "Never");
    }

    #[test]
    fn job_defaults_and_selector() {
        let cases = [
            (json!({}), Some(1), 1),
            (json!({"parallelism": 3}), None, 3),
            (json!({"completions": 5}), Some(5), 1),
        ];
        for (spec, completions, parallelism) in cases {
            let mut spec = spec;
            job_spec(spec.as_object_mut().expect("object"));
            assert_eq!(spec["completions"].as_i64(), completions, "{spec}");
            assert_eq!(spec["parallelism"], parallelism, "{spec}");
        }
        for (spec, limit) in [
            (json!({}), 6),
            (json!({"backoffLimitPerIndex": 1}), i64::from(i32::MAX)),
            (json!({"backoffLimitPerIndex": 1, "backoffLimit": 3}), 3),
        ] {
            let mut spec = spec;
            job_spec(spec.as_object_mut().expect("object"));
            assert_eq!(spec["backoffLimit"], limit, "{spec}");
        }
        let mut job =
            json!({"metadata": {"name": "j", "uid": "u-1"}, "spec": {"template": {"spec": {}}}});
        job_selector(&mut job);
        assert_eq!(
            job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
            "u-1"
        );
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["batch.kubernetes.io/job-name"], "j");
        assert_eq!(labels["controller-uid"], "u-1");
        let mut manual =
            json!({"metadata": {"name": "m", "uid": "u-2"}, "spec": {"manualSelector": true}});
        job_selector(&mut manual);
        assert!(manual["spec"].get("selector").is_none());
    }

    #[test]
    fn default_toleration_seconds() {
        let mut spec = json!({});
        default_tolerations(spec.as_object_mut().expect("object"));
        assert_eq!(spec["tolerations"].as_array().map(Vec::len), Some(2));
        assert_eq!(spec["tolerations"][0]["tolerationSeconds"], 300);
        let mut own = json!({"tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10},
        ]});
        default_tolerations(own.as_object_mut().expect("object"));
        let t = own["tolerations"].as_array().cloned().unwrap_or_default();
        assert_eq!(t.len(), 2, "only not-ready is added");
        assert_eq!(t[0]["tolerationSeconds"], 10);
        let mut everything = json!({"tolerations": [{"operator": "Exists"}]});
        default_tolerations(everything.as_object_mut().expect("object"));
        assert_eq!(everything["tolerations"].as_array().map(Vec::len), Some(1));
    }
}
