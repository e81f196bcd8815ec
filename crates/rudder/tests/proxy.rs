//! End to end, as root with real nftables: the service proxy makes ClusterIPs and NodePorts
//! reach ready pods (from the node and from pods, spread over endpoints, sticky with
//! ClientIP affinity, hairpin to the pod itself), rejects Services without endpoints, and
//! containers see Service environment variables; the `kubernetes` Service exists.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::node::{node_with_busybox, wait_for};
use common::{KUBECTLS, Server, json};

/// A web pod: busybox httpd answering with the pod's name, ready while /tmp/ready exists.
fn web_pod(name: &str, node: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web", "pod": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c",
                    "mkdir -p /www && echo pod=$(hostname) > /www/index.html && touch /tmp/ready && exec httpd -f -p 8080 -h /www"],
                "readinessProbe": {"exec": {"command": ["cat", "/tmp/ready"]},
                    "periodSeconds": 1, "failureThreshold": 1},
            }],
        },
    })
    .to_string()
}

fn service(name: &str, selector: serde_json::Value, spec: serde_json::Value) -> String {
    let mut s = serde_json::json!({
        "selector": selector,
        "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
    });
    if let (Some(s), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        s.extend(extra.clone());
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": s})
        .to_string()
}

/// One HTTP GET to `addr`; the pod name in the answer.
fn get(addr: &str) -> std::io::Result<String> {
    let addr = addr.parse().expect("socket address");
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    conn.set_read_timeout(Some(Duration::from_secs(3)))?;
    conn.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    answer
        .lines()
        .find_map(|l| l.strip_prefix("pod="))
        .map(str::to_owned)
        .ok_or_else(|| std::io::Error::other(format!("no pod name in {answer:?}")))
}

/// The pods `n` GETs to `addr` reached.
fn spread(addr: &str, n: usize) -> BTreeSet<String> {
    (0..n).filter_map(|_| get(addr).ok()).collect()
}

fn cluster_ip(s: &Server, k: &str, name: &str) -> String {
    let svc = json(&s.ok_kubectl(k, &["get", "svc", name, "-o", "json"]));
    svc["spec"]["clusterIP"]
        .as_str()
        .expect("a ClusterIP")
        .to_owned()
}

fn wait_running(s: &Server, k: &str, name: &str) {
    wait_for(&format!("{name} running"), 90, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", name, "-o", "json"]));
        (p["status"]["phase"] == "Running").then_some(())
    });
}

