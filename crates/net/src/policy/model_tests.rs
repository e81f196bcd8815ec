//! Tables of cases for the NetworkPolicy model and its nftables rules: a small cluster of pods
//! in two namespaces, a policy set per case, and the connections it must allow and refuse.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};

use super::model::{self, Allow, Inputs, PodPolicy, Proto};
use super::rules;
use crate::nft::{self, Table, ruleset};

fn pod(ns: &str, name: &str, ip: &str, node: &str, labels: Value, ports: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i", "ports": ports}]},
        "status": {"podIP": ip, "phase": "Running"},
    }))
    .expect("pod")
}

fn cluster() -> (Vec<Pod>, Vec<Namespace>, Vec<EndpointSlice>) {
    let http = json!([{"name": "http", "containerPort": 8080}, {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]);
    let mut pods = vec![
        pod(
            "prod",
            "web",
            "10.0.0.10",
            "n1",
            json!({"app": "web"}),
            http,
        ),
        pod(
            "prod",
            "client",
            "10.0.0.11",
            "n1",
            json!({"app": "client"}),
            json!([]),
        ),
        pod(
            "prod",
            "other",
            "10.0.1.12",
            "n2",
            json!({"app": "other"}),
            json!([]),
        ),
        pod(
            "dev",
            "client",
            "10.0.1.11",
            "n2",
            json!({"app": "client"}),
            json!([]),
        ),
        pod(
            "dev",
            "web",
            "10.0.0.20",
            "n1",
            json!({"app": "web"}),
            json!([{"name": "http", "containerPort": 80}]),
        ),
    ];
    // Neither a host-network pod nor a finished one is a peer or a target.
    let mut host = pod(
        "prod",
        "host",
        "192.168.1.5",
        "n1",
        json!({"app": "client"}),
        json!([]),
    );
    if let Some(s) = host.spec.as_mut() {
        s.host_network = Some(true);
    }
    let mut done = pod(
        "prod",
        "done",
        "10.0.0.99",
        "n1",
        json!({"app": "client"}),
        json!([]),
    );
    if let Some(s) = done.status.as_mut() {
        s.phase = Some("Succeeded".into());
    }
    pods.extend([host, done]);
    let namespaces = ["prod", "dev", "kube-system"]
        .iter()
        .map(|n| {
            let labels = match *n {
                "prod" => json!({"env": "prod"}),
                "dev" => json!({"env": "dev"}),
                _ => json!({}),
            };
            serde_json::from_value(json!({"metadata": {"name": n, "labels": labels}}))
                .expect("namespace")
        })
        .collect();
    let dns = serde_json::from_value(json!({
        "metadata": {"name": "kube-dns-n1", "namespace": "kube-system",
            "labels": {"kubernetes.io/service-name": "kube-dns"}},
        "addressType": "IPv4",
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1"}],
    }))
    .expect("slice");
    (pods, namespaces, vec![dns])
}

fn policy(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": spec}))
        .expect("policy")
}

fn desired(policies: &[NetworkPolicy]) -> BTreeMap<String, PodPolicy> {
    let (pods, namespaces, dns) = cluster();
    model::desired(&Inputs {
        node: "n1",
        pods: &pods,
        namespaces: &namespaces,
        policies,
        dns_slices: &dns,
    })
}

/// Whether `allows` (a direction of a pod; `None`: not isolated) lets traffic with `peer` on
/// `proto`/`port` through, reading the model the way the rules do.
fn passes(allows: Option<&Vec<Allow>>, peer: &str, proto: Proto, port: u16) -> bool {
    let Some(allows) = allows else { return true };
    let ip: Ipv4Addr = peer.parse().expect("ip");
    allows.iter().any(|a| {
        let peer_ok = a.peers.all
            || a.peers.pods.as_ref().is_some_and(|p| p.contains(&ip))
            || a.peers
                .blocks
                .as_ref()
                .is_some_and(|b| b.iter().any(|(s, e)| (*s..=*e).contains(&u32::from(ip))));
        let port_ok = a.ports.as_ref().is_none_or(|ps| {
            ps.iter()
                .any(|p| p.proto == proto && p.ports.is_none_or(|(s, e)| (s..=e).contains(&port)))
        });
        peer_ok && port_ok
    })
}

/// A check: pod (local, `ns/name`), direction (`in`: `peer` connects to the pod; `out`: the pod
/// connects to `peer`), protocol, port, allowed.
type Check = (&'static str, &'static str, &'static str, Proto, u16, bool);

const TCP: Proto = Proto::Tcp;
const UDP: Proto = Proto::Udp;

#[test]
fn policies_allow_what_they_should_and_nothing_more() {
    let cases: Vec<(&str, Vec<NetworkPolicy>, Vec<Check>)> = vec![
        (
            "no policy: nothing isolated",
            vec![],
            vec![
                ("prod/web", "in", "10.9.9.9", TCP, 1, true),
                ("prod/web", "out", "1.1.1.1", UDP, 53, true),
            ],
        ),
        (
            "default deny ingress: all in refused, out untouched, other pods untouched",
            vec![policy("prod", "deny", json!({"podSelector": {}}))],
            vec![
                ("prod/web", "in", "10.0.0.11", TCP, 8080, false),
                ("prod/client", "in", "10.0.0.10", TCP, 80, false),
                ("prod/web", "out", "10.0.1.11", TCP, 80, true),
                ("dev/web", "in", "10.0.0.11", TCP, 80, true),
            ],
        ),
        (
            "podSelector peer: the selected client in, another not",
            vec![policy(
                "prod",
                "web",
                json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}),
            )],
            vec![
                ("prod/web", "in", "10.0.0.11", TCP, 8080, true),
                ("prod/web", "in", "10.0.0.11", UDP, 9, true),
                ("prod/web", "in", "10.0.1.12", TCP, 8080, false),
                // Same labels in another namespace: a podSelector alone means this namespace.
                ("prod/web", "in", "10.0.1.11", TCP, 8080, false),
                // The finished pod's old address is nobody's.
                ("prod/web", "in", "10.0.0.99", TCP, 8080, false),
                ("prod/client", "in", "10.0.0.10", TCP, 80, true),
            ],
        ),
        (
            "namespaceSelector alone: every pod of the namespace",
            vec![policy(
                "prod",
                "web",
                json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"env": "dev"}}}]}]}),
            )],
            vec![
                ("prod/web", "in", "10.0.1.11", TCP, 8080, true),
                ("prod/web", "in", "10.0.0.20", TCP, 8080, true),
                ("prod/web", "in", "10.0.0.11", TCP, 8080, false),
            ],
        ),
        (
            "namespaceSelector and podSelector in one peer: both must match",
            vec![policy(
                "prod",
                "web",
                json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dev"}},
                    "podSelector": {"matchLabels": {"app": "client"}}}]}]}),
            )],
            vec![
                ("prod/web", "in", "10.0.1.11", TCP, 8080, true),
                ("prod/web", "in", "10.0.0.20", TCP, 8080, false),
                ("prod/web", "in", "10.0.0.11", TCP, 8080, false),
            ],
        ),
        (
            "two peers in one rule: either (OR)",
            vec![policy(
                "prod",
                "web",
                json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [
                    {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}},
                    {"podSelector": {"matchLabels": {"app": "client"}}}]}]}),
            )],
            vec![
                ("prod/web", "in", "10.0.1.11", TCP, 8080, true),
                ("prod/web", "in", "10.0.0.11", TCP, 8080, true),
                ("prod/web", "in", "10.0.1.12", TCP, 8080, false),
            ],
        ),
        (
            "ports: numeric, named (the target's), endPort range, protocol",
            vec![policy(
                "prod",
                "web",
                json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"ports": [
                    {"port": 80},
                    {"port": "http"},
                    {"port": 9000, "endPort": 9010},
                    {"protocol": "UDP", "port": "dns"},
                    {"port": "nope"}]}]}),
            )],
            vec![
                ("prod/web", "in", "10.0.1.12", TCP, 80, true),
                ("prod/web", "in", "10.0.1.12", TCP, 8080, true),
                ("prod/web", "in", "10.0.1.12", TCP, 9005, true),
                ("prod/web", "in", "10.0.1.12", TCP, 9010, true),
                ("prod/web", "in", "10.0.1.12", TCP, 9011, false),
                ("prod/web", "in", "10.0.1.12", UDP, 80, false),
                ("prod/web", "in", "10.0.1.12", UDP, 5353, true),
                ("prod/web", "in", "10.0.1.12", TCP, 5353, false),
                ("prod/web", "in", "10.0.1.12", TCP, 81, false),
            ],
        ),
        (
            "a named port only some targets have: the others allow nothing by it",
            vec![policy(
                "prod",
                "all",
                json!({
                "podSelector": {},
                "ingress": [{"ports": [{"port": "http"}]}]}),
            )],
            vec![
                ("prod/web", "in", "10.0.1.12", TCP, 8080, true),
                ("prod/client", "in", "10.0.1.12", TCP, 8080, false),
                ("prod/client", "in", "10.0.1.12", TCP, 80, false),
            ],
        ),
        (
            "ipBlock with except",
            vec![policy(
                "prod",
                "web",
                json!({
                "podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
                    "except": ["10.0.1.0/24", "10.0.0.11/32"]}}]}]}),
            )],
            vec![
                ("prod/web", "in", "10.0.0.20", TCP, 1, true),
                ("prod/web", "in", "10.0.255.255", TCP, 1, true),
                ("prod/web", "in", "10.0.1.11", TCP, 1, false),
                ("prod/web", "in", "10.0.0.11", TCP, 1, false),
                ("prod/web", "in", "10.1.0.1", TCP, 1, false),
            ],
        ),
        (
            "two policies: the union of their rules",
            vec![
                policy(
                    "prod",
                    "a",
                    json!({"podSelector": {"matchLabels": {"app": "web"}},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                        "ports": [{"port": 80}]}]}),
                ),
                policy(
                    "prod",
                    "b",
                    json!({"podSelector": {},
                    "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "other"}}}]}]}),
                ),
            ],
            vec![
                ("prod/web", "in", "10.0.0.11", TCP, 80, true),
                ("prod/web", "in", "10.0.0.11", TCP, 81, false),
                ("prod/web", "in", "10.0.1.12", TCP, 81, true),
                ("prod/client", "in", "10.0.1.12", TCP, 81, true),
                ("prod/client", "in", "10.0.0.10", TCP, 81, false),
            ],
        ),
        (
            "allow-all ingress rule ({}) beside a deny: everything in",
            vec![
                policy("prod", "deny", json!({"podSelector": {}})),
                policy("prod", "all", json!({"podSelector": {}, "ingress": [{}]})),
            ],
            vec![("prod/web", "in", "8.8.8.8", UDP, 7, true)],
        ),
        (
            "egress rules default policyTypes to both; ingress isolated with no rule",
            vec![policy(
                "prod",
                "out",
                json!({"podSelector": {"matchLabels": {"app": "client"}},
                "egress": [{"to": [{"ipBlock": {"cidr": "10.0.1.0/24"}}]}]}),
            )],
            vec![
                ("prod/client", "out", "10.0.1.11", TCP, 80, true),
                ("prod/client", "out", "10.0.0.10", TCP, 80, false),
                ("prod/client", "out", "1.1.1.1", UDP, 53, false),
                ("prod/client", "in", "10.0.0.10", TCP, 80, false),
            ],
        ),
        (
            "egress only (policyTypes): ingress stays open; DNS to kube-dns by label",
            vec![policy(
                "prod",
                "out",
                json!({"podSelector": {"matchLabels": {"app": "client"}},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                     "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": "dns-tcp"}]}]}),
            )],
            vec![
                ("prod/client", "in", "10.0.0.10", TCP, 80, true),
                ("prod/client", "out", "10.0.0.1", UDP, 53, true),
                ("prod/client", "out", "10.0.0.1", TCP, 53, true),
                ("prod/client", "out", "10.0.0.1", TCP, 80, false),
                ("prod/client", "out", "10.0.0.10", UDP, 53, false),
            ],
        ),
        (
            "egress named port: resolved on each destination pod",
            vec![policy(
                "prod",
                "out",
                json!({"podSelector": {"matchLabels": {"app": "client"}},
                "policyTypes": ["Egress"],
                "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}],
                            "ports": [{"port": "http"}]}]}),
            )],
            vec![
                ("prod/client", "out", "10.0.0.10", TCP, 8080, true),
                ("prod/client", "out", "10.0.0.10", TCP, 80, false),
                ("prod/client", "out", "10.0.0.20", TCP, 80, true),
                ("prod/client", "out", "10.0.0.20", TCP, 8080, false),
            ],
        ),
        (
            "egress deny-all with empty egress list and explicit type",
            vec![policy(
                "prod",
                "deny",
                json!({"podSelector": {}, "policyTypes": ["Egress"]}),
            )],
            vec![
                ("prod/web", "out", "10.0.0.1", UDP, 53, false),
                ("prod/web", "in", "10.0.0.11", TCP, 8080, true),
            ],
        ),
        (
            "a policy of another namespace selects nothing here",
            vec![policy("dev", "deny", json!({"podSelector": {}}))],
            vec![
                ("prod/web", "in", "10.0.0.11", TCP, 8080, true),
                ("dev/web", "in", "10.0.0.11", TCP, 80, false),
            ],
        ),
    ];
    for (what, policies, checks) in cases {
        let model = desired(&policies);
        assert!(
            !model.contains_key("prod/other") && !model.contains_key("prod/host"),
            "{what}: only local pods are targets: {model:?}"
        );
        for (pod, dir, peer, proto, port, want) in checks {
            let pp = model.get(pod);
            let allows = match dir {
                "in" => pp.and_then(|p| p.ingress.as_ref()),
                _ => pp.and_then(|p| p.egress.as_ref()),
            };
            assert_eq!(
                passes(allows, peer, proto, port),
                want,
                "{what}: {pod} {dir} {peer} {proto:?}/{port}\n{pp:#?}"
            );
        }
    }
}

