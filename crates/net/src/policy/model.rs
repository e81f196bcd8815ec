//! What NetworkPolicies allow, by upstream's semantics, for the pods of one node: from Pods,
//! Namespaces, NetworkPolicies and cluster DNS's endpoints, per local pod whether it is isolated
//! for ingress and for egress and, if so, the union of the rules of every policy selecting it —
//! peers as pod addresses and address ranges, ports resolved to numbers (named ports by the
//! target pod's, or for egress each destination pod's, container ports). Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as ApiSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rudder_machinery::LabelSelector;

/// The label every Namespace carries with its own name (upstream's API server sets it; it is
/// assumed here even when missing, so `namespaceSelector`s by name always work).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";
/// The namespace and Service of cluster DNS, and the label its servers count as carrying: the
/// node agents' DNS servers are not pods, so they stand in for CoreDNS's pods
/// (`k8s-app=kube-dns` in `kube-system`) and upstream's "allow DNS" policies work unchanged.
pub const DNS_NAMESPACE: &str = "kube-system";
/// See [`DNS_NAMESPACE`].
pub const DNS_SERVICE: &str = "kube-dns";
/// See [`DNS_NAMESPACE`].
pub const DNS_APP_LABEL: (&str, &str) = ("k8s-app", "kube-dns");

/// A transport protocol a policy port names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    fn parse(s: Option<&str>) -> Option<Proto> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Proto::Tcp),
            "UDP" => Some(Proto::Udp),
            "SCTP" => Some(Proto::Sctp),
            _ => None,
        }
    }

    /// The name `nft` knows it by.
    pub fn nft(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// Traffic of one protocol, to a range of ports (`None`: every port).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortMatch {
    pub proto: Proto,
    pub ports: Option<(u16, u16)>,
}

/// Who a rule lets in (ingress) or out to (egress). A rule with no peers at all (`from` or
/// `to` empty) matches every address; otherwise `pods` is `Some` when a peer selects pods and
/// `blocks` when one is an `ipBlock`, so the rule's shape stays the same as pods come and go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peers {
    pub all: bool,
    pub pods: Option<BTreeSet<Ipv4Addr>>,
    /// Disjoint, sorted, non-adjacent inclusive address ranges.
    pub blocks: Option<Vec<(u32, u32)>>,
}

/// One thing a pod may receive or send: from/to `peers`, on `ports` (`None`: all traffic).
/// `id` names the policy rule (and, for egress named ports, the port) it comes from, the same
/// for every pod the rule applies to, so peers can be one shared set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allow {
    pub id: String,
    pub peers: Peers,
    pub ports: Option<Vec<PortMatch>>,
}

/// One local pod's isolation: `None` for a direction no policy isolates; otherwise what is
/// allowed (empty: nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodPolicy {
    pub ip: Option<Ipv4Addr>,
    pub ingress: Option<Vec<Allow>>,
    pub egress: Option<Vec<Allow>>,
}

/// What the model is computed from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The node whose pods are enforced.
    pub node: &'a str,
    pub pods: &'a [Pod],
    pub namespaces: &'a [Namespace],
    pub policies: &'a [NetworkPolicy],
    /// EndpointSlices of `kube-system/kube-dns` (others are ignored).
    pub dns_slices: &'a [EndpointSlice],
}

/// A pod as policies see it.
#[derive(Clone, Debug)]
struct Member {
    namespace: String,
    name: String,
    ip: Option<Ipv4Addr>,
    labels: BTreeMap<String, String>,
    /// Named container ports: (name, protocol, number).
    ports: Vec<(String, Proto, u16)>,
    local: bool,
}

/// Pods that can send or receive: not host-network (their address is the node's), not
/// finished (their address may be someone else's by now).
fn members(inputs: &Inputs<'_>) -> Vec<Member> {
    let mut out: Vec<Member> = inputs
        .pods
        .iter()
        .filter_map(|p| {
            let spec = p.spec.as_ref()?;
            if spec.host_network == Some(true) {
                return None;
            }
            let status = p.status.as_ref();
            if matches!(
                status.and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            ) {
                return None;
            }
            let ip = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok());
            let ports = spec
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .filter_map(|p| {
                    let proto = Proto::parse(p.protocol.as_deref())?;
                    let number = u16::try_from(p.container_port).ok()?;
                    Some((p.name.clone()?, proto, number))
                })
                .collect();
            Some(Member {
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: p.metadata.name.clone().unwrap_or_default(),
                ip,
                labels: p.metadata.labels.clone().unwrap_or_default(),
                ports,
                local: spec.node_name.as_deref() == Some(inputs.node),
            })
        })
        .collect();
    out.extend(dns_members(inputs.dns_slices));
    out
}

