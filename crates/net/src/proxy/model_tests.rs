//! Table tests of the desired ruleset.

use super::*;
use serde_json::{Value, json};

fn node() -> NodeInfo {
    NodeInfo {
        name: "n1".into(),
        cluster_cidr: "10.42.0.0/16".parse().expect("cidr"),
    }
}

fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }))
    .expect("service")
}

/// A slice for Service `name` with port `http` 8080 and endpoints (ip, node, ready, serving,
/// terminating).
fn slice(name: &str, eps: &[(&str, &str, bool, bool, bool)]) -> EndpointSlice {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, node, ready, serving, terminating)| {
            json!({"addresses": [ip], "nodeName": node,
                "conditions": {"ready": ready, "serving": serving, "terminating": terminating}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": format!("{name}-abc"), "namespace": "ns",
            "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    }))
    .expect("slice")
}

fn web(extra: Value) -> Service {
    let mut spec = json!({"clusterIP": "10.43.0.5",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    svc("web", spec)
}

/// (ip, node, ready, serving, terminating)
type Ep = (&'static str, &'static str, bool, bool, bool);

const A: (&str, &str, bool, bool, bool) = ("10.42.0.2", "n1", true, true, false);
const B: (&str, &str, bool, bool, bool) = ("10.42.1.3", "n2", true, true, false);
const A_UNREADY: (&str, &str, bool, bool, bool) = ("10.42.0.2", "n1", false, false, false);
const A_DRAINING: (&str, &str, bool, bool, bool) = ("10.42.0.2", "n1", false, true, true);

fn element<'a>(rs: &'a Ruleset, map: &str, key: &str) -> Option<&'a str> {
    rs.maps[map].elements.get(key).map(String::as_str)
}

fn rules<'a>(rs: &'a Ruleset, chain: &str) -> &'a [String] {
    rs.chains.get(chain).map_or(&[], |c| c.rules.as_slice())
}

const KEY: &str = "10.43.0.5 . tcp . 80";
const SVC: &str = "svc-ns/web/tcp/http";
const EP_A: &str = "ep-ns/web/tcp/http__10.42.0.2/8080";
const EP_B: &str = "ep-ns/web/tcp/http__10.42.1.3/8080";

#[test]
fn cluster_ip_services() {
    struct Case {
        what: &'static str,
        svc: Service,
        eps: Vec<(&'static str, &'static str, bool, bool, bool)>,
        service_ip: Option<&'static str>,
        no_endpoint: Option<&'static str>,
        pick: Option<&'static str>,
    }
    let cases = vec![
        Case {
            what: "two ready endpoints: random pick over both",
            svc: web(json!({})),
            eps: vec![A, B],
            service_ip: Some("goto svc-ns/web/tcp/http"),
            no_endpoint: None,
            pick: Some(
                "numgen random mod 2 vmap { 0 : goto ep-ns/web/tcp/http__10.42.0.2/8080, 1 : goto ep-ns/web/tcp/http__10.42.1.3/8080 }",
            ),
        },
        Case {
            what: "an unready endpoint is left out",
            svc: web(json!({})),
            eps: vec![A_UNREADY, B],
            service_ip: Some("goto svc-ns/web/tcp/http"),
            no_endpoint: None,
            pick: Some("numgen random mod 1 vmap { 0 : goto ep-ns/web/tcp/http__10.42.1.3/8080 }"),
        },
        Case {
            what: "no endpoints: reject",
            svc: web(json!({})),
            eps: vec![],
            service_ip: None,
            no_endpoint: Some("goto reject-chain"),
            pick: None,
        },
        Case {
            what: "only unready endpoints: reject",
            svc: web(json!({})),
            eps: vec![A_UNREADY],
            service_ip: None,
            no_endpoint: Some("goto reject-chain"),
            pick: None,
        },
        Case {
            what: "only terminating but serving endpoints: used as a fallback",
            svc: web(json!({})),
            eps: vec![A_DRAINING],
            service_ip: Some("goto svc-ns/web/tcp/http"),
            no_endpoint: None,
            pick: Some("numgen random mod 1 vmap { 0 : goto ep-ns/web/tcp/http__10.42.0.2/8080 }"),
        },
        Case {
            what: "internalTrafficPolicy Local: only the local endpoint",
            svc: web(json!({"internalTrafficPolicy": "Local"})),
            eps: vec![A, B],
            service_ip: Some("goto local-ns/web/tcp/http"),
            no_endpoint: None,
            pick: None,
        },
        Case {
            what: "internalTrafficPolicy Local without a local endpoint: drop",
            svc: web(json!({"internalTrafficPolicy": "Local"})),
            eps: vec![B],
            service_ip: None,
            no_endpoint: Some("drop"),
            pick: None,
        },
    ];
    for c in cases {
        let rs = desired(&[c.svc], &[slice("web", &c.eps)], &node());
        assert_eq!(element(&rs, "service-ips", KEY), c.service_ip, "{}", c.what);
        assert_eq!(
            element(&rs, "no-endpoint-services", KEY),
            c.no_endpoint,
            "{}",
            c.what
        );
        if let Some(pick) = c.pick {
            assert_eq!(
                rules(&rs, SVC),
                ["ip saddr != 10.42.0.0/16 jump mark-for-masquerade", pick],
                "{}",
                c.what
            );
        }
    }
}

