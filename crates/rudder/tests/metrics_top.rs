//! End to end, as root: `kubectl top` with nothing installed. The server's own node agent runs a
//! busybox pod that burns CPU and one that sleeps; the API server scrapes the agent's
//! `/metrics/resource` (every 2 s here) and serves `metrics.k8s.io`, so `kubectl top pods`
//! shows the burner well above the idle pod, `kubectl top nodes` the node, `--containers` the
//! container, and a `view` user may read them — with kubectl 1.27, 1.32 and 1.33.

mod common;

use common::node::{import_busybox, wait_for};
use common::{KUBECTLS, Server, json};

const NS: &str = "top";

fn pod(name: &str, node: &str, script: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
            }],
        },
    })
    .to_string()
}

/// Millicores of a `kubectl top` CPU cell (`998m`, `1`, `0`).
fn millicores(cell: &str) -> Option<u64> {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().ok(),
        None => cell.parse::<u64>().ok().map(|c| c * 1000),
    }
}

/// `kubectl top pods` rows as (pod, CPU millicores), or `None` while metrics are not there yet.
fn top_pods(s: &Server, k: &str, extra: &[&str]) -> Option<Vec<(String, u64)>> {
    let mut args = vec!["top", "pods", "-n", NS, "--no-headers"];
    args.extend(extra);
    let out = s.kubectl(k, &args);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            Some((cells.first()?.to_string(), millicores(cells.get(1)?)?))
        })
        .collect()
}

#[test]
fn kubectl_top_reads_metrics_from_the_nodes() {
    let s = Server::start_with(&["--metric-resolution", "2s"]);
    let newest = KUBECTLS[KUBECTLS.len() - 1];
    import_busybox(s.dir.path(), &s.data_dir());
    let node = wait_for("the node", 30, || {
        let list = json(&s.ok_kubectl(newest, &["get", "nodes", "-o", "json"]));
        list["items"][0]["metadata"]["name"]
            .as_str()
            .map(str::to_owned)
    });
    s.namespace(newest, NS);
    s.create(
        newest,
        Some(NS),
        &pod("burner", &node, "while :; do :; done"),
    );
    s.create(newest, Some(NS), &pod("idle", &node, "sleep 3600"));
    for name in ["burner", "idle"] {
        wait_for(&format!("{name} to run"), 60, || {
            let p = json(&s.ok_kubectl(newest, &["get", "pod", name, "-n", NS, "-o", "json"]));
            (p["status"]["phase"] == "Running").then_some(())
        });
    }

    // Discovery advertises the group, as `kubectl top` checks before asking.
    let resources = s.ok_kubectl(
        newest,
        &[
            "api-resources",
            "--api-group=metrics.k8s.io",
            "--no-headers",
        ],
    );
    for kind in ["NodeMetrics", "PodMetrics"] {
        assert!(resources.contains(kind), "{resources}");
    }

    for k in KUBECTLS {
        // The group's OpenAPI (v3, and v2 for 1.27) describes the objects.
        let explain = s.ok_kubectl(
            k,
            &[
                "explain",
                "podmetrics",
                "--api-version=metrics.k8s.io/v1beta1",
            ],
        );
        assert!(explain.contains("containers"), "{k}: {explain}");

        // The burner spins a whole core when it can; the machine is shared, so only ask for a
        // tenth of one, and for the idle pod to stay far below.
        let rows = wait_for(
            &format!("{k}: top pods to tell burner from idle"),
            120,
            || {
                let rows = top_pods(&s, k, &[])?;
                let cpu = |name: &str| rows.iter().find(|(p, _)| p == name).map(|(_, c)| *c);
                (cpu("burner")? > 100 && cpu("idle")? < 50).then_some(rows)
            },
        );
        assert_eq!(rows.len(), 2, "{k}: {rows:?}");

        let selected = top_pods(&s, k, &["-l", "app=idle"]).expect("top pods -l");
        assert_eq!(
            selected.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>(),
            ["idle"],
            "{k}"
        );

        let containers = s.ok_kubectl(k, &["top", "pod", "burner", "-n", NS, "--containers"]);
        let row: Vec<&str> = containers
            .lines()
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(row.first().copied(), Some("burner"), "{k}: {containers}");
        assert_eq!(row.get(1).copied(), Some("main"), "{k}: {containers}");
        assert!(
            row.get(2)
                .and_then(|c| millicores(c))
                .is_some_and(|m| m > 0),
            "{k}: {containers}"
        );

        let nodes = wait_for(&format!("{k}: top nodes"), 60, || {
            let out = s.kubectl(k, &["top", "nodes", "--no-headers"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success() && text.contains(&node)).then_some(text)
        });
        let cells: Vec<&str> = nodes
            .lines()
            .find(|l| l.starts_with(&node))
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        // NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%: the node is busy with at least the burner.
        assert!(
            cells
                .get(1)
                .and_then(|c| millicores(c))
                .is_some_and(|m| m > 100),
            "{k}: {nodes}"
        );
        assert!(
            cells
                .get(3)
                .is_some_and(|m| m.ends_with("Mi") || m.ends_with("Gi")),
            "{k}: {nodes}"
        );
        let one = s.ok_kubectl(k, &["top", "node", &node]);
        assert!(one.contains(&node), "{k}: {one}");
    }

    // The raw objects are metrics-server's.
    let list = s.get_json(&format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods"
    ));
    assert_eq!(list["kind"], "PodMetricsList", "{list}");
    let burner = list["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["metadata"]["name"] == "burner"))
        .unwrap_or_else(|| panic!("no burner in {list}"));
    assert_eq!(burner["metadata"]["namespace"], NS);
    assert_eq!(burner["metadata"]["labels"]["app"], "burner");
    assert!(
        burner["window"].as_str().is_some_and(|w| w.ends_with('s')),
        "{burner}"
    );
    assert!(
        burner["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{burner}"
    );
    let usage = &burner["containers"][0]["usage"];
    assert_eq!(burner["containers"][0]["name"], "main", "{burner}");
    assert!(
        usage["cpu"].as_str().is_some_and(|c| !c.is_empty()),
        "{burner}"
    );
    assert!(
        usage["memory"]
            .as_str()
            .is_some_and(|m| m.ends_with("Ki") || m.ends_with("Mi")),
        "{burner}"
    );
    let node_metrics = s.get_json(&format!("/apis/metrics.k8s.io/v1beta1/nodes/{node}"));
    assert_eq!(node_metrics["kind"], "NodeMetrics", "{node_metrics}");
    let missing = s.fail_kubectl(
        newest,
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/top/pods/nope",
        ],
        None,
    );
    assert!(
        missing.contains("NotFound") || missing.contains("not found"),
        "{missing}"
    );

    // A `view` user reads metrics like any resource; a user without a role does not.
    s.ok_kubectl(
        newest,
        &[
            "create",
            "clusterrolebinding",
            "alice-view",
            "--clusterrole=view",
            "--user=alice",
        ],
    );
    wait_for("alice to see pod metrics", 30, || {
        top_pods(&s, newest, &["--as", "alice"]).filter(|rows| rows.len() == 2)
    });
    // NodeMetrics too (`kubectl top node` also reads Nodes, which `view` does not grant).
    let raw = s.ok_kubectl(
        newest,
        &[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/nodes",
            "--as",
            "alice",
        ],
    );
    assert_eq!(json(&raw)["kind"], "NodeMetricsList", "{raw}");
    let denied = s.fail_kubectl(newest, &["top", "pods", "-n", NS, "--as", "bob"], None);
    assert!(denied.contains("forbidden"), "{denied}");
}