/// The DNS servers of `kube-system/kube-dns` that are not pods, as stand-ins for CoreDNS's pods.
fn dns_members(slices: &[EndpointSlice]) -> Vec<Member> {
    let mut out = Vec::new();
    for slice in slices {
        let meta = &slice.metadata;
        let service = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"));
        if meta.namespace.as_deref() != Some(DNS_NAMESPACE)
            || service.map(String::as_str) != Some(DNS_SERVICE)
        {
            continue;
        }
        let ports: Vec<(String, Proto, u16)> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let number = u16::try_from(p.port?).ok()?;
                Some((
                    p.name.clone()?,
                    Proto::parse(p.protocol.as_deref())?,
                    number,
                ))
            })
            .collect();
        for ep in slice
            .endpoints
            .iter()
            .flatten()
            .filter(|e| e.target_ref.is_none())
        {
            for ip in ep.addresses.iter().filter_map(|a| a.parse().ok()) {
                out.push(Member {
                    namespace: DNS_NAMESPACE.into(),
                    name: format!("{DNS_SERVICE}@{ip}"),
                    ip: Some(ip),
                    labels: BTreeMap::from([(
                        DNS_APP_LABEL.0.to_owned(),
                        DNS_APP_LABEL.1.to_owned(),
                    )]),
                    ports: ports.clone(),
                    // Never a target: only pods are isolated.
                    local: false,
                });
            }
        }
    }
    out
}

/// A selector as a matcher; one that does not parse (validation refuses those) matches nothing.
fn selector(s: Option<&ApiSelector>) -> LabelSelector {
    LabelSelector::from_api(s).unwrap_or_else(|_| LabelSelector::nothing())
}

