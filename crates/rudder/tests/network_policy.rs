//! End to end, as root with real nftables and busybox pods on one node's bridge: NetworkPolicies
//! block what they should and nothing more — default-deny ingress, an allow by podSelector, by
//! namespaceSelector, a port-restricted rule, an egress policy allowing an ipBlock and then DNS
//! to kube-dns by its labels — the node itself always reaches its pods, deleting the policies
//! restores traffic, invalid policies are refused with 422, and a clean stop removes the table.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::node::{node_with_busybox, wait_for};
use common::{KUBECTLS, Server, json};

const K: &str = "/usr/bin/kubectl";
/// The oldest kubectl supported, for some of the steps.
const K127: &str = KUBECTLS[0];

fn pod(ns: &str, name: &str, app: &str, node: &str, serve: bool) -> String {
    let script = if serve {
        // Two listeners: `http` (8080) and `alt` (9090), both answering "ok".
        "mkdir -p /www && echo ok > /www/index.html && httpd -p 9090 -h /www && exec httpd -f -p 8080 -h /www"
    } else {
        "exec sleep 3600"
    };
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", script],
                "ports": [{"name": "http", "containerPort": 8080}, {"name": "alt", "containerPort": 9090}],
            }],
        },
    })
    .to_string()
}

/// The pod's address once it runs.
fn running_ip(s: &Server, ns: &str, name: &str) -> String {
    wait_for(&format!("{ns}/{name} running"), 90, || {
        let p = json(&s.ok_kubectl(K, &["get", "pod", name, "-n", ns, "-o", "json"]));
        (p["status"]["phase"] == "Running")
            .then(|| p["status"]["podIP"].as_str().map(str::to_owned))
            .flatten()
    })
}

