//! The domain index against brute force: random clusters driven through the cache (pods bound,
//! assumed, forgotten, deleted, terminating; nodes relabelled and removed), with the indexed
//! answers compared to a scan of every pod after every step that asks.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Node, Pod};
use proptest::prelude::*;
use rudder_machinery::label_selector::LabelSelector;
use serde_json::json;

use super::*;
use crate::cache::Cache;
use crate::config::Config;
use crate::queue::Queue;

const SELECTORS: &[&str] = &[
    "app=web",
    "app==db",
    "app in (web,db)",
    "app in (web,web)",
    "app=web,tier=1",
    "tier=2,app in (db)",
    "app!=web",
    "app",
    "!tier",
    "",
];
const KEYS: &[&str] = &["zone", "rack", "kubernetes.io/hostname", "missing"];
const NAMESPACES: &[&str] = &["ns0", "ns1"];

/// The answer by definition: every non-terminating pod checked against the selector.
fn brute_force(
    snap: &Snapshot,
    namespaces: Option<&HashSet<String>>,
    selector: &LabelSelector,
    key: &str,
) -> DomainCounts {
    let mut counts = DomainCounts::new();
    for node in &snap.nodes {
        let Some(domain) = node.labels.get(key) else {
            continue;
        };
        for p in &node.pods {
            if !p.terminating()
                && namespaces.is_none_or(|n| n.contains(&p.namespace))
                && selector.matches(&p.labels)
            {
                *counts.entry(domain.clone()).or_default() += 1;
            }
        }
    }
    counts
}

fn brute_force_anti(snap: &Snapshot) -> HashMap<String, DomainCounts> {
    let mut out: HashMap<String, DomainCounts> = HashMap::new();
    for node in &snap.nodes {
        for p in &node.pods {
            for t in &p.required_anti_affinity {
                if let Some(d) = node.labels.get(&t.topology_key) {
                    *out.entry(t.signature.clone())
                        .or_default()
                        .entry(d.clone())
                        .or_default() += 1;
                }
            }
        }
    }
    out
}

/// Existing pods' preferred terms (`hard` false) or required affinity terms (`hard` true, each
/// carrier weighing 1) by signature, per domain.
fn brute_force_weighted(snap: &Snapshot, hard: bool) -> HashMap<String, DomainWeights> {
    let mut out: HashMap<String, DomainWeights> = HashMap::new();
    for node in &snap.nodes {
        for p in &node.pods {
            let terms: Vec<(&AffinityTerm, i64)> = if hard {
                p.required_affinity.iter().map(|t| (t, 1)).collect()
            } else {
                (p.preferred_affinity
                    .iter()
                    .map(|t| (t, i64::from(t.weight))))
                .chain(
                    p.preferred_anti_affinity
                        .iter()
                        .map(|t| (t, -i64::from(t.weight))),
                )
                .collect()
            };
            for (t, w) in terms {
                if let Some(d) = node.labels.get(&t.topology_key) {
                    add_signed(out.entry(t.signature.clone()).or_default(), d, w);
                }
            }
        }
    }
    out.retain(|_, w| !w.is_empty());
    out
}

/// Every indexed answer equals the brute-force one.
fn check(snap: &Snapshot) {
    let all: HashSet<String> = NAMESPACES.iter().map(|s| s.to_string()).collect();
    let one: HashSet<String> = ["ns0".to_owned()].into();
    let none = HashSet::new();
    let namespace_sets = [None, Some(&all), Some(&one), Some(&none)];
    let mut selectors: Vec<LabelSelector> = SELECTORS
        .iter()
        .map(|s| LabelSelector::parse(s).expect("selector"))
        .collect();
    selectors.push(LabelSelector::nothing());
    for sel in &selectors {
        for ns in namespace_sets {
            for key in KEYS {
                let got = snap.pods_per_domain(ns, sel, key);
                let want = brute_force(snap, ns, sel, key);
                assert_eq!(*got.merged(), want, "{sel} in {ns:?} by {key}");
                assert_eq!(got.is_empty(), want.is_empty(), "{sel} {ns:?} {key}");
                for (d, n) in &want {
                    assert_eq!(got.get(d), *n, "{sel} {ns:?} {key}={d}");
                }
            }
        }
    }
    let got: HashMap<String, DomainCounts> = snap
        .existing_anti_terms()
        .filter(|(_, c)| !c.is_empty())
        .map(|(t, c)| (t.signature.clone(), (**c).clone()))
        .collect();
    assert_eq!(got, brute_force_anti(snap), "anti-affinity terms");
    let got: HashMap<String, DomainWeights> = snap
        .existing_preferred_terms()
        .filter(|(_, w)| !w.is_empty())
        .map(|(t, w)| (t.signature.clone(), (**w).clone()))
        .collect();
    assert_eq!(got, brute_force_weighted(snap, false), "preferred terms");
    let got: HashMap<String, DomainWeights> = snap
        .existing_required_affinity_terms()
        .filter(|(_, w)| !w.is_empty())
        .map(|(t, w)| (t.signature.clone(), (**w).clone()))
        .collect();
    assert_eq!(
        got,
        brute_force_weighted(snap, true),
        "required affinity terms"
    );
    scoring::check(snap);
    for key in KEYS {
        let domains: HashSet<&String> = snap
            .nodes
            .iter()
            .filter_map(|n| n.labels.get(*key))
            .collect();
        assert_eq!(snap.domain_count(key), domains.len(), "domains of {key}");
        let carrying = snap
            .nodes
            .iter()
            .filter(|n| n.labels.contains_key(*key))
            .count();
        assert_eq!(snap.nodes_with_key(key), carrying, "nodes with {key}");
    }
}