/// The policy types in effect: as given, or upstream's default (Ingress, and Egress when the
/// policy has egress rules).
pub fn policy_types(policy: &NetworkPolicy) -> (bool, bool) {
    let Some(spec) = policy.spec.as_ref() else {
        return (true, false);
    };
    match spec.policy_types.as_deref() {
        Some(types) if !types.is_empty() => (
            types.iter().any(|t| t == "Ingress"),
            types.iter().any(|t| t == "Egress"),
        ),
        _ => (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

/// Inclusive address ranges of `cidr` minus its `except`s (IPv4 only; IPv6 blocks match
/// nothing here).
fn block_ranges(block: &IPBlock) -> Vec<(u32, u32)> {
    let Ok(cidr) = block.cidr.parse::<Ipv4Net>() else {
        return Vec::new();
    };
    let mut ranges = vec![net_range(cidr)];
    for except in block.except.iter().flatten() {
        let Ok(e) = except.parse::<Ipv4Net>() else {
            continue;
        };
        let (es, ee) = net_range(e);
        ranges = ranges
            .into_iter()
            .flat_map(|(s, e)| {
                let mut left = Vec::new();
                if es > s {
                    left.push((s, e.min(es - 1)));
                }
                if ee < e {
                    left.push((s.max(ee + 1), e));
                }
                if ee < s || es > e { vec![(s, e)] } else { left }
            })
            .collect();
    }
    ranges
}

fn net_range(net: Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

/// Sorts and merges overlapping or adjacent ranges (an nft interval set refuses overlaps).
pub fn merge_ranges(mut ranges: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    ranges.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if u64::from(s) <= u64::from(last.1) + 1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// The model: for each pod of the node with a policy selecting it, keyed `namespace/name`.
pub fn desired(inputs: &Inputs<'_>) -> BTreeMap<String, PodPolicy> {
    let members = members(inputs);
    let ns_labels: BTreeMap<&str, BTreeMap<String, String>> = inputs
        .namespaces
        .iter()
        .filter_map(|n| {
            let name = n.metadata.name.as_deref()?;
            let mut labels = n.metadata.labels.clone().unwrap_or_default();
            labels.insert(NAMESPACE_NAME_LABEL.into(), name.into());
            Some((name, labels))
        })
        .collect();
    // A pod whose Namespace is not known yet still matches selectors on its namespace's name.
    let labels_of_ns = |ns: &str| {
        ns_labels
            .get(ns)
            .cloned()
            .unwrap_or_else(|| BTreeMap::from([(NAMESPACE_NAME_LABEL.into(), ns.into())]))
    };
    let mut out: BTreeMap<String, PodPolicy> = BTreeMap::new();
    let mut policies: Vec<&NetworkPolicy> = inputs.policies.iter().collect();
    // Rules in a stable order whatever order the watch delivered the policies in.
    policies.sort_by_key(|p| (p.metadata.namespace.clone(), p.metadata.name.clone()));
    for policy in policies {
        let Some(spec) = policy.spec.as_ref() else {
            continue;
        };
        let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
        let pname = policy.metadata.name.as_deref().unwrap_or_default();
        let (ingress, egress) = policy_types(policy);
        // Go decodes a missing podSelector as the empty selector: every pod of the namespace.
        let target_selector = spec
            .pod_selector
            .as_ref()
            .map_or_else(LabelSelector::everything, |s| selector(Some(s)));
        let targets: Vec<&Member> = members
            .iter()
            .filter(|m| m.local && m.namespace == ns && target_selector.matches(&m.labels))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let peer_members = |peers: Option<&Vec<NetworkPolicyPeer>>| -> Vec<&Member> {
            members
                .iter()
                .filter(|m| {
                    peers.is_some_and(|ps| {
                        ps.iter()
                            .any(|p| selects(p, ns, m, &labels_of_ns(&m.namespace)))
                    })
                })
                .collect()
        };
        for target in &targets {
            let entry = out
                .entry(format!("{}/{}", target.namespace, target.name))
                .or_insert_with(|| PodPolicy {
                    ip: target.ip,
                    ..PodPolicy::default()
                });
            if ingress {
                let allows = entry.ingress.get_or_insert_with(Vec::new);
                for (i, rule) in spec.ingress.iter().flatten().enumerate() {
                    let id = format!("{ns}/{pname}/in{i}");
                    let peers = peers_of(rule.from.as_ref(), &peer_members(rule.from.as_ref()));
                    let ports = rule.ports.as_deref().filter(|p| !p.is_empty());
                    match ports {
                        None => allows.push(Allow {
                            id,
                            peers,
                            ports: None,
                        }),
                        Some(ports) => {
                            let resolved: Vec<PortMatch> = ports
                                .iter()
                                .flat_map(|p| resolve(p, &target.ports))
                                .collect();
                            // Ports given but none resolving on this pod allow nothing.
                            if !resolved.is_empty() {
                                allows.push(Allow {
                                    id,
                                    peers,
                                    ports: Some(dedup(resolved)),
                                });
                            }
                        }
                    }
                }
            }
            if egress {
                let allows = entry.egress.get_or_insert_with(Vec::new);
                for (i, rule) in spec.egress.iter().flatten().enumerate() {
                    let id = format!("{ns}/{pname}/out{i}");
                    let chosen = peer_members(rule.to.as_ref());
                    let peers = peers_of(rule.to.as_ref(), &chosen);
                    allows.extend(egress_allows(
                        id,
                        peers,
                        rule.ports.as_deref(),
                        &chosen,
                        &members,
                    ));
                }
            }
        }
    }
    out
}

fn dedup(mut v: Vec<PortMatch>) -> Vec<PortMatch> {
    v.sort();
    v.dedup();
    v
}

/// Whether `peer` (of a policy in namespace `ns`) selects member `m`, whose namespace has
/// `m_ns_labels`.
fn selects(
    peer: &NetworkPolicyPeer,
    ns: &str,
    m: &Member,
    m_ns_labels: &BTreeMap<String, String>,
) -> bool {
    if peer.ip_block.is_some() {
        return false;
    }
    let ns_ok = match &peer.namespace_selector {
        Some(s) => selector(Some(s)).matches(m_ns_labels),
        None => m.namespace == ns,
    };
    let pod_ok = match &peer.pod_selector {
        Some(s) => selector(Some(s)).matches(&m.labels),
        // A peer with neither selector selects nothing (validation refuses it).
        None => peer.namespace_selector.is_some(),
    };
    ns_ok && pod_ok && m.ip.is_some()
}

/// The peers of a rule: every address when `from`/`to` is absent or empty.
fn peers_of(peers: Option<&Vec<NetworkPolicyPeer>>, chosen: &[&Member]) -> Peers {
    let Some(peers) = peers.filter(|p| !p.is_empty()) else {
        return Peers {
            all: true,
            ..Peers::default()
        };
    };
    let selects_pods = peers.iter().any(|p| p.ip_block.is_none());
    let blocks: Vec<(u32, u32)> = peers
        .iter()
        .filter_map(|p| p.ip_block.as_ref())
        .flat_map(block_ranges)
        .collect();
    Peers {
        all: false,
        pods: selects_pods.then(|| chosen.iter().filter_map(|m| m.ip).collect()),
        blocks: peers
            .iter()
            .any(|p| p.ip_block.is_some())
            .then(|| merge_ranges(blocks)),
    }
}

/// A policy port as matches on pod `ports` (named ports resolved there).
fn resolve(port: &NetworkPolicyPort, ports: &[(String, Proto, u16)]) -> Vec<PortMatch> {
    let Some(proto) = Proto::parse(port.protocol.as_deref()) else {
        return Vec::new();
    };
    match &port.port {
        None => vec![PortMatch { proto, ports: None }],
        Some(IntOrString::Int(n)) => {
            let Ok(start) = u16::try_from(*n) else {
                return Vec::new();
            };
            let end = port
                .end_port
                .and_then(|e| u16::try_from(e).ok())
                .filter(|e| *e >= start)
                .unwrap_or(start);
            vec![PortMatch {
                proto,
                ports: Some((start, end)),
            }]
        }
        Some(IntOrString::String(name)) => ports
            .iter()
            .filter(|(n, p, _)| n == name && *p == proto)
            .map(|(_, _, num)| PortMatch {
                proto,
                ports: Some((*num, *num)),
            })
            .collect(),
    }
}

/// An egress rule's allows: numeric ports apply to all its peers; a named port is the port of
/// that name on each destination pod (upstream), so it becomes one allow per resolved number
/// with the pods having it as peers (address ranges have no named ports).
fn egress_allows(
    id: String,
    peers: Peers,
    ports: Option<&[NetworkPolicyPort]>,
    chosen: &[&Member],
    all_members: &[Member],
) -> Vec<Allow> {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return vec![Allow {
            id,
            peers,
            ports: None,
        }];
    };
    let (named, numbered): (Vec<&NetworkPolicyPort>, Vec<&NetworkPolicyPort>) = ports
        .iter()
        .partition(|p| matches!(p.port, Some(IntOrString::String(_))));
    let mut out = Vec::new();
    let fixed: Vec<PortMatch> = numbered.iter().flat_map(|p| resolve(p, &[])).collect();
    if !fixed.is_empty() {
        out.push(Allow {
            id: id.clone(),
            peers: peers.clone(),
            ports: Some(dedup(fixed)),
        });
    }
    // Destinations a named port may resolve on: the selected pods, or every pod for `to: []`.
    let candidates: Vec<&Member> = if peers.all {
        all_members.iter().collect()
    } else {
        chosen.to_vec()
    };
    let mut by_port: BTreeMap<PortMatch, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    for m in candidates {
        let Some(ip) = m.ip else { continue };
        for p in &named {
            for pm in resolve(p, &m.ports) {
                by_port.entry(pm).or_default().insert(ip);
            }
        }
    }
    for (pm, ips) in by_port {
        let (lo, _) = pm.ports.unwrap_or((0, 0));
        out.push(Allow {
            id: format!("{id}/{}.{lo}", pm.proto.nft()),
            peers: Peers {
                all: false,
                pods: Some(ips),
                blocks: None,
            },
            ports: Some(vec![pm]),
        });
    }
    out
}
