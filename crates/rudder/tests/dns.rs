//! End to end, as root with real containers: the node's cluster DNS answers Service, SRV,
//! headless, endpoint-hostname and pod names, NXDOMAIN with the zone's SOA, forwards other names
//! to the node's resolvers (a fake one the test runs); pods get a resolv.conf pointing at the
//! `kube-dns` Service and find another pod's Service by name through it.

mod common;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::node::{import_busybox, wait_for};
use common::{KUBECTLS, Server, json};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};

/// A resolver on 127.x.y.z:53 that answers every question with 192.0.2.1 and counts them;
/// stops when dropped.
struct FakeUpstream {
    addr: Ipv4Addr,
    stop: Arc<AtomicBool>,
    seen: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    fn start(addr: Ipv4Addr) -> Self {
        let socket = UdpSocket::bind((addr, 53)).expect("bind the fake upstream");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let thread = std::thread::spawn({
            let (stop, seen) = (stop.clone(), seen.clone());
            move || {
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok((n, from)) = socket.recv_from(&mut buf) else {
                        continue;
                    };
                    seen.fetch_add(1, Ordering::Relaxed);
                    if let Some(reply) = fake_answer(&buf[..n]) {
                        let _ = socket.send_to(&reply, from);
                    }
                }
            }
        });
        Self {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The answer to `query`: its question, and an A record 192.0.2.1.
fn fake_answer(query: &[u8]) -> Option<Vec<u8>> {
    let q = Message::from_vec(query).ok()?;
    let mut reply = Message::response(q.metadata.id, q.metadata.op_code);
    reply.metadata.recursion_available = true;
    for question in &q.queries {
        reply.add_query(question.clone());
        reply.add_answer(hickory_proto::rr::Record::from_rdata(
            question.name().clone(),
            60,
            RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
    }
    reply.to_vec().ok()
}

/// One question to the DNS server at `server`, over UDP.
fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> std::io::Result<Message> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut q = Message::query();
    q.metadata.recursion_desired = true;
    q.add_query(hickory_proto::op::Query::query(
        Name::from_ascii(name).map_err(std::io::Error::other)?,
        qtype,
    ));
    socket.send_to(&q.to_vec().map_err(std::io::Error::other)?, server)?;
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf)?;
    Message::from_vec(&buf[..n]).map_err(std::io::Error::other)
}

/// The A records of an answer.
fn addresses(m: &Message) -> BTreeSet<String> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// A busybox httpd pod answering with its hostname, labelled `app=<app>`.
fn web_pod(name: &str, app: &str, node: &str, extra: serde_json::Value) -> String {
    let mut spec = serde_json::json!({
        "nodeName": node,
        "terminationGracePeriodSeconds": 1,
        "containers": [{
            "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c",
                "mkdir -p /www && echo pod=$(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"],
        }],
    });
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}}, "spec": spec})
    .to_string()
}

fn pod_ip(s: &Server, k: &str, name: &str) -> String {
    wait_for(&format!("{name} running with an address"), 90, || {
        let p = json(&s.ok_kubectl(k, &["get", "pod", name, "-o", "json"]));
        (p["status"]["phase"] == "Running")
            .then(|| p["status"]["podIP"].as_str().map(str::to_owned))
            .flatten()
    })
}

