//! Per-topology-domain pod counts for the whole snapshot, kept current as pods and nodes come and
//! go, so InterPodAffinity and PodTopologySpread answer "how many pods in namespace N matching
//! `key=value` are in each domain of topology key K" in O(domains), not by visiting every node.
//!
//! The index is keyed by what a pod carries — namespace, label key, label value — and holds, per
//! such label, how many pods carry it plus the per-domain aggregations asked for so far. An
//! aggregation is built once by a scan when first asked for (under a lock: PreFilter only reads
//! the snapshot) and from then on updated in place with every pod added or removed, so its answer
//! is always the scan's answer. When the last pod carrying a label goes, its aggregations go too,
//! which bounds the memory by the labels in use. Existing pods' required anti-affinity terms are
//! aggregated the same way, by term signature, per domain of the term's own topology key, and so
//! are their preferred affinity and anti-affinity terms, as signed weights (InterPodAffinity's
//! PreScore: an existing pod's preference about the incoming pod scores its domain).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use rudder_machinery::label_selector::{LabelSelector, Operator, Requirement};

use crate::snapshot::{AffinityTerm, PodInfo, Snapshot};

/// Domain value (or node name) → number of matching pods; only positive counts are kept, so an
/// empty map means "no matching pod anywhere".
pub type DomainCounts = HashMap<String, i64>;

/// What an aggregation groups pods by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grouping<'a> {
    /// The value of this node label key (nodes without it are left out).
    Label(&'a str),
    /// The node's name: the nodes with matching pods, for selectors the index cannot answer
    /// alone (several requirements), which then check only those nodes.
    Node,
}

/// Counts from one or more aggregations that together answer one question (a selector with
/// `in (a, b)` or several namespaces sums one aggregation per value and namespace; a pod has
/// one value per key and one namespace, so the parts never count the same pod twice), plus the
/// changes preemption's dry run made on top of them (so a shared map is never copied).
#[derive(Debug, Clone, Default)]
pub struct Domains {
    parts: Vec<Arc<DomainCounts>>,
    delta: DomainWeights,
}

impl Domains {
    pub fn new(parts: Vec<Arc<DomainCounts>>) -> Self {
        let parts = parts.into_iter().filter(|p| !p.is_empty()).collect();
        Domains {
            parts,
            delta: DomainWeights::new(),
        }
    }

    /// Matching pods in domain `value`.
    pub fn get(&self, value: &str) -> i64 {
        let base: i64 = self.parts.iter().filter_map(|p| p.get(value)).sum();
        base + self.delta.get(value).copied().unwrap_or(0)
    }

    /// Counts `by` more (or fewer) pods in domain `value`.
    pub fn adjust(&mut self, value: &str, by: i64) {
        add_signed(&mut self.delta, value, by);
    }

    /// Every domain with a matching pod, once each, with its count.
    pub fn positive(&self) -> impl Iterator<Item = (&str, i64)> {
        let seen = |d: &str, before: &[Arc<DomainCounts>]| before.iter().any(|p| p.contains_key(d));
        let from_parts = self.parts.iter().enumerate().flat_map(move |(i, p)| {
            p.keys()
                .filter(move |d| !seen(d, &self.parts[..i]))
                .map(String::as_str)
        });
        let from_delta = self
            .delta
            .keys()
            .filter(move |d| !seen(d, &self.parts))
            .map(String::as_str);
        from_parts
            .chain(from_delta)
            .map(|d| (d, self.get(d)))
            .filter(|(_, n)| *n > 0)
    }

    /// Whether no domain has a matching pod.
    pub fn is_empty(&self) -> bool {
        if self.delta.is_empty() {
            self.parts.is_empty()
        } else {
            self.positive().next().is_none()
        }
    }

    /// One map of every domain with a matching pod (shared, not copied, when there is one part
    /// and no change on top).
    pub fn merged(&self) -> Arc<DomainCounts> {
        match (self.parts.as_slice(), self.delta.is_empty()) {
            ([], true) => Arc::default(),
            ([one], true) => one.clone(),
            _ => Arc::new(self.positive().map(|(d, n)| (d.to_owned(), n)).collect()),
        }
    }
}

