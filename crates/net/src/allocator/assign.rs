//! The node IPAM's decisions, pure: which subnet each node holds, which node gets which free
//! subnet, and what happens when a write fails, a node goes, or the watch relists.
//! [`super::run`] feeds it watch events and carries out the patches it asks for.

use std::collections::{BTreeMap, HashMap};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;

use crate::cidr::CidrSet;

/// What the IPAM needs to know of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeFacts {
    pub name: String,
    pub uid: String,
    /// `spec.podCIDR`, when set (possibly not a valid range).
    pub pod_cidr: Option<String>,
    /// Whether the node is being deleted.
    pub deleting: bool,
}

impl NodeFacts {
    /// The facts of `node`.
    pub fn of(node: &Node) -> Self {
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            uid: node.metadata.uid.clone().unwrap_or_default(),
            pod_cidr: node
                .spec
                .as_ref()
                .and_then(|s| s.pod_cidr.clone())
                .filter(|c| !c.is_empty()),
            deleting: node.metadata.deletion_timestamp.is_some(),
        }
    }
}

/// What to do about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing: it has a subnet, one is on its way, or it is being deleted.
    Nothing,
    /// Write `subnet` as the node's `spec.podCIDR` (it is reserved until [`Assigner::failed`]).
    Patch {
        name: String,
        uid: String,
        subnet: Ipv4Net,
    },
    /// The cluster range is full; `first` is true the first time this node is refused (say so
    /// once, not on every update of the node). It is retried when a subnet frees up.
    Full { name: String, first: bool },
}

/// A subnet a node holds, or that was chosen for it and is being written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    uid: String,
    subnet: Ipv4Net,
    /// Seen in the node's `spec.podCIDR` (not only written by us).
    confirmed: bool,
}

/// The IPAM's state: the cluster range's free and taken subnets and who holds each.
#[derive(Debug, Clone)]
pub struct Assigner {
    cluster: Ipv4Net,
    prefix: u8,
    set: CidrSet,
    /// By node name.
    claims: HashMap<String, Claim>,
    /// Nodes without a subnet to try again (the range was full, or the write failed), with
    /// whether the full range was already reported for them.
    retry: BTreeMap<String, bool>,
}

impl Assigner {
    /// Subnets of `prefix` bits from `cluster`; `None` when they do not fit in it.
    pub fn new(cluster: Ipv4Net, prefix: u8) -> Option<Self> {
        Some(Self {
            cluster,
            prefix,
            set: CidrSet::new(cluster, prefix)?,
            claims: HashMap::new(),
            retry: BTreeMap::new(),
        })
    }

    /// How many node subnets the range holds.
    pub fn capacity(&self) -> u64 {
        self.set.capacity()
    }

    /// How many are taken.
    pub fn taken(&self) -> u64 {
        self.set.taken()
    }

    fn drop_claim(&mut self, name: &str) -> bool {
        match self.claims.remove(name) {
            Some(c) => {
                self.set.release(c.subnet);
                true
            }
            None => false,
        }
    }

    /// A node was added or changed.
    pub fn seen(&mut self, node: &NodeFacts) -> Decision {
        // The same name with another uid: the node was deleted and created again.
        if self
            .claims
            .get(&node.name)
            .is_some_and(|c| c.uid != node.uid)
        {
            self.drop_claim(&node.name);
        }
        if let Some(cidr) = &node.pod_cidr {
            self.retry.remove(&node.name);
            // A range that does not parse holds nothing, but the node still has one: leave it.
            let Ok(subnet) = cidr.parse::<Ipv4Net>() else {
                return Decision::Nothing;
            };
            if self.claims.get(&node.name).map(|c| c.subnet) != Some(subnet) {
                self.drop_claim(&node.name);
                self.set.occupy(subnet);
            }
            self.claims.insert(
                node.name.clone(),
                Claim {
                    uid: node.uid.clone(),
                    subnet,
                    confirmed: true,
                },
            );
            return Decision::Nothing;
        }
        // Being written (or written and not yet seen: an event older than our write).
        if node.deleting || self.claims.contains_key(&node.name) {
            return Decision::Nothing;
        }
        match self.set.allocate() {
            Some(subnet) => {
                self.retry.remove(&node.name);
                self.claims.insert(
                    node.name.clone(),
                    Claim {
                        uid: node.uid.clone(),
                        subnet,
                        confirmed: false,
                    },
                );
                Decision::Patch {
                    name: node.name.clone(),
                    uid: node.uid.clone(),
                    subnet,
                }
            }
            None => {
                let reported = self.retry.insert(node.name.clone(), true);
                Decision::Full {
                    name: node.name.clone(),
                    first: reported != Some(true),
                }
            }
        }
    }

