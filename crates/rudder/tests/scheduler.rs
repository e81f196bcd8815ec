//! End to end: the scheduler in `rudder server` binds pending pods through `pods/binding`,
//! honours nodeSelector, node affinity and taints, explains unschedulable pods with a counted
//! `FailedScheduling` event that `kubectl describe pod` shows, and preempts lower-priority pods.
//! Extra nodes are plain Node objects with capacity in their status (nothing runs on them).

mod common;

use std::time::{Duration, Instant};

use common::{Server, json};

const K127: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
const K: &str = "/usr/bin/kubectl";

fn wait_for<T>(s: &Server, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\nserver log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn fake_node(name: &str, cpu: &str, labels: &str, taints: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{name}","labels":{{"kubernetes.io/hostname":"{name}"{labels}}}}},
        "spec":{{"taints":[{taints}]}},
        "status":{{"capacity":{{"cpu":"{cpu}","memory":"4Gi","pods":"110"}},"allocatable":{{"cpu":"{cpu}","memory":"4Gi","pods":"110"}}}}}}"#
    )
}

/// A pod without a node; it tolerates the taints the node lifecycle controller puts on the fake
/// nodes (they never heartbeat), so only the taints under test matter. An `extra` that sets
/// `tolerations` replaces these and must repeat them.
fn pod(name: &str, cpu: &str, extra: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{
        "terminationGracePeriodSeconds":0,
        "tolerations":[{{"key":"node.kubernetes.io/not-ready","operator":"Exists"}},{{"key":"node.kubernetes.io/unreachable","operator":"Exists"}}],
        "containers":[{{"name":"c","image":"busybox","resources":{{"requests":{{"cpu":"{cpu}"}}}}}}]{extra}}}}}"#
    )
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|st| {
        st.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    })
}

/// A pod the scheduler places on the server's own node really runs there (root only: real
/// containers; the node has the offline busybox image, see `common::node`).
fn runs_on_the_servers_node(s: &Server, node: &str) {
    s.create(K, Some("default"), &format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"runs"}},"spec":{{"restartPolicy":"Never",
        "nodeSelector":{{"kubernetes.io/hostname":"{node}"}},
        "containers":[{{"name":"main","image":"busybox:1.36","imagePullPolicy":"IfNotPresent","command":["true"]}}]}}}}"#
    ));
    assert_eq!(wait_for(s, "runs to be bound", || node_of(s, "runs")), node);
    wait_for(s, "runs to succeed", || {
        let out = s.kubectl(K, &["get", "pod", "runs", "-o", "jsonpath={.status.phase}"]);
        (String::from_utf8_lossy(&out.stdout) == "Succeeded").then_some(())
    });
    // The agent removes the pod's containers and sandbox as it finishes the deletion.
    s.ok_kubectl(
        K,
        &["delete", "pod", "runs", "--wait=true", "--timeout=60s"],
    );
}

fn node_of(s: &Server, name: &str) -> Option<String> {
    let out = s.kubectl(K, &["get", "pod", name, "-o", "jsonpath={.spec.nodeName}"]);
    let n = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !n.is_empty()).then_some(n)
}

