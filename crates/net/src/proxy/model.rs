//! What the proxy's table should hold for a set of Services and EndpointSlices on one node:
//! kube-proxy's nftables layout (a map from service address to a per-service chain, a random
//! pick among endpoint chains, DNAT and a masquerade mark per endpoint). Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::ruleset::{Chain, Map, Ruleset};

/// The packet mark asking for masquerade on the way out (kube-proxy's bit).
pub const MASQUERADE_MARK: &str = "0x4000";
/// Session affinity's default stickiness, as upstream (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT: i32 = 10_800;
/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Facts about the node the proxy runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// The Node's name (endpoints with this `nodeName` are local).
    pub name: String,
    /// The pod range: traffic from outside it to a Service is masqueraded, and pod traffic
    /// leaving it is masqueraded.
    pub cluster_cidr: Ipv4Net,
}

/// One endpoint of one service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Endpoint {
    ip: Ipv4Addr,
    port: i32,
    ready: bool,
    serving: bool,
    terminating: bool,
    local: bool,
}

/// Upstream's choice of endpoints: the ready ones, or when there are none the serving ones that
/// are terminating (so connections drain instead of failing).
fn usable<'a>(eps: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<&'a Endpoint> {
    let ready: Vec<&Endpoint> = eps.clone().filter(|e| e.ready).collect();
    if !ready.is_empty() {
        return ready;
    }
    eps.filter(|e| e.serving && e.terminating).collect()
}

/// The fixed chains and maps every table has.
fn skeleton(node: &NodeInfo) -> Ruleset {
    let mut rs = Ruleset::default();
    let mut chain = |name: &str, hook: Option<&str>, rules: &[String]| {
        rs.chains.insert(
            name.to_owned(),
            Chain {
                hook: hook.map(str::to_owned),
                rules: rules.to_vec(),
            },
        );
    };
    let s = |x: &str| x.to_owned();
    let cluster = node.cluster_cidr;
    chain(
        "nat-prerouting",
        Some("type nat hook prerouting priority dstnat"),
        &[s("jump services")],
    );
    chain(
        "nat-output",
        Some("type nat hook output priority -100"),
        &[s("jump services")],
    );
    chain(
        "nat-postrouting",
        Some("type nat hook postrouting priority srcnat"),
        &[
            s("jump masquerading"),
            // Pods leaving the cluster range go out with the node's address (the pod network
            // has no other masquerade).
            format!("ip saddr {cluster} ip daddr != {cluster} masquerade"),
        ],
    );
    for (name, hook) in [
        ("filter-forward", "type filter hook forward priority -110"),
        ("filter-output", "type filter hook output priority -110"),
        ("filter-input", "type filter hook input priority -110"),
    ] {
        chain(
            name,
            Some(hook),
            &[s("ct state new jump service-endpoints-check")],
        );
    }
    // Node ports are served on the node's own addresses but, as upstream's nftables mode, not
    // on loopback (that would need route_localnet).
    chain(
        "services",
        None,
        &[
            s("ip daddr . meta l4proto . th dport vmap @service-ips"),
            s(
                "ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @service-nodeports",
            ),
        ],
    );
    chain(
        "service-endpoints-check",
        None,
        &[
            s("ip daddr . meta l4proto . th dport vmap @no-endpoint-services"),
            s(
                "ip daddr != 127.0.0.0/8 fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports",
            ),
        ],
    );
    chain(
        "mark-for-masquerade",
        None,
        &[format!("meta mark set meta mark or {MASQUERADE_MARK}")],
    );
    chain(
        "masquerading",
        None,
        &[
            format!("meta mark and {MASQUERADE_MARK} == 0 return"),
            format!("meta mark set meta mark xor {MASQUERADE_MARK}"),
            s("masquerade fully-random"),
        ],
    );
    chain("reject-chain", None, &[s("reject")]);
    for (name, decl) in [
        (
            "service-ips",
            "type ipv4_addr . inet_proto . inet_service : verdict",
        ),
        (
            "service-nodeports",
            "type inet_proto . inet_service : verdict",
        ),
        (
            "no-endpoint-services",
            "type ipv4_addr . inet_proto . inet_service : verdict",
        ),
        (
            "no-endpoint-nodeports",
            "type inet_proto . inet_service : verdict",
        ),
    ] {
        rs.maps.insert(
            name.to_owned(),
            Map {
                decl: decl.to_owned(),
                elements: BTreeMap::new(),
            },
        );
    }
    rs
}