    /// A node was deleted: its subnet is free. Returns whether one was freed (nodes waiting
    /// for a subnet may now get it).
    pub fn gone(&mut self, name: &str) -> bool {
        self.retry.remove(name);
        self.drop_claim(name)
    }

    /// Writing `subnet` to node `name` (with `uid`) failed: the reservation is given back and
    /// the node is tried again later.
    pub fn failed(&mut self, name: &str, uid: &str, subnet: Ipv4Net) {
        let ours = self
            .claims
            .get(name)
            .is_some_and(|c| c.uid == uid && c.subnet == subnet && !c.confirmed);
        if ours {
            self.drop_claim(name);
            self.retry.entry(name.to_owned()).or_insert(false);
        }
    }

    /// The nodes to try again (their latest state goes through [`Assigner::seen`]).
    pub fn retries(&self) -> Vec<String> {
        self.retry.keys().cloned().collect()
    }

    /// The watch listed every node afresh (a start, or a broken watch): the taken subnets are
    /// rebuilt from the list, keeping the ones being written, and every node without a subnet
    /// gets a decision. Nothing is assigned before this, so a new subnet never collides with
    /// one a listed node already holds.
    pub fn relisted(&mut self, nodes: &[NodeFacts]) -> Vec<Decision> {
        let in_flight: HashMap<String, Claim> =
            self.claims.drain().filter(|(_, c)| !c.confirmed).collect();
        let Some(set) = CidrSet::new(self.cluster, self.prefix) else {
            return Vec::new();
        };
        self.set = set;
        let listed: HashMap<&str, &NodeFacts> =
            nodes.iter().map(|n| (n.name.as_str(), n)).collect();
        self.retry
            .retain(|name, _| listed.contains_key(name.as_str()));
        // Subnets the nodes hold first, then our writes still under way for nodes still there.
        for n in nodes.iter().filter(|n| n.pod_cidr.is_some()) {
            self.seen(n);
        }
        for (name, claim) in in_flight {
            let still = listed
                .get(name.as_str())
                .is_some_and(|n| n.uid == claim.uid && n.pod_cidr.is_none());
            if still {
                self.set.occupy(claim.subnet);
                self.claims.insert(name, claim);
            }
        }
        nodes
            .iter()
            .filter(|n| n.pod_cidr.is_none())
            .map(|n| self.seen(n))
            .filter(|d| *d != Decision::Nothing)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, uid: &str, cidr: Option<&str>) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            uid: uid.into(),
            pod_cidr: cidr.map(str::to_owned),
            deleting: false,
        }
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    fn patch(name: &str, uid: &str, subnet: &str) -> Decision {
        Decision::Patch {
            name: name.into(),
            uid: uid.into(),
            subnet: net(subnet),
        }
    }

    /// A /22 of /24s: four node subnets.
    fn small() -> Assigner {
        Assigner::new(net("10.0.0.0/22"), 24).expect("assigner")
    }

    #[test]
    fn relist_keeps_held_subnets_and_assigns_the_rest() {
        let mut a = small();
        let got = a.relisted(&[
            node("a", "1", None),
            node("b", "2", Some("10.0.0.0/24")),
            node("c", "3", Some("not a range")),
            node("d", "4", None),
        ]);
        assert_eq!(
            got,
            [
                patch("a", "1", "10.0.1.0/24"),
                patch("d", "4", "10.0.2.0/24")
            ]
        );
        // Our own write's echo, then an update that predates it: nothing more to do.
        assert_eq!(
            a.seen(&node("a", "1", Some("10.0.1.0/24"))),
            Decision::Nothing
        );
        assert_eq!(a.seen(&node("d", "4", None)), Decision::Nothing);
        assert_eq!(a.taken(), 3);
    }

    #[test]
    fn full_range_is_reported_once_and_retried_when_a_node_goes() {
        let mut a = small();
        a.relisted(&[]);
        for (i, want) in ["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]
            .iter()
            .enumerate()
        {
            let name = format!("n{i}");
            assert_eq!(a.seen(&node(&name, "u", None)), patch(&name, "u", want));
        }
        let full = |first| Decision::Full {
            name: "late".into(),
            first,
        };
        assert_eq!(a.seen(&node("late", "9", None)), full(true));
        assert_eq!(a.seen(&node("late", "9", None)), full(false));
        assert_eq!(a.retries(), ["late"]);
        assert!(!a.gone("never-seen"));
        assert!(a.gone("n1"));
        assert_eq!(
            a.seen(&node("late", "9", None)),
            patch("late", "9", "10.0.1.0/24")
        );
        assert!(a.retries().is_empty());
    }

    #[test]
    fn a_failed_write_frees_the_subnet_and_retries() {
        let mut a = small();
        a.relisted(&[]);
        assert_eq!(
            a.seen(&node("a", "1", None)),
            patch("a", "1", "10.0.0.0/24")
        );
        // Not ours (another uid, another subnet): ignored.
        a.failed("a", "other", net("10.0.0.0/24"));
        a.failed("a", "1", net("10.0.3.0/24"));
        assert_eq!(a.taken(), 1);
        a.failed("a", "1", net("10.0.0.0/24"));
        assert_eq!((a.taken(), a.retries()), (0, vec!["a".to_owned()]));
        assert_eq!(
            a.seen(&node("a", "1", None)),
            patch("a", "1", "10.0.0.0/24")
        );
    }

    #[test]
    fn recreated_and_deleting_nodes() {
        let mut a = small();
        a.relisted(&[node("a", "1", Some("10.0.0.0/24"))]);
        let mut deleting = node("x", "5", None);
        deleting.deleting = true;
        assert_eq!(
            a.seen(&deleting),
            Decision::Nothing,
            "no subnet for a node going away"
        );
        // Same name, new uid, no subnet: the old one is given back and a new one assigned.
        assert_eq!(
            a.seen(&node("a", "2", None)),
            patch("a", "2", "10.0.0.0/24")
        );
        // A subnet set by hand replaces the one we reserved.
        assert_eq!(
            a.seen(&node("a", "2", Some("10.0.3.0/24"))),
            Decision::Nothing
        );
        assert_eq!(
            a.seen(&node("b", "3", None)),
            patch("b", "3", "10.0.0.0/24")
        );
    }

    #[test]
    fn relist_keeps_writes_under_way_for_nodes_still_there() {
        let mut a = small();
        a.relisted(&[]);
        assert_eq!(
            a.seen(&node("a", "1", None)),
            patch("a", "1", "10.0.0.0/24")
        );
        assert_eq!(
            a.seen(&node("b", "2", None)),
            patch("b", "2", "10.0.1.0/24")
        );
        // b was deleted while the watch was down; a's write is still under way.
        let got = a.relisted(&[node("a", "1", None), node("c", "3", None)]);
        assert_eq!(got, [patch("c", "3", "10.0.1.0/24")]);
        assert_eq!(a.taken(), 2);
    }

    #[test]
    fn invalid_sizes() {
        assert!(Assigner::new(net("10.0.0.0/16"), 8).is_none());
        let a = Assigner::new(net("172.16.0.0/12"), 24).expect("assigner");
        assert_eq!(a.capacity(), 4096);
    }
}