#[test]
fn ranges_merge_and_exclude() {
    assert_eq!(
        model::merge_ranges(vec![(5, 9), (1, 3), (4, 4), (20, 30), (25, 26)]),
        vec![(1, 9), (20, 30)]
    );
    assert_eq!(
        model::merge_ranges(vec![(0, u32::MAX), (7, 8)]),
        vec![(0, u32::MAX)]
    );
}

#[test]
fn rules_for_a_policy() {
    let model = desired(&[policy(
        "prod",
        "web",
        json!({
            "podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [
                {"from": [{"podSelector": {"matchLabels": {"app": "client"}}},
                          {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                 "ports": [{"port": 80}, {"port": 9000, "endPort": 9010}, {"protocol": "UDP"}]}],
        }),
    )]);
    let rs = rules::ruleset(&model);
    let chain = &rs.chains["ingress-prod/web"];
    assert_eq!(
        chain.rules,
        vec![
            "ip saddr @pods-prod/web/in0 tcp dport { 80, 9000-9010 } return",
            "ip saddr @pods-prod/web/in0 meta l4proto udp return",
            "ip saddr @blocks-prod/web/in0 tcp dport { 80, 9000-9010 } return",
            "ip saddr @blocks-prod/web/in0 meta l4proto udp return",
            "counter drop",
        ]
    );
    assert_eq!(
        rs.maps["ingress-pods"].elements,
        BTreeMap::from([("10.0.0.10".into(), "jump ingress-prod/web".into())])
    );
    assert!(rs.maps["egress-pods"].elements.is_empty());
    assert_eq!(
        rs.set_elements["pods-prod/web/in0"]
            .iter()
            .collect::<Vec<_>>(),
        vec!["10.0.0.11"]
    );
    assert_eq!(
        rs.set_elements["blocks-prod/web/in0"]
            .iter()
            .collect::<Vec<_>>(),
        vec!["192.168.0.0-192.168.0.255", "192.168.2.0-192.168.255.255"]
    );
    assert!(
        rs.chains["filter-forward"].rules[0].starts_with("ct state established,related accept")
    );
}

#[test]
fn a_new_pod_changes_set_elements_not_chains() {
    let policies = [policy(
        "prod",
        "web",
        json!({
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}]}]}),
    )];
    let (mut pods, namespaces, dns) = cluster();
    let inputs = |pods: &[Pod]| {
        rules::ruleset(&model::desired(&Inputs {
            node: "n1",
            pods,
            namespaces: &namespaces,
            policies: &policies,
            dns_slices: &dns,
        }))
    };
    let before = inputs(&pods);
    pods.push(pod(
        "prod",
        "client2",
        "10.0.1.50",
        "n2",
        json!({"app": "client"}),
        json!([]),
    ));
    let after = inputs(&pods);
    let script = ruleset::diff(&Table::inet("t", "test"), &before, &after);
    assert_eq!(
        script,
        "add element inet t pods-prod/web/in0 { 10.0.1.50 }\n"
    );
}

