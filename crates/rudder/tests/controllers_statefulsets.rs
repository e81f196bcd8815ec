//! End to end: StatefulSets — ordered pods `<set>-<ordinal>` with stable hostnames that really
//! run, `kubectl rollout status|history` through a rolling update, scale-down from the highest
//! ordinal; a Parallel set with volumeClaimTemplates gets its claims `<claim>-<set>-<ordinal>`.

mod common;
mod controllers_support;

use common::node::node_with_busybox;
use controllers_support::{K, items, mutate, wait_for};

fn names(s: &common::Server, app: &str) -> Vec<String> {
    let mut n: Vec<String> = items(s, &["pods", "-l", &format!("app={app}")])
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    n.sort();
    n
}

#[test]
fn statefulset_orders_rolls_scales_and_claims() {
    let (s, node) = node_with_busybox();
    s.create(K, Some("default"), &serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "nodeName": node,
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                        "command": ["sleep", "3600"],
                    }],
                },
            },
        },
    }).to_string());
    s.create(K, Some("default"), &serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db"},
        "spec": {
            "replicas": 2,
            "podManagementPolicy": "Parallel",
            "serviceName": "db",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "main", "image": "rudder.invalid/none:1"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }).to_string());

    let status = |s: &common::Server| {
        s.ok_kubectl(
            K,
            &["rollout", "status", "statefulset/web", "--timeout=120s"],
        )
    };
    status(&s);
    assert_eq!(names(&s, "web"), ["web-0", "web-1", "web-2"]);
    let pod = common::json(&s.ok_kubectl(K, &["get", "pod", "web-1", "-o", "json"]));
    assert_eq!(pod["spec"]["hostname"], "web-1");
    assert_eq!(pod["spec"]["subdomain"], "web");
    assert_eq!(
        pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"],
        "1"
    );

    mutate(&s, &["set", "env", "statefulset/web", "VERSION=2"]);
    status(&s);
    let set = wait_for("the update to finish", 60, &s, || {
        let set = common::json(&s.ok_kubectl(K, &["get", "sts", "web", "-o", "json"]));
        (set["status"]["currentRevision"] == set["status"]["updateRevision"]
            && set["status"]["updatedReplicas"] == 3)
            .then_some(set)
    });
    let revision = set["status"]["updateRevision"].as_str().expect("revision");
    for p in items(&s, &["pods", "-l", "app=web"]) {
        assert_eq!(
            p["metadata"]["labels"]["controller-revision-hash"], revision,
            "{p}"
        );
    }
    let history = s.ok_kubectl(K, &["rollout", "history", "statefulset/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    mutate(&s, &["scale", "statefulset/web", "--replicas=1"]);
    wait_for("scaled down to web-0", 60, &s, || {
        (names(&s, "web") == ["web-0"]).then_some(())
    });

    // Parallel: both pods at once, each with its claim.
    wait_for("db pods and claims", 60, &s, || {
        let claims: Vec<String> = items(&s, &["pvc"])
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        (names(&s, "db") == ["db-0", "db-1"]
            && claims.contains(&"data-db-0".to_string())
            && claims.contains(&"data-db-1".to_string()))
        .then_some(())
    });
    let db0 = common::json(&s.ok_kubectl(K, &["get", "pod", "db-0", "-o", "json"]));
    assert!(
        db0["spec"]["volumes"].to_string().contains("data-db-0"),
        "{db0}"
    );
}

fn claim_names(s: &common::Server) -> Vec<String> {
    let mut c: Vec<String> = items(s, &["pvc"])
        .iter()
        .filter(|c| c["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|c| c["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    c.sort();
    c
}

#[test]
fn statefulset_ordinals_claim_retention_and_undo() {
    // No node: the pods stay unscheduled, so deleting one is immediate.
    let s = common::Server::start_with(&["--disable-agent"]);
    s.create(K, Some("default"), &serde_json::json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "shard"},
        "spec": {
            "replicas": 2,
            "ordinals": {"start": 3},
            "podManagementPolicy": "Parallel",
            "serviceName": "shard",
            "selector": {"matchLabels": {"app": "shard"}},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Delete"},
            "template": {
                "metadata": {"labels": {"app": "shard"}},
                "spec": {"containers": [{"name": "main", "image": "rudder.invalid/none:1"}]},
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data"},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
            }],
        },
    }).to_string());
    wait_for("pods from ordinal 3 with their claims", 60, &s, || {
        (names(&s, "shard") == ["shard-3", "shard-4"]
            && claim_names(&s) == ["data-shard-3", "data-shard-4"])
        .then_some(())
    });
    // whenDeleted: Delete — the set owns the claims.
    wait_for("the claims owned by the set", 60, &s, || {
        let claims = items(&s, &["pvc"]);
        claims
            .iter()
            .all(|c| {
                c["metadata"]["ownerReferences"]
                    .to_string()
                    .contains("StatefulSet")
            })
            .then_some(())
    });

    // whenScaled: Delete — the claim of the removed ordinal goes with its pod.
    mutate(&s, &["scale", "statefulset/shard", "--replicas=1"]);
    wait_for("shard-4 and its claim gone", 60, &s, || {
        (names(&s, "shard") == ["shard-3"] && claim_names(&s) == ["data-shard-3"]).then_some(())
    });

    // A new template is revision 2; undoing it brings revision 1's template back as 3.
    mutate(&s, &["set", "env", "statefulset/shard", "VERSION=2"]);
    wait_for("revision 2", 60, &s, || {
        let h = s.ok_kubectl(K, &["rollout", "history", "statefulset/shard"]);
        h.lines()
            .any(|l| l.trim_start().starts_with('2'))
            .then_some(())
    });
    s.ok_kubectl(K, &["rollout", "undo", "statefulset/shard"]);
    let history = wait_for("revision 1 renumbered as 3", 60, &s, || {
        let h = s.ok_kubectl(K, &["rollout", "history", "statefulset/shard"]);
        let revs: Vec<&str> = h
            .lines()
            .skip(2)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        (revs == ["2", "3"]).then_some(h)
    });
    let template = s.ok_kubectl(
        K,
        &["rollout", "history", "statefulset/shard", "--revision=3"],
    );
    assert!(!template.contains("VERSION"), "{history}\n{template}");

    // whenDeleted: Delete — the remaining claim goes with the set.
    s.ok_kubectl(K, &["delete", "statefulset", "shard"]);
    wait_for("the claims deleted with the set", 60, &s, || {
        claim_names(&s).is_empty().then_some(())
    });
}

