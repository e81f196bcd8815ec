//! The scheduler's cache: watch events folded into the [`Snapshot`] and the [`Queue`].
//!
//! Bound pods are placed on their node; pending pods of a known profile wait in the queue;
//! pods the scheduler assumed (bound by it, not yet seen bound through the watch) stay placed
//! so the next decision already counts them. Pure functions of the events; `scheduler.rs` feeds
//! them from `kube::runtime::watcher` streams.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use rudder_machinery::label_selector::LabelSelector;

use crate::config::Config;
use crate::preemption::Budget;
use crate::priority::Classes;
use crate::queue::Queue;
use crate::snapshot::{PodInfo, Snapshot};

/// Everything the scheduler knows about the cluster.
#[derive(Default)]
pub struct Cache {
    pub snapshot: Snapshot,
    /// Pod key → the node it is placed on in the snapshot.
    pub placed: HashMap<String, String>,
    /// Pods placed by this scheduler whose binding the watch has not confirmed yet.
    pub assumed: HashSet<String>,
    pub classes: Classes,
    pub budgets: HashMap<String, Budget>,
    /// Namespace labels by name, for affinity terms' `namespaceSelector`.
    pub namespaces: HashMap<String, BTreeMap<String, String>>,
}

pub fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// Whether an update of a pending pod could change the decision: spec, labels, annotations or
/// deletion. Status-only updates (our own PodScheduled condition) must not requeue it.
fn meaningful_change(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
        || old.metadata.deletion_timestamp != new.metadata.deletion_timestamp
}

impl Cache {
    fn unplace(&mut self, key: &str) -> bool {
        let Some(node) = self.placed.remove(key) else {
            return false;
        };
        let (ns, name) = key.split_once('/').unwrap_or(("", key));
        self.snapshot.remove_pod(&node, ns, name);
        true
    }

    /// Places a pod the scheduler chose a node for, before binding.
    pub fn assume(&mut self, key: &str, node: &str, pod: Arc<PodInfo>) {
        self.unplace(key);
        if self.snapshot.add_pod(node, pod) {
            self.placed.insert(key.to_owned(), node.to_owned());
        }
        self.assumed.insert(key.to_owned());
    }

    /// Undoes [`Cache::assume`] after a failed binding.
    pub fn forget(&mut self, key: &str) {
        if self.assumed.remove(key) {
            self.unplace(key);
        }
    }

