//! End to end: `rudder server` registers its machine as a Node (real capacity, labels,
//! conditions, addresses), keeps its Lease renewed, and takes the same Node over after a restart
//! (serving its endpoint once a port someone else held is free).

mod common;

use std::time::{Duration, Instant};

use common::node::{mark_ready_unknown, ready_status};
use common::{KUBECTLS, Server, json};

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_server_registers_its_node_and_renews_its_lease() {
    let mut s = Server::start();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let node = wait_for("the node", || {
        let list = json(&s.ok_kubectl(k, &["get", "nodes", "-o", "json"]));
        list["items"].as_array().and_then(|a| a.first().cloned())
    });
    let name = node["metadata"]["name"].as_str().expect("name").to_owned();
    let uid = node["metadata"]["uid"].as_str().expect("uid").to_owned();
    let status = &node["status"];
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    assert_eq!(status["capacity"]["cpu"], cpus.to_string(), "{status}");
    assert!(
        status["capacity"]["memory"]
            .as_str()
            .is_some_and(|m| m.ends_with("Ki"))
    );
    assert_eq!(status["capacity"]["pods"], "110");
    assert!(status["allocatable"]["ephemeral-storage"].is_string());
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        name.as_str()
    );
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
    let ready = status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .expect("Ready condition");
    assert_eq!(ready["status"], "True");
    assert!(
        status["nodeInfo"]["kubeletVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1."))
    );

    // kubectl prints it as a Ready node.
    let table = s.ok_kubectl(k, &["get", "nodes", "-o", "wide"]);
    assert!(table.contains(&name) && table.contains("Ready"), "{table}");
    let described = s.ok_kubectl(k, &["describe", "node", &name]);
    assert!(
        described.contains("Capacity:") && described.contains("KubeletReady"),
        "{described}"
    );

    // The heartbeat lease exists and is renewed.
    let lease = wait_for("the lease", || {
        let out = s.kubectl(
            k,
            &["get", "lease", &name, "-n", "kube-node-lease", "-o", "json"],
        );
        out.status
            .success()
            .then(|| json(&String::from_utf8_lossy(&out.stdout)))
    });
    assert_eq!(lease["spec"]["holderIdentity"], name.as_str());
    assert_eq!(lease["metadata"]["ownerReferences"][0]["uid"], uid.as_str());
    let first = lease["spec"]["renewTime"]
        .as_str()
        .expect("renewTime")
        .to_owned();
    wait_for("a lease renewal", || {
        let l = json(&s.ok_kubectl(
            k,
            &["get", "lease", &name, "-n", "kube-node-lease", "-o", "json"],
        ));
        (l["spec"]["renewTime"].as_str() != Some(first.as_str())).then_some(())
    });

    // Marked not Ready (as the node lifecycle controller does when leases stop), the Node is
    // Ready again at the agent's next renewal, not at its next periodic status report (60 s).
    mark_ready_unknown(&s, k, &name);
    wait_for("Ready again", || {
        (ready_status(&s, k, &name) == "True").then_some(())
    });
    assert!(
        s.log().contains("the Node is marked not Ready"),
        "the agent did not say why it reported"
    );

    // After a restart the same Node is taken over, not duplicated. Its endpoint's port is
    // held by someone else at first: the agent keeps trying and serves once it is free.
    s.stop();
    let holder = std::net::TcpListener::bind(("0.0.0.0", s.kubelet_port)).expect("hold the port");
    s.restart();
    wait_for("the node after restart", || {
        let list = json(&s.ok_kubectl(k, &["get", "nodes", "-o", "json"]));
        let items = list["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 1 && items[0]["metadata"]["uid"] == uid.as_str()).then_some(())
    });
    wait_for("the agent to find its port taken", || {
        s.log()
            .contains("node endpoint (logs) not serving yet")
            .then_some(())
    });
    drop(holder);
    let healthz = format!("/api/v1/nodes/{name}/proxy/healthz");
    wait_for("the node endpoint through the API server", || {
        let out = s.kubectl(k, &["get", "--raw", &healthz]);
        (out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok").then_some(())
    });
}
