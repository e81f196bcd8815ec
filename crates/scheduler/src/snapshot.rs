//! The scheduler's view of the cluster: one [`NodeInfo`] per node with the pods on it and what
//! they use, the volumes, and a cluster-wide index of pods per topology domain (`domains.rs`).
//! Plugins are pure functions over this; the cache (`cache.rs`) keeps it current from watches and
//! the scheduling loop adds assumed pods to it. Pods and nodes change only through [`Snapshot`]'s
//! methods, so the index sees every change.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, PersistentVolume, PersistentVolumeClaim, Pod, PodAffinityTerm, WeightedPodAffinityTerm,
};
use rudder_machinery::label_selector::{LabelSelector, Operator};

use crate::domains::DomainIndex;
use crate::resources::{Resources, node_allocatable, pod_non_zero_requests, pod_requests};

/// A pod-affinity term, parsed once: which pods it selects and over which topology.
#[derive(Debug, Clone)]
pub struct AffinityTerm {
    pub selector: LabelSelector,
    /// Namespaces the selected pods must be in; `None` means every namespace (an empty
    /// `namespaceSelector`).
    pub namespaces: Option<HashSet<String>>,
    /// A non-empty `namespaceSelector`: the namespaces whose labels it matches join
    /// `namespaces` when the term is resolved against the cluster's namespaces.
    pub namespace_selector: Option<LabelSelector>,
    pub topology_key: String,
    /// The term's weight for preferred terms, 0 for required ones.
    pub weight: i32,
    /// Selector, namespaces and topology key as text: equal terms have equal signatures.
    pub signature: String,
}

impl AffinityTerm {
    fn parse(term: &PodAffinityTerm, own_namespace: &str, weight: i32) -> Option<Self> {
        let selector = LabelSelector::from_api(term.label_selector.as_ref()).ok()?;
        let all_namespaces = term.namespace_selector.as_ref().is_some_and(|s| {
            s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                && s.match_expressions.as_ref().is_none_or(Vec::is_empty)
        });
        let namespace_selector = if all_namespaces {
            None
        } else {
            match term.namespace_selector.as_ref() {
                Some(sel) => Some(LabelSelector::from_api(Some(sel)).ok()?),
                None => None,
            }
        };
        let namespaces = if all_namespaces {
            None
        } else {
            let mut set: HashSet<String> = term.namespaces.iter().flatten().cloned().collect();
            // Upstream: neither a list nor a selector means the pod's own namespace.
            if set.is_empty() && namespace_selector.is_none() {
                set.insert(own_namespace.to_owned());
            }
            Some(set)
        };
        let mut t = AffinityTerm {
            selector,
            namespaces,
            namespace_selector,
            topology_key: term.topology_key.clone(),
            weight,
            signature: String::new(),
        };
        t.sign();
        Some(t)
    }

    fn sign(&mut self) {
        let mut ns_list: Vec<&String> = self.namespaces.iter().flatten().collect();
        ns_list.sort();
        self.signature = format!(
            "{}|{ns_list:?}|{}|{}",
            self.selector,
            self.namespaces.is_none(),
            self.topology_key
        );
    }

    /// Adds the namespaces the term's `namespaceSelector` matches (`labels` by namespace name),
    /// as upstream resolves the selector when it schedules.
    pub fn resolve_namespaces(&mut self, labels: &HashMap<String, BTreeMap<String, String>>) {
        let (Some(sel), Some(set)) = (&self.namespace_selector, self.namespaces.as_mut()) else {
            return;
        };
        for (ns, l) in labels {
            if sel.matches(l) {
                set.insert(ns.clone());
            }
        }
        self.sign();
    }

    /// Whether `pod` is one of the pods this term selects.
    pub fn matches(&self, pod: &PodInfo) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|ns| ns.contains(&pod.namespace))
            && self.selector.matches(&pod.labels)
    }
}

/// A host port a pod uses: (host IP, protocol, port).
pub type HostPort = (String, String, i32);

/// A pod with what the scheduler derives from it, computed once per pod.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub requests: Resources,
    /// CPU and memory for spreading (zero requests count as the defaults).
    pub non_zero: (i64, i64),
    pub priority: i32,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<AffinityTerm>,
    pub preferred_anti_affinity: Vec<AffinityTerm>,
}