fn protocol(p: &ServicePort) -> Option<&'static str> {
    match p.protocol.as_deref().unwrap_or("TCP") {
        "TCP" => Some("tcp"),
        "UDP" => Some("udp"),
        "SCTP" => Some("sctp"),
        _ => None,
    }
}

/// The endpoints of port `port` (by name) of `svc` in `slices`, each address once.
fn endpoints_of(
    svc_ns: &str,
    svc_name: &str,
    port_name: &str,
    proto: &str,
    slices: &[EndpointSlice],
    node: &str,
) -> Vec<Endpoint> {
    let mut out: BTreeMap<(Ipv4Addr, i32), Endpoint> = BTreeMap::new();
    for slice in slices {
        let meta = &slice.metadata;
        let owned = meta.namespace.as_deref() == Some(svc_ns)
            && meta
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .is_some_and(|n| n == svc_name);
        if !owned || slice.address_type != "IPv4" {
            continue;
        }
        let port = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == port_name
                && p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase() == proto
        });
        let Some(port) = port.and_then(|p| p.port) else {
            continue;
        };
        for ep in slice.endpoints.iter().flatten() {
            let Some(ip) = ep
                .addresses
                .first()
                .and_then(|a| a.parse::<Ipv4Addr>().ok())
            else {
                continue;
            };
            let c = ep.conditions.as_ref();
            // Unset conditions mean ready and serving (upstream's reading).
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let serving = c.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
            out.entry((ip, port)).or_insert(Endpoint {
                ip,
                port,
                ready,
                serving,
                terminating,
                local: ep.node_name.as_deref() == Some(node),
            });
        }
    }
    out.into_values().collect()
}

/// Names of one service port's objects: `ns/name/proto/port`, as upstream's (names and
/// namespaces are DNS labels, so the result is a valid nft identifier after a letter prefix).
fn port_id(ns: &str, name: &str, proto: &str, port_name: &str) -> String {
    format!("{ns}/{name}/{proto}/{port_name}")
}

/// The rules that pick one of `eps` (chains named by `ep_chain`): an affinity match per endpoint
/// first when `affinity`, then a random pick.
fn pick(eps: &[&Endpoint], affinity: bool, ep_chain: &dyn Fn(&Endpoint) -> String) -> Vec<String> {
    let mut rules = Vec::new();
    if affinity {
        for e in eps {
            let chain = ep_chain(e);
            rules.push(format!("ip saddr @aff-{} goto {chain}", &chain[3..]));
        }
    }
    let arms: Vec<String> = eps
        .iter()
        .enumerate()
        .map(|(i, e)| format!("{i} : goto {}", ep_chain(e)))
        .collect();
    rules.push(format!(
        "numgen random mod {} vmap {{ {} }}",
        eps.len(),
        arms.join(", ")
    ));
    rules
}

/// The table for `services` and `slices` on `node`.
pub fn desired(services: &[Service], slices: &[EndpointSlice], node: &NodeInfo) -> Ruleset {
    let mut rs = skeleton(node);
    for svc in services {
        add_service(&mut rs, svc, slices, node);
    }
    rs
}

