//! The in-tree plugins, one file each, and the registry that lists them by name.

pub mod balanced_allocation;
pub mod fit;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_unschedulable;
pub mod taint_toleration;
pub mod topology_spread;
pub mod volume_binding;

use std::sync::Arc;

use crate::config::PluginArgs;
use crate::framework::Plugin;

/// A plugin constructor: takes the profile's `pluginConfig` for it.
pub type Factory = fn(&PluginArgs) -> Arc<dyn Plugin>;

/// Every in-tree plugin, by name, listed once (the registry upstream calls `NewInTreeRegistry`).
pub const REGISTRY: &[(&str, Factory)] = &[
    ("NodeUnschedulable", |_| {
        Arc::new(node_unschedulable::NodeUnschedulable)
    }),
    ("NodeName", |_| Arc::new(node_name::NodeName)),
    ("TaintToleration", |_| {
        Arc::new(taint_toleration::TaintToleration)
    }),
    ("NodeAffinity", |_| Arc::new(node_affinity::NodeAffinity)),
    ("NodePorts", |_| Arc::new(node_ports::NodePorts)),
    ("NodeResourcesFit", |args| Arc::new(fit::Fit::new(args))),
    ("VolumeBinding", |_| Arc::new(volume_binding::VolumeBinding)),
    ("PodTopologySpread", |_| {
        Arc::new(topology_spread::PodTopologySpread)
    }),
    ("InterPodAffinity", |args| {
        Arc::new(inter_pod_affinity::InterPodAffinity::new(args))
    }),
    ("NodeResourcesBalancedAllocation", |_| {
        Arc::new(balanced_allocation::BalancedAllocation)
    }),
    ("ImageLocality", |_| Arc::new(image_locality::ImageLocality)),
];

/// Plugins the framework itself implements, accepted by name in configuration files.
pub const BUILT_IN: &[&str] = &["PrioritySort", "DefaultPreemption", "DefaultBinder"];

#[cfg(test)]
pub(crate) mod testing {
    //! Builders for table tests.

    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use serde_json::{Value, json};

    use crate::framework::{CycleState, Plugin, Status};
    use crate::snapshot::{PodInfo, Snapshot};

    /// A node named `name` with `labels`, 4 CPUs, 8 GiB, 110 pods, and `extra` merged into the
    /// object (spec, status fields).
    pub fn node(name: &str, labels: Value, extra: Value) -> Node {
        let mut v = json!({
            "metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}},
        });
        merge(&mut v, extra);
        serde_json::from_value(v).expect("node")
    }

    /// Nodes `a1`, `b1` and `c1` in zones `a`, `b` and `c`, and `nozone` without the label.
    pub fn zone_nodes() -> Vec<Node> {
        let mut nodes: Vec<Node> = ["a", "b", "c"]
            .iter()
            .map(|z| node(&format!("{z}1"), json!({"zone": z}), json!({})))
            .collect();
        nodes.push(node("nozone", json!({}), json!({})));
        nodes
    }

    /// A pod `ns/name` with `labels` and `spec` (containers default to one named `c`).
    pub fn pod(name: &str, labels: Value, spec: Value) -> PodInfo {
        let mut s = json!({"containers": [{"name": "c"}]});
        merge(&mut s, spec);
        let p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": s,
        }))
        .expect("pod");
        let priority = p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        PodInfo::new(Arc::new(p), priority)
    }

    /// A snapshot of `nodes` and `(node, pod)` placements.
    pub fn snapshot(nodes: Vec<Node>, pods: Vec<(&str, PodInfo)>) -> Snapshot {
        let mut s = Snapshot::from_parts(nodes, vec![]);
        for (n, p) in pods {
            assert!(s.add_pod(n, Arc::new(p)), "no node {n}");
        }
        s
    }

    /// Runs PreFilter then Filter on every node; returns (node, status) pairs, or the PreFilter
    /// status when it rejected.
    pub fn filter_all(
        plugin: &dyn Plugin,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> Vec<(String, Status)> {
        let mut state = CycleState::default();
        let pre = plugin.pre_filter(&mut state, pod, snap);
        if pre.code == crate::framework::Code::Skip {
            return snap
                .nodes
                .iter()
                .map(|n| (n.name.clone(), Status::success()))
                .collect();
        }
        if !pre.is_success() {
            return vec![("<prefilter>".into(), pre)];
        }
        snap.nodes
            .iter()
            .map(|n| (n.name.clone(), plugin.filter(&state, pod, n)))
            .collect()
    }

    /// Names of the nodes that pass.
    pub fn passing(plugin: &dyn Plugin, pod: &PodInfo, snap: &Snapshot) -> Vec<String> {
        let mut v: Vec<String> = filter_all(plugin, pod, snap)
            .into_iter()
            .filter(|(_, s)| s.passes())
            .map(|(n, _)| n)
            .collect();
        v.sort();
        v
    }

    /// Normalized scores of every node, by name, sorted by name.
    pub fn scores(plugin: &dyn Plugin, pod: &PodInfo, snap: &Snapshot) -> Vec<(String, i64)> {
        let mut state = CycleState::default();
        let feasible: Vec<_> = snap.nodes.iter().collect();
        let _ = plugin.pre_filter(&mut state, pod, snap);
        let _ = plugin.pre_score(&mut state, pod, snap, &feasible);
        let mut raw: Vec<i64> = feasible
            .iter()
            .map(|n| plugin.score(&state, pod, n))
            .collect();
        plugin.normalize_score(&state, &mut raw);
        let mut v: Vec<(String, i64)> = feasible.iter().map(|n| n.name.clone()).zip(raw).collect();
        v.sort();
        v
    }

    /// Merges `extra`'s members into `base`, objects recursively, anything else replaced.
    pub fn merge(base: &mut Value, extra: Value) {
        if let (Some(b), Value::Object(e)) = (base.as_object_mut(), extra) {
            for (k, v) in e {
                match (b.get_mut(&k), v) {
                    (Some(slot @ Value::Object(_)), v @ Value::Object(_)) => merge(slot, v),
                    (_, v) => {
                        b.insert(k, v);
                    }
                }
            }
        }
    }
}