#[test]
fn the_scheduler_places_explains_and_preempts() {
    // The server's own node (with the busybox image), before any other, so the node count in
    // messages is known.
    let (s, own_node) = common::node::node_with_busybox();
    // The scheduler leads through its Lease.
    let lease = wait_for(&s, "the kube-scheduler Lease", || {
        let out = s.kubectl(
            K,
            &[
                "get",
                "lease",
                "-n",
                "kube-system",
                "kube-scheduler",
                "-o",
                "json",
            ],
        );
        out.status
            .success()
            .then(|| json(&String::from_utf8_lossy(&out.stdout)))
    });
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 15, "{lease}");
    // The controller manager leads through its own Lease.
    let cm = wait_for(&s, "the kube-controller-manager Lease", || {
        let out = s.kubectl(
            K,
            &[
                "get",
                "lease",
                "-n",
                "kube-system",
                "kube-controller-manager",
                "-o",
                "json",
            ],
        );
        out.status
            .success()
            .then(|| json(&String::from_utf8_lossy(&out.stdout)))
    });
    assert!(
        cm["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{cm}"
    );
    // The built-in PriorityClasses exist from the start.
    let classes = s.ok_kubectl(K, &["get", "priorityclasses"]);
    assert!(
        classes.contains("system-cluster-critical") && classes.contains("2000001000"),
        "{classes}"
    );
    assert!(
        lease["spec"]["holderIdentity"]
            .as_str()
            .is_some_and(|h| !h.is_empty()),
        "{lease}"
    );
    s.create(K, None, &fake_node("fake-ssd", "2", r#","disk":"ssd""#, ""));
    s.create(
        K,
        None,
        &fake_node(
            "fake-gpu",
            "2",
            r#","accelerator":"gpu""#,
            r#"{"key":"dedicated","value":"gpu","effect":"NoSchedule"}"#,
        ),
    );
    s.create(
        K,
        None,
        &fake_node("fake-small", "1", r#","size":"small""#, ""),
    );

    // A pod without a node is bound, and says so in its events.
    s.create(K, Some("default"), &pod("plain", "10m", ""));
    let node = wait_for(&s, "plain to be bound", || node_of(&s, "plain"));
    let described = wait_for(&s, "the Scheduled event", || {
        let d = s.ok_kubectl(K127, &["describe", "pod", "plain"]);
        d.contains("Successfully assigned default/plain to")
            .then_some(d)
    });
    assert!(described.contains("default-scheduler"), "{described}");
    assert!(described.contains(&format!("to {node}")), "{described}");
    let p = json(&s.ok_kubectl(K, &["get", "pod", "plain", "-o", "json"]));
    let scheduled = p["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned());
    assert_eq!(
        scheduled.map(|c| c["status"].clone()),
        Some(serde_json::json!("True")),
        "{p}"
    );

    if running_as_root() {
        runs_on_the_servers_node(&s, &own_node);
    }

    // nodeSelector, and a toleration plus node affinity for the tainted node.
    s.create(
        K,
        Some("default"),
        &pod("ssd", "100m", r#","nodeSelector":{"disk":"ssd"}"#),
    );
    let gpu = r#","affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[
        {"matchExpressions":[{"key":"accelerator","operator":"In","values":["gpu"]}]}]}}},
        "tolerations":[{"key":"dedicated","operator":"Equal","value":"gpu","effect":"NoSchedule"},
        {"key":"node.kubernetes.io/not-ready","operator":"Exists"},{"key":"node.kubernetes.io/unreachable","operator":"Exists"}]"#;
    s.create(K, Some("default"), &pod("gpu", "100m", gpu));
    assert_eq!(
        wait_for(&s, "ssd to be bound", || node_of(&s, "ssd")),
        "fake-ssd"
    );
    assert_eq!(
        wait_for(&s, "gpu to be bound", || node_of(&s, "gpu")),
        "fake-gpu"
    );
    // Without the toleration, nothing else may land on the tainted node.
    for i in 0..4 {
        s.create(K, Some("default"), &pod(&format!("spread-{i}"), "10m", ""));
    }
    for i in 0..4 {
        let n = wait_for(&s, "spread pods to be bound", || {
            node_of(&s, &format!("spread-{i}"))
        });
        assert_ne!(n, "fake-gpu");
    }

    // A pod that fits nowhere: a FailedScheduling event counting the reasons per node.
    s.create(K, Some("default"), &pod("huge", "1000", ""));
    let want = "0/4 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. \
        preemption: 0/4 nodes are available: 1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.";
    let described = wait_for(&s, "the FailedScheduling event", || {
        let d = s.ok_kubectl(K127, &["describe", "pod", "huge"]);
        d.contains("FailedScheduling").then_some(d)
    });
    assert!(described.contains(want), "want {want}\n{described}");
    let condition = wait_for(&s, "PodScheduled=False", || {
        let p = json(&s.ok_kubectl(K, &["get", "pod", "huge", "-o", "json"]));
        p["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled").cloned())
    });
    assert_eq!(condition["status"], "False", "{condition}");
    assert_eq!(condition["reason"], "Unschedulable", "{condition}");
    assert_eq!(condition["message"], want, "{condition}");
    assert!(node_of(&s, "huge").is_none());
    // Another attempt (a node change sends the pod back to the active queue) bumps the same
    // event's count instead of adding a second event.
    s.ok_kubectl(K, &["label", "node", "fake-gpu", "retry=1"]);
    wait_for(&s, "the FailedScheduling event counted twice", || {
        let list = json(&s.ok_kubectl(
            K,
            &[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=huge,reason=FailedScheduling",
                "-o",
                "json",
            ],
        ));
        let items = list["items"].as_array()?;
        assert_eq!(items.len(), 1, "{list}");
        (items[0]["count"].as_i64()? >= 2).then_some(())
    });

    // Preemption: a high-priority pod evicts a low-priority one from the only node it fits.
    for (name, value) in [("low", 10), ("high", 1_000_000)] {
        s.create(K, None, &format!(r#"{{"apiVersion":"scheduling.k8s.io/v1","kind":"PriorityClass","metadata":{{"name":"{name}"}},"value":{value}}}"#));
    }
    let small = r#","nodeSelector":{"size":"small"},"priorityClassName":"#;
    s.create(
        K,
        Some("default"),
        &pod("victim", "800m", &format!(r#"{small}"low""#)),
    );
    assert_eq!(
        wait_for(&s, "victim to be bound", || node_of(&s, "victim")),
        "fake-small"
    );
    s.create(
        K,
        Some("default"),
        &pod("preemptor", "800m", &format!(r#"{small}"high""#)),
    );
    assert_eq!(
        wait_for(&s, "preemptor to be bound", || node_of(&s, "preemptor")),
        "fake-small"
    );
    let gone = s.kubectl(K, &["get", "pod", "victim"]);
    assert!(!gone.status.success(), "the victim is deleted");
    let events = s.ok_kubectl(
        K,
        &[
            "get",
            "events",
            "--field-selector",
            "reason=Preempted",
            "-o",
            "json",
        ],
    );
    assert!(
        events.contains("Preempted by default/preemptor on node fake-small"),
        "{events}"
    );
}