    /// A pod was added or changed.
    pub fn apply_pod(&mut self, mut pod: Pod, queue: &mut Queue, config: &Config, now: Instant) {
        let key = key_of(&pod.metadata);
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .filter(|n| !n.is_empty());
        if let Some(node) = node {
            self.snapshot.clear_nomination(&key);
            queue.remove(&key);
            self.assumed.remove(&key);
            let freed = self.unplace(&key);
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if matches!(phase, Some("Succeeded" | "Failed")) {
                // Finished pods hold no resources.
                if freed {
                    queue.move_all(now);
                }
                return;
            }
            let priority = self.classes.resolve(&pod);
            let mut info = PodInfo::new(Arc::new(pod), priority);
            info.resolve_namespaces(&self.namespaces);
            // Bound pods stay for their lifetime: keep the derived facts, not the pod.
            info.pod = Arc::new(crate::slim::placed(&info.pod));
            if self.snapshot.add_pod(&node, Arc::new(info)) {
                self.placed.insert(key, node);
            }
            return;
        }
        if self.assumed.contains(&key) {
            return;
        }
        // Pending: the queue keeps it until it is placed, cut to what scheduling reads (a bound
        // pod above is kept as its identity instead, so cutting it first would be wasted).
        crate::slim::for_scheduling(&mut pod);
        if pod.metadata.deletion_timestamp.is_some() {
            self.snapshot.clear_nomination(&key);
            queue.remove(&key);
            return;
        }
        // A pending pod nominated by preemption holds its room on that node.
        match pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            Some(node) => {
                let priority = self.classes.resolve(&pod);
                let info = PodInfo::new(Arc::new(pod.clone()), priority);
                self.snapshot.nominate(node, Arc::new(info));
            }
            None => self.snapshot.clear_nomination(&key),
        }
        let scheduler = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(crate::config::DEFAULT_SCHEDULER_NAME);
        if config.profile(scheduler).is_none() {
            return;
        }
        if let Some(old) = queue.pod(&key)
            && !meaningful_change(old, &pod)
        {
            return;
        }
        let priority = self.classes.resolve(&pod);
        queue.add_or_update(&key, Arc::new(pod), priority, now);
    }

    /// A pod was deleted.
    pub fn delete_pod(&mut self, key: &str, queue: &mut Queue, now: Instant) {
        self.snapshot.clear_nomination(key);
        queue.remove(key);
        self.assumed.remove(key);
        if self.unplace(key) {
            queue.move_all(now);
        }
    }

    /// A namespace was added or changed: its labels may now match affinity terms'
    /// `namespaceSelector`s.
    pub fn apply_namespace(&mut self, ns: &Namespace, queue: &mut Queue, now: Instant) {
        let name = ns.metadata.name.clone().unwrap_or_default();
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        if self.namespaces.get(&name) != Some(&labels) {
            self.namespaces.insert(name, labels);
            queue.move_all(now);
        }
    }

    pub fn delete_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    pub fn apply_node(&mut self, node: Node, queue: &mut Queue, now: Instant) {
        self.snapshot.upsert_node(Arc::new(node));
        queue.move_all(now);
    }

    pub fn delete_node(&mut self, name: &str) {
        self.snapshot.remove_node(name);
    }

    pub fn apply_pv(&mut self, pv: PersistentVolume, queue: &mut Queue, now: Instant) {
        let name = pv.metadata.name.clone().unwrap_or_default();
        self.snapshot.volumes.pvs.insert(name, Arc::new(pv));
        queue.move_all(now);
    }

    pub fn delete_pv(&mut self, name: &str) {
        self.snapshot.volumes.pvs.remove(name);
    }

    pub fn apply_pvc(&mut self, pvc: PersistentVolumeClaim, queue: &mut Queue, now: Instant) {
        self.snapshot
            .volumes
            .pvcs
            .insert(key_of(&pvc.metadata), Arc::new(pvc));
        queue.move_all(now);
    }

    pub fn delete_pvc(&mut self, key: &str) {
        self.snapshot.volumes.pvcs.remove(key);
    }

    pub fn apply_class(&mut self, class: &PriorityClass) {
        self.classes.upsert(class);
    }

    pub fn delete_class(&mut self, name: &str) {
        self.classes.remove(name);
    }

    pub fn apply_budget(&mut self, pdb: &PodDisruptionBudget) {
        let key = key_of(&pdb.metadata);
        let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
        // A PDB with an unparsable selector protects nothing, as upstream treats it.
        let Ok(selector) = LabelSelector::from_api(selector) else {
            self.budgets.remove(&key);
            return;
        };
        let allowed = pdb
            .status
            .as_ref()
            .and_then(|s| s.disruptions_allowed)
            .unwrap_or(0);
        let namespace = pdb.metadata.namespace.clone().unwrap_or_default();
        self.budgets.insert(
            key,
            Budget {
                namespace,
                selector,
                allowed,
            },
        );
    }

    pub fn delete_budget(&mut self, key: &str) {
        self.budgets.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, node: Option<&str>, extra: serde_json::Value) -> Pod {
        let mut v = json!({"metadata": {"name": name, "namespace": "ns"},
            "spec": {"schedulerName": "default-scheduler", "nodeName": node,
                "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}});
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, val) in e {
                o.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn events_table() {
        let config = Config::default();
        let t = Instant::now();
        let mut cache = Cache::default();
        let mut q = Queue::default();
        cache.apply_node(serde_json::from_value(json!({"metadata": {"name": "n"}, "status": {"allocatable": {"cpu": "4", "pods": "10"}}})).expect("node"), &mut q, t);
        let used = |c: &Cache| c.snapshot.node("n").map(|n| n.requested.milli_cpu);

        cache.apply_pod(pod("pending", None, json!({})), &mut q, &config, t);
        assert!(q.contains("ns/pending"), "pending pods are queued");
        cache.apply_pod(
            pod(
                "other",
                None,
                json!({"spec": {"schedulerName": "nope", "containers": []}}),
            ),
            &mut q,
            &config,
            t,
        );
        assert!(!q.contains("ns/other"), "pods of other schedulers are not");

        let popped = q.pop().expect("popped");
        cache.assume(
            &popped.key,
            "n",
            Arc::new(PodInfo::new(popped.pod.clone(), 0)),
        );
        assert_eq!(used(&cache), Some(1000), "assumed pods count");
        cache.apply_pod(
            pod("pending", None, json!({"status": {"phase": "Pending"}})),
            &mut q,
            &config,
            t,
        );
        assert!(
            !q.contains("ns/pending") || q.pop().is_none(),
            "an assumed pod is not requeued"
        );

        cache.apply_pod(pod("pending", Some("n"), json!({})), &mut q, &config, t);
        assert_eq!(
            (used(&cache), cache.assumed.len()),
            (Some(1000), 0),
            "confirmed, counted once"
        );

        cache.apply_pod(
            pod(
                "pending",
                Some("n"),
                json!({"status": {"phase": "Succeeded"}}),
            ),
            &mut q,
            &config,
            t,
        );
        assert_eq!(used(&cache), Some(0), "finished pods free their resources");

        cache.apply_pod(pod("b", Some("n"), json!({})), &mut q, &config, t);
        cache.delete_pod("ns/b", &mut q, t);
        assert_eq!(used(&cache), Some(0), "deleted pods free their resources");

        cache.assume(
            "ns/c",
            "n",
            Arc::new(PodInfo::new(Arc::new(pod("c", None, json!({}))), 0)),
        );
        cache.forget("ns/c");
        assert_eq!(used(&cache), Some(0), "a failed binding is forgotten");
    }

    #[test]
    fn status_only_updates_do_not_requeue() {
        let config = Config::default();
        let t = Instant::now();
        let mut cache = Cache::default();
        let mut q = Queue::default();
        cache.apply_pod(pod("p", None, json!({})), &mut q, &config, t);
        assert!(q.pop().is_some());
        q.unschedulable("ns/p", t);
        cache.apply_pod(
            pod(
                "p",
                None,
                json!({"status": {"conditions": [{"type": "PodScheduled", "status": "False"}]}}),
            ),
            &mut q,
            &config,
            t,
        );
        assert!(q.pop().is_none(), "status update ignored");
        cache.apply_pod(
            pod(
                "p",
                None,
                json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}}}),
            ),
            &mut q,
            &config,
            t + std::time::Duration::from_secs(2),
        );
        assert!(q.pop().is_some(), "label update requeues");
    }
}