impl PodInfo {
    /// Derives the scheduler's facts from `pod`; `priority` is the resolved priority.
    pub fn new(pod: Arc<Pod>, priority: i32) -> Self {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let mut host_ports = Vec::new();
        for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
            for p in c.ports.iter().flatten() {
                if let Some(hp) = p.host_port.filter(|p| *p > 0) {
                    host_ports.push((
                        p.host_ip
                            .clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into()),
                        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                        hp,
                    ));
                }
            }
        }
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = |terms: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .filter_map(|t| AffinityTerm::parse(t, &namespace, 0))
                .collect()
        };
        let preferred = |terms: Option<&Vec<WeightedPodAffinityTerm>>| -> Vec<AffinityTerm> {
            terms
                .into_iter()
                .flatten()
                .filter_map(|t| AffinityTerm::parse(&t.pod_affinity_term, &namespace, t.weight))
                .collect()
        };
        PodInfo {
            required_affinity: required(pa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            required_anti_affinity: required(paa.and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_affinity: preferred(pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            preferred_anti_affinity: preferred(paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })),
            name: pod.metadata.name.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            requests: pod_requests(&pod),
            non_zero: pod_non_zero_requests(&pod),
            host_ports,
            priority,
            namespace,
            pod,
        }
    }

    /// Resolves the `namespaceSelector`s of the pod's affinity terms against the cluster's
    /// namespaces (`labels` by namespace name).
    pub fn resolve_namespaces(&mut self, labels: &HashMap<String, BTreeMap<String, String>>) {
        if labels.is_empty() {
            return;
        }
        for t in self
            .required_affinity
            .iter_mut()
            .chain(self.required_anti_affinity.iter_mut())
            .chain(self.preferred_affinity.iter_mut())
            .chain(self.preferred_anti_affinity.iter_mut())
        {
            t.resolve_namespaces(labels);
        }
    }

    /// Whether any affinity term has a `namespaceSelector` to resolve.
    pub fn selects_namespaces(&self) -> bool {
        self.required_affinity
            .iter()
            .chain(&self.required_anti_affinity)
            .chain(&self.preferred_affinity)
            .chain(&self.preferred_anti_affinity)
            .any(|t| t.namespace_selector.is_some())
    }

    /// `namespace/name`, the pod's key everywhere in the scheduler.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether the pod is being deleted.
    pub fn terminating(&self) -> bool {
        self.pod.metadata.deletion_timestamp.is_some()
    }

    fn has_preferred_affinity(&self) -> bool {
        !(self.preferred_affinity.is_empty() && self.preferred_anti_affinity.is_empty())
    }
}

/// One node and what is placed on it.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub node: Arc<Node>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resources,
    /// Sum of the requests of the pods on the node.
    pub requested: Resources,
    /// CPU and memory as counted for scoring (see [`PodInfo::non_zero`]).
    pub non_zero_requested: (i64, i64),
    pub pods: Vec<Arc<PodInfo>>,
    /// Number of pods on the node with preferred pod (anti-)affinity, so scoring can skip the rest.
    pub pods_with_affinity: usize,
    /// Non-terminating pods per namespace → label key → value, so a `key=value` selector counts
    /// the node's matching pods without looking at each pod.
    label_counts: HashMap<String, HashMap<String, HashMap<String, usize>>>,
    pub used_ports: Vec<HostPort>,
    /// Image name → size in bytes, from `status.images`.
    pub images: HashMap<String, i64>,
    /// Per taint in `spec.taints` (same order), the reason TaintToleration gives when the pod
    /// does not tolerate it — built once per node, shared by every status that names it.
    pub taint_reasons: Vec<Arc<str>>,
}

