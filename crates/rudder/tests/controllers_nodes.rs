//! End to end: a node that stops heartbeating goes Ready=Unknown, gets the `unreachable`
//! taints, and its pods are evicted once their tolerations run out (a pod without one keeps
//! the default 300 s); the server's own node, whose agent renews its Lease, stays Ready. The
//! controller's taint patches do not conflict with status writes.

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

    // Marking ghost Unknown wrote its status just before tainting it: the taint patch, which
    // carried the cached resourceVersion, always met a conflict there (and again every 200 ms
    // while the cache lagged). No node write conflicts now.
    let metrics = s.ok_kubectl(K, &["get", "--raw", "/metrics"]);
    let conflicts: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("resource=\"nodes\""))
        .filter(|l| l.contains("code=\"409\"") || l.contains("code=\"422\""))
        .collect();
    assert!(conflicts.is_empty(), "{conflicts:?}");
}

/// The controller's taint patch (`taint_patch`) applies after any number of status writes,
/// and fails only when someone else changed the taints since it read them.
#[test]
fn taint_patch_conflicts_only_with_taint_changes() {
    use rudder_controllers::nodelifecycle::decide::{UNREACHABLE, taint_patch};
    let s = Server::start();
    // Never posted a Ready condition: the controller leaves it alone for its startup grace.
    s.create(
        K,
        None,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "racer"},
            "spec": {"taints": [{"key": "dedicated", "effect": "NoSchedule"}]},
        })
        .to_string(),
    );
    let read = get(&s, &["node", "racer"]).expect("racer");
    let taint = |key: &str, effect: &str| k8s_openapi::api::core::v1::Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: None,
    };
    let wanted = vec![
        taint("dedicated", "NoSchedule"),
        taint(UNREACHABLE, "NoSchedule"),
        taint(UNREACHABLE, "NoExecute"),
    ];
    let patch = taint_patch(&read, &wanted).to_string();

    // The agent writes its status (twice) after the controller read the Node (no Ready
    // condition yet, so that the controller keeps to its startup grace and leaves the taints
    // to this test).
    for address in ["10.0.0.1", "10.0.0.2"] {
        let status = serde_json::json!({"status": {"addresses": [{
            "type": "InternalIP", "address": address,
        }]}});
        s.ok_kubectl(
            K,
            &[
                "patch",
                "node",
                "racer",
                "--subresource=status",
                "--type=merge",
                "-p",
                &status.to_string(),
            ],
        );
    }
    let after_status = get(&s, &["node", "racer"]).expect("racer");
    assert_ne!(
        after_status["metadata"]["resourceVersion"],
        read["metadata"]["resourceVersion"]
    );
    s.ok_kubectl(K, &["patch", "node", "racer", "--type=json", "-p", &patch]);
    let tainted = get(&s, &["node", "racer"]).expect("racer");
    assert_eq!(
        tainted["spec"]["taints"],
        serde_json::to_value(&wanted).expect("json"),
        "{tainted}"
    );
    assert_eq!(tainted["status"], after_status["status"], "status kept");

    // Built from the taints read before someone (here the patch itself) changed them: refused.
    let out = s.kubectl(K, &["patch", "node", "racer", "--type=json", "-p", &patch]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("test failed"), "{stderr}");
}