fn add_service(rs: &mut Ruleset, svc: &Service, slices: &[EndpointSlice], node: &NodeInfo) {
    let (Some(ns), Some(name), Some(spec)) = (
        svc.metadata.namespace.as_deref(),
        svc.metadata.name.as_deref(),
        svc.spec.as_ref(),
    ) else {
        return;
    };
    // Headless and ExternalName Services have no address to proxy.
    let Some(cluster_ip) = spec
        .cluster_ip
        .as_deref()
        .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
    else {
        return;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return;
    }
    let itp_local = spec.internal_traffic_policy.as_deref() == Some("Local");
    let node_ports = matches!(spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    let etp_local = node_ports && spec.external_traffic_policy.as_deref() == Some("Local");
    let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT)
    });
    let cluster = node.cluster_cidr;
    for port in spec.ports.iter().flatten() {
        let Some(proto) = protocol(port) else {
            continue;
        };
        let port_name = port.name.as_deref().unwrap_or("");
        let id = port_id(ns, name, proto, port_name);
        let eps = endpoints_of(ns, name, port_name, proto, slices, &node.name);
        let cluster_eps = usable(eps.iter());
        let local_eps = usable(eps.iter().filter(|e| e.local));
        let ep_chain = |e: &Endpoint| format!("ep-{id}__{}/{}", e.ip, e.port);
        // Endpoint chains for every endpoint some path may pick.
        let mut used: BTreeSet<&Endpoint> = cluster_eps.iter().copied().collect();
        used.extend(local_eps.iter().copied());
        for e in &used {
            let chain = ep_chain(e);
            let mut rules = vec![format!("ip saddr {} jump mark-for-masquerade", e.ip)];
            if let Some(timeout) = affinity_timeout {
                let set = format!("aff-{}", &chain[3..]);
                rs.sets.insert(
                    set.clone(),
                    format!("type ipv4_addr ; flags dynamic,timeout ; timeout {timeout}s"),
                );
                rules.push(format!("update @{set} {{ ip saddr }}"));
            }
            rules.push(format!("meta l4proto {proto} dnat to {}:{}", e.ip, e.port));
            rs.chains.insert(chain, Chain { hook: None, rules });
        }
        let affinity = affinity_timeout.is_some();
        let svc_chain = format!("svc-{id}");
        let local_chain = format!("local-{id}");
        if !cluster_eps.is_empty() {
            let mut rules = vec![format!("ip saddr != {cluster} jump mark-for-masquerade")];
            rules.extend(pick(&cluster_eps, affinity, &ep_chain));
            rs.chains
                .insert(svc_chain.clone(), Chain { hook: None, rules });
        }
        if (itp_local || etp_local) && !local_eps.is_empty() {
            let rules = pick(&local_eps, affinity, &ep_chain);
            rs.chains
                .insert(local_chain.clone(), Chain { hook: None, rules });
        }
        let has_endpoints = !cluster_eps.is_empty();
        // Upstream: no endpoints at all rejects; endpoints that exist but none this traffic
        // may use (a Local policy, none here) drops.
        let no_endpoints = if has_endpoints {
            "drop"
        } else {
            "goto reject-chain"
        };
        let ip_key = format!("{cluster_ip} . {proto} . {}", port.port);
        let internal = if itp_local { &local_eps } else { &cluster_eps };
        if internal.is_empty() {
            insert(rs, "no-endpoint-services", ip_key, no_endpoints.to_owned());
        } else {
            let target = if itp_local { &local_chain } else { &svc_chain };
            insert(rs, "service-ips", ip_key, format!("goto {target}"));
        }
        let Some(node_port) = port.node_port.filter(|_| node_ports) else {
            continue;
        };
        let np_key = format!("{proto} . {node_port}");
        if !has_endpoints {
            insert(rs, "no-endpoint-nodeports", np_key, no_endpoints.to_owned());
            continue;
        }
        let ext_chain = format!("ext-{id}");
        let rules = if etp_local {
            // Pods and the node itself may use any endpoint; others only local ones, with
            // their source address kept.
            let mut r = vec![
                format!("ip saddr {cluster} goto {svc_chain}"),
                "fib saddr type local jump mark-for-masquerade".to_owned(),
                format!("fib saddr type local goto {svc_chain}"),
            ];
            r.push(if local_eps.is_empty() {
                "drop".to_owned()
            } else {
                format!("goto {local_chain}")
            });
            r
        } else {
            vec![
                "jump mark-for-masquerade".to_owned(),
                format!("goto {svc_chain}"),
            ]
        };
        rs.chains
            .insert(ext_chain.clone(), Chain { hook: None, rules });
        insert(rs, "service-nodeports", np_key, format!("goto {ext_chain}"));
    }
}

fn insert(rs: &mut Ruleset, map: &str, key: String, value: String) {
    if let Some(m) = rs.maps.get_mut(map) {
        m.elements.insert(key, value);
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