impl NodeInfo {
    /// A node with no pods yet.
    pub fn new(node: Arc<Node>) -> Self {
        let mut images = HashMap::new();
        for image in node
            .status
            .as_ref()
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
        {
            for name in image.names.iter().flatten() {
                images.insert(name.clone(), image.size_bytes.unwrap_or(0));
            }
        }
        let taint_reasons = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|t| Arc::from(crate::plugins::taint_toleration::reason(t)))
            .collect();
        NodeInfo {
            taint_reasons,
            name: node.metadata.name.clone().unwrap_or_default(),
            labels: node.metadata.labels.clone().unwrap_or_default(),
            allocatable: node_allocatable(&node),
            requested: Resources::default(),
            non_zero_requested: (0, 0),
            pods: Vec::new(),
            pods_with_affinity: 0,
            label_counts: HashMap::new(),
            used_ports: Vec::new(),
            images,
            node,
        }
    }

    /// Replaces the Node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let pods = std::mem::take(&mut self.pods);
        *self = NodeInfo::new(node);
        for p in pods {
            self.add_pod(p);
        }
    }

    /// Accounts for `pod` on this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.requested.pods += 1;
        self.non_zero_requested.0 += pod.non_zero.0;
        self.non_zero_requested.1 += pod.non_zero.1;
        self.used_ports.extend(pod.host_ports.iter().cloned());
        if pod.has_preferred_affinity() {
            self.pods_with_affinity += 1;
        }
        self.count_labels(&pod, true);
        self.pods.push(pod);
    }

    /// Removes the pod `namespace/name`; returns it if it was here.
    pub fn remove_pod(&mut self, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let i = self
            .pods
            .iter()
            .position(|p| p.namespace == namespace && p.name == name)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.requested.pods -= 1;
        self.non_zero_requested.0 -= pod.non_zero.0;
        self.non_zero_requested.1 -= pod.non_zero.1;
        for port in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(j);
            }
        }
        if pod.has_preferred_affinity() {
            self.pods_with_affinity -= 1;
        }
        self.count_labels(&pod, false);
        Some(pod)
    }

    fn count_labels(&mut self, pod: &PodInfo, add: bool) {
        if pod.terminating() {
            return;
        }
        let by_key = self.label_counts.entry(pod.namespace.clone()).or_default();
        for (k, v) in &pod.labels {
            let n = by_key
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default();
            *n = if add { *n + 1 } else { n.saturating_sub(1) };
        }
    }

    /// Non-terminating pods in `namespace` on the node carrying `key=value`.
    pub fn label_count(&self, namespace: &str, key: &str, value: &str) -> usize {
        self.label_counts
            .get(namespace)
            .and_then(|by_key| by_key.get(key))
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0)
    }

    /// Non-terminating pods on the node in `namespaces` (`None`: all) that `selector` matches.
    /// A single `key=value` or `key in (…)` selector within named namespaces — by far the most
    /// common — is answered from the label index; anything else looks at each pod.
    pub fn count_matching(
        &self,
        namespaces: Option<&HashSet<String>>,
        selector: &LabelSelector,
    ) -> usize {
        if let (Some(nss), [req]) = (namespaces, selector.requirements())
            && matches!(
                req.operator(),
                Operator::Equals | Operator::DoubleEquals | Operator::In
            )
        {
            return nss
                .iter()
                .filter_map(|ns| self.label_counts.get(ns)?.get(req.key()))
                .map(|values| {
                    let vs = req.values();
                    // `in (a, a)` names `a` once: a pod is counted once.
                    vs.iter()
                        .enumerate()
                        .filter(|(i, v)| !vs[..*i].contains(v))
                        .filter_map(|(_, v)| values.get(v))
                        .sum::<usize>()
                })
                .sum();
        }
        self.pods
            .iter()
            .filter(|p| {
                !p.terminating()
                    && namespaces.is_none_or(|n| n.contains(&p.namespace))
                    && selector.matches(&p.labels)
            })
            .count()
    }
}

/// PersistentVolumes and claims, for VolumeBinding.
#[derive(Debug, Clone, Default)]
pub struct Volumes {
    pub pvs: HashMap<String, Arc<PersistentVolume>>,
    /// Keyed by `namespace/name`.
    pub pvcs: HashMap<String, Arc<PersistentVolumeClaim>>,
}

/// All nodes, in a stable order (the order filtering walks them in), and the volumes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// For reading: pods and nodes change through the methods below, which keep `domains` in
    /// step (a pod added to a `NodeInfo` directly would be missing from the index).
    pub nodes: Vec<NodeInfo>,
    index: HashMap<String, usize>,
    /// Image name → number of nodes that have it (ImageLocality's spread factor).
    pub image_nodes: HashMap<String, usize>,
    pub volumes: Volumes,
    /// Pending pods nominated to a node by preemption (`status.nominatedNodeName`), by node:
    /// the room they were promised is held for them against pods of lower priority.
    nominated: HashMap<String, Vec<Arc<PodInfo>>>,
    /// Pod key → the node it is nominated to.
    nominated_to: HashMap<String, String>,
    /// Pods per topology domain, kept in step with `nodes` by every method that changes them.
    pub(crate) domains: DomainIndex,
}

impl Snapshot {
    /// A snapshot of `nodes` with `pods` placed on their `spec.nodeName`.
    pub fn from_parts(nodes: Vec<Node>, pods: Vec<PodInfo>) -> Self {
        let mut s = Snapshot::default();
        for n in nodes {
            s.upsert_node(Arc::new(n));
        }
        for p in pods {
            let node = p
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            s.add_pod(&node, Arc::new(p));
        }
        s
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.index.get(name).map(|&i| &self.nodes[i])
    }