#[test]
fn min_ready_seconds_paces_ordered_creation() {
    // Simulated nodes: pods run and turn Ready at once, so only minReadySeconds paces them.
    let s = common::Server::start_with(&[
        "--disable-agent",
        "--simulate-nodes",
        "1",
        "--cluster-cidr",
        "172.30.0.0/16",
        "--node-cidr-mask-size",
        "24",
    ]);
    s.create(
        K,
        Some("default"),
        &serde_json::json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "slow"},
            "spec": {
                "replicas": 2,
                "minReadySeconds": 4,
                "serviceName": "slow",
                "selector": {"matchLabels": {"app": "slow"}},
                "template": {
                    "metadata": {"labels": {"app": "slow"}},
                    "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
                },
            },
        })
        .to_string(),
    );
    let set = wait_for("both pods available", 90, &s, || {
        let set = controllers_support::get(&s, &["statefulset", "slow"])?;
        (set["status"]["availableReplicas"] == 2).then_some(set)
    });
    assert_eq!(set["status"]["readyReplicas"], 2, "{set}");
    let pods = items(&s, &["pods", "-l", "app=slow"]);
    let pod = |n: &str| {
        pods.iter()
            .find(|p| p["metadata"]["name"] == n)
            .cloned()
            .unwrap_or_default()
    };
    let secs = |t: &serde_json::Value| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", t.as_str().unwrap_or(""), "+%s"])
            .output()
            .expect("date");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<i64>()
            .unwrap_or(0)
    };
    let ready_at = pod("slow-0")["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
        .map(|c| secs(&c["lastTransitionTime"]))
        .unwrap_or(0);
    let second_created = secs(&pod("slow-1")["metadata"]["creationTimestamp"]);
    assert!(
        ready_at > 0 && second_created - ready_at >= 4,
        "slow-1 was created {}s after slow-0 turned Ready; minReadySeconds is 4",
        second_created - ready_at
    );
}
