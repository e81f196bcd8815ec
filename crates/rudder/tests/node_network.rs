//! End to end, as root: pods get addresses from the node's pod subnet (assigned by the control
//! plane) and reach each other and the node by them; the agent's bridge carries them.

mod common;

use std::time::Duration;

use common::node::{busybox_pod, node_with_busybox, wait_for};
use common::{KUBECTLS, json};

/// A busybox pod running `command` with its own address in `MY_IP`.
fn pod(name: &str, node: &str, command: &str) -> String {
    let mut pod = busybox_pod(node, name, command);
    pod["spec"]["containers"][0]["env"] = serde_json::json!([
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]);
    pod.to_string()
}

#[test]
fn pods_get_addresses_and_reach_each_other() {
    let (s, node) = node_with_busybox();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let subnet = format!("10.{}.{}.", s.port >> 8, s.port & 0xff);
    let cidr = wait_for("the node's pod subnet", 30, || {
        let n = json(&s.ok_kubectl(k, &["get", "node", &node, "-o", "json"]));
        n["spec"]["podCIDR"].as_str().map(str::to_owned)
    });
    assert_eq!(cidr, format!("{subnet}0/24"));

    s.create(
        k,
        None,
        &pod(
            "server",
            &node,
            "mkdir -p /www && echo served-by-$MY_IP > /www/index.html && exec httpd -f -p 8080 -h /www",
        ),
    );
    let ip_of = |name: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let p = json(&s.ok_kubectl(k, &["get", "pod", name, "-o", "json"]));
            if let Some(ip) = p["status"]["podIP"].as_str()
                && p["status"]["phase"] == "Running"
            {
                return ip.to_owned();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} got no address: {}\n{}",
                p["status"],
                s.log()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    };
    let server_ip = ip_of("server");
    assert!(server_ip.starts_with(&subnet), "{server_ip} not in {cidr}");
    s.create(
        k,
        None,
        &pod(
            "client",
            &node,
            &format!(
                "while true; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc {server_ip} 8080 && echo from-$MY_IP; sleep 1; done"
            ),
        ),
    );
    let client_ip = ip_of("client");
    assert_ne!(client_ip, server_ip);
    let logs = wait_for("the client's request", 60, || {
        let out = s.kubectl(k, &["logs", "client"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("served-by-").then_some(text)
    });
    assert!(logs.contains(&format!("served-by-{server_ip}")), "{logs}");
    assert!(logs.contains(&format!("from-{client_ip}")), "{logs}");
    let wide = s.ok_kubectl(k, &["get", "pods", "-o", "wide"]);
    assert!(
        wide.contains(&server_ip) && wide.contains(&client_ip),
        "{wide}"
    );

    // The node reaches pods by address too.
    let mut conn = std::net::TcpStream::connect_timeout(
        &format!("{server_ip}:8080").parse().expect("address"),
        Duration::from_secs(5),
    )
    .expect("connect from the node");
    use std::io::{Read, Write};
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n").expect("request");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    assert!(
        answer.contains(&format!("served-by-{server_ip}")),
        "{answer}"
    );

    // Deleting the pods gives their addresses back.
    s.ok_kubectl(
        k,
        &[
            "delete",
            "pod",
            "server",
            "client",
            "--wait=true",
            "--timeout=60s",
        ],
    );
    let state =
        std::fs::read_to_string(s.data_dir().join("agent/network/ipam.json")).expect("allocations");
    assert!(
        !state.contains(&server_ip) && !state.contains(&client_ip),
        "{state}"
    );
}