    /// Adds or replaces a node.
    pub fn upsert_node(&mut self, node: Arc<Node>) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(&i) = self.index.get(&name) {
            self.count_images(i, -1);
            let relabelled = node
                .metadata
                .labels
                .as_ref()
                .map_or(!self.nodes[i].labels.is_empty(), |l| {
                    *l != self.nodes[i].labels
                });
            // The node's pods move to other domains with its labels; status updates (the
            // frequent kind) leave the index alone.
            if relabelled {
                self.unindex_node(i);
            }
            self.nodes[i].set_node(node);
            if relabelled {
                self.index_node(i);
            }
            self.count_images(i, 1);
        } else {
            self.nodes.push(NodeInfo::new(node));
            self.index.insert(name, self.nodes.len() - 1);
            self.index_node(self.nodes.len() - 1);
            self.count_images(self.nodes.len() - 1, 1);
        }
    }

    fn index_node(&mut self, i: usize) {
        let n = &self.nodes[i];
        self.domains.add_node(&n.labels);
        for p in &n.pods {
            self.domains.add_pod(&n.name, &n.labels, p);
        }
    }

    fn unindex_node(&mut self, i: usize) {
        let n = &self.nodes[i];
        for p in &n.pods {
            self.domains.remove_pod(&n.name, &n.labels, p);
        }
        self.domains.remove_node(&n.labels);
    }

    /// Removes a node (its pods go with it: they are orphans until the watch removes them).
    pub fn remove_node(&mut self, name: &str) {
        let Some(i) = self.index.remove(name) else {
            return;
        };
        self.count_images(i, -1);
        self.unindex_node(i);
        self.nodes.swap_remove(i);
        if let Some(moved) = self.nodes.get(i) {
            self.index.insert(moved.name.clone(), i);
        }
    }

    fn count_images(&mut self, i: usize, delta: isize) {
        for image in self.nodes[i].images.keys() {
            let c = self.image_nodes.entry(image.clone()).or_default();
            *c = c.saturating_add_signed(delta);
        }
    }

    /// Places `pod` on `node`; false when there is no such node.
    pub fn add_pod(&mut self, node: &str, pod: Arc<PodInfo>) -> bool {
        let Some(&i) = self.index.get(node) else {
            return false;
        };
        let n = &mut self.nodes[i];
        self.domains.add_pod(&n.name, &n.labels, &pod);
        n.add_pod(pod);
        true
    }

    /// Records that `pod` (pending) is nominated to `node`, replacing an earlier nomination.
    pub fn nominate(&mut self, node: &str, pod: Arc<PodInfo>) {
        let key = pod.key();
        self.clear_nomination(&key);
        self.nominated.entry(node.to_owned()).or_default().push(pod);
        self.nominated_to.insert(key, node.to_owned());
    }

    /// Forgets the nomination of pod `key` (bound, deleted, or nominated no more).
    pub fn clear_nomination(&mut self, key: &str) {
        let Some(node) = self.nominated_to.remove(key) else {
            return;
        };
        if let Some(list) = self.nominated.get_mut(&node) {
            list.retain(|p| p.key() != key);
            if list.is_empty() {
                self.nominated.remove(&node);
            }
        }
    }

    /// The pods nominated to `node` that `pod` must leave room for: the others of at least its
    /// priority (upstream's `addNominatedPods`).
    pub fn nominated_for(&self, node: &str, pod: &PodInfo) -> Vec<Arc<PodInfo>> {
        self.nominated
            .get(node)
            .map(|list| {
                list.iter()
                    .filter(|p| p.priority >= pod.priority && p.key() != pod.key())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Takes pod `namespace/name` off `node`.
    pub fn remove_pod(&mut self, node: &str, namespace: &str, name: &str) -> Option<Arc<PodInfo>> {
        let n = &mut self.nodes[*self.index.get(node)?];
        let pod = n.remove_pod(namespace, name)?;
        // The pod as it was added: the index takes back exactly what it was given.
        self.domains.remove_pod(&n.name, &n.labels, &pod);
        Some(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::{node, pod, snapshot};
    use serde_json::json;

    #[test]
    fn count_matching_index_agrees_with_a_scan() {
        let mut snap = snapshot(
            vec![node("n", json!({}), json!({}))],
            vec![
                ("n", pod("a", json!({"app": "web", "tier": "1"}), json!({}))),
                ("n", pod("b", json!({"app": "web"}), json!({}))),
                ("n", pod("c", json!({"app": "db"}), json!({}))),
            ],
        );
        let default: HashSet<String> = ["default".to_owned()].into();
        let other: HashSet<String> = ["other".to_owned()].into();
        let cases: Vec<(&str, Option<&HashSet<String>>, usize)> = vec![
            ("app=web", Some(&default), 2),
            ("app in (web,db)", Some(&default), 3),
            ("app=web", Some(&other), 0),
            ("app=web", None, 2),
            ("app=web,tier=1", Some(&default), 1),
            ("app!=web", Some(&default), 1),
            ("", Some(&default), 3),
        ];
        for (sel, ns, want) in &cases {
            let selector = LabelSelector::parse(sel).expect("selector");
            let n = snap.node("n").expect("node");
            assert_eq!(n.count_matching(*ns, &selector), *want, "{sel}");
        }
        snap.remove_pod("n", "default", "b");
        let n = snap.node("n").expect("node");
        assert_eq!(
            n.count_matching(
                Some(&default),
                &LabelSelector::parse("app=web").expect("sel")
            ),
            1
        );
    }
}
