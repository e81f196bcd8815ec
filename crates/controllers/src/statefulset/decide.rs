//! The StatefulSet decisions, after upstream's `stateful_set_control`: pods `<set>-<ordinal>`
//! for ordinals `0..replicas`, created in order and one at a time under OrderedReady (each
//! waits for its predecessors to be running and ready) or all at once under Parallel; surplus
//! ordinals deleted from the highest; failed pods replaced; RollingUpdate from the highest
//! ordinal down to the partition, one pod at a time once all are healthy. Pure.

/// What the decision knows of the pod at one ordinal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub ordinal: i32,
    pub running_ready: bool,
    pub failed: bool,
    pub terminating: bool,
    /// Its `controller-revision-hash`.
    pub revision: String,
}

/// The set's spec, as the decision needs it.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub replicas: i32,
    pub parallel: bool,
    /// RollingUpdate partition; `None` for OnDelete.
    pub partition: Option<i32>,
    pub update_revision: String,
    pub current_revision: String,
}

/// One sync's actions.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ordinals to create, with the revision each is created at.
    pub create: Vec<(i32, String)>,
    /// Pods to delete (names).
    pub delete: Vec<String>,
}

/// The revision a new pod at `ordinal` gets: below the partition the current one.
pub fn revision_for(spec: &Spec, ordinal: i32) -> String {
    match spec.partition {
        Some(p) if ordinal < p => spec.current_revision.clone(),
        _ => spec.update_revision.clone(),
    }
}

/// Decides one sync from the existing pods (any order).
pub fn plan(spec: &Spec, pods: &[Slot]) -> Plan {
    let mut plan = Plan::default();
    let at = |o: i32| pods.iter().find(|s| s.ordinal == o);
    let any_terminating = pods.iter().any(|s| s.terminating);
    // Create or replace 0..replicas in order.
    for o in 0..spec.replicas.max(0) {
        match at(o) {
            None => {
                plan.create.push((o, revision_for(spec, o)));
                if !spec.parallel {
                    return plan;
                }
            }
            Some(s) if s.failed && !s.terminating => {
                plan.delete.push(s.name.clone());
                if !spec.parallel {
                    return plan;
                }
            }
            Some(s) if !spec.parallel && (!s.running_ready || s.terminating) => return plan,
            Some(_) => {}
        }
    }
    // Condemned ordinals go from the highest, one at a time unless Parallel.
    let mut condemned: Vec<&Slot> = pods
        .iter()
        .filter(|s| s.ordinal >= spec.replicas && !s.terminating)
        .collect();
    condemned.sort_by_key(|s| std::cmp::Reverse(s.ordinal));
    if !condemned.is_empty() {
        if spec.parallel {
            plan.delete.extend(condemned.iter().map(|s| s.name.clone()));
        } else if !any_terminating
            && pods
                .iter()
                .filter(|s| s.ordinal < spec.replicas)
                .all(|s| s.running_ready)
        {
            plan.delete.push(condemned[0].name.clone());
        }
        return plan;
    }
    // Rolling update: once every pod is healthy, the highest outdated ordinal at or above the
    // partition goes (and comes back at the update revision).
    if let Some(partition) = spec.partition
        && !any_terminating
        && pods.iter().all(|s| s.running_ready)
    {
        let mut outdated: Vec<&Slot> = pods
            .iter()
            .filter(|s| {
                s.ordinal >= partition
                    && s.ordinal < spec.replicas
                    && s.revision != spec.update_revision
            })
            .collect();
        outdated.sort_by_key(|s| std::cmp::Reverse(s.ordinal));
        if let Some(s) = outdated.first() {
            plan.delete.push(s.name.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(o: i32, ready: bool, rev: &str) -> Slot {
        Slot {
            name: format!("web-{o}"),
            ordinal: o,
            running_ready: ready,
            revision: rev.into(),
            ..Default::default()
        }
    }

    fn spec(replicas: i32, parallel: bool, partition: Option<i32>) -> Spec {
        Spec {
            replicas,
            parallel,
            partition,
            update_revision: "v2".into(),
            current_revision: "v1".into(),
        }
    }

    #[test]
    fn ordered_creation_waits_for_predecessors() {
        let s = spec(3, false, Some(0));
        assert_eq!(plan(&s, &[]).create, vec![(0, "v2".to_string())]);
        assert_eq!(plan(&s, &[slot(0, false, "v2")]), Plan::default());
        assert_eq!(
            plan(&s, &[slot(0, true, "v2")]).create,
            vec![(1, "v2".to_string())]
        );
        let par = spec(3, true, Some(0));
        assert_eq!(plan(&par, &[]).create.len(), 3);
    }

    #[test]
    fn scale_down_from_the_highest() {
        let pods = [
            slot(0, true, "v2"),
            slot(1, true, "v2"),
            slot(2, true, "v2"),
        ];
        assert_eq!(
            plan(&spec(1, false, Some(0)), &pods).delete,
            vec!["web-2".to_string()]
        );
        assert_eq!(
            plan(&spec(1, true, Some(0)), &pods).delete,
            vec!["web-2".to_string(), "web-1".to_string()]
        );
    }

    #[test]
    fn rolling_update_respects_partition() {
        let pods = [
            slot(0, true, "v1"),
            slot(1, true, "v1"),
            slot(2, true, "v1"),
        ];
        assert_eq!(
            plan(&spec(3, false, Some(0)), &pods).delete,
            vec!["web-2".to_string()]
        );
        assert_eq!(
            plan(&spec(3, false, Some(2)), &pods).delete,
            vec!["web-2".to_string()]
        );
        let mostly = [
            slot(0, true, "v1"),
            slot(1, true, "v1"),
            slot(2, true, "v2"),
        ];
        assert!(plan(&spec(3, false, Some(2)), &mostly).delete.is_empty());
        // OnDelete never deletes for an update.
        assert!(plan(&spec(3, false, None), &pods).delete.is_empty());
        // Below the partition, new pods keep the current revision.
        assert_eq!(revision_for(&spec(3, false, Some(2)), 1), "v1");
    }
}
