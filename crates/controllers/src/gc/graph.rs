//! The garbage collector's dependency graph and its decisions, after upstream's
//! `garbagecollector`: every object's identity, owners, deletion state and finalizers, indexed
//! both ways; what to do with a dependent whose owners may be gone, and with an owner deleted
//! in the foreground or with its dependents orphaned. Pure.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// Finalizer of an owner deleted with `propagationPolicy: Foreground`.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer of an owner deleted with `propagationPolicy: Orphan`.
pub const ORPHAN: &str = "orphan";

/// One object, as the collector knows it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Node {
    pub uid: String,
    pub api_version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }
}

/// The objects and who depends on whom.
#[derive(Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    /// Owner UID → dependent UIDs (also for owners not, or no longer, in the graph).
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    /// Adds or replaces an object.
    pub fn upsert(&mut self, node: Node) {
        self.remove(&node.uid);
        for o in &node.owners {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(node.uid.clone());
        }
        self.nodes.insert(node.uid.clone(), node);
    }

    /// Removes an object; returns it.
    pub fn remove(&mut self, uid: &str) -> Option<Node> {
        let old = self.nodes.remove(uid)?;
        for o in &old.owners {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
        Some(old)
    }

    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    /// Objects that name `uid` as an owner.
    pub fn dependents_of(&self, uid: &str) -> Vec<&Node> {
        self.dependents
            .get(uid)
            .map(|set| set.iter().filter_map(|d| self.nodes.get(d)).collect())
            .unwrap_or_default()
    }

    /// Every UID.
    pub fn uids(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }
}

/// What an owner reference points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// Exists and is not being deleted in the foreground.
    Solid,
    /// Gone (or replaced by an object with another UID).
    Dangling,
    /// Being deleted in the foreground: waits for its dependents.
    WaitingForDependents,
}

/// The owner's state as far as the graph knows: `None` means absent from the graph, to be
/// confirmed with the API server before calling it dangling (the graph may lag).
pub fn owner_state(graph: &Graph, r: &OwnerReference) -> Option<OwnerState> {
    let o = graph.get(&r.uid)?;
    Some(if o.deleting && o.has_finalizer(FOREGROUND) {
        OwnerState::WaitingForDependents
    } else {
        OwnerState::Solid
    })
}

/// What to do with a dependent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DependentAction {
    Nothing,
    /// Remove these owner references (by owner UID): the object keeps a solid owner.
    RemoveOwners(Vec<String>),
    /// Delete the object; in the foreground when its own dependents must go first.
    Delete {
        foreground: bool,
    },
}

/// Upstream's `attemptToDeleteItem` for an object with owners: kept while one owner is solid
/// (dangling references are dropped), deleted once none is.
pub fn dependent_action(
    node: &Node,
    owners: &[(String, OwnerState)],
    has_dependents: bool,
) -> DependentAction {
    if owners.is_empty() || (node.deleting && !node.has_finalizer(FOREGROUND)) {
        return DependentAction::Nothing;
    }
    if node.deleting {
        // Already going in the foreground: its own dependents are handled as an owner's.
        return DependentAction::Nothing;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    if solid {
        let drop: Vec<String> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(u, _)| u.clone())
            .collect();
        return if drop.is_empty() {
            DependentAction::Nothing
        } else {
            DependentAction::RemoveOwners(drop)
        };
    }
    let waiting = owners
        .iter()
        .any(|(_, s)| *s == OwnerState::WaitingForDependents);
    DependentAction::Delete {
        foreground: (waiting && has_dependents) || node.has_finalizer(FOREGROUND),
    }
}

/// What to do with an owner being deleted with a propagation finalizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OwnerAction {
    Nothing,
    /// Foreground: delete these dependents (not yet deleting).
    DeleteDependents(Vec<String>),
    /// Orphan: remove the owner's reference from these dependents.
    OrphanDependents(Vec<String>),
    /// Done: remove this finalizer.
    RemoveFinalizer(&'static str),
}

