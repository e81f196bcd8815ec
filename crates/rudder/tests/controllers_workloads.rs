//! End to end: the controller manager inside `rudder server`, driven by real kubectl —
//! ReplicaSets keep their pods (replace deleted ones, adopt orphans, release relabeled pods,
//! scale), Deployments roll forward and back with `kubectl rollout`.
//!
//! Pods here need not run (no scheduler yet): they use an image no node has and only the
//! controllers' objects are checked, except where a rollout must see available pods.

mod common;
mod controllers_support;

use common::node::node_with_busybox;
use common::{Server, json};
use controllers_support::{K, items, mutate, wait_for};

/// Live (not terminating) pods with `app=<app>`.
fn live_pods(s: &Server, ns: &str, app: &str) -> Vec<serde_json::Value> {
    items(s, &["pods", "-n", ns, "-l", &format!("app={app}")])
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect()
}

fn names(pods: &[serde_json::Value]) -> Vec<String> {
    let mut n: Vec<String> = pods
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    n.sort();
    n
}

fn controller_uid(pod: &serde_json::Value) -> Option<String> {
    pod["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
        .and_then(|r| r["uid"].as_str().map(str::to_owned))
}

fn replicaset(name: &str, app: &str, replicas: i32) -> String {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "main", "image": "rudder.invalid/none:1"}]},
            },
        },
    })
    .to_string()
}

#[test]
fn replicaset_keeps_adopts_releases_and_scales() {
    let s = Server::start();
    s.namespace(K, "rs");
    s.create(K, Some("rs"), &replicaset("web", "web", 3));
    let rs = json(&s.ok_kubectl(K, &["get", "rs", "web", "-n", "rs", "-o", "json"]));
    let uid = rs["metadata"]["uid"].as_str().expect("uid").to_owned();

    let owned_by_rs = |pods: &[serde_json::Value]| {
        pods.iter()
            .all(|p| controller_uid(p).as_deref() == Some(uid.as_str()))
    };
    let first = wait_for("3 pods", 60, &s, || {
        let pods = live_pods(&s, "rs", "web");
        (pods.len() == 3 && owned_by_rs(&pods)).then_some(pods)
    });
    for n in names(&first) {
        assert!(n.starts_with("web-") && n.len() == "web-".len() + 5, "{n}");
    }
    // Status, as kubectl and the Deployment controller read it.
    wait_for("status.replicas 3", 60, &s, || {
        let rs = json(&s.ok_kubectl(K, &["get", "rs", "web", "-n", "rs", "-o", "json"]));
        (rs["status"]["replicas"] == 3
            && rs["status"]["fullyLabeledReplicas"] == 3
            && rs["status"]["observedGeneration"] == rs["metadata"]["generation"])
            .then_some(())
    });

    // A deleted pod is replaced, and only once.
    let victim = names(&first)[0].clone();
    s.ok_kubectl(K, &["delete", "pod", &victim, "-n", "rs", "--wait=false"]);
    let second = wait_for("a replacement", 60, &s, || {
        let pods = live_pods(&s, "rs", "web");
        (pods.len() == 3 && !names(&pods).contains(&victim)).then_some(pods)
    });
    assert!(owned_by_rs(&second));

    // An orphan matching the selector is adopted; the RS then has one pod too many and deletes
    // one (the newest unscheduled; creation times have one-second resolution, so it may not be
    // the orphan).
    s.create(
        K,
        Some("rs"),
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "orphan", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "rudder.invalid/none:1"}]},
        })
        .to_string(),
    );
    wait_for("the orphan adopted and one pod removed", 60, &s, || {
        let pods = live_pods(&s, "rs", "web");
        (pods.len() == 3 && owned_by_rs(&pods)).then_some(())
    });

    // A pod relabeled out of the selector is released and replaced.
    let relabeled = names(&live_pods(&s, "rs", "web"))[0].clone();
    s.ok_kubectl(
        K,
        &[
            "label",
            "pod",
            &relabeled,
            "-n",
            "rs",
            "app=other",
            "--overwrite",
        ],
    );
    wait_for("release and replacement", 60, &s, || {
        let p = json(&s.ok_kubectl(K, &["get", "pod", &relabeled, "-n", "rs", "-o", "json"]));
        let pods = live_pods(&s, "rs", "web");
        (controller_uid(&p).is_none() && pods.len() == 3 && owned_by_rs(&pods)).then_some(())
    });

    // kubectl scale, down then up.
    s.ok_kubectl(K, &["scale", "rs", "web", "-n", "rs", "--replicas=1"]);
    wait_for("1 pod", 60, &s, || {
        (live_pods(&s, "rs", "web").len() == 1).then_some(())
    });
    s.ok_kubectl(K, &["scale", "rs", "web", "-n", "rs", "--replicas=2"]);
    wait_for("2 pods and status", 60, &s, || {
        let rs = json(&s.ok_kubectl(K, &["get", "rs", "web", "-n", "rs", "-o", "json"]));
        (live_pods(&s, "rs", "web").len() == 2
            && rs["status"]["replicas"] == 2
            && rs["status"]["observedGeneration"] == rs["metadata"]["generation"])
            .then_some(())
    });

    // A larger scale-down: one sync deletes the surplus concurrently, each pod once, and the
    // expectations keep the next syncs from deleting or creating more.
    s.ok_kubectl(K, &["scale", "rs", "web", "-n", "rs", "--replicas=30"]);
    wait_for("30 pods", 120, &s, || {
        (live_pods(&s, "rs", "web").len() == 30).then_some(())
    });
    s.ok_kubectl(K, &["scale", "rs", "web", "-n", "rs", "--replicas=2"]);
    wait_for("back to 2 pods", 60, &s, || {
        let rs = json(&s.ok_kubectl(K, &["get", "rs", "web", "-n", "rs", "-o", "json"]));
        (live_pods(&s, "rs", "web").len() == 2 && rs["status"]["replicas"] == 2).then_some(())
    });
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(live_pods(&s, "rs", "web").len(), 2);

    // Events as upstream's controller records them.
    let events = json(&s.ok_kubectl(K, &["get", "events", "-n", "rs", "-o", "json"]));
    let reasons: Vec<(String, String)> = events["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: web-")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|(r, m)| r == "SuccessfulDelete" && m.starts_with("Deleted pod: ")),
        "{reasons:?}"
    );
}