/// Domain value → summed signed weights of preferred terms (affinity +weight, anti-affinity
/// −weight); domains that sum to zero are left out.
pub type DomainWeights = HashMap<String, i64>;

/// Adds `by` (of either sign) to `domain`, dropping it when it sums to zero.
pub fn add_signed(weights: &mut DomainWeights, domain: &str, by: i64) {
    match weights.get_mut(domain) {
        Some(w) => {
            *w += by;
            if *w == 0 {
                weights.remove(domain);
            }
        }
        None if by != 0 => {
            weights.insert(domain.to_owned(), by);
        }
        None => {}
    }
}

/// Adds `by` to `domain`, dropping it at zero.
pub fn bump(counts: &mut DomainCounts, domain: &str, by: i64) {
    match counts.get_mut(domain) {
        Some(c) => {
            *c += by;
            if *c <= 0 {
                counts.remove(domain);
            }
        }
        None if by > 0 => {
            counts.insert(domain.to_owned(), by);
        }
        None => {}
    }
}

#[derive(Debug, Clone, Default)]
struct Aggregations {
    by_key: HashMap<String, Arc<DomainCounts>>,
    by_node: Option<Arc<DomainCounts>>,
}

/// The aggregations of one label, behind a lock so a reader can add one; writers own the index
/// (`&mut`) and never lock.
#[derive(Debug, Default)]
struct Memo(Mutex<Aggregations>);