#[test]
fn long_names_are_hashed() {
    let long = "x".repeat(250);
    let model = desired(&[policy(
        "prod",
        &long,
        json!({"podSelector": {},
        "ingress": [{"from": [{"podSelector": {}}]}]}),
    )]);
    let rs = rules::ruleset(&model);
    assert!(
        rs.sets.keys().all(|k| k.len() <= 200),
        "{:?}",
        rs.sets.keys()
    );
}

/// Deletes the test's table however the test ends.
struct TableGuard(String);
impl Drop for TableGuard {
    fn drop(&mut self) {
        let _ = nft::delete_table(&super::table(&self.0));
    }
}

/// The scripts are real nft: written to the kernel, then changed by diffs (root, nft).
#[test]
fn nft_accepts_full_and_diff_scripts() {
    let name = format!("rudder-np-unit-{}", std::process::id());
    let _guard = TableGuard(name.clone());
    let table = super::table(&name);
    let first = rules::ruleset(&desired(&[policy(
        "prod",
        "web",
        json!({
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}},
                              {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                     "ports": [{"port": "http"}, {"protocol": "SCTP", "port": 9}]}],
        "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": "dns"}]}]}),
    )]));
    nft::apply(&ruleset::full(&table, &first))
        .unwrap_or_else(|e| panic!("{e}\n{}", ruleset::full(&table, &first)));
    let second = rules::ruleset(&desired(&[policy(
        "prod",
        "web",
        json!({
        "podSelector": {},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.0/24"]}}]}]}),
    )]));
    for (from, to) in [(&first, &second), (&second, &first)] {
        let script = ruleset::diff(&table, from, to);
        assert!(
            !script.contains("add table"),
            "a diff, not a rewrite: {script}"
        );
        nft::apply(&script).unwrap_or_else(|e| panic!("{e}\n{script}"));
    }
    let listed = std::process::Command::new("nft")
        .args(["list", "table", "inet", &name])
        .output()
        .expect("nft list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("jump egress-prod/web"), "{listed}");
    assert!(listed.contains("sctp dport 9"), "{listed}");
    nft::delete_table(&table).expect("delete");
}