mod scoring;

#[derive(Debug, Clone)]
struct PodSpec {
    ns: usize,
    app: Option<usize>,
    tier: Option<usize>,
    terminating: bool,
    /// (selector on `app`, topology key) of a required anti-affinity term.
    anti: Option<(usize, usize)>,
    /// (selector on `app`, topology key, weight, anti-affinity?) of a preferred term.
    preferred: Option<(usize, usize, i32, bool)>,
    /// (selector on `app`, topology key) of a required affinity term.
    affinity: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
enum Op {
    /// Adds the node or changes its labels.
    Node {
        node: usize,
        zone: Option<usize>,
        rack: Option<usize>,
    },
    DeleteNode(usize),
    Bound(usize, usize, PodSpec),
    Assume(usize, usize, PodSpec),
    Forget(usize),
    Delete(usize),
    Check,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (
        0..NAMESPACES.len(),
        proptest::option::of(0..2usize),
        proptest::option::of(0..2usize),
        proptest::bool::weighted(0.15),
        proptest::option::weighted(0.3, (0..2usize, 0..3usize)),
        proptest::option::weighted(0.3, (0..2usize, 0..3usize, 1..4i32, proptest::bool::ANY)),
        proptest::option::weighted(0.2, (0..2usize, 0..3usize)),
    )
        .prop_map(
            |(ns, app, tier, terminating, anti, preferred, affinity)| PodSpec {
                ns,
                app,
                tier,
                terminating,
                anti,
                preferred,
                affinity,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..5usize;
    let pod = 0..12usize;
    prop_oneof![
        2 => (node.clone(), proptest::option::of(0..3usize), proptest::option::of(0..2usize))
            .prop_map(|(node, zone, rack)| Op::Node { node, zone, rack }),
        1 => node.clone().prop_map(Op::DeleteNode),
        5 => (pod.clone(), node.clone(), pod_spec()).prop_map(|(p, n, s)| Op::Bound(p, n, s)),
        4 => (pod.clone(), node, pod_spec()).prop_map(|(p, n, s)| Op::Assume(p, n, s)),
        2 => pod.clone().prop_map(Op::Forget),
        2 => pod.prop_map(Op::Delete),
        3 => Just(Op::Check),
    ]
}

fn node_object(i: usize, zone: Option<usize>, rack: Option<usize>) -> Node {
    let name = format!("n{i}");
    let mut labels = BTreeMap::from([("kubernetes.io/hostname".to_owned(), name.clone())]);
    if let Some(z) = zone {
        labels.insert("zone".into(), format!("z{z}"));
    }
    if let Some(r) = rack {
        labels.insert("rack".into(), format!("r{r}"));
    }
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
        "status": {"allocatable": {"cpu": "64", "pods": "110"}}}))
    .expect("node")
}