impl Memo {
    fn get_mut(&mut self) -> &mut Aggregations {
        self.0.get_mut().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for Memo {
    fn clone(&self) -> Self {
        Memo(Mutex::new(
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        ))
    }
}

#[derive(Debug, Clone, Default)]
struct LabelEntry {
    /// Non-terminating pods carrying the label.
    pods: usize,
    memo: Memo,
}

#[derive(Debug, Clone)]
struct AntiTerm {
    term: AffinityTerm,
    /// Pods carrying the term, wherever they are (also on nodes without its topology key).
    carriers: usize,
    counts: Arc<DomainCounts>,
}

#[derive(Debug, Clone)]
struct PreferredTerm {
    term: AffinityTerm,
    /// Pods carrying the term (as affinity or anti-affinity), wherever they are.
    carriers: usize,
    weights: Arc<DomainWeights>,
}

/// The index; see the module documentation. [`crate::snapshot::Snapshot`] owns one and feeds it
/// every pod and node change.
#[derive(Debug, Clone, Default)]
pub struct DomainIndex {
    /// namespace → label key → label value → entry.
    labels: HashMap<String, HashMap<String, HashMap<String, LabelEntry>>>,
    /// Existing pods' required anti-affinity terms by signature.
    anti_terms: HashMap<String, AntiTerm>,
    /// Existing pods' preferred affinity and anti-affinity terms by signature (a term some pods
    /// prefer and others avoid is one entry: their weights net out per domain).
    preferred_terms: HashMap<String, PreferredTerm>,
    /// Existing pods' required affinity terms by signature, each carrier weighing 1 in its
    /// domain: scoring weighs them by InterPodAffinity's `hardPodAffinityWeight`.
    hard_terms: HashMap<String, PreferredTerm>,
    /// Node label key → value → nodes carrying it: the domains of every topology key.
    node_domains: HashMap<String, HashMap<String, usize>>,
    /// Node label key → nodes carrying it.
    key_nodes: HashMap<String, usize>,
}

impl DomainIndex {
    /// A node joined (or its labels are back after a change).
    pub fn add_node(&mut self, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            *self.key_nodes.entry(k.clone()).or_default() += 1;
            *self
                .node_domains
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default() += 1;
        }
    }

    /// A node left (or its labels are about to change).
    pub fn remove_node(&mut self, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            if let Some(n) = self.key_nodes.get_mut(k) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.key_nodes.remove(k);
                }
            }
            let Some(values) = self.node_domains.get_mut(k) else {
                continue;
            };
            if let Some(n) = values.get_mut(v) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    values.remove(v);
                }
            }
            if values.is_empty() {
                self.node_domains.remove(k);
            }
        }
    }

    /// The domains of topology key `key`: value → nodes carrying it.
    pub fn node_domains(&self, key: &str) -> Option<&HashMap<String, usize>> {
        self.node_domains.get(key)
    }

    /// How many nodes carry label key `key`.
    pub fn nodes_with_key(&self, key: &str) -> usize {
        self.key_nodes.get(key).copied().unwrap_or(0)
    }

    /// `pod` was placed on the node `node` with `node_labels`.
    pub fn add_pod(&mut self, node: &str, node_labels: &BTreeMap<String, String>, pod: &PodInfo) {
        self.update(node, node_labels, pod, 1);
    }

    /// `pod` was taken off the node `node` with `node_labels`.
    pub fn remove_pod(
        &mut self,
        node: &str,
        node_labels: &BTreeMap<String, String>,
        pod: &PodInfo,
    ) {
        self.update(node, node_labels, pod, -1);
    }

    fn update(
        &mut self,
        node: &str,
        node_labels: &BTreeMap<String, String>,
        pod: &PodInfo,
        by: i64,
    ) {
        for t in &pod.required_anti_affinity {
            let e = match self.anti_terms.get_mut(&t.signature) {
                Some(e) => e,
                None if by > 0 => self
                    .anti_terms
                    .entry(t.signature.clone())
                    .or_insert_with(|| AntiTerm {
                        term: t.clone(),
                        carriers: 0,
                        counts: Arc::default(),
                    }),
                None => continue,
            };
            if let Some(domain) = node_labels.get(&t.topology_key) {
                bump(Arc::make_mut(&mut e.counts), domain, by);
            }
            e.carriers = e.carriers.saturating_add_signed(by as isize);
            if e.carriers == 0 {
                self.anti_terms.remove(&t.signature);
            }
        }
        let preferred = (pod.preferred_affinity.iter().map(|t| (t, 1)))
            .chain(pod.preferred_anti_affinity.iter().map(|t| (t, -1)));
        for (t, sign) in preferred {
            let w = by * sign * i64::from(t.weight);
            weigh(&mut self.preferred_terms, t, node_labels, by, w);
        }
        for t in &pod.required_affinity {
            weigh(&mut self.hard_terms, t, node_labels, by, by);
        }
        // Terminating pods match no selector here, as in `NodeInfo::count_matching`.
        if pod.terminating() {
            return;
        }
        for (k, v) in &pod.labels {
            if by > 0 {
                let entry = self
                    .labels
                    .entry(pod.namespace.clone())
                    .or_default()
                    .entry(k.clone())
                    .or_default()
                    .entry(v.clone())
                    .or_default();
                entry.pods += 1;
                apply(entry.memo.get_mut(), node, node_labels, 1);
                continue;
            }
            let Some(by_key) = self.labels.get_mut(&pod.namespace) else {
                continue;
            };
            let Some(values) = by_key.get_mut(k) else {
                continue;
            };
            let Some(entry) = values.get_mut(v) else {
                continue;
            };
            entry.pods = entry.pods.saturating_sub(1);
            if entry.pods == 0 {
                // Its aggregations are empty now; a later pod starts the label afresh.
                values.remove(v);
                if values.is_empty() {
                    by_key.remove(k);
                    if by_key.is_empty() {
                        self.labels.remove(&pod.namespace);
                    }
                }
            } else {
                apply(entry.memo.get_mut(), node, node_labels, -1);
            }
        }
    }

    /// Namespaces with at least one indexed pod.
    pub fn namespaces(&self) -> impl Iterator<Item = &String> {
        self.labels.keys()
    }

    /// Whether any non-terminating pod in `namespace` carries `key=value`.
    pub fn has_label(&self, namespace: &str, key: &str, value: &str) -> bool {
        self.entry(namespace, key, value).is_some()
    }

    fn entry(&self, namespace: &str, key: &str, value: &str) -> Option<&LabelEntry> {
        self.labels.get(namespace)?.get(key)?.get(value)
    }

    /// Pods in `namespace` carrying `key=value`, per group; `scan` builds the aggregation the
    /// first time it is asked for (from the nodes, which the index does not hold). `None` when
    /// no such pod exists.
    pub fn aggregate(
        &self,
        namespace: &str,
        key: &str,
        value: &str,
        grouping: Grouping<'_>,
        scan: impl FnOnce() -> DomainCounts,
    ) -> Option<Arc<DomainCounts>> {
        let entry = self.entry(namespace, key, value)?;
        let mut memo = entry.memo.0.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = match grouping {
            Grouping::Node => memo.by_node.get_or_insert_with(|| Arc::new(scan())),
            Grouping::Label(k) => match memo.by_key.get(k) {
                Some(c) => return Some(c.clone()),
                None => memo.by_key.entry(k.to_owned()).or_insert(Arc::new(scan())),
            },
        };
        Some(counts.clone())
    }

    /// Existing pods' distinct required anti-affinity terms with their pods per domain of the
    /// term's topology key.
    pub fn anti_terms(&self) -> impl Iterator<Item = (&AffinityTerm, &Arc<DomainCounts>)> {
        self.anti_terms.values().map(|e| (&e.term, &e.counts))
    }

    /// Existing pods' distinct preferred affinity and anti-affinity terms with their carriers'
    /// signed weights per domain of the term's topology key.
    pub fn preferred_terms(&self) -> impl Iterator<Item = (&AffinityTerm, &Arc<DomainWeights>)> {
        self.preferred_terms.values().map(|e| (&e.term, &e.weights))
    }

    /// Existing pods' distinct required affinity terms, each with its carriers per domain.
    pub fn hard_terms(&self) -> impl Iterator<Item = (&AffinityTerm, &Arc<DomainWeights>)> {
        self.hard_terms.values().map(|e| (&e.term, &e.weights))
    }
}