#[test]
fn endpoint_chains_dnat_and_mark_hairpin() {
    let rs = desired(&[web(json!({}))], &[slice("web", &[A])], &node());
    assert_eq!(
        rules(&rs, EP_A),
        [
            "ip saddr 10.42.0.2 jump mark-for-masquerade",
            "meta l4proto tcp dnat to 10.42.0.2:8080"
        ]
    );
    let local = rules(&rs, "local-ns/web/tcp/http");
    assert!(local.is_empty(), "no local chain without a Local policy");
}

#[test]
fn session_affinity() {
    let svc = web(json!({"sessionAffinity": "ClientIP",
        "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
    let rs = desired(&[svc], &[slice("web", &[A, B])], &node());
    let set = "aff-ns/web/tcp/http__10.42.0.2/8080";
    assert_eq!(
        rs.sets.get(set).map(String::as_str),
        Some("type ipv4_addr ; flags dynamic,timeout ; timeout 60s")
    );
    assert_eq!(rules(&rs, EP_A)[1], format!("update @{set} {{ ip saddr }}"));
    let svc_rules = rules(&rs, SVC);
    assert_eq!(svc_rules[1], format!("ip saddr @{set} goto {EP_A}"));
    assert_eq!(
        svc_rules[2],
        "ip saddr @aff-ns/web/tcp/http__10.42.1.3/8080 goto ep-ns/web/tcp/http__10.42.1.3/8080"
    );
    assert!(svc_rules[3].starts_with("numgen random mod 2"));
    let default = web(json!({"sessionAffinity": "ClientIP"}));
    let rs = desired(&[default], &[slice("web", &[A])], &node());
    assert!(rs.sets.values().all(|d| d.ends_with("timeout 10800s")));
}

#[test]
fn node_ports() {
    let np = |extra: Value| {
        let mut e = json!({"type": "NodePort",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]});
        if let (Some(s), Some(x)) = (e.as_object_mut(), extra.as_object()) {
            s.extend(x.clone());
        }
        web(e)
    };
    let ext = "ext-ns/web/tcp/http";
    // (what, service, endpoints, service-nodeports element, no-endpoint-nodeports element,
    // the external chain's rules)
    type Case<'a> = (
        &'a str,
        Service,
        Vec<Ep>,
        Option<&'a str>,
        Option<&'a str>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "cluster policy: masquerade, any endpoint",
            np(json!({})),
            vec![A, B],
            Some("goto ext-ns/web/tcp/http"),
            None,
            vec!["jump mark-for-masquerade", "goto svc-ns/web/tcp/http"],
        ),
        (
            "local policy: local endpoints, source kept; pods and the node use any",
            np(json!({"externalTrafficPolicy": "Local"})),
            vec![A, B],
            Some("goto ext-ns/web/tcp/http"),
            None,
            vec![
                "ip saddr 10.42.0.0/16 goto svc-ns/web/tcp/http",
                "fib saddr type local jump mark-for-masquerade",
                "fib saddr type local goto svc-ns/web/tcp/http",
                "goto local-ns/web/tcp/http",
            ],
        ),
        (
            "local policy without a local endpoint: outside traffic dropped",
            np(json!({"externalTrafficPolicy": "Local"})),
            vec![B],
            Some("goto ext-ns/web/tcp/http"),
            None,
            vec![
                "ip saddr 10.42.0.0/16 goto svc-ns/web/tcp/http",
                "fib saddr type local jump mark-for-masquerade",
                "fib saddr type local goto svc-ns/web/tcp/http",
                "drop",
            ],
        ),
        (
            "no endpoints: reject",
            np(json!({})),
            vec![],
            None,
            Some("goto reject-chain"),
            vec![],
        ),
        (
            "a ClusterIP Service's nodePort field is ignored",
            web(json!({"ports": [{"name": "http", "port": 80, "nodePort": 30080}]})),
            vec![A],
            None,
            None,
            vec![],
        ),
    ];
    for (what, svc, eps, nodeport, no_endpoint, ext_rules) in cases {
        let rs = desired(&[svc], &[slice("web", &eps)], &node());
        assert_eq!(
            element(&rs, "service-nodeports", "tcp . 30080"),
            nodeport,
            "{what}"
        );
        assert_eq!(
            element(&rs, "no-endpoint-nodeports", "tcp . 30080"),
            no_endpoint,
            "{what}"
        );
        assert_eq!(rules(&rs, ext), ext_rules.as_slice(), "{what}");
    }
    let rs = desired(
        &[np(json!({"externalTrafficPolicy": "Local"}))],
        &[slice("web", &[A, B])],
        &node(),
    );
    assert_eq!(
        rules(&rs, "local-ns/web/tcp/http"),
        [format!("numgen random mod 1 vmap {{ 0 : goto {EP_A} }}")]
    );
    assert!(
        rs.chains.contains_key(EP_B),
        "cluster chains keep every endpoint"
    );
}

