//! The parts of a pod that in-process caches can do without. The scheduler and the controllers
//! keep every live pod in memory, so at 150,000 pods each kilobyte kept per pod is 150 MB;
//! what their decisions never read (a container's environment, command, probes and mounts, the
//! service-account and ConfigMap volumes) is dropped before a pod is cached. Pure.

use k8s_openapi::api::core::v1::{Container, Pod};

/// Cuts the pod's spec to what placement, accounting and controllers read: per container its
/// name, image, ports, resources and restart policy (sidecar init containers); no ephemeral
/// containers (they request nothing); and only the volumes that name a claim. `managedFields`
/// go too.
pub fn trim_spec(pod: &mut Pod) {
    pod.metadata.managed_fields = None;
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    spec.containers.iter_mut().for_each(trim_container);
    spec.init_containers
        .iter_mut()
        .flatten()
        .for_each(trim_container);
    spec.ephemeral_containers = None;
    if let Some(volumes) = spec.volumes.as_mut() {
        volumes.retain(|v| v.persistent_volume_claim.is_some() || v.ephemeral.is_some());
    }
}

fn trim_container(c: &mut Container) {
    *c = Container {
        name: std::mem::take(&mut c.name),
        image: c.image.take(),
        ports: c.ports.take(),
        resources: c.resources.take(),
        restart_policy: c.restart_policy.take(),
        ..Default::default()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("a pod")
    }

    #[test]
    fn keeps_placement_and_accounting_fields() {
        let full = json!({
            "metadata": {"name": "p", "labels": {"app": "web"},
                "managedFields": [{"manager": "m", "operation": "Update"}]},
            "spec": {
                "nodeName": "n1", "hostname": "h", "subdomain": "s",
                "initContainers": [{"name": "setup", "image": "busybox", "command": ["sh"],
                    "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}],
                "containers": [{
                    "name": "web", "image": "nginx:1.27", "command": ["nginx"], "args": ["-g"],
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": "10m"}, "limits": {"memory": "16Mi"}},
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                    "volumeMounts": [{"name": "token", "mountPath": "/var/run/secrets"}],
                    "terminationMessagePath": "/dev/termination-log"
                }],
                "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
                "volumes": [
                    {"name": "token", "projected": {"sources": [
                        {"serviceAccountToken": {"path": "token"}}]}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                    {"name": "cfg", "configMap": {"name": "cfg"}}
                ]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.5"}
        });
        let want = json!({
            "metadata": {"name": "p", "labels": {"app": "web"}},
            "spec": {
                "nodeName": "n1", "hostname": "h", "subdomain": "s",
                "initContainers": [{"name": "setup", "image": "busybox", "restartPolicy": "Always",
                    "resources": {"requests": {"cpu": "50m"}}}],
                "containers": [{
                    "name": "web", "image": "nginx:1.27",
                    "ports": [{"name": "http", "containerPort": 80, "hostPort": 8080}],
                    "resources": {"requests": {"cpu": "10m"}, "limits": {"memory": "16Mi"}}
                }],
                "volumes": [
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data-0"}},
                    {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}
                ]
            },
            "status": {"phase": "Running", "podIP": "10.0.0.5"}
        });
        let bare = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}});
        let cases = [
            ("a full pod", full, want),
            ("nothing to drop", bare.clone(), bare),
            (
                "no spec",
                json!({"metadata": {"name": "p"}}),
                json!({"metadata": {"name": "p"}}),
            ),
        ];
        for (name, input, want) in cases {
            let mut got = pod(input);
            trim_spec(&mut got);
            assert_eq!(got, pod(want), "{name}");
        }
    }
}
