//! Table tests of the record index against the Kubernetes DNS specification.

use super::*;
use serde_json::{Value, json};

fn svc(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .expect("service")
}

/// A slice of Service `name` in `ns` with port `http`/TCP 8080 and endpoints
/// (address, hostname, ready).
fn slice(ns: &str, name: &str, eps: &[(&str, Option<&str>, Option<bool>)]) -> EndpointSlice {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, host, ready)| {
            let mut e = json!({"addresses": [ip]});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            if let Some(r) = ready {
                e["conditions"] = json!({"ready": r});
            }
            e
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-x"), "namespace": ns,
            "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}, {"port": 9}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

fn pod(ns: &str, ip: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": "p", "namespace": ns},
        "status": {"podIP": ip, "podIPs": [{"ip": ip}]}}))
    .expect("pod")
}

fn index() -> Index {
    let services = [
        svc(
            "default",
            "web",
            json!({"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"], "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"port": 9000}]}),
        ),
        svc(
            "default",
            "db",
            json!({"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}),
        ),
        svc(
            "other",
            "ext",
            json!({"type": "ExternalName", "externalName": "Example.COM."}),
        ),
        svc(
            "other",
            "v6",
            json!({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10"]}),
        ),
    ];
    let slices = [
        slice(
            "default",
            "db",
            &[
                ("10.42.0.5", Some("db-0"), Some(true)),
                ("10.42.0.6", None, None),
                ("10.42.0.7", Some("db-2"), Some(false)),
            ],
        ),
        // A slice of a Service that does not exist, and one without the owner label.
        slice("default", "gone", &[("10.42.0.9", None, None)]),
    ];
    let pods = [pod("default", "10.42.0.5"), pod("other", "10.42.1.8")];
    Index::build("Cluster.Local.", &services, &slices, &pods)
}

fn a(name: &str, ip: &str) -> Record {
    record(name, Data::A(ip.parse().expect("ip")))
}

fn srv(name: &str, port: u16, target: &str) -> Record {
    srv_record(name, port, target)
}

fn answers(v: Vec<Record>) -> Answer {
    found(v)
}

fn with_additionals(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    Answer::Found {
        answers,
        additionals,
    }
}

#[test]
fn lookups() {
    let ix = index();
    let web = "web.default.svc.cluster.local";
    let db = "db.default.svc.cluster.local";
    let cases: Vec<(&str, QType, Answer)> = vec![
        // ClusterIP Service: its address, case-insensitively, with or without the root dot.
        (web, QType::A, answers(vec![a(web, "10.43.0.20")])),
        (
            "WEB.Default.SVC.cluster.local.",
            QType::A,
            answers(vec![a(web, "10.43.0.20")]),
        ),
        (web, QType::Aaaa, answers(vec![])),
        (web, QType::Txt, answers(vec![])),
        (
            "v6.other.svc.cluster.local",
            QType::Aaaa,
            answers(vec![record(
                "v6.other.svc.cluster.local",
                Data::Aaaa("fd00::10".parse().expect("ip")),
            )]),
        ),
        // SRV per named port; unnamed ports have none.
        (
            "_http._tcp.web.default.svc.cluster.local",
            QType::Srv,
            with_additionals(
                vec![srv("_http._tcp.web.default.svc.cluster.local", 80, web)],
                vec![a(web, "10.43.0.20")],
            ),
        ),
        (
            "_dns._udp.web.default.svc.cluster.local",
            QType::Srv,
            with_additionals(
                vec![srv("_dns._udp.web.default.svc.cluster.local", 53, web)],
                vec![a(web, "10.43.0.20")],
            ),
        ),
        (
            "_dns._tcp.web.default.svc.cluster.local",
            QType::Srv,
            Answer::NxDomain,
        ),
        (
            "_nope._tcp.web.default.svc.cluster.local",
            QType::Srv,
            Answer::NxDomain,
        ),
        // SRV of the bare name: every named port.
        (
            web,
            QType::Srv,
            with_additionals(
                vec![srv(web, 80, web), srv(web, 53, web)],
                vec![a(web, "10.43.0.20")],
            ),
        ),
        // Headless: ready endpoints only (unset condition = ready).
        (
            db,
            QType::A,
            answers(vec![a(db, "10.42.0.5"), a(db, "10.42.0.6")]),
        ),
        (
            "db-0.db.default.svc.cluster.local",
            QType::A,
            answers(vec![a("db-0.db.default.svc.cluster.local", "10.42.0.5")]),
        ),
        (
            "10-42-0-6.db.default.svc.cluster.local",
            QType::A,
            answers(vec![a(
                "10-42-0-6.db.default.svc.cluster.local",
                "10.42.0.6",
            )]),
        ),
        (
            "db-2.db.default.svc.cluster.local",
            QType::A,
            Answer::NxDomain,
        ),
        // Endpoint names exist for headless Services only.
        (
            "x.web.default.svc.cluster.local",
            QType::A,
            Answer::NxDomain,
        ),
        // Headless SRV: the endpoint port, one record per ready endpoint, targets by hostname.
        (
            "_http._tcp.db.default.svc.cluster.local",
            QType::Srv,
            with_additionals(
                vec![
                    srv(
                        "_http._tcp.db.default.svc.cluster.local",
                        8080,
                        "db-0.db.default.svc.cluster.local",
                    ),
                    srv(
                        "_http._tcp.db.default.svc.cluster.local",
                        8080,
                        "10-42-0-6.db.default.svc.cluster.local",
                    ),
                ],
                vec![
                    a("db-0.db.default.svc.cluster.local", "10.42.0.5"),
                    a("10-42-0-6.db.default.svc.cluster.local", "10.42.0.6"),
                ],
            ),
        ),
        // ExternalName: an alias for every type.
        (
            "ext.other.svc.cluster.local",
            QType::A,
            answers(vec![record(
                "ext.other.svc.cluster.local",
                Data::Cname("example.com".into()),
            )]),
        ),
        // Pods: verified against the namespace's pods.
        (
            "10-42-0-5.default.pod.cluster.local",
            QType::A,
            answers(vec![a("10-42-0-5.default.pod.cluster.local", "10.42.0.5")]),
        ),
        (
            "10-42-1-8.default.pod.cluster.local",
            QType::A,
            Answer::NxDomain,
        ),
        (
            "10-42-1-8.other.pod.cluster.local",
            QType::Aaaa,
            answers(vec![]),
        ),
        (
            "not-an-ip.other.pod.cluster.local",
            QType::A,
            Answer::NxDomain,
        ),
        // Unknown names in the zone: NXDOMAIN; the zone's own structure exists.
        ("nope.default.svc.cluster.local", QType::A, Answer::NxDomain),
        ("web.nope.svc.cluster.local", QType::A, Answer::NxDomain),
        ("nope.svc.cluster.local", QType::A, Answer::NxDomain),
        ("default.svc.cluster.local", QType::A, answers(vec![])),
        ("svc.cluster.local", QType::A, answers(vec![])),
        ("foo.cluster.local", QType::A, Answer::NxDomain),
        (
            "web.default.svc.cluster.local.default.svc.cluster.local",
            QType::A,
            Answer::NxDomain,
        ),
        (
            "cluster.local",
            QType::Soa,
            answers(vec![record("cluster.local", Data::Soa)]),
        ),
        (
            "dns-version.cluster.local",
            QType::Txt,
            answers(vec![record(
                "dns-version.cluster.local",
                Data::Txt("1.1.0".into()),
            )]),
        ),
        // Reverse lookups of ClusterIPs and named headless endpoints; others are forwarded.
        (
            "20.0.43.10.in-addr.arpa",
            QType::Ptr,
            answers(vec![record(
                "20.0.43.10.in-addr.arpa",
                Data::Ptr(web.into()),
            )]),
        ),
        (
            "5.0.42.10.in-addr.arpa",
            QType::Ptr,
            answers(vec![record(
                "5.0.42.10.in-addr.arpa",
                Data::Ptr("db-0.db.default.svc.cluster.local".into()),
            )]),
        ),
        ("8.8.8.8.in-addr.arpa", QType::Ptr, Answer::Forward),
        // Outside the cluster domain: forwarded.
        ("example.com", QType::A, Answer::Forward),
        ("local", QType::A, Answer::Forward),
        ("xcluster.local", QType::A, Answer::Forward),
    ];
    for (name, qtype, want) in cases {
        assert_eq!(ix.lookup(name, qtype), want, "{name} {qtype:?}");
    }
}

#[test]
fn objects_without_names_or_addresses_are_skipped() {
    let services = [
        serde_json::from_value::<Service>(json!({"metadata": {"name": "x"}, "spec": {}}))
            .expect("service"),
        svc("default", "noext", json!({"type": "ExternalName"})),
    ];
    let ix = Index::build("cluster.local", &services, &[], &[]);
    assert_eq!(
        ix.lookup("noext.default.svc.cluster.local", QType::A),
        Answer::NxDomain
    );
    assert_eq!(ix.zone(), "cluster.local");
}

#[test]
fn other_zone() {
    let services = [svc("a", "b", json!({"clusterIP": "10.0.0.1"}))];
    let ix = Index::build("corp.example", &services, &[], &[]);
    assert_eq!(
        ix.lookup("b.a.svc.corp.example", QType::A),
        answers(vec![a("b.a.svc.corp.example", "10.0.0.1")])
    );
    assert_eq!(
        ix.lookup("b.a.svc.cluster.local", QType::A),
        Answer::Forward
    );
}
