//! The enforcer's nftables table (family `inet`) for the model of [`super::model`]. Pure.
//!
//! Layout: the base chains `filter-forward` (traffic between pods, to and from other nodes and
//! the outside) and `filter-input` (pods talking to their node, such as cluster DNS on the
//! bridge address) accept replies (`ct state established,related`), then send a packet from an
//! egress-isolated pod through the verdict map `egress-pods` to the pod's chain
//! `egress-NS/POD`, and (forward only) a packet to an ingress-isolated pod through
//! `ingress-pods` to `ingress-NS/POD`. A pod chain `return`s for what some rule allows and
//! drops the rest. Peers are named sets shared by every pod a rule applies to: `pods-<rule>`
//! (pod addresses, changed element by element as pods come and go) and `blocks-<rule>`
//! (`ipBlock` ranges, an interval set). The node's own traffic (`output`) is never filtered.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use super::model::{Allow, PodPolicy, PortMatch};
use crate::nft::{Chain, Map, Ruleset};

/// Longest set or chain name written as is; longer ones get a hash (nft's limit is 255).
const MAX_NAME: usize = 200;

/// `prefix-id`, or `prefix-<hash of id>` when that would be too long for nft.
fn ident(prefix: &str, id: &str) -> String {
    let name = format!("{prefix}-{id}");
    if name.len() <= MAX_NAME {
        return name;
    }
    // FNV-1a 64: stable across versions, unlike std's hasher.
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{prefix}-{hash:016x}")
}

fn range_element((s, e): (u32, u32)) -> String {
    if s == e {
        Ipv4Addr::from(s).to_string()
    } else {
        format!("{}-{}", Ipv4Addr::from(s), Ipv4Addr::from(e))
    }
}

/// `tcp dport { 80, 8000-8080 }`, one match per protocol; `meta l4proto tcp` for all ports.
fn port_matches(ports: &[PortMatch]) -> Vec<String> {
    let mut by_proto: BTreeMap<&str, Option<Vec<String>>> = BTreeMap::new();
    for p in ports {
        let entry = by_proto
            .entry(p.proto.nft())
            .or_insert_with(|| Some(Vec::new()));
        match (p.ports, entry.as_mut()) {
            (None, _) => *entry = None,
            (Some((s, e)), Some(list)) => list.push(if s == e {
                s.to_string()
            } else {
                format!("{s}-{e}")
            }),
            (Some(_), None) => {}
        }
    }
    by_proto
        .into_iter()
        .map(|(proto, ports)| match ports {
            None => format!("meta l4proto {proto}"),
            Some(list) if list.len() == 1 => format!("{proto} dport {}", list[0]),
            Some(list) => format!("{proto} dport {{ {} }}", list.join(", ")),
        })
        .collect()
}

/// The rules of one pod chain; `dir` is `saddr` (ingress: who sends) or `daddr` (egress).
fn pod_chain(allows: &[Allow], dir: &str, rs: &mut Ruleset) -> Chain {
    let mut rules = Vec::new();
    for allow in allows {
        let mut peers = Vec::new();
        if allow.peers.all {
            peers.push(String::new());
        }
        if let Some(pods) = &allow.peers.pods {
            let set = ident("pods", &allow.id);
            rs.sets.insert(set.clone(), "type ipv4_addr".into());
            rs.set_elements
                .insert(set.clone(), pods.iter().map(Ipv4Addr::to_string).collect());
            peers.push(format!("ip {dir} @{set} "));
        }
        if let Some(blocks) = &allow.peers.blocks {
            let set = ident("blocks", &allow.id);
            rs.sets
                .insert(set.clone(), "type ipv4_addr ; flags interval".into());
            rs.set_elements.insert(
                set.clone(),
                blocks.iter().copied().map(range_element).collect(),
            );
            peers.push(format!("ip {dir} @{set} "));
        }
        let ports = match &allow.ports {
            None => vec![String::new()],
            Some(p) => port_matches(p).into_iter().map(|m| m + " ").collect(),
        };
        for peer in &peers {
            for port in &ports {
                rules.push(format!("{peer}{port}return"));
            }
        }
    }
    rules.push("counter drop".into());
    Chain { hook: None, rules }
}

/// The enforcer's table for the model `pods` (from [`super::model::desired`]).
pub fn ruleset(pods: &BTreeMap<String, PodPolicy>) -> Ruleset {
    let mut rs = Ruleset::default();
    let base = |hook: &str, rules: &[&str]| Chain {
        hook: Some(format!(
            "type filter hook {hook} priority filter ; policy accept"
        )),
        rules: rules.iter().map(|r| (*r).to_owned()).collect(),
    };
    // Replies of allowed connections pass whatever the policies say now, as upstream.
    let replies = "ct state established,related accept";
    rs.chains.insert(
        "filter-forward".into(),
        base(
            "forward",
            &[
                replies,
                "ip saddr vmap @egress-pods",
                "ip daddr vmap @ingress-pods",
            ],
        ),
    );
    // Pods reaching their own node: the bridge address (cluster DNS), the node's services.
    // Only egress applies; the node's own traffic to pods never passes `input`.
    rs.chains.insert(
        "filter-input".into(),
        base("input", &[replies, "ip saddr vmap @egress-pods"]),
    );
    let mut maps = [
        ("ingress-pods", Map::default()),
        ("egress-pods", Map::default()),
    ];
    for (_, m) in &mut maps {
        m.decl = "type ipv4_addr : verdict".into();
    }
    for (key, pod) in pods {
        let Some(ip) = pod.ip else { continue };
        for (i, (dir_name, allows, addr)) in [
            ("ingress", &pod.ingress, "saddr"),
            ("egress", &pod.egress, "daddr"),
        ]
        .into_iter()
        .enumerate()
        {
            let Some(allows) = allows else { continue };
            let chain = ident(dir_name, key);
            let c = pod_chain(allows, addr, &mut rs);
            rs.chains.insert(chain.clone(), c);
            maps[i]
                .1
                .elements
                .insert(ip.to_string(), format!("jump {chain}"));
        }
    }
    for (name, m) in maps {
        rs.maps.insert(name.into(), m);
    }
    rs
}