/// Brings one label's aggregations up to date with a pod placed (`by` 1) or removed (-1).
/// Adds `w` to the domain of `node_labels` in the entry of term `t` (a carrier joined when `by`
/// is positive, left when negative); an entry whose last carrier left is dropped.
fn weigh(
    terms: &mut HashMap<String, PreferredTerm>,
    t: &AffinityTerm,
    node_labels: &BTreeMap<String, String>,
    by: i64,
    w: i64,
) {
    let e = match terms.get_mut(&t.signature) {
        Some(e) => e,
        None if by > 0 => terms
            .entry(t.signature.clone())
            .or_insert_with(|| PreferredTerm {
                term: t.clone(),
                carriers: 0,
                weights: Arc::default(),
            }),
        None => return,
    };
    if let Some(domain) = node_labels.get(&t.topology_key) {
        add_signed(Arc::make_mut(&mut e.weights), domain, w);
    }
    e.carriers = e.carriers.saturating_add_signed(by as isize);
    if e.carriers == 0 {
        terms.remove(&t.signature);
    }
}

fn apply(aggs: &mut Aggregations, node: &str, node_labels: &BTreeMap<String, String>, by: i64) {
    for (key, counts) in &mut aggs.by_key {
        if let Some(domain) = node_labels.get(key) {
            bump(Arc::make_mut(counts), domain, by);
        }
    }
    if let Some(counts) = &mut aggs.by_node {
        bump(Arc::make_mut(counts), node, by);
    }
}

/// Whether a requirement names the values a matching pod must carry (`=`, `==`, `in`): only
/// those can be looked up by label.
fn positive(r: &Requirement) -> bool {
    matches!(
        r.operator(),
        Operator::Equals | Operator::DoubleEquals | Operator::In
    )
}