#[test]
fn services_left_alone() {
    let cases = vec![
        (
            "headless",
            svc("h", json!({"clusterIP": "None", "ports": [{"port": 80}]})),
        ),
        (
            "ExternalName",
            svc(
                "x",
                json!({"type": "ExternalName", "externalName": "example.com"}),
            ),
        ),
        ("no address yet", svc("p", json!({"ports": [{"port": 80}]}))),
    ];
    let empty = desired(&[], &[], &node());
    for (what, s) in cases {
        assert_eq!(desired(&[s], &[slice("h", &[A])], &node()), empty, "{what}");
    }
}

#[test]
fn slices_are_matched_by_service_port_name_and_protocol() {
    let dns = svc(
        "dns",
        json!({"clusterIP": "10.43.0.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
    );
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "dns-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 1053, "protocol": "UDP"}, {"name": "dns-tcp", "port": 1054, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.42.0.9"]}],
    }))
    .expect("slice");
    let other_ns: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "dns-2", "namespace": "other", "labels": {"kubernetes.io/service-name": "dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 1053, "protocol": "UDP"}],
        "endpoints": [{"addresses": ["10.42.0.99"]}],
    }))
    .expect("slice");
    let rs = desired(&[dns], &[slice, other_ns], &node());
    assert_eq!(
        rules(&rs, "ep-ns/dns/udp/dns__10.42.0.9/1053")
            .last()
            .map(String::as_str),
        Some("meta l4proto udp dnat to 10.42.0.9:1053")
    );
    assert_eq!(
        rules(&rs, "ep-ns/dns/tcp/dns-tcp__10.42.0.9/1054")
            .last()
            .map(String::as_str),
        Some("meta l4proto tcp dnat to 10.42.0.9:1054")
    );
    assert!(!rs.chains.keys().any(|c| c.contains("10.42.0.99")));
    assert_eq!(
        element(&rs, "service-ips", "10.43.0.10 . udp . 53"),
        Some("goto svc-ns/dns/udp/dns")
    );
}

#[test]
fn pod_egress_is_masqueraded() {
    let rs = desired(&[], &[], &node());
    assert_eq!(
        rules(&rs, "nat-postrouting"),
        [
            "jump masquerading",
            "ip saddr 10.42.0.0/16 ip daddr != 10.42.0.0/16 masquerade"
        ]
    );
}

#[test]
fn an_endpoint_going_unready_changes_only_its_service() {
    let other = svc(
        "other",
        json!({"clusterIP": "10.43.0.6", "ports": [{"name": "http", "port": 80}]}),
    );
    let before = desired(
        &[web(json!({})), other.clone()],
        &[slice("web", &[A, B]), slice("other", &[B])],
        &node(),
    );
    let after = desired(
        &[web(json!({})), other],
        &[slice("web", &[A_UNREADY, B]), slice("other", &[B])],
        &node(),
    );
    let script = super::super::ruleset::diff(&crate::nft::Table::ip("t", "test"), &before, &after);
    assert_eq!(
        script,
        format!(
            "flush chain ip t {SVC}\nadd rule ip t {SVC} ip saddr != 10.42.0.0/16 jump mark-for-masquerade\nadd rule ip t {SVC} numgen random mod 1 vmap {{ 0 : goto {EP_B} }}\nflush chain ip t {EP_A}\ndelete chain ip t {EP_A}\n"
        )
    );
}
