//! Which fields each built-in kind lets a field selector use, and how a field's value is read.
//!
//! Mirrors upstream's field label conversion functions (which labels a kind accepts, and the
//! error text for others) and its `ToSelectableFields` functions (how each value is computed).

use serde_json::Value;

const META: &[&str] = &["metadata.name", "metadata.namespace"];
const POD: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.podIPs",
    "status.nominatedNodeName",
    "spec.host",
];
const NODE: &[&str] = &["metadata.name", "spec.unschedulable"];
const REPLICATION_CONTROLLER: &[&str] = &["metadata.name", "metadata.namespace", "status.replicas"];
const EVENT: &[&str] = &[
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const EVENTS_V1_EVENT: &[&str] = &[
    "reason",
    "regarding.kind",
    "regarding.namespace",
    "regarding.name",
    "regarding.uid",
    "regarding.apiVersion",
    "regarding.resourceVersion",
    "regarding.fieldPath",
    "reportingController",
    "type",
    "metadata.namespace",
    "metadata.name",
];
const NAMESPACE: &[&str] = &["status.phase", "metadata.name"];
const SECRET: &[&str] = &["type", "metadata.namespace", "metadata.name"];
const SERVICE: &[&str] = &[
    "metadata.namespace",
    "metadata.name",
    "spec.clusterIP",
    "spec.type",
];
const JOB: &[&str] = &["metadata.name", "metadata.namespace", "status.successful"];
const SIGNED: &[&str] = &["metadata.name", "spec.signerName"];
const RESOURCE_SLICE: &[&str] = &["metadata.name", "spec.nodeName", "spec.driver"];

/// The field labels `group`/`kind` accepts (built-in kinds without a list accept the metadata pair).
pub(crate) fn labels(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "Pod") => POD,
        ("", "Node") => NODE,
        ("", "ReplicationController") => REPLICATION_CONTROLLER,
        ("", "Event") => EVENT,
        ("", "Namespace") => NAMESPACE,
        ("", "Secret") => SECRET,
        ("", "Service") => SERVICE,
        ("batch", "Job") => JOB,
        ("certificates.k8s.io", "CertificateSigningRequest" | "ClusterTrustBundle") => SIGNED,
        ("events.k8s.io", "Event") => EVENTS_V1_EVENT,
        ("resource.k8s.io", "ResourceSlice") => RESOURCE_SLICE,
        _ => META,
    }
}

/// Upstream's error text when `label` is not among [`labels`] for the kind.
pub(crate) fn unsupported_message(group: &str, version: &str, kind: &str, label: &str) -> String {
    match (group, kind) {
        ("batch", "Job") => format!("field label \"{label}\" not supported for batchv1.Job"),
        ("resource.k8s.io", "ResourceSlice") => {
            format!("field label not supported for {group}/{version}, Kind={kind}: {label}")
        }
        _ if labels(group, kind) == META => format!(
            "\"{label}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
        ),
        _ => format!("field label not supported: {label}"),
    }
}

/// The label a deprecated spelling stands for (`spec.host` is `spec.nodeName` for pods).
pub(crate) fn canonical<'a>(group: &str, kind: &str, label: &'a str) -> &'a str {
    match (group, kind, label) {
        ("", "Pod", "spec.host") => "spec.nodeName",
        _ => label,
    }
}

/// The label under which a selector term is evaluated on the *stored* object: the label itself,
/// except for `events.k8s.io` Events, which are stored as core Events (`regarding.name` is
/// `involvedObject.name` there).
pub(crate) fn stored_label<'a>(group: &str, kind: &str, label: &'a str) -> &'a str {
    match (group, kind, canonical(group, kind, label)) {
        ("events.k8s.io", "Event", "reportingController") => "reportingComponent",
        ("events.k8s.io", "Event", l) => match l.strip_prefix("regarding.") {
            Some("kind") => "involvedObject.kind",
            Some("namespace") => "involvedObject.namespace",
            Some("name") => "involvedObject.name",
            Some("uid") => "involvedObject.uid",
            Some("apiVersion") => "involvedObject.apiVersion",
            Some("resourceVersion") => "involvedObject.resourceVersion",
            Some("fieldPath") => "involvedObject.fieldPath",
            _ => l,
        },
        (_, _, l) => l,
    }
}

/// The value a selector compares for `label` of `object`, computed as upstream's field sets
/// are: absent strings are `""`, absent booleans `"false"`, absent counters `"0"`.
pub(crate) fn value(group: &str, kind: &str, object: &Value, label: &str) -> String {
    match (group, kind, canonical(group, kind, label)) {
        ("", "Pod", "status.podIP") => object
            .pointer("/status/podIPs/0/ip")
            .or_else(|| object.pointer("/status/podIP"))
            .map(scalar)
            .unwrap_or_default(),
        // Accepted (it is shared with the downward API) but not in upstream's field set.
        ("", "Pod", "status.podIPs") => String::new(),
        ("", "Pod", "spec.hostNetwork") => or_default(object, "/spec/hostNetwork", "false"),
        ("", "Node", "spec.unschedulable") => or_default(object, "/spec/unschedulable", "false"),
        ("", "ReplicationController", "status.replicas") => {
            or_default(object, "/status/replicas", "0")
        }
        ("batch", "Job", "status.successful") => or_default(object, "/status/succeeded", "0"),
        ("", "Event", "source") => or_default(object, "/source/component", ""),
        (_, _, label) => or_default(object, &pointer(label), ""),
    }
}

fn or_default(object: &Value, pointer: &str, default: &str) -> String {
    match object.pointer(pointer) {
        None | Some(Value::Null) => default.to_string(),
        Some(v) => scalar(v),
    }
}

/// A field's value as text: strings as they are, numbers and booleans printed, else empty.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `a.b.c` as the JSON pointer `/a/b/c`.
fn pointer(label: &str) -> String {
    label
        .split('.')
        .map(|seg| format!("/{}", seg.replace('~', "~0").replace('/', "~1")))
        .collect()
}
