//! What the scheduler keeps of a pod: the fields its plugins, queue and writes read, and nothing
//! else. Every bound pod stays in the snapshot for as long as it lives, so at 150,000 pods each
//! kilobyte kept per pod is 150 MB; a running pod's container statuses, environment, probes and
//! service-account volume are most of its size and no scheduling decision reads them.
//!
//! Kept: metadata but `managedFields`, `generateName` and the last-applied annotation;
//! the spec as `rudder_machinery::pod_trim::trim_spec` leaves it (per container: name, image for
//! ImageLocality, ports for NodePorts, resources, restart policy; volumes naming a claim, for
//! VolumeBinding); of the status, the phase, `nominatedNodeName` and the `PodScheduled`
//! condition (written by the scheduler, compared before writing again).

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The annotation `kubectl apply` writes: a copy of the whole object as applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops from `pod` what no scheduling decision, queue rule or scheduler write reads.
pub fn for_scheduling(pod: &mut Pod) {
    rudder_machinery::pod_trim::trim_spec(pod);
    let meta = &mut pod.metadata;
    meta.generate_name = None;
    if let Some(annotations) = meta.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
    }
    if let Some(status) = pod.status.take() {
        pod.status = Some(PodStatus {
            phase: status.phase,
            nominated_node_name: status.nominated_node_name,
            conditions: status.conditions.map(|conditions| {
                conditions
                    .into_iter()
                    .filter(|c| c.type_ == "PodScheduled")
                    .collect()
            }),
            ..Default::default()
        });
    }
}

/// What the snapshot keeps of a bound pod once its `PodInfo` is derived: who it is (for
/// preemption's deletes and events), whether it is terminating, and its node. Every fact a
/// decision reads of a placed pod (labels, requests, ports, affinity terms, priority) is in the
/// `PodInfo`'s own fields, so the pod itself need not stay: a few hundred bytes instead of
/// the kilobytes of a decoded spec.
pub fn placed(pod: &Pod) -> Pod {
    let m = &pod.metadata;
    Pod {
        metadata: ObjectMeta {
            name: m.name.clone(),
            namespace: m.namespace.clone(),
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            deletion_timestamp: m.deletion_timestamp.clone(),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("a pod")
    }

    /// A Deployment's running pod as the API server stores it: defaults, the service-account
    /// volume and mount, probes, environment and a full status.
    fn running_pod() -> serde_json::Value {
        json!({
            "metadata": {
                "name": "web-7d9c-abcde", "generateName": "web-7d9c-", "namespace": "default",
                "uid": "u1", "resourceVersion": "42", "creationTimestamp": "2026-12-08T01:00:00Z",
                "labels": {"app": "web", "pod-template-hash": "7d9c"},
                "annotations": {"team": "a", LAST_APPLIED: "{\"huge\":true}"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7d9c", "uid": "rs1", "controller": true}],
                "managedFields": [{"manager": "kube-controller-manager", "operation": "Update"}]
            },
            "spec": {
                "nodeName": "n1", "schedulerName": "default-scheduler", "priority": 0,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}],
                "nodeSelector": {"disk": "ssd"},
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}},
                     "topologyKey": "kubernetes.io/hostname"}]}},
                "initContainers": [{"name": "setup", "image": "busybox", "command": ["sh"],
                    "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "50m"}}}],
                "containers": [{
                    "name": "web", "image": "nginx:1.27", "command": ["nginx"], "args": ["-g"],
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    "livenessProbe": {"httpGet": {"path": "/", "port": 80}},
                    "volumeMounts": [{"name": "kube-api-access-x", "mountPath": "/var/run/secrets"}],
                    "terminationMessagePath": "/dev/termination-log",
                    "imagePullPolicy": "IfNotPresent"
                }],
                "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
                "volumes": [
                    {"name": "kube-api-access-x", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "cfg", "configMap": {"name": "cfg"}}
                ]
            },
            "status": {
                "phase": "Running", "nominatedNodeName": "n2", "podIP": "10.0.0.5",
                "hostIP": "192.168.1.1", "startTime": "2026-12-08T01:00:01Z", "qosClass": "Burstable",
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "PodScheduled", "status": "True"}
                ],
                "containerStatuses": [{"name": "web", "ready": true, "restartCount": 0,
                    "image": "nginx:1.27", "imageID": "sha256:x", "containerID": "rudder://c1",
                    "state": {"running": {"startedAt": "2026-12-08T01:00:02Z"}}}]
            }
        })
    }

    #[test]
    fn keeps_what_scheduling_reads_and_drops_the_rest() {
        let want = json!({
            "metadata": {
                "name": "web-7d9c-abcde", "namespace": "default",
                "uid": "u1", "resourceVersion": "42", "creationTimestamp": "2026-12-08T01:00:00Z",
                "labels": {"app": "web", "pod-template-hash": "7d9c"},
                "annotations": {"team": "a"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-7d9c", "uid": "rs1", "controller": true}]
            },
            "spec": {
                "nodeName": "n1", "schedulerName": "default-scheduler", "priority": 0,
                "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": 300}],
                "nodeSelector": {"disk": "ssd"},
                "affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                    {"labelSelector": {"matchLabels": {"app": "web"}},
                     "topologyKey": "kubernetes.io/hostname"}]}},
                "initContainers": [{"name": "setup", "image": "busybox", "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "50m"}}}],
                "containers": [{
                    "name": "web", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}
                }],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
                ]
            },
            "status": {
                "phase": "Running", "nominatedNodeName": "n2",
                "conditions": [{"type": "PodScheduled", "status": "True"}]
            }
        });
        let cases = [
            ("a running pod", pod(running_pod()), pod(want)),
            // Nothing to drop: unchanged.
            (
                "a bare pending pod",
                pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})),
                pod(json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})),
            ),
            (
                "no spec, no status",
                pod(json!({"metadata": {"name": "p"}})),
                pod(json!({"metadata": {"name": "p"}})),
            ),
        ];
        for (name, mut got, want) in cases {
            for_scheduling(&mut got);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn a_placed_pod_keeps_who_it_is_and_where() {
        let mut full = running_pod();
        full["metadata"]["deletionTimestamp"] = json!("2026-12-08T02:00:00Z");
        let want = pod(json!({
            "metadata": {"name": "web-7d9c-abcde", "namespace": "default", "uid": "u1",
                "resourceVersion": "42", "deletionTimestamp": "2026-12-08T02:00:00Z"},
            "spec": {"containers": [], "nodeName": "n1"}
        }));
        assert_eq!(placed(&pod(full)), want);
    }

    #[test]
    fn the_scheduler_derives_the_same_facts_from_the_slim_pod() {
        use crate::resources::{pod_non_zero_requests, pod_requests};
        use crate::snapshot::PodInfo;
        use std::sync::Arc;
        let full = pod(running_pod());
        let mut slim = full.clone();
        for_scheduling(&mut slim);
        assert_eq!(pod_requests(&full), pod_requests(&slim));
        assert_eq!(pod_non_zero_requests(&full), pod_non_zero_requests(&slim));
        let (a, b) = (
            PodInfo::new(Arc::new(full), 7),
            PodInfo::new(Arc::new(slim), 7),
        );
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.host_ports, b.host_ports);
        assert_eq!(
            a.required_anti_affinity.len(),
            b.required_anti_affinity.len()
        );
        assert_eq!(a.requests, b.requests);
    }
}
