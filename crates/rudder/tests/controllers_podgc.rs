//! End to end with real kubectl: the pod garbage collector keeps at most
//! `--terminated-pod-gc-threshold` terminated pods (the oldest go first), force-deletes the
//! pods of a node that was deleted, and the terminating pods of a node tainted out of service.

mod common;
mod controllers_support;

use common::Server;
use controllers_support::{K, get, items, mutate, wait_for};

fn pod(name: &str, node: Option<&str>) -> String {
    let mut spec = serde_json::json!({
        "containers": [{"name": "main", "image": "rudder.invalid/none:1"}],
    });
    if let Some(n) = node {
        spec["nodeName"] = n.into();
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

fn pod_names(s: &Server) -> Vec<String> {
    let mut names: Vec<String> = items(s, &["pods"])
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

#[test]
fn terminated_pods_beyond_the_threshold_are_deleted_oldest_first() {
    // No node agent and so no node: the pods stay unscheduled and only this test sets their
    // phase.
    let s = Server::start_with(&["--disable-agent", "--terminated-pod-gc-threshold", "2"]);
    for name in ["done-1", "done-2", "done-3", "done-4"] {
        s.create(K, Some("default"), &pod(name, None));
        // Creation timestamps have one-second resolution; the order is what is tested.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    s.create(K, Some("default"), &pod("waiting", None));
    for (name, phase) in [
        ("done-1", "Succeeded"),
        ("done-2", "Failed"),
        ("done-3", "Succeeded"),
        ("done-4", "Failed"),
    ] {
        mutate(
            &s,
            &[
                "patch",
                "pod",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &format!(r#"{{"status":{{"phase":"{phase}"}}}}"#),
            ],
        );
    }
    let left = wait_for("two terminated pods deleted", 90, &s, || {
        let names = pod_names(&s);
        (names.len() == 3).then_some(names)
    });
    assert_eq!(left, ["done-3", "done-4", "waiting"]);
}

#[test]
fn pods_of_a_deleted_node_are_deleted() {
    let s = Server::start_with(&["--disable-agent"]);
    s.create(
        K,
        None,
        r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"ghost"}}"#,
    );
    s.create(K, Some("default"), &pod("stranded", Some("ghost")));
    s.create(K, Some("default"), &pod("unbound", None));
    s.ok_kubectl(K, &["delete", "node", "ghost"]);
    // 40 s of quarantine, checked every 20 s.
    wait_for("the stranded pod deleted", 120, &s, || {
        get(&s, &["pod", "stranded"]).is_none().then_some(())
    });
    assert_eq!(pod_names(&s), ["unbound"]);
}

#[test]
fn terminating_pods_of_an_out_of_service_node_are_force_deleted() {
    let s = Server::start_with(&["--disable-agent"]);
    s.create(
        K,
        None,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": "down"},
            "spec": {"taints": [{"key": "node.kubernetes.io/out-of-service", "effect": "NoExecute"}]},
            "status": {"conditions": [{
                "type": "Ready", "status": "False", "reason": "KubeletNotReady",
                "lastHeartbeatTime": "2020-01-01T00:00:00Z",
                "lastTransitionTime": "2020-01-01T00:00:00Z",
            }]},
        })
        .to_string(),
    );
    s.create(K, Some("default"), &pod("stuck", Some("down")));
    // Tolerating the taint, it is not evicted by the taint manager, so never terminating.
    let mut kept = common::json(&pod("kept", Some("down")));
    kept["spec"]["tolerations"] = serde_json::json!([
        {"key": "node.kubernetes.io/out-of-service", "operator": "Exists", "effect": "NoExecute"},
    ]);
    s.create(K, Some("default"), &kept.to_string());
    // No node agent will finish the graceful deletion; the pod GC releases the pod.
    s.ok_kubectl(K, &["delete", "pod", "stuck", "--wait=false"]);
    let pod = get(&s, &["pod", "stuck"]).expect("pod being deleted");
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    wait_for("the terminating pod force-deleted", 60, &s, || {
        get(&s, &["pod", "stuck"]).is_none().then_some(())
    });
    assert_eq!(pod_names(&s), ["kept"]);
}