/// Upstream's `processDeletingDependentsItem` and `orphanDependents`.
pub fn owner_action(owner: &Node, dependents: &[&Node]) -> OwnerAction {
    if !owner.deleting {
        return OwnerAction::Nothing;
    }
    if owner.has_finalizer(ORPHAN) {
        let still: Vec<String> = dependents.iter().map(|d| d.uid.clone()).collect();
        return if still.is_empty() {
            OwnerAction::RemoveFinalizer(ORPHAN)
        } else {
            OwnerAction::OrphanDependents(still)
        };
    }
    if owner.has_finalizer(FOREGROUND) {
        let to_delete: Vec<String> = dependents
            .iter()
            .filter(|d| !d.deleting)
            .map(|d| d.uid.clone())
            .collect();
        if !to_delete.is_empty() {
            return OwnerAction::DeleteDependents(to_delete);
        }
        // Only dependents that block the owner's deletion keep it waiting.
        let blocking = dependents.iter().any(|d| {
            d.owners
                .iter()
                .any(|r| r.uid == owner.uid && r.block_owner_deletion == Some(true))
        });
        return if blocking {
            OwnerAction::Nothing
        } else {
            OwnerAction::RemoveFinalizer(FOREGROUND)
        };
    }
    OwnerAction::Nothing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(uid: &str, owners: &[(&str, bool)]) -> Node {
        Node {
            uid: uid.into(),
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some("ns".into()),
            name: uid.into(),
            owners: owners
                .iter()
                .map(|(o, block)| OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: o.to_string(),
                    uid: o.to_string(),
                    controller: Some(true),
                    block_owner_deletion: Some(*block),
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn graph_indexes_dependents() {
        let mut g = Graph::default();
        g.upsert(node("rs", &[]));
        g.upsert(node("p1", &[("rs", true)]));
        g.upsert(node("p2", &[("rs", true)]));
        assert_eq!(g.dependents_of("rs").len(), 2);
        g.upsert(node("p2", &[]));
        assert_eq!(g.dependents_of("rs").len(), 1);
        g.remove("p1");
        assert!(g.dependents_of("rs").is_empty());
        assert_eq!(
            owner_state(&g, &node("x", &[("rs", true)]).owners[0]),
            Some(OwnerState::Solid)
        );
        assert_eq!(
            owner_state(&g, &node("x", &[("gone", true)]).owners[0]),
            None
        );
    }

    #[test]
    fn dependents_table() {
        use DependentAction::*;
        use OwnerState::*;
        let p = node("p", &[("a", true), ("b", true)]);
        type Case = (
            &'static str,
            Vec<(String, OwnerState)>,
            bool,
            DependentAction,
        );
        let cases: Vec<Case> = vec![
            ("solid owner", vec![("a".into(), Solid)], false, Nothing),
            (
                "one solid, one dangling",
                vec![("a".into(), Solid), ("b".into(), Dangling)],
                false,
                RemoveOwners(vec!["b".into()]),
            ),
            (
                "all dangling",
                vec![("a".into(), Dangling)],
                false,
                Delete { foreground: false },
            ),
            (
                "owner waits, no dependents",
                vec![("a".into(), WaitingForDependents)],
                false,
                Delete { foreground: false },
            ),
            (
                "owner waits, has dependents",
                vec![("a".into(), WaitingForDependents)],
                true,
                Delete { foreground: true },
            ),
        ];
        for (name, owners, has_deps, want) in cases {
            assert_eq!(dependent_action(&p, &owners, has_deps), want, "{name}");
        }
        let mut deleting = p.clone();
        deleting.deleting = true;
        assert_eq!(
            dependent_action(&deleting, &[("a".into(), Dangling)], false),
            Nothing
        );
    }

    #[test]
    fn owners_table() {
        let mut rs = node("rs", &[]);
        rs.deleting = true;
        let p1 = node("p1", &[("rs", true)]);
        let mut p2 = node("p2", &[("rs", true)]);
        p2.deleting = true;
        let loose = node("p3", &[("rs", false)]);

        rs.finalizers = vec![FOREGROUND.into()];
        assert_eq!(
            owner_action(&rs, &[&p1, &p2]),
            OwnerAction::DeleteDependents(vec!["p1".into()])
        );
        assert_eq!(owner_action(&rs, &[&p2]), OwnerAction::Nothing);
        let mut loose_deleting = loose.clone();
        loose_deleting.deleting = true;
        assert_eq!(
            owner_action(&rs, &[&loose_deleting]),
            OwnerAction::RemoveFinalizer(FOREGROUND)
        );
        assert_eq!(
            owner_action(&rs, &[]),
            OwnerAction::RemoveFinalizer(FOREGROUND)
        );

        rs.finalizers = vec![ORPHAN.into()];
        assert_eq!(
            owner_action(&rs, &[&p1]),
            OwnerAction::OrphanDependents(vec!["p1".into()])
        );
        assert_eq!(owner_action(&rs, &[]), OwnerAction::RemoveFinalizer(ORPHAN));

        rs.deleting = false;
        assert_eq!(owner_action(&rs, &[&p1]), OwnerAction::Nothing);
    }
}