/// Whether pod `ns/pod` gets "ok" from `ip:port` (a dropped connection times out in 2 s), and
/// what nc said.
fn reaches(s: &Server, ns: &str, pod: &str, ip: &str, port: u16) -> (bool, String) {
    // busybox nc, as the proxy's tests (the static busybox's wget crashes on this image).
    let get = format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {ip} {port}");
    let out = s.kubectl(K, &["exec", "-n", ns, pod, "--", "sh", "-c", &get]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        stdout.lines().any(|l| l.trim() == "ok"),
        format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// Waits until `ns/pod` → `ip:port` is `want` (policies apply within a sync or two), then
/// checks it stays so for one more try.
fn expect(s: &Server, ns: &str, pod: &str, ip: &str, port: u16, want: bool) {
    let what = format!(
        "{ns}/{pod} -> {ip}:{port} {}",
        if want { "allowed" } else { "blocked" }
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut last = reaches(s, ns, pod, ip, port);
    while last.0 != want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        last = reaches(s, ns, pod, ip, port);
    }
    if last.0 == want {
        last = reaches(s, ns, pod, ip, port);
    }
    assert_eq!(
        last.0,
        want,
        "{what}: {}\ntable: {}\nserver log tail:\n{}",
        last.1,
        table_listing(&s.network_policy_table()).unwrap_or_default(),
        s.log()
            .lines()
            .rev()
            .take(30)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Whether the pod resolves the `kubernetes` Service through cluster DNS (busybox applets by
/// name: the test image links only some of them).
fn resolves(s: &Server, ns: &str, pod: &str) -> bool {
    let out = s.kubectl(
        K,
        &[
            "exec",
            "-n",
            ns,
            pod,
            "--",
            "busybox",
            "timeout",
            "4",
            "busybox",
            "nslookup",
            "kubernetes.default.svc.cluster.local",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "nslookup from {ns}/{pod}: {said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    said.contains(&s.service_ip(1))
}

fn apply(s: &Server, kubectl: &str, ns: &str, policy: serde_json::Value) {
    s.kubectl_in(
        kubectl,
        &["apply", "-n", ns, "-f", "-"],
        &policy.to_string(),
    );
}

fn netpol(name: &str, spec: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name}, "spec": spec})
}

fn table_listing(table: &str) -> Option<String> {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .expect("nft list");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn network_policies_block_what_they_should_and_nothing_more() {
    let (mut s, node) = node_with_busybox();
    let table = s.network_policy_table();
    s.create(
        K,
        None,
        r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"friends","labels":{"team":"friends"}}}"#,
    );
    for (ns, name, app, serve) in [
        ("default", "server", "server", true),
        ("default", "client", "client", false),
        ("default", "intruder", "intruder", false),
        ("friends", "friend", "friend", true),
    ] {
        s.create(K, None, &pod(ns, name, app, &node, serve));
    }
    let server = running_ip(&s, "default", "server");
    let friend = running_ip(&s, "friends", "friend");
    for (ns, name) in [("default", "client"), ("default", "intruder")] {
        running_ip(&s, ns, name);
    }
    // No policy: everyone reaches everyone.
    expect(&s, "default", "client", &server, 8080, true);
    expect(&s, "default", "intruder", &server, 9090, true);
    expect(&s, "friends", "friend", &server, 8080, true);
    expect(&s, "default", "client", &friend, 8080, true);
    let listing = table_listing(&table).unwrap_or_else(|| panic!("no table {table}:\n{}", s.log()));
    assert!(listing.contains("hook forward"), "{listing}");

    // Default deny ingress in `default`: nothing gets in; egress and `friends` untouched.
    apply(
        &s,
        K127,
        "default",
        netpol("deny", serde_json::json!({"podSelector": {}})),
    );
    let stored = json(&s.ok_kubectl(K, &["get", "netpol", "deny", "-o", "json"]));
    assert_eq!(
        stored["spec"]["policyTypes"],
        serde_json::json!(["Ingress"])
    );
    expect(&s, "default", "client", &server, 8080, false);
    expect(&s, "friends", "friend", &server, 8080, false);
    expect(&s, "default", "intruder", &server, 9090, false);
    expect(&s, "default", "server", &friend, 8080, true);
    // The node itself always reaches its pods (probes).
    let addr = format!("{server}:8080").parse().expect("address");
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok(),
        "the node reaches an isolated pod"
    );

    // Allow the client, to the named port `http` only.
    apply(
        &s,
        K,
        "default",
        netpol(
            "allow-client",
            serde_json::json!({
                "podSelector": {"matchLabels": {"app": "server"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                             "ports": [{"port": "http"}]}],
            }),
        ),
    );
    expect(&s, "default", "client", &server, 8080, true);
    expect(&s, "default", "client", &server, 9090, false);
    expect(&s, "default", "intruder", &server, 8080, false);
    expect(&s, "friends", "friend", &server, 8080, false);

    // Allow the `friends` namespace by its label, on a numeric port range.
    apply(
        &s,
        K127,
        "default",
        netpol(
            "allow-friends",
            serde_json::json!({
                "podSelector": {"matchLabels": {"app": "server"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "friends"}}}],
                             "ports": [{"port": 9000, "endPort": 9100}]}],
            }),
        ),
    );
    expect(&s, "friends", "friend", &server, 9090, true);
    expect(&s, "friends", "friend", &server, 8080, false);
    expect(&s, "default", "intruder", &server, 9090, false);

    // Egress of the client: only the server's address; then DNS to kube-dns as well.
    let egress = |dns: bool| {
        let mut rules = vec![serde_json::json!({
            "to": [{"ipBlock": {"cidr": format!("{server}/32")}}],
            "ports": [{"port": 8080}],
        })];
        if dns {
            rules.push(serde_json::json!({
                "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
            }));
        }
        netpol(
            "client-out",
            serde_json::json!({
                "podSelector": {"matchLabels": {"app": "client"}},
                "policyTypes": ["Egress"],
                "egress": rules,
            }),
        )
    };
    assert!(
        wait_for_bool(|| resolves(&s, "default", "client")),
        "DNS works before the egress policy"
    );
    apply(&s, K, "default", egress(false));
    expect(&s, "default", "client", &friend, 8080, false);
    expect(&s, "default", "client", &server, 8080, true);
    assert!(
        wait_for_bool(|| !resolves(&s, "default", "client")),
        "DNS blocked by the egress policy"
    );
    expect(&s, "default", "intruder", &friend, 8080, true);
    apply(&s, K, "default", egress(true));
    assert!(
        wait_for_bool(|| resolves(&s, "default", "client")),
        "DNS to kube-dns allowed by the policy"
    );
    expect(&s, "default", "client", &friend, 8080, false);

    // Invalid policies are refused (422 Invalid).
    for (spec, field) in [
        (
            serde_json::json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
            "spec.ingress[0].from[0].ipBlock.cidr",
        ),
        (
            serde_json::json!({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24"]}}]}]}),
            "spec.egress[0].to[0].ipBlock.except[0]",
        ),
        (
            serde_json::json!({"podSelector": {}, "ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}),
            "spec.ingress[0].ports[0].endPort",
        ),
    ] {
        let err = s.fail_kubectl(
            K,
            &["create", "-f", "-"],
            Some(&netpol("bad", spec).to_string()),
        );
        assert!(err.contains("is invalid") && err.contains(field), "{err}");
    }

    // Deleting the policies restores everything.
    s.ok_kubectl(K, &["delete", "netpol", "--all", "-n", "default"]);
    expect(&s, "default", "intruder", &server, 8080, true);
    expect(&s, "default", "client", &friend, 8080, true);
    expect(&s, "friends", "friend", &server, 8080, true);

    // A clean stop removes the table.
    s.stop();
    assert!(
        table_listing(&table).is_none(),
        "table {table} left after a clean stop"
    );
}

/// Polls `f` for up to 30 s; whether it became true.
fn wait_for_bool(mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    false
}
