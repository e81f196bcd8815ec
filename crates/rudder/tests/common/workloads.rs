//! Workloads the scale tests run on simulated nodes: a Deployment of `nginx:1.27` pods labelled
//! `app=NAME` (simulated nodes never pull it), created and waited for until available.

use super::node::wait_for;
use super::{Server, json};

/// The Deployment `name` in `default`: `replicas` pods labelled `app=name`.
pub fn web_deployment(name: &str, replicas: usize) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]},
            },
        },
    })
    .to_string()
}

/// Waits (up to `secs`) until every one of the Deployment's `replicas` is available.
pub fn wait_available(s: &Server, k: &str, name: &str, replicas: usize, secs: u64) {
    wait_for(&format!("Deployment {name} available"), secs, || {
        let d = json(&s.ok_kubectl(k, &["get", "deployment", name, "-o", "json"]));
        (d["status"]["availableReplicas"] == replicas).then_some(())
    });
}

/// Creates [`web_deployment`] `name` in `default` and waits (up to `secs`) until it is
/// available.
pub fn deploy_web(s: &Server, k: &str, name: &str, replicas: usize, secs: u64) {
    s.create(k, Some("default"), &web_deployment(name, replicas));
    wait_available(s, k, name, replicas, secs);
}