#[test]
fn cluster_dns_answers_and_pods_use_it() {
    let work = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let upstream = FakeUpstream::start(Ipv4Addr::new(127, 77, (port >> 8) as u8, port as u8));
    let resolv = work.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        format!("nameserver {}\nsearch example.test\n", upstream.addr),
    )
    .expect("write resolv.conf");
    let s = Server::start_with(&["--resolv-conf", resolv.to_str().expect("utf-8 path")]);
    let k = KUBECTLS[KUBECTLS.len() - 1];
    import_busybox(work.path(), &s.data_dir());
    let node = wait_for("the node's pod subnet", 60, || {
        let list = json(&s.ok_kubectl(k, &["get", "nodes", "-o", "json"]));
        let n = &list["items"][0];
        n["spec"]["podCIDR"].as_str()?;
        n["metadata"]["name"].as_str().map(str::to_owned)
    });
    let n = json(&s.ok_kubectl(k, &["get", "node", &node, "-o", "json"]));
    let cidr = n["spec"]["podCIDR"].as_str().expect("podCIDR");
    let net: Ipv4Addr = cidr
        .split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("ip");
    let dns = SocketAddr::from((Ipv4Addr::from(u32::from(net) + 1), 53));

    // The kube-dns Service: tenth address of the range, and this node's listener behind it.
    let svc = json(&s.ok_kubectl(
        k,
        &["get", "svc", "kube-dns", "-n", "kube-system", "-o", "json"],
    ));
    assert_eq!(svc["spec"]["clusterIP"], s.service_ip(10).as_str());
    let slice = wait_for("the node's kube-dns endpoint", 60, || {
        let out = s.kubectl(
            k,
            &[
                "get",
                "endpointslice",
                &format!("kube-dns-{node}"),
                "-n",
                "kube-system",
                "-o",
                "json",
            ],
        );
        out.status
            .success()
            .then(|| json(&String::from_utf8_lossy(&out.stdout)))
    });
    assert_eq!(
        slice["endpoints"][0]["addresses"][0],
        dns.ip().to_string().as_str()
    );

    // Two web pods (one with a hostname in the headless Service's subdomain), a ClusterIP
    // Service and a headless one.
    s.create(
        k,
        None,
        &web_pod("web-1", "web", &node, serde_json::json!({})),
    );
    s.create(
        k,
        None,
        &web_pod(
            "web-2",
            "web",
            &node,
            serde_json::json!({"hostname": "db-0", "subdomain": "web-headless"}),
        ),
    );
    let ports = serde_json::json!([{"name": "http", "port": 80, "targetPort": 8080}]);
    for (name, extra) in [
        ("web", serde_json::json!({})),
        ("web-headless", serde_json::json!({"clusterIP": "None"})),
    ] {
        let mut spec = serde_json::json!({"selector": {"app": "web"}, "ports": ports});
        if let (Some(sp), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
            sp.extend(e.clone());
        }
        s.create(
            k,
            None,
            &serde_json::json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name}, "spec": spec})
            .to_string(),
        );
    }
    let ip1 = pod_ip(&s, k, "web-1");
    let ip2 = pod_ip(&s, k, "web-2");
    let web_ip = json(&s.ok_kubectl(k, &["get", "svc", "web", "-o", "json"]))["spec"]["clusterIP"]
        .as_str()
        .expect("ClusterIP")
        .to_owned();

    // A: the ClusterIP (once the server's watches have the Service).
    let a = wait_for("web's A record", 30, || {
        let m = ask(dns, "web.default.svc.cluster.local.", RecordType::A).ok()?;
        (!m.answers.is_empty()).then_some(m)
    });
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.authoritative);
    assert_eq!(addresses(&a), BTreeSet::from([web_ip.clone()]));

    // SRV of the named port.
    let srv = ask(
        dns,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .expect("srv");
    let targets: Vec<(u16, String)> = srv
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(v) => Some((v.port, v.target.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets,
        [(80, "web.default.svc.cluster.local.".to_owned())],
        "{srv:?}"
    );

    // Headless: the ready pods' addresses, once both endpoints are ready.
    let want = BTreeSet::from([ip1.clone(), ip2.clone()]);
    wait_for("the headless Service's addresses", 60, || {
        let m = ask(
            dns,
            "web-headless.default.svc.cluster.local.",
            RecordType::A,
        )
        .ok()?;
        (addresses(&m) == want).then_some(())
    });
    let host = ask(
        dns,
        "db-0.web-headless.default.svc.cluster.local.",
        RecordType::A,
    )
    .expect("host");
    assert_eq!(addresses(&host), BTreeSet::from([ip2.clone()]));

    // Pod A record.
    let dashed = format!("{}.default.pod.cluster.local.", ip1.replace('.', "-"));
    let pod = ask(dns, &dashed, RecordType::A).expect("pod");
    assert_eq!(addresses(&pod), BTreeSet::from([ip1.clone()]));

    // Unknown names in the zone: NXDOMAIN with the zone's SOA.
    let nx = ask(dns, "nope.default.svc.cluster.local.", RecordType::A).expect("nxdomain");
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        nx.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA && r.name.to_string() == "cluster.local."),
        "{nx:?}"
    );

    // Other names go to the node's resolvers.
    let before = upstream.seen.load(Ordering::Relaxed);
    let fwd = ask(dns, "www.example.test.", RecordType::A).expect("forwarded");
    assert_eq!(addresses(&fwd), BTreeSet::from(["192.0.2.1".to_owned()]));
    assert!(upstream.seen.load(Ordering::Relaxed) > before);

    // From a pod: its resolv.conf, and the Service found by name through kube-dns's ClusterIP.
    s.create(
        k,
        None,
        &web_pod("client", "client", &node, serde_json::json!({})),
    );
    pod_ip(&s, k, "client");
    let conf = s.ok_kubectl(k, &["exec", "client", "--", "cat", "/etc/resolv.conf"]);
    assert!(
        conf.contains(&format!("nameserver {}\n", s.service_ip(10))),
        "{conf}"
    );
    assert!(
        conf.contains(
            "search default.svc.cluster.local svc.cluster.local cluster.local example.test\n"
        ),
        "{conf}"
    );
    assert!(conf.contains("options ndots:5"), "{conf}");
    let hosts = s.ok_kubectl(k, &["exec", "web-2", "--", "cat", "/etc/hosts"]);
    assert!(
        hosts.contains(&format!(
            "{ip2}\tdb-0.web-headless.default.svc.cluster.local\tdb-0"
        )),
        "{hosts}"
    );
    let mut lookup = String::new();
    for _ in 0..30 {
        let out = s.kubectl(
            k,
            &[
                "exec",
                "client",
                "--",
                "busybox",
                "nslookup",
                "web.default.svc.cluster.local",
            ],
        );
        lookup = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        if lookup.contains(&web_ip) {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(lookup.contains(&web_ip), "nslookup from the pod: {lookup}");
    assert!(
        lookup.contains(&s.service_ip(10)),
        "answered by kube-dns: {lookup}"
    );
    let page = wait_for("GET http://web from the pod", 30, || {
        let out = s.kubectl(
            k,
            &[
                "exec",
                "client",
                "--",
                "sh",
                "-c",
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 web 80",
            ],
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("pod=").then_some(text)
    });
    assert!(
        page.contains("pod=web-1") || page.contains("pod=db-0"),
        "{page}"
    );
    drop(upstream);
}
