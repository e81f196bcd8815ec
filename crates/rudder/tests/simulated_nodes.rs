//! Simulated ("hollow") nodes end to end: `rudder server --simulate-nodes` registers real Nodes
//! with Leases, and a Deployment's pods go through the real lifecycle on them (scheduled,
//! Running and Ready with addresses from each node's pod subnet, then graceful deletion),
//! driven with real kubectl.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::node::{mark_ready_unknown, ready_status, wait_for};
use common::workloads::{deploy_web, wait_available};
use common::{Server, json};

const KUBECTL: &str = "/usr/bin/kubectl";
const NODES: usize = 20;
const REPLICAS: usize = 50;

fn start() -> Server {
    Server::start_with(&[
        // Only the simulated nodes: no real node, no bridge, no containers.
        "--disable-agent",
        "--simulate-nodes",
        &NODES.to_string(),
        "--simulate-prefix",
        "hollow",
        // One /24 per node: the harness's default range holds a single node.
        "--cluster-cidr",
        "172.30.0.0/16",
        "--node-cidr-mask-size",
        "24",
    ])
}

fn get(s: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    json(&s.ok_kubectl(KUBECTL, &all))
}

fn items(v: &serde_json::Value) -> Vec<serde_json::Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

fn lease_renewals(s: &Server) -> BTreeMap<String, String> {
    items(&get(s, &["get", "leases", "-n", "kube-node-lease"]))
        .iter()
        .filter_map(|l| {
            Some((
                l["metadata"]["name"].as_str()?.to_owned(),
                l["spec"]["renewTime"].as_str()?.to_owned(),
            ))
        })
        .collect()
}

#[test]
fn simulated_nodes_run_a_deployment_through_the_pod_lifecycle() {
    let s = start();

    // Every node registers Ready, with the simulated capacity and a pod subnet.
    let nodes = wait_for("20 Ready simulated nodes with pod subnets", 60, || {
        let nodes = items(&get(&s, &["get", "nodes"]));
        let ready = nodes.iter().filter(|n| {
            n["spec"]["podCIDR"].is_string()
                && n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        (ready.count() == NODES).then_some(nodes)
    });
    let names: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = (0..NODES).map(|i| format!("hollow-{i}")).collect();
    assert_eq!(names, want);
    let cidrs: BTreeMap<String, ipnet::Ipv4Net> = nodes
        .iter()
        .map(|n| {
            let name = n["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let cidr = n["spec"]["podCIDR"].as_str().unwrap_or_default();
            (name, cidr.parse().expect("podCIDR is a CIDR"))
        })
        .collect();
    let node = &nodes[0];
    assert_eq!(node["status"]["capacity"]["cpu"], "32");
    assert_eq!(node["status"]["capacity"]["memory"], "268435456Ki"); // 256Gi, in Ki as kubelet writes it
    assert_eq!(node["status"]["capacity"]["pods"], "110");

    // Every node holds a Lease, renewed every 10 s.
    let first = wait_for("a Lease per node", 30, || {
        let l = lease_renewals(&s);
        (l.len() == NODES).then_some(l)
    });
    wait_for("every Lease renewed", 40, || {
        let now = lease_renewals(&s);
        first
            .iter()
            .all(|(name, t)| now.get(name).is_some_and(|n| n != t))
            .then_some(())
    });

    // Marked not Ready (as the node lifecycle controller does when leases stop), a simulated
    // node is Ready again at its next renewal, not at its next status report (5 min): the
    // process's one watch of its Nodes tells it.
    mark_ready_unknown(&s, KUBECTL, "hollow-3");
    wait_for("hollow-3 Ready again", 30, || {
        (ready_status(&s, KUBECTL, "hollow-3") == "True").then_some(())
    });

    // A Deployment spreads over the nodes and becomes fully available.
    deploy_web(&s, KUBECTL, "web", REPLICAS, 120);
    let pods = items(&get(&s, &["get", "pods", "-l", "app=web"]));
    assert_eq!(pods.len(), REPLICAS);
    let mut ips = BTreeSet::new();
    let mut used_nodes = BTreeSet::new();
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(p["status"]["phase"], "Running", "{name}");
        let ready = p["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        assert!(ready, "{name} not Ready: {p}");
        let c = &p["status"]["containerStatuses"][0];
        assert!(
            c["state"]["running"]["startedAt"].is_string(),
            "{name}: {c}"
        );
        assert_eq!(c["ready"], true);
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        let ip: std::net::Ipv4Addr = p["status"]["podIP"]
            .as_str()
            .unwrap_or_default()
            .parse()
            .unwrap_or_else(|e| panic!("{name}: podIP: {e}"));
        let cidr = cidrs[node];
        assert!(cidr.contains(&ip), "{name}: {ip} outside {node}'s {cidr}");
        assert_ne!(ip, cidr.network());
        assert!(ips.insert(ip), "{name}: {ip} given twice");
        used_nodes.insert(node.to_owned());
    }
    assert!(
        used_nodes.len() > NODES / 2,
        "pods spread over {} nodes only",
        used_nodes.len()
    );

    // Deleting one pod goes through graceful termination: the agent stops it and removes it,
    // and the ReplicaSet replaces it.
    let victim = pods[0]["metadata"]["name"].as_str().unwrap_or_default();
    s.ok_kubectl(
        KUBECTL,
        &["delete", "pod", victim, "--wait=true", "--timeout=60s"],
    );
    wait_available(&s, KUBECTL, "web", REPLICAS, 60);

    // A program the runtime models as ending (`sleep 3`) ends on time: the worker wakes at
    // the forecast end instead of at the 60 s resync a steady pod waits for.
    s.ok_kubectl(
        KUBECTL,
        &[
            "run",
            "once",
            "--image=busybox",
            "--restart=Never",
            "--",
            "sleep",
            "3",
        ],
    );
    let done = wait_for("pod once Succeeded", 40, || {
        let p = get(&s, &["get", "pod", "once"]);
        (p["status"]["phase"] == "Succeeded").then_some(p)
    });
    let terminated = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(terminated["exitCode"], 0, "{done}");
    assert_eq!(terminated["reason"], "Completed", "{done}");

    // Deleting the Deployment deletes every pod the same way.
    s.ok_kubectl(KUBECTL, &["delete", "deployment", "web"]);
    wait_for("every pod gone", 90, || {
        items(&get(&s, &["get", "pods", "-l", "app=web"]))
            .is_empty()
            .then_some(())
    });

    // The nodes keep heartbeating afterwards.
    let before = lease_renewals(&s);
    wait_for("hollow-7's Lease renewed again", 30, || {
        let now = lease_renewals(&s);
        (now.get("hollow-7") != before.get("hollow-7")).then_some(())
    });
}