fn pod_object(i: usize, node: Option<usize>, s: &PodSpec) -> Pod {
    let mut labels = BTreeMap::new();
    if let Some(a) = s.app {
        labels.insert("app", ["web", "db"][a]);
    }
    if let Some(t) = s.tier {
        labels.insert("tier", ["1", "2"][t]);
    }
    let mut spec = json!({"schedulerName": "default-scheduler", "containers": [{"name": "c"}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(format!("n{n}"));
    }
    if let Some((app, key)) = s.anti {
        let (app, key) = (["web", "db"][app], KEYS[key]);
        spec["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}});
    }
    if let Some((app, key)) = s.affinity {
        let (app, key) = (["web", "db"][app], KEYS[key]);
        spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] =
            json!([{"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]);
    }
    if let Some((app, key, weight, anti)) = s.preferred {
        let (app, key) = (["web", "db"][app], KEYS[key]);
        let kind = if anti {
            "podAntiAffinity"
        } else {
            "podAffinity"
        };
        let term = json!({"weight": weight, "podAffinityTerm":
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}});
        spec["affinity"][kind]["preferredDuringSchedulingIgnoredDuringExecution"] = json!([term]);
    }
    let mut meta =
        json!({"name": format!("p{i}"), "namespace": NAMESPACES[s.ns], "labels": labels});
    if s.terminating {
        meta["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({"metadata": meta, "spec": spec})).expect("pod")
}

fn run(ops: &[Op]) {
    let config = Config::default();
    let mut cache = Cache::default();
    let mut queue = Queue::default();
    let now = Instant::now();
    for i in 0..3 {
        cache.apply_node(node_object(i, Some(i % 2), None), &mut queue, now);
    }
    // Where each pod (by index) lives in the namespaces, for keys.
    let mut namespace_of: HashMap<usize, usize> = HashMap::new();
    for op in ops {
        match op {
            Op::Node { node, zone, rack } => {
                cache.apply_node(node_object(*node, *zone, *rack), &mut queue, now)
            }
            Op::DeleteNode(n) => cache.delete_node(&format!("n{n}")),
            Op::Bound(p, n, s) => {
                if let Some(old) = namespace_of.insert(*p, s.ns)
                    && old != s.ns
                {
                    cache.delete_pod(&format!("{}/p{p}", NAMESPACES[old]), &mut queue, now);
                }
                cache.apply_pod(pod_object(*p, Some(*n), s), &mut queue, &config, now);
            }
            Op::Assume(p, n, s) => {
                if let Some(old) = namespace_of.insert(*p, s.ns)
                    && old != s.ns
                {
                    cache.delete_pod(&format!("{}/p{p}", NAMESPACES[old]), &mut queue, now);
                }
                let info = PodInfo::new(Arc::new(pod_object(*p, None, s)), 0);
                cache.assume(&info.key(), &format!("n{n}"), Arc::new(info));
            }
            Op::Forget(p) => {
                if let Some(ns) = namespace_of.get(p) {
                    cache.forget(&format!("{}/p{p}", NAMESPACES[*ns]));
                }
            }
            Op::Delete(p) => {
                if let Some(ns) = namespace_of.remove(p) {
                    cache.delete_pod(&format!("{}/p{p}", NAMESPACES[ns]), &mut queue, now);
                }
            }
            Op::Check => check(&cache.snapshot),
        }
    }
    check(&cache.snapshot);
    // A clone answers the same, and the original keeps its answers after the clone changes.
    let mut copy = cache.snapshot.clone();
    check(&copy);
    if let Some(name) = copy.nodes.first().map(|n| n.name.clone()) {
        copy.remove_node(&name);
        check(&copy);
        check(&cache.snapshot);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn index_agrees_with_brute_force(ops in proptest::collection::vec(op(), 0..60)) {
        run(&ops);
    }
}

#[test]
fn table() {
    let web = |ns: usize| PodSpec {
        ns,
        app: Some(0),
        tier: None,
        terminating: false,
        anti: None,
        preferred: None,
        affinity: None,
    };
    let guard = PodSpec {
        anti: Some((0, 0)),
        ..web(0)
    };
    let cases: Vec<(&str, Vec<Op>)> = vec![
        ("empty cluster", vec![]),
        (
            "aggregation built, then pods added and removed",
            vec![
                Op::Bound(0, 0, web(0)),
                Op::Check,
                Op::Bound(1, 1, web(0)),
                Op::Assume(2, 2, web(0)),
                Op::Check,
                Op::Forget(2),
                Op::Delete(0),
                Op::Check,
            ],
        ),
        (
            "the last pod of a label goes and comes back",
            vec![
                Op::Bound(0, 0, web(0)),
                Op::Check,
                Op::Delete(0),
                Op::Check,
                Op::Bound(0, 1, web(0)),
            ],
        ),
        (
            "a node changes zone under its pods",
            vec![
                Op::Bound(0, 0, web(0)),
                Op::Bound(1, 0, guard.clone()),
                Op::Check,
                Op::Node {
                    node: 0,
                    zone: Some(2),
                    rack: Some(0),
                },
                Op::Check,
                Op::Node {
                    node: 0,
                    zone: None,
                    rack: None,
                },
            ],
        ),
        (
            "a node and its pods go",
            vec![
                Op::Bound(0, 1, web(1)),
                Op::Bound(1, 1, guard),
                Op::Check,
                Op::DeleteNode(1),
                Op::Check,
                Op::Delete(0),
            ],
        ),
        (
            "a pod is bound where it was assumed, then elsewhere",
            vec![
                Op::Assume(0, 0, web(0)),
                Op::Check,
                Op::Bound(0, 0, web(0)),
                Op::Check,
                Op::Bound(0, 2, web(0)),
            ],
        ),
    ];
    for (name, ops) in cases {
        eprintln!("{name}");
        run(&ops);
    }
}
