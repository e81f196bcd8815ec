//! End to end, as root: a three-node cluster on one machine. Each node is a network namespace
//! the test makes, joined to the others by a bridge in the host namespace (one L2 segment, as
//! host-gw routing needs): `rudder server` in the first, two `rudder agent`s joined with
//! `rudder token create` tokens in the others. A pod on the server's node reaches a pod on the
//! third node by pod IP (routes between nodes), by ClusterIP and by DNS name (each node's DNS
//! server registered through the Node authorizer); pods leave the cluster with their node's
//! address; a NodePort answers on every node's address; a node that goes away takes its route
//! with it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::node::{import_busybox, remove_containers, wait_for};
use common::{free_port, json, kubectl_raw};

const KUBECTL: &str = "/usr/bin/kubectl";
/// The pod range: outside 10.0.0.0/8, where the single-node test servers in the host
/// namespace take theirs (their nftables rules see the bridged frames of this test).
const CLUSTER_CIDR: &str = "172.30.0.0/16";
const NODES: [char; 3] = ['a', 'b', 'c'];

/// Runs a command, returning its output (never panics, for clean-up paths).
fn run(program: &str, args: &[&str]) -> Option<Output> {
    Command::new(program).args(args).output().ok()
}

/// Runs a command that must succeed.
fn must(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The test's network and processes: namespaces `rmn<port>-<node>`, a bridge `rmn<port>` with
/// `172.31.<x>.254/24` in the host namespace, node addresses `172.31.<x>.1..3`. Everything
/// is removed on drop, also when the test fails.
struct Cluster {
    port: u16,
    subnet: u8,
    dir: tempfile::TempDir,
    processes: Vec<(char, Child)>,
}

impl Cluster {
    fn new() -> Cluster {
        let port = free_port();
        // 172.31.20-219.0/24: no address of this machine is in 172.31.0.0/16.
        let subnet = u8::try_from(port % 200 + 20).expect("a /24");
        let c = Cluster {
            port,
            subnet,
            dir: tempfile::tempdir().expect("tempdir"),
            processes: Vec::new(),
        };
        let bridge = c.bridge();
        must("ip", &["link", "add", &bridge, "type", "bridge"]);
        must(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", c.gateway()),
                "dev",
                &bridge,
            ],
        );
        must("ip", &["link", "set", &bridge, "up"]);
        for node in NODES {
            let (ns, host_end) = (c.netns(node), format!("{bridge}{node}"));
            must("ip", &["netns", "add", &ns]);
            must(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            );
            must("ip", &["link", "set", &host_end, "master", &bridge, "up"]);
            let addr = format!("{}/24", c.ip(node));
            for args in [
                vec!["addr", "add", &addr, "dev", "eth0"],
                vec!["link", "set", "eth0", "up"],
                vec!["link", "set", "lo", "up"],
                // Traffic leaving the cluster goes to the host (masqueraded by the proxy).
                vec!["route", "add", "default", "via", &c.gateway()],
            ] {
                let mut all = vec!["-n", &ns];
                all.extend(args);
                must("ip", &all);
            }
        }
        c
    }

    fn bridge(&self) -> String {
        format!("rmn{}", self.port)
    }

    fn netns(&self, node: char) -> String {
        format!("rmn{}-{node}", self.port)
    }

    fn gateway(&self) -> String {
        format!("172.31.{}.254", self.subnet)
    }

    /// The node's address (its InternalIP: the address of its default route's interface).
    fn ip(&self, node: char) -> String {
        let n = NODES.iter().position(|n| *n == node).expect("a node") + 1;
        format!("172.31.{}.{n}", self.subnet)
    }

    fn node_name(&self, node: char) -> String {
        format!("mn{}-{node}", self.port)
    }

    fn data_dir(&self, node: char) -> PathBuf {
        self.dir.path().join(node.to_string()).join("data")
    }

    fn log_path(&self, node: char) -> PathBuf {
        self.dir.path().join(format!("{node}.log"))
    }

    fn log(&self, node: char) -> String {
        std::fs::read_to_string(self.log_path(node)).unwrap_or_default()
    }

    fn kubeconfig(&self) -> PathBuf {
        self.data_dir('a').join("kubeconfig")
    }

    /// Starts `rudder args` in the node's network namespace. `nsenter --net` rather than
    /// `ip netns exec`: the latter mounts a fresh /sys, hiding the cgroup hierarchy pods need.
    fn spawn(&mut self, node: char, args: &[String]) {
        std::fs::create_dir_all(self.data_dir(node)).expect("data dir");
        let log = std::fs::File::create(self.log_path(node)).expect("log");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns(node)))
            .arg(env!("CARGO_BIN_EXE_rudder"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir(node))
            .args(["--node-name", &self.node_name(node)])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rudder");
        self.processes.push((node, child));
    }

    fn kubectl(&self, args: &[&str]) -> Output {
        kubectl_raw(KUBECTL, &self.kubeconfig(), args, None)
    }

    fn ok_kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log('a')
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn create(&self, manifest: &serde_json::Value) {
        let out = kubectl_raw(
            KUBECTL,
            &self.kubeconfig(),
            &["create", "-f", "-"],
            Some(&manifest.to_string()),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The routes rudder keeps in the node's namespace (`proto 82`).
    fn routes(&self, node: char) -> String {
        let out = run(
            "ip",
            &["-n", &self.netns(node), "route", "show", "proto", "82"],
        )
        .expect("ip route");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops one node's process: SIGTERM by PID, SIGKILL after 15 s.
    fn stop(&mut self, node: char) {
        let Some(i) = self.processes.iter().position(|(n, _)| *n == node) else {
            return;
        };
        let (_, mut child) = self.processes.remove(i);
        let _ = run("kill", &["-TERM", &child.id().to_string()]);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in NODES {
            self.stop(node);
        }
        // Containers outlive their agent by design; this also removes their cgroups.
        for node in NODES {
            remove_containers(&self.data_dir(node));
        }
        // A namespace takes its links, routes and nftables tables with it.
        for node in NODES {
            let _ = run("ip", &["netns", "del", &self.netns(node)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

/// `GET /` over plain TCP from this (the host) namespace.
fn http_get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

fn wait_ready(c: &Cluster, node: char) {
    let name = c.node_name(node);
    wait_for(&format!("node {name} to be Ready"), 90, || {
        let out = c.kubectl(&["get", "node", &name, "-o", "json"]);
        let obj: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        let ready = obj["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && obj["spec"]["podCIDR"].is_string()).then_some(())
    });
}

fn join_args(c: &Cluster) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_rudder"))
        .args(["token", "create", "--data-dir"])
        .arg(c.data_dir('a'))
        .output()
        .expect("rudder token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let join: Vec<String> = printed
        .strip_prefix("rudder agent ")
        .unwrap_or_else(|| panic!("not a join command: {printed}"))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(
        join.contains(&format!("https://{}:{}", c.ip('a'), c.port)),
        "{printed}"
    );
    join
}

fn start_server(c: &mut Cluster) {
    let service_range = format!(
        "{}/26",
        std::net::Ipv4Addr::from(
            u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + u32::from(c.port) * 64
        )
    );
    let args: Vec<String> = [
        "server",
        "--bind-address",
        &c.ip('a'),
        "--tls-san",
        &c.ip('a'),
        "--port",
        &c.port.to_string(),
        "--cluster-cidr",
        CLUSTER_CIDR,
        "--node-cidr-mask-size",
        "24",
        "--service-cluster-ip-range",
        &service_range,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    c.spawn('a', &args);
    wait_for("the server to serve", 60, || {
        if let Some((_, child)) = c.processes.iter_mut().find(|(n, _)| *n == 'a')
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("rudder server exited with {status}:\n{}", c.log('a'));
        }
        if !c.kubeconfig().exists() {
            return None;
        }
        c.kubectl(&["get", "--raw", "/readyz"])
            .status
            .success()
            .then_some(())
    });
}

fn pod(name: &str, node: &str, command: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "mn", "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "main", "image": "busybox:1.36",
                "imagePullPolicy": "IfNotPresent", "command": ["sh", "-c", command]}],
        },
    })
}

/// busybox httpd on 8080 answering `/` with the pod's name and `/cgi-bin/ip` with the address
/// the request came from.
const SERVE: &str = "mkdir -p /www/cgi-bin && echo pod=$(hostname) > /www/index.html \
    && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho from=$REMOTE_ADDR\\n' > /www/cgi-bin/ip \
    && chmod +x /www/cgi-bin/ip && exec httpd -f -p 8080 -h /www";

/// Runs `script` in the client pod until its output contains `want`; returns the output.
fn from_client(c: &Cluster, what: &str, script: &str, want: &str) -> String {
    from_pod(c, "client", what, script, want)
}

/// Runs `script` in pod `pod` until its output contains `want`; returns the output.
fn from_pod(c: &Cluster, pod: &str, what: &str, script: &str, want: &str) -> String {
    let mut last = String::new();
    let found = wait_for_opt(60, || {
        let out = c.kubectl(&["exec", "-n", "mn", pod, "--", "sh", "-c", script]);
        last = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        last.contains(want).then(|| last.clone())
    });
    found.unwrap_or_else(|| panic!("{what}: no {want:?} in time; last output: {last}"))
}

/// Polls `f` every 500 ms for up to `secs`.
fn wait_for_opt<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    None
}

#[test]
fn pods_on_different_nodes_reach_each_other() {
    let mut c = Cluster::new();
    start_server(&mut c);
    import_busybox(c.dir.path(), &c.data_dir('a'));
    let join = join_args(&c);
    import_busybox(c.dir.path(), &c.data_dir('c'));
    for node in ['b', 'c'] {
        let mut args = vec!["agent".to_owned()];
        args.extend(join.iter().cloned());
        args.extend(["--cluster-cidr".into(), CLUSTER_CIDR.into()]);
        c.spawn(node, &args);
    }
    for node in NODES {
        wait_ready(&c, node);
    }

    // Every node routes to the other two nodes' pod subnets through their addresses.
    let nodes = json(&c.ok_kubectl(&["get", "nodes", "-o", "json"]));
    let cidr_of = |node: char| -> String {
        let name = c.node_name(node);
        nodes["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["metadata"]["name"] == name.as_str())
            .and_then(|n| n["spec"]["podCIDR"].as_str())
            .unwrap_or_else(|| panic!("no podCIDR for {name}"))
            .to_owned()
    };
    for node in NODES {
        for other in NODES.iter().filter(|o| **o != node) {
            let want = format!("{} via {}", cidr_of(*other), c.ip(*other));
            wait_for(&format!("{node}: route {want}"), 30, || {
                c.routes(node).contains(&want).then_some(())
            });
        }
    }

    c.ok_kubectl(&["create", "namespace", "mn"]);
    let web = pod("web", &c.node_name('c'), SERVE);
    let client = pod("client", &c.node_name('a'), SERVE);
    c.create(
        &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            web,
            client,
            {"apiVersion": "v1", "kind": "Service",
             "metadata": {"name": "web", "namespace": "mn"},
             "spec": {"type": "NodePort", "selector": {"app": "web"},
                      "ports": [{"port": 80, "targetPort": 8080}]}},
        ]}),
    );
    let (web_ip, client_ip) = wait_for("both pods running", 90, || {
        let list = json(&c.ok_kubectl(&["get", "pods", "-n", "mn", "-o", "json"]));
        let items = list["items"].as_array()?;
        let running = items.len() == 2 && items.iter().all(|p| p["status"]["phase"] == "Running");
        let ip = |name: &str| {
            let pod = items.iter().find(|p| p["metadata"]["name"] == name)?;
            pod["status"]["podIP"].as_str().map(str::to_owned)
        };
        running.then_some((ip("web")?, ip("client")?))
    });
    assert!(
        web_ip.starts_with(cidr_of('c').trim_end_matches(".0/24")),
        "{web_ip} is not in node c's subnet {}",
        cidr_of('c')
    );

    // The pod's bridge port lets its frames back out (a pod reaching itself via its Service),
    // set through netlink: this node's /sys shows the host's links.
    let ports = run(
        "ip",
        &[
            "-n",
            &c.netns('c'),
            "-d",
            "link",
            "show",
            "master",
            "rudder0",
        ],
    )
    .expect("ip link");
    let ports = String::from_utf8_lossy(&ports.stdout);
    assert!(ports.contains("hairpin on"), "{ports}");

    let get_path = |host: &str, port: &str, path: &str| {
        format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}")
    };
    let get = |host: &str, port: &str| get_path(host, port, "/");
    // By pod IP, through the route between the nodes, both ways, and with the pods' own
    // addresses: traffic inside the cluster range is not masqueraded (on the agents too, which
    // know the range from --cluster-cidr).
    from_client(&c, "pod IP", &get(&web_ip, "8080"), "pod=web");
    let ip_path = "/cgi-bin/ip";
    // httpd listens on IPv6 and sees IPv4 peers as mapped addresses.
    let from_a = format!("from=[::ffff:{client_ip}]");
    from_client(&c, "source", &get_path(&web_ip, "8080", ip_path), &from_a);
    let from_c = format!("from=[::ffff:{web_ip}]");
    from_pod(
        &c,
        "web",
        "source",
        &get_path(&client_ip, "8080", ip_path),
        &from_c,
    );
    // By ClusterIP, through the proxy on node a and the route.
    let svc = json(&c.ok_kubectl(&["get", "service", "-n", "mn", "web", "-o", "json"]));
    let cluster_ip = svc["spec"]["clusterIP"].as_str().expect("a ClusterIP");
    from_client(&c, "ClusterIP", &get(cluster_ip, "80"), "pod=web");
    // By DNS name: every node's DNS server registered its EndpointSlice (as the node).
    let slices = c.ok_kubectl(&["get", "endpointslices", "-n", "kube-system", "-o", "name"]);
    for node in NODES {
        assert!(
            slices.contains(&format!("kube-dns-{}", c.node_name(node))),
            "{slices}"
        );
    }
    let fqdn = "web.mn.svc.cluster.local";
    from_client(&c, "nslookup", &format!("nslookup {fqdn}"), cluster_ip);
    from_client(&c, "DNS name", &get(fqdn, "80"), "pod=web");

    // Traffic leaving the cluster goes out with its node's address (masquerade), on the
    // server's node and on an agent's.
    let outside = std::net::TcpListener::bind((c.gateway().as_str(), 0)).expect("bind");
    outside.set_nonblocking(true).expect("nonblocking");
    let outside_port = outside.local_addr().expect("address").port();
    for (from, node) in [("client", 'a'), ("web", 'c')] {
        // The connection is accepted only after the exec returns: `timeout` ends nc, which
        // would otherwise wait for the host to close.
        let send = format!("echo hi | timeout 5 nc {} {outside_port}", c.gateway());
        let peer = wait_for(&format!("{from}'s connection to the host"), 60, || {
            let _ = c.kubectl(&["exec", "-n", "mn", from, "--", "sh", "-c", &send]);
            outside.accept().ok().map(|(_, peer)| peer.ip().to_string())
        });
        assert_eq!(peer, c.ip(node), "{from} reached the host from {peer}");
    }

    // The NodePort answers on every node's address (from outside the cluster: the host).
    let node_port = svc["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a nodePort");
    for node in NODES {
        let addr: SocketAddr = format!("{}:{node_port}", c.ip(node))
            .parse()
            .expect("address");
        let body = wait_for_opt(30, || http_get(addr).filter(|b| b.contains("pod=web")));
        assert!(body.is_some(), "NodePort {addr} did not answer");
    }

    // A node that goes away takes its route with it.
    let (gone, kept) = (cidr_of('b'), cidr_of('c'));
    c.stop('b');
    c.ok_kubectl(&["delete", "node", &c.node_name('b')]);
    wait_for("node b's route removed on node a", 60, || {
        (!c.routes('a').contains(&gone)).then_some(())
    });
    assert!(c.routes('a').contains(&kept), "{}", c.routes('a'));
}
