//! `rudder agent --simulate N`: simulated nodes in a process of their own, joined to a real
//! server through its API with an administrator's kubeconfig. Nodes register Ready with Leases,
//! a Deployment becomes available on them and its pods go away with it; when the agent process
//! is killed, the node lifecycle controller marks every node NotReady (its heartbeats stopped).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::cluster::{Agent, items};
use common::node::wait_for;
use common::workloads::deploy_web;
use common::{Server, json};

const KUBECTL: &str = "/usr/bin/kubectl";
const NODES: usize = 20;
const REPLICAS: usize = 50;

fn get(s: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    json(&s.ok_kubectl(KUBECTL, &all))
}

fn ready(node: &serde_json::Value) -> Option<String> {
    node["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["status"].as_str().map(str::to_owned))
}

#[test]
fn an_agent_process_runs_simulated_nodes_against_a_server() {
    let s = Server::start_with(&[
        // Only the agent's simulated nodes: no node in the server.
        "--disable-agent",
        "--cluster-cidr",
        "172.29.0.0/16",
        "--node-cidr-mask-size",
        "24",
    ]);
    let work = tempfile::tempdir().expect("tempdir");
    let kubeconfig = s.kubeconfig();
    let kubeconfig = kubeconfig.to_str().expect("UTF-8 path");

    // Without credentials for many nodes, the agent refuses to start.
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args([
            "agent",
            "--simulate",
            "2",
            "--server",
            "https://127.0.0.1:1",
        ])
        .current_dir(work.path())
        .output()
        .expect("run rudder agent");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--simulate needs --kubeconfig"), "{err}");

    let mut agent = Agent::start(
        work.path(),
        &[
            "--simulate",
            &NODES.to_string(),
            "--simulate-prefix",
            "hollow",
            "--kubeconfig",
            kubeconfig,
        ],
    );

    // Every node registers Ready with a pod subnet and holds a Lease.
    let nodes = wait_for("20 Ready simulated nodes", 90, || {
        assert!(!agent.exited(), "the agent exited:\n{}", agent.log());
        let nodes = items(&get(&s, &["get", "nodes"]));
        let ready = nodes
            .iter()
            .filter(|n| n["spec"]["podCIDR"].is_string() && ready(n).as_deref() == Some("True"));
        (ready.count() == NODES).then_some(nodes)
    });
    let names: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let want: BTreeSet<String> = (0..NODES).map(|i| format!("hollow-{i}")).collect();
    assert_eq!(names, want);
    assert_eq!(nodes[0]["metadata"]["labels"]["type"], "simulated");
    wait_for("a Lease per node", 60, || {
        let leases = items(&get(&s, &["get", "leases", "-n", "kube-node-lease"]));
        let held: BTreeSet<String> = leases
            .iter()
            .filter(|l| l["spec"]["renewTime"].is_string())
            .filter_map(|l| l["metadata"]["name"].as_str().map(str::to_owned))
            .collect();
        want.is_subset(&held).then_some(())
    });

    // A Deployment becomes available on the simulated nodes.
    deploy_web(&s, KUBECTL, "web", REPLICAS, 180);
    let pods = items(&get(&s, &["get", "pods", "-l", "app=web"]));
    assert_eq!(pods.len(), REPLICAS);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap_or_default();
        assert_eq!(p["status"]["phase"], "Running", "{name}");
        let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
        assert!(want.contains(node), "{name} on {node}");
        assert!(p["status"]["podIP"].is_string(), "{name}: {p}");
    }

    // Deleting it deletes every pod through the agent's graceful termination.
    s.ok_kubectl(KUBECTL, &["delete", "deployment", "web"]);
    wait_for("every pod gone", 120, || {
        items(&get(&s, &["get", "pods", "-l", "app=web"]))
            .is_empty()
            .then_some(())
    });

    // The agent dies: its nodes stop heartbeating and go NotReady (Ready=Unknown after the
    // controller's 40 s grace period).
    agent.kill9();
    wait_for("every simulated node NotReady", 180, || {
        let nodes = items(&get(&s, &["get", "nodes"]));
        let not_ready = nodes
            .iter()
            .filter(|n| ready(n).is_some_and(|r| r != "True"))
            .count();
        (not_ready == NODES).then_some(())
    });
}