/// A GET from inside pod `pod` (busybox nc), or the error text.
fn get_from_pod(s: &Server, k: &str, pod: &str, addr: &str) -> String {
    let (ip, port) = addr.split_once(':').expect("ip:port");
    let out = s.kubectl(
        k,
        &[
            "exec",
            pod,
            "--",
            "sh",
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} {port}"),
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn services_reach_pods_through_nftables() {
    let (mut s, node) = node_with_busybox();
    let k = KUBECTLS[KUBECTLS.len() - 1];
    let table = s.proxy_table();

    // The `kubernetes` Service: first address of the range, 443 → the API server's port.
    let kubernetes = json(&s.ok_kubectl(
        k,
        &["get", "svc", "kubernetes", "-n", "default", "-o", "json"],
    ));
    assert_eq!(kubernetes["spec"]["clusterIP"], s.service_ip(1).as_str());
    assert_eq!(kubernetes["spec"]["ports"][0]["name"], "https");
    assert_eq!(kubernetes["spec"]["ports"][0]["port"], 443);
    assert_eq!(kubernetes["spec"]["ports"][0]["targetPort"], s.port);
    let eps = json(&s.ok_kubectl(
        k,
        &[
            "get",
            "endpoints",
            "kubernetes",
            "-n",
            "default",
            "-o",
            "json",
        ],
    ));
    assert_eq!(eps["subsets"][0]["ports"][0]["port"], s.port);
    assert!(eps["subsets"][0]["addresses"][0]["ip"].is_string(), "{eps}");
    let slice = json(&s.ok_kubectl(
        k,
        &[
            "get",
            "endpointslice",
            "kubernetes",
            "-n",
            "default",
            "-o",
            "json",
        ],
    ));
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
    assert_eq!(slice["ports"][0]["port"], s.port);

    // Services first, so the client's environment names them.
    s.create(
        k,
        None,
        &service(
            "web",
            serde_json::json!({"app": "web"}),
            serde_json::json!({}),
        ),
    );
    s.create(
        k,
        None,
        &service(
            "sticky",
            serde_json::json!({"app": "web"}),
            serde_json::json!({"sessionAffinity": "ClientIP"}),
        ),
    );
    s.create(
        k,
        None,
        &service(
            "nodeport",
            serde_json::json!({"app": "web"}),
            serde_json::json!({"type": "NodePort"}),
        ),
    );
    s.create(
        k,
        None,
        &service(
            "empty",
            serde_json::json!({"app": "nothing"}),
            serde_json::json!({}),
        ),
    );
    s.create(
        k,
        None,
        &service(
            "self",
            serde_json::json!({"pod": "web-0"}),
            serde_json::json!({}),
        ),
    );
    let pods = ["web-0", "web-1", "web-2"];
    for p in pods {
        s.create(k, None, &web_pod(p, &node));
    }
    s.create(
        k,
        None,
        &serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "exec sleep 3600"],
                "env": [{"name": "EMPTY_SERVICE_HOST", "value": "mine"}]}]},
        })
        .to_string(),
    );
    for p in pods.iter().chain(&["client"]) {
        wait_running(&s, k, p);
    }
    let all: BTreeSet<String> = pods.iter().map(|p| (*p).to_owned()).collect();
    let web = format!("{}:80", cluster_ip(&s, k, "web"));

    // From the node: every ready pod answers, over enough connections.
    let seen = wait_for("every web pod behind the ClusterIP", 90, || {
        let seen = spread(&web, 60);
        (seen == all).then_some(seen)
    });
    assert_eq!(seen, all);
    let listed = std::process::Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .expect("nft list");
    assert!(listed.status.success(), "the proxy's table {table} exists");

    // From a pod.
    let answer = wait_for("a pod reaching the ClusterIP", 60, || {
        let a = get_from_pod(&s, k, "client", &web);
        a.contains("pod=web-").then_some(a)
    });
    assert!(answer.contains("pod=web-"), "{answer}");

    // Hairpin: web-0 reaches itself through a Service that has only it.
    let own = format!("{}:80", cluster_ip(&s, k, "self"));
    let answer = wait_for("web-0 reaching itself through its Service", 60, || {
        let a = get_from_pod(&s, k, "web-0", &own);
        a.contains("pod=web-0").then_some(a)
    });
    assert!(answer.contains("pod=web-0"), "{answer}");

    // NodePort on the node's address.
    let svc = json(&s.ok_kubectl(k, &["get", "svc", "nodeport", "-o", "json"]));
    let node_port = svc["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port");
    let n = json(&s.ok_kubectl(k, &["get", "node", &node, "-o", "json"]));
    let node_ip = n["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .expect("the node's InternalIP")
        .to_owned();
    let via_node = format!("{node_ip}:{node_port}");
    let who = wait_for("the NodePort", 60, || get(&via_node).ok());
    assert!(all.contains(&who), "{who}");

    // ClientIP affinity: one pod for every connection.
    let sticky = format!("{}:80", cluster_ip(&s, k, "sticky"));
    let first = wait_for("the sticky Service", 60, || get(&sticky).ok());
    let stuck = spread(&sticky, 20);
    assert_eq!(stuck, BTreeSet::from([first]), "affinity held");

    // No endpoints: the connection is refused, not left hanging.
    let empty = format!("{}:80", cluster_ip(&s, k, "empty"));
    let err = get(&empty).expect_err("no endpoints");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");

    // Service variables in a container; the container's own value wins.
    let env = s.ok_kubectl(k, &["exec", "client", "--", "env"]);
    let web_ip = cluster_ip(&s, k, "web");
    for want in [
        format!("WEB_SERVICE_HOST={web_ip}"),
        "WEB_SERVICE_PORT=80".to_owned(),
        "WEB_SERVICE_PORT_HTTP=80".to_owned(),
        format!("WEB_PORT=tcp://{web_ip}:80"),
        format!("WEB_PORT_80_TCP_ADDR={web_ip}"),
        "WEB_PORT_80_TCP_PROTO=tcp".to_owned(),
        format!("KUBERNETES_SERVICE_HOST={}", s.service_ip(1)),
        "KUBERNETES_SERVICE_PORT=443".to_owned(),
        "EMPTY_SERVICE_HOST=mine".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in:\n{env}");
    }

    // A pod turning unready stops getting traffic.
    s.ok_kubectl(k, &["exec", "web-1", "--", "rm", "/tmp/ready"]);
    wait_for("web-1 unready in its EndpointSlice", 60, || {
        let slices = json(&s.ok_kubectl(
            k,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
                "-o",
                "json",
            ],
        ));
        let unready = slices["items"].as_array().into_iter().flatten().any(|sl| {
            sl["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["targetRef"]["name"] == "web-1" && e["conditions"]["ready"] == false)
        });
        unready.then_some(())
    });
    let rest: BTreeSet<String> = ["web-0", "web-2"].iter().map(|p| (*p).to_owned()).collect();
    let seen = wait_for("traffic only to the ready pods", 60, || {
        let seen = spread(&web, 60);
        (seen == rest).then_some(seen)
    });
    assert_eq!(seen, rest);

    // A clean stop removes the table.
    s.stop();
    let listed = std::process::Command::new("nft")
        .args(["list", "table", "ip", &table])
        .output()
        .expect("nft list");
    assert!(
        !listed.status.success(),
        "table {table} left after a clean stop"
    );
}

#[test]
fn unusable_service_ranges_are_refused() {
    for (range, why) in [
        ("10.0.0.0/8", "too large"),
        ("100.64.0.0/30", "too small"),
        ("100.64.0.5/24", "host bits"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args(["server", "--service-cluster-ip-range", range, "--data-dir"])
            .arg(tempfile::tempdir().expect("tempdir").path())
            .output()
            .expect("run rudder server");
        assert!(!out.status.success(), "{range} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{range}: {err}");
    }
}
