//! End to end with real containers: a DaemonSet runs one pod on the node (placed by the
//! scheduler through its node-name affinity), rolls to a new template with
//! `kubectl rollout status`, and a DaemonSet whose nodeSelector matches no node runs nothing.

mod common;
mod controllers_support;

use common::node::node_with_busybox;
use controllers_support::{K, items, mutate, wait_for};

fn daemonset(name: &str, node_selector: serde_json::Value) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": node_selector,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"],
                    }],
                },
            },
        },
    })
    .to_string()
}

#[test]
fn daemonset_runs_one_pod_per_node_and_rolls() {
    let (s, node) = node_with_busybox();
    s.create(
        K,
        Some("default"),
        &daemonset("agent", serde_json::json!({})),
    );
    s.create(
        K,
        Some("default"),
        &daemonset("nowhere", serde_json::json!({"disk": "none"})),
    );
    let status = |s: &common::Server| {
        s.ok_kubectl(
            K,
            &["rollout", "status", "daemonset/agent", "--timeout=120s"],
        )
    };
    assert!(status(&s).contains("successfully rolled out"));
    let pods = items(&s, &["pods", "-l", "app=agent"]);
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["spec"]["nodeName"], node.as_str());
    let tolerations = pods[0]["spec"]["tolerations"].to_string();
    assert!(
        tolerations.contains("node.kubernetes.io/unreachable"),
        "{tolerations}"
    );
    let first = pods[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();

    mutate(&s, &["set", "env", "daemonset/agent", "VERSION=2"]);
    assert!(status(&s).contains("successfully rolled out"));
    wait_for("the pod replaced", 60, &s, || {
        let pods: Vec<_> = items(&s, &["pods", "-l", "app=agent"])
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        (pods.len() == 1 && pods[0]["metadata"]["name"] != first.as_str()).then_some(())
    });

    let ds = wait_for("the unmatched DaemonSet's status", 60, &s, || {
        let ds = common::json(&s.ok_kubectl(K, &["get", "ds", "nowhere", "-o", "json"]));
        (ds["status"]["observedGeneration"] == 1).then_some(ds)
    });
    assert_eq!(ds["status"]["desiredNumberScheduled"], 0, "{ds}");
    assert!(items(&s, &["pods", "-l", "app=nowhere"]).is_empty());
}

/// The revision numbers `kubectl rollout history` lists.
fn history(s: &common::Server, what: &str) -> Vec<String> {
    s.ok_kubectl(K, &["rollout", "history", what])
        .lines()
        .skip(2)
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn daemonset_surges_keeps_history_and_undoes() {
    let (s, _node) = node_with_busybox();
    let mut ds = common::json(&daemonset("surge", serde_json::json!({})));
    ds["spec"]["updateStrategy"] = serde_json::json!({"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    s.create(K, Some("default"), &ds.to_string());
    s.ok_kubectl(
        K,
        &["rollout", "status", "daemonset/surge", "--timeout=120s"],
    );
    let first = items(&s, &["pods", "-l", "app=surge"]);
    assert_eq!(first.len(), 1);
    let first = first[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();

    // A template whose pod never becomes available: with maxSurge the new pod starts next to
    // the old one, and the old one stays.
    mutate(
        &s,
        &[
            "set",
            "image",
            "daemonset/surge",
            "main=rudder.invalid/none:1",
        ],
    );
    wait_for("the surge pod next to the old one", 60, &s, || {
        let pods = items(&s, &["pods", "-l", "app=surge"]);
        let old_alive = pods.iter().any(|p| {
            p["metadata"]["name"] == first.as_str() && p["metadata"]["deletionTimestamp"].is_null()
        });
        (pods.len() == 2 && old_alive).then_some(())
    });
    assert_eq!(history(&s, "daemonset/surge"), ["1", "2"]);

    // Undo: revision 1's template comes back as revision 3 and the surge pod goes.
    s.ok_kubectl(K, &["rollout", "undo", "daemonset/surge"]);
    wait_for("the surge pod removed", 60, &s, || {
        let pods: Vec<_> = items(&s, &["pods", "-l", "app=surge"])
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        (pods.len() == 1 && pods[0]["metadata"]["name"] == first.as_str()).then_some(())
    });
    wait_for("revision 1 renumbered as 3", 60, &s, || {
        (history(&s, "daemonset/surge") == ["2", "3"]).then_some(())
    });
    let revision = s.ok_kubectl(
        K,
        &["rollout", "history", "daemonset/surge", "--revision=3"],
    );
    assert!(revision.contains("busybox:1.36"), "{revision}");
}