impl Snapshot {
    /// Non-terminating pods in `namespaces` (`None`: every namespace) that `selector` matches,
    /// per domain of the node label `topology_key` (nodes without it are left out).
    ///
    /// A selector of one `=`/`in` requirement — the common case — is answered from the index's
    /// aggregations alone. With more requirements, one `=`/`in` requirement narrows the nodes to
    /// those with pods carrying it, and only those are checked pod by pod. A selector without
    /// any (`!=`, `exists`, empty) scans every node.
    pub fn pods_per_domain(
        &self,
        namespaces: Option<&HashSet<String>>,
        selector: &LabelSelector,
        topology_key: &str,
    ) -> Domains {
        if selector.matches_nothing() {
            return Domains::default();
        }
        let Some(req) = selector.requirements().iter().find(|r| positive(r)) else {
            return Domains::new(vec![Arc::new(self.scan_domains(
                namespaces,
                selector,
                topology_key,
            ))]);
        };
        let nss: Vec<&String> = match namespaces {
            Some(set) => set.iter().collect(),
            None => self.domains.namespaces().collect(),
        };
        let mut values: Vec<&String> = req.values().iter().collect();
        values.sort();
        values.dedup();
        let only = selector.requirements().len() == 1;
        let grouping = if only {
            Grouping::Label(topology_key)
        } else {
            Grouping::Node
        };
        let mut parts = Vec::new();
        for ns in &nss {
            for v in &values {
                let scan = || self.scan_label(ns, req.key(), v, grouping);
                if let Some(c) = self.domains.aggregate(ns, req.key(), v, grouping, scan) {
                    parts.push(c);
                }
            }
        }
        if only {
            return Domains::new(parts);
        }
        let nodes: HashSet<&str> = parts
            .iter()
            .flat_map(|p| p.keys().map(String::as_str))
            .collect();
        let mut counts = DomainCounts::new();
        for node in nodes.into_iter().filter_map(|n| self.node(n)) {
            let Some(domain) = node.labels.get(topology_key) else {
                continue;
            };
            let n = node.count_matching(namespaces, selector);
            bump(&mut counts, domain, i64::try_from(n).unwrap_or(i64::MAX));
        }
        Domains::new(vec![Arc::new(counts)])
    }

    /// The number of distinct values of node label `key` (its topology domains).
    pub fn domain_count(&self, key: &str) -> usize {
        self.domains.node_domains(key).map_or(0, HashMap::len)
    }

    /// How many nodes carry the label key `key`.
    pub fn nodes_with_key(&self, key: &str) -> usize {
        self.domains.nodes_with_key(key)
    }

    /// Existing pods' distinct required anti-affinity terms, each with its pods per domain.
    pub fn existing_anti_terms(&self) -> impl Iterator<Item = (&AffinityTerm, &Arc<DomainCounts>)> {
        self.domains.anti_terms()
    }

    /// Existing pods' distinct preferred (anti-)affinity terms, each with its carriers' signed
    /// weights per domain.
    pub fn existing_preferred_terms(
        &self,
    ) -> impl Iterator<Item = (&AffinityTerm, &Arc<DomainWeights>)> {
        self.domains.preferred_terms()
    }

    /// Existing pods' distinct required affinity terms, each with its carriers per domain.
    pub fn existing_required_affinity_terms(
        &self,
    ) -> impl Iterator<Item = (&AffinityTerm, &Arc<DomainWeights>)> {
        self.domains.hard_terms()
    }

    /// Builds one label's aggregation from the nodes' own label counts.
    fn scan_label(&self, ns: &str, key: &str, value: &str, grouping: Grouping<'_>) -> DomainCounts {
        let mut counts = DomainCounts::new();
        for node in &self.nodes {
            let group = match grouping {
                Grouping::Label(k) => match node.labels.get(k) {
                    Some(d) => d.as_str(),
                    None => continue,
                },
                Grouping::Node => node.name.as_str(),
            };
            let n = node.label_count(ns, key, value);
            if n > 0 {
                bump(&mut counts, group, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        counts
    }

    /// The fallback: every node with the topology key, its pods checked one by one.
    fn scan_domains(
        &self,
        namespaces: Option<&HashSet<String>>,
        selector: &LabelSelector,
        topology_key: &str,
    ) -> DomainCounts {
        let mut counts = DomainCounts::new();
        for node in &self.nodes {
            let Some(domain) = node.labels.get(topology_key) else {
                continue;
            };
            let n = node.count_matching(namespaces, selector);
            if n > 0 {
                bump(&mut counts, domain, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        counts
    }
}

#[cfg(test)]
mod tests;