#[test]
fn replication_controller_keeps_its_pods() {
    let s = Server::start();
    s.create(
        K,
        Some("default"),
        &serde_json::json!({
            "apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "old"},
            "spec": {
                "replicas": 2,
                "selector": {"app": "old"},
                "template": {
                    "metadata": {"labels": {"app": "old"}},
                    "spec": {"containers": [{"name": "main", "image": "rudder.invalid/none:1"}]},
                },
            },
        })
        .to_string(),
    );
    wait_for("2 pods", 60, &s, || {
        (live_pods(&s, "default", "old").len() == 2).then_some(())
    });
    s.ok_kubectl(K, &["scale", "rc", "old", "--replicas=0"]);
    wait_for("0 pods", 60, &s, || {
        live_pods(&s, "default", "old").is_empty().then_some(())
    });
}

fn replicasets_of(s: &Server, ns: &str, app: &str) -> Vec<serde_json::Value> {
    items(s, &["rs", "-n", ns, "-l", &format!("app={app}")])
}

fn revision(rs: &serde_json::Value) -> &str {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or("")
}

#[test]
fn deployment_rolls_forward_back_scales_and_pauses() {
    let (s, node) = node_with_busybox();
    s.namespace(K, "dep");
    s.create(K, Some("dep"), &serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
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
    let status = |s: &Server| {
        s.ok_kubectl(
            K,
            &[
                "rollout",
                "status",
                "deployment/web",
                "-n",
                "dep",
                "--timeout=120s",
            ],
        )
    };
    assert!(status(&s).contains("successfully rolled out"));
    let rss = replicasets_of(&s, "dep", "web");
    assert_eq!(rss.len(), 1, "{rss:?}");
    let first = rss[0]["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_owned();
    let hash = rss[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash")
        .to_owned();
    assert_eq!(first, format!("web-{hash}"));
    assert_eq!(revision(&rss[0]), "1");
    let pods = live_pods(&s, "dep", "web");
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
    );
    let d = json(&s.ok_kubectl(K, &["get", "deployment", "web", "-n", "dep", "-o", "json"]));
    assert_eq!(d["status"]["availableReplicas"], 3, "{d}");
    let conds = d["status"]["conditions"].to_string();
    assert!(
        conds.contains("NewReplicaSetAvailable") && conds.contains("MinimumReplicasAvailable"),
        "{conds}"
    );

    // Roll forward: a new set, the old one at zero, never below 3 - 0 (25% of 3 rounds down) available.
    mutate(
        &s,
        &["set", "env", "deployment/web", "-n", "dep", "VERSION=2"],
    );
    assert!(status(&s).contains("successfully rolled out"));
    let rss = replicasets_of(&s, "dep", "web");
    assert_eq!(rss.len(), 2);
    let newest = rss
        .iter()
        .find(|r| r["metadata"]["name"] != first.as_str())
        .expect("new set");
    assert_eq!(revision(newest), "2");
    let old = rss
        .iter()
        .find(|r| r["metadata"]["name"] == first.as_str())
        .expect("old set");
    assert_eq!(old["spec"]["replicas"], 0);
    let history = s.ok_kubectl(K, &["rollout", "history", "deployment/web", "-n", "dep"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    // Roll back: the first set becomes revision 3.
    mutate(&s, &["rollout", "undo", "deployment/web", "-n", "dep"]);
    assert!(status(&s).contains("successfully rolled out"));
    wait_for("the first set back at revision 3", 60, &s, || {
        let rs = json(&s.ok_kubectl(K, &["get", "rs", &first, "-n", "dep", "-o", "json"]));
        (revision(&rs) == "3" && rs["spec"]["replicas"] == 3).then_some(())
    });

    // kubectl scale.
    mutate(
        &s,
        &["scale", "deployment/web", "-n", "dep", "--replicas=1"],
    );
    wait_for("1 pod", 60, &s, || {
        (live_pods(&s, "dep", "web").len() == 1).then_some(())
    });

    // Paused: template changes make no new set until resumed.
    mutate(&s, &["rollout", "pause", "deployment/web", "-n", "dep"]);
    mutate(
        &s,
        &["set", "env", "deployment/web", "-n", "dep", "VERSION=3"],
    );
    wait_for("the paused condition", 60, &s, || {
        let d = json(&s.ok_kubectl(K, &["get", "deployment", "web", "-n", "dep", "-o", "json"]));
        (d["status"]["conditions"]
            .to_string()
            .contains("DeploymentPaused"))
        .then_some(())
    });
    assert_eq!(replicasets_of(&s, "dep", "web").len(), 2);
    mutate(&s, &["rollout", "resume", "deployment/web", "-n", "dep"]);
    assert!(status(&s).contains("successfully rolled out"));
    assert_eq!(replicasets_of(&s, "dep", "web").len(), 3);

    // Restart: a template annotation, so a new rollout.
    mutate(&s, &["rollout", "restart", "deployment/web", "-n", "dep"]);
    assert!(status(&s).contains("successfully rolled out"));
    let rss = replicasets_of(&s, "dep", "web");
    assert_eq!(rss.len(), 4);
    assert!(rss.iter().any(|r| revision(r) == "5"), "{rss:?}");
    let events = s.ok_kubectl(K, &["get", "events", "-n", "dep"]);
    assert!(
        events.contains("ScalingReplicaSet") && events.contains("Scaled up replica set web-"),
        "{events}"
    );
}

#[test]
fn controllers_survive_a_restart_without_duplicate_pods() {
    let mut s = Server::start();
    s.create(K, Some("default"), &replicaset("steady", "steady", 3));
    let before = wait_for("3 pods", 60, &s, || {
        let pods = live_pods(&s, "default", "steady");
        (pods.len() == 3).then(|| names(&pods))
    });
    s.restart();
    // The restarted controllers fill their caches before deciding: the same 3 pods, no more.
    for _ in 0..10 {
        let now = names(&live_pods(&s, "default", "steady"));
        assert_eq!(now, before);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    s.ok_kubectl(K, &["scale", "rs", "steady", "--replicas=4"]);
    wait_for("a fourth pod", 60, &s, || {
        (live_pods(&s, "default", "steady").len() == 4).then_some(())
    });
}
