//! End to end: a node that stops heartbeating goes Ready=Unknown, gets the `unreachable`
//! taints, and its pods are evicted once their tolerations run out (a pod without one keeps
//! the default 300 s); the server's own node, whose agent renews its Lease, stays Ready.

mod common;
mod controllers_support;

use common::{Server, json};
use controllers_support::{K, get, wait_for};

fn pod(name: &str, tolerations: serde_json::Value) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeName": "ghost",
            "tolerations": tolerations,
            "containers": [{"name": "main", "image": "rudder.invalid/none:1"}],
        },
    })
    .to_string()
}

#[test]
fn silent_node_is_tainted_and_its_pods_evicted() {
    let s = Server::start();
    // A node nobody heartbeats for: its last heartbeat an hour ago, no Lease.
    s.create(K, None, &serde_json::json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": "ghost"},
        "status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "lastHeartbeatTime": "2020-01-01T00:00:00Z", "lastTransitionTime": "2020-01-01T00:00:00Z",
        }]},
    }).to_string());
    s.create(
        K,
        Some("default"),
        &pod(
            "tolerant",
            serde_json::json!([{
                "key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 2,
            }]),
        ),
    );
    s.create(K, Some("default"), &pod("patient", serde_json::json!([])));

    let node = wait_for("ghost tainted unreachable", 60, &s, || {
        let n = get(&s, &["node", "ghost"])?;
        let taints = n["spec"]["taints"].to_string();
        (taints.contains("node.kubernetes.io/unreachable") && taints.contains("NoExecute"))
            .then_some(n)
    });
    let ready = node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .expect("Ready condition");
    assert_eq!(ready["status"], "Unknown", "{node}");

    wait_for("the tolerant pod evicted after its 2 s", 60, &s, || {
        let p = get(&s, &["pod", "tolerant"]);
        p.is_none_or(|p| !p["metadata"]["deletionTimestamp"].is_null())
            .then_some(())
    });
    let patient = get(&s, &["pod", "patient"]).expect("patient pod");
    assert!(
        patient["metadata"]["deletionTimestamp"].is_null(),
        "{patient}"
    );

    // The real node heartbeats: Ready, no lifecycle taints.
    let nodes = json(&s.ok_kubectl(K, &["get", "nodes", "-o", "json"]));
    let real = nodes["items"]
        .as_array()
        .and_then(|a| a.iter().find(|n| n["metadata"]["name"] != "ghost").cloned())
        .expect("the server's node");
    assert!(
        !real["spec"]["taints"].to_string().contains("unreachable"),
        "{real}"
    );
}
