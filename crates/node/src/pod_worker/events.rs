//! The Events the agent records about pods, with upstream kubelet's reasons and messages
//! (`Pulling`, `Pulled`, `Created`, `Started`, `Killing`, `BackOff`, `Unhealthy`, `Failed`), so
//! `kubectl describe pod` tells the same story as on a kubelet. Written in the background through
//! `rudder-events`, which folds repeats into one Event's `count`.

use k8s_openapi::api::core::v1::{ObjectReference, Pod};

use super::Shared;

/// Event type `Normal`.
pub(super) const NORMAL: &str = "Normal";
/// Event type `Warning`.
pub(super) const WARNING: &str = "Warning";

/// `spec.containers{name}` or `spec.initContainers{name}`: the part of the pod an event is
/// about, as upstream writes `involvedObject.fieldPath`.
pub(super) fn field_path(pod: &Pod, container: &str) -> String {
    let init = pod
        .spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.name == container));
    if init {
        format!("spec.initContainers{{{container}}}")
    } else {
        format!("spec.containers{{{container}}}")
    }
}

/// `name_namespace(uid)`, how upstream names a pod in back-off messages.
pub(super) fn pod_label(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// Records an event about `container` of `pod`.
pub(super) fn container_event(
    shared: &Shared,
    pod: &Pod,
    container: &str,
    type_: &str,
    reason: &str,
    message: String,
) {
    let involved = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        name: pod.metadata.name.clone(),
        namespace: pod.metadata.namespace.clone(),
        uid: pod.metadata.uid.clone(),
        resource_version: pod.metadata.resource_version.clone(),
        field_path: Some(field_path(pod, container)),
    };
    shared.events.record(rudder_events::Draft {
        involved,
        type_: type_.into(),
        reason: reason.into(),
        message,
        component: "kubelet".into(),
        instance: shared.node_name.clone(),
        host: Some(shared.node_name.clone()),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_and_labels_follow_upstream() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1"},
            "spec": {
                "initContainers": [{"name": "setup"}],
                "containers": [{"name": "main"}]
            }
        }))
        .unwrap_or_default();
        assert_eq!(field_path(&pod, "setup"), "spec.initContainers{setup}");
        assert_eq!(field_path(&pod, "main"), "spec.containers{main}");
        assert_eq!(pod_label(&pod), "web_ns(u-1)");
    }
}
