//! The StatefulSet decisions, after upstream's `stateful_set_control`: pods `<set>-<ordinal>`
//! for ordinals `0..replicas`, created in order and one at a time under OrderedReady (each
//! waits for its predecessors to be running and ready) or all at once under Parallel; surplus
//! ordinals deleted from the highest; failed pods replaced; "ready" means available, i.e. ready
//! for `minReadySeconds`; RollingUpdate from the highest
//! ordinal down to the partition, up to `maxUnavailable` pods at a time; ordinals from
//! `ordinals.start`; which owners a pod's claims carry under the PVC retention policy. Pure.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// What the decision knows of the pod at one ordinal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub ordinal: i32,
    pub running_ready: bool,
    /// Running and Ready for the set's `minReadySeconds`: what ordered creation, ordered
    /// scale-down and the rolling update wait for.
    pub available: bool,
    pub failed: bool,
    pub terminating: bool,
    /// Its `controller-revision-hash`.
    pub revision: String,
}

/// The set's spec, as the decision needs it.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub replicas: i32,
    /// `ordinals.start`: the first ordinal.
    pub start: i32,
    /// `rollingUpdate.maxUnavailable`, resolved against replicas (at least 1).
    pub max_unavailable: i32,
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

/// The ordinals the set should have.
pub fn ordinals(spec: &Spec) -> std::ops::Range<i32> {
    spec.start..spec.start.saturating_add(spec.replicas.max(0))
}

/// The revision a new pod at `ordinal` gets: below the partition (counted from the first
/// ordinal) the current one.
pub fn revision_for(spec: &Spec, ordinal: i32) -> String {
    match spec.partition {
        Some(p) if ordinal < spec.start.saturating_add(p) => spec.current_revision.clone(),
        _ => spec.update_revision.clone(),
    }
}

/// Decides one sync from the existing pods (any order).
pub fn plan(spec: &Spec, pods: &[Slot]) -> Plan {
    let mut plan = Plan::default();
    let at = |o: i32| pods.iter().find(|s| s.ordinal == o);
    let any_terminating = pods.iter().any(|s| s.terminating);
    let wanted = ordinals(spec);
    // Create or replace the wanted ordinals in order.
    for o in wanted.clone() {
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
            Some(s) if !spec.parallel && (!s.available || s.terminating) => return plan,
            Some(_) => {}
        }
    }
    // Condemned ordinals go from the highest, one at a time unless Parallel.
    let mut condemned: Vec<&Slot> = pods
        .iter()
        .filter(|s| !wanted.contains(&s.ordinal) && !s.terminating)
        .collect();
    condemned.sort_by_key(|s| std::cmp::Reverse(s.ordinal));
    if !condemned.is_empty() {
        if spec.parallel {
            plan.delete.extend(condemned.iter().map(|s| s.name.clone()));
        } else if !any_terminating
            && pods
                .iter()
                .filter(|s| wanted.contains(&s.ordinal))
                .all(|s| s.available)
        {
            plan.delete.push(condemned[0].name.clone());
        }
        return plan;
    }
    // Rolling update: the highest outdated ordinals at or above the partition go (and come
    // back at the update revision), as many as maxUnavailable allows once the pods there that
    // are missing, not ready or terminating are counted.
    if let Some(partition) = spec.partition {
        let low = spec.start.saturating_add(partition.max(0));
        let range = low.max(wanted.start)..wanted.end;
        let unavailable = range
            .clone()
            .filter(|o| at(*o).is_none_or(|s| !s.available || s.terminating))
            .count();
        let budget = usize::try_from(spec.max_unavailable.max(1))
            .unwrap_or(1)
            .saturating_sub(unavailable);
        let mut outdated: Vec<&Slot> = pods
            .iter()
            .filter(|s| {
                range.contains(&s.ordinal) && !s.terminating && s.revision != spec.update_revision
            })
            .collect();
        outdated.sort_by_key(|s| std::cmp::Reverse(s.ordinal));
        plan.delete
            .extend(outdated.iter().take(budget).map(|s| s.name.clone()));
    }
    plan
}

/// `persistentVolumeClaimRetentionPolicy`: whether claims go with the set (`whenDeleted`) and
/// with pods removed by a scale-down (`whenScaled`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// `whenDeleted: Delete`.
    pub delete_with_set: bool,
    /// `whenScaled: Delete`.
    pub delete_when_scaled: bool,
}

/// The owner references a claim of the pod at `ordinal` should carry, as upstream: the pod
/// alone when its ordinal was scaled away and claims go with it, else the set when claims go
/// with it; other owners kept. `None` when `existing` already is right.
pub fn claim_owners(
    existing: &[OwnerReference],
    retention: Retention,
    set: &OwnerReference,
    pod: Option<&OwnerReference>,
    condemned: bool,
) -> Option<Vec<OwnerReference>> {
    let ours = |r: &OwnerReference| {
        r.uid == set.uid || pod.is_some_and(|p| p.uid == r.uid) || r.kind == "Pod"
    };
    let mut want: Vec<OwnerReference> = existing.iter().filter(|r| !ours(r)).cloned().collect();
    match (retention.delete_when_scaled && condemned, pod) {
        // Owned by the pod alone: the garbage collector deletes a dependent only once all its
        // owners are gone, so a set owner would keep the claim.
        (true, Some(p)) => want.push(p.clone()),
        _ if retention.delete_with_set => want.push(set.clone()),
        _ => {}
    }
    let same = want.len() == existing.len()
        && want
            .iter()
            .all(|w| existing.iter().any(|e| e.uid == w.uid && e.kind == w.kind));
    (!same).then_some(want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(o: i32, ready: bool, rev: &str) -> Slot {
        Slot {
            name: format!("web-{o}"),
            ordinal: o,
            running_ready: ready,
            available: ready,
            revision: rev.into(),
            ..Default::default()
        }
    }

    #[test]
    fn min_ready_seconds_holds_ordered_creation_and_updates_until_available() {
        // web-0 is ready but not yet for minReadySeconds.
        let mut young = slot(0, true, "new");
        young.available = false;
        let s = spec(3, false, None);
        assert_eq!(plan(&s, &[young.clone()]), Plan::default(), "web-1 waits");
        let mut upd = spec(2, false, Some(0));
        upd.update_revision = "new".into();
        let old = slot(0, true, "old");
        // web-1 was just updated and is not available yet: web-0 is not touched.
        let mut fresh = slot(1, true, "new");
        fresh.available = false;
        assert_eq!(plan(&upd, &[old.clone(), fresh]), Plan::default());
        // Once web-1 is available, web-0 is next.
        let got = plan(&upd, &[old, slot(1, true, "new")]);
        assert_eq!(got.delete, ["web-0"]);
    }

    fn spec(replicas: i32, parallel: bool, partition: Option<i32>) -> Spec {
        Spec {
            replicas,
            start: 0,
            max_unavailable: 1,
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

    #[test]
    fn ordinals_start_where_asked() {
        let mut s = spec(2, true, Some(0));
        s.start = 5;
        assert_eq!(
            plan(&s, &[]).create,
            vec![(5, "v2".to_string()), (6, "v2".to_string())]
        );
        // Ordinals outside start..start+replicas are condemned, below the start too.
        let pods = [
            slot(0, true, "v2"),
            slot(5, true, "v2"),
            slot(6, true, "v2"),
            slot(7, true, "v2"),
        ];
        assert_eq!(
            plan(&s, &pods).delete,
            vec!["web-7".to_string(), "web-0".to_string()]
        );
        // The partition counts from the first ordinal.
        s.partition = Some(1);
        assert_eq!(revision_for(&s, 5), "v1");
        assert_eq!(revision_for(&s, 6), "v2");
    }

    #[test]
    fn max_unavailable_bounds_the_rolling_update() {
        let pods: Vec<Slot> = (0..5).map(|o| slot(o, true, "v1")).collect();
        let mut s = spec(5, true, Some(0));
        s.max_unavailable = 2;
        assert_eq!(plan(&s, &pods).delete, vec!["web-4", "web-3"]);
        // One pod already down: only one more may go.
        let mut one_down = pods.clone();
        one_down[4] = Slot {
            terminating: true,
            ..slot(4, false, "v1")
        };
        assert_eq!(plan(&s, &one_down).delete, vec!["web-3"]);
        // A missing pod counts as unavailable too.
        assert_eq!(plan(&s, &pods[..4]).delete, vec!["web-3"]);
        // Only ordinals at or above the partition count and go.
        s.partition = Some(3);
        let mut low_down = pods.clone();
        low_down[0] = slot(0, false, "v1");
        assert_eq!(plan(&s, &low_down).delete, vec!["web-4", "web-3"]);
    }

    fn owner(kind: &str, uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "v1".into(),
            kind: kind.into(),
            name: uid.into(),
            uid: uid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn claim_owners_follow_the_retention_policy() {
        let set = owner("StatefulSet", "set");
        let pod = owner("Pod", "pod");
        let other = owner("ConfigMap", "other");
        let r = |delete_with_set, delete_when_scaled| Retention {
            delete_with_set,
            delete_when_scaled,
        };
        let uids = |v: Option<Vec<OwnerReference>>| {
            v.map(|v| v.into_iter().map(|o| o.uid).collect::<Vec<_>>())
        };
        // (existing, retention, condemned, new owners or None for unchanged)
        type Case<'a> = (Vec<OwnerReference>, Retention, bool, Option<Vec<&'a str>>);
        let cases: Vec<Case> = vec![
            (vec![], r(false, false), false, None),
            (vec![], r(true, false), false, Some(vec!["set"])),
            (vec![set.clone()], r(true, false), false, None),
            (vec![set.clone()], r(false, false), false, Some(vec![])),
            (vec![], r(false, true), false, None),
            (vec![], r(false, true), true, Some(vec!["pod"])),
            (
                vec![other.clone()],
                r(true, true),
                true,
                Some(vec!["other", "pod"]),
            ),
            (vec![set.clone()], r(true, true), true, Some(vec!["pod"])),
            // Scaled back up: the pod no longer owns the claim.
            (
                vec![pod.clone(), set.clone()],
                r(true, true),
                false,
                Some(vec!["set"]),
            ),
            (
                vec![other.clone(), pod.clone()],
                r(false, false),
                true,
                Some(vec!["other"]),
            ),
        ];
        for (existing, retention, condemned, want) in cases {
            let got = claim_owners(&existing, retention, &set, Some(&pod), condemned);
            let want = want.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
            assert_eq!(uids(got), want, "{existing:?} {retention:?} {condemned}");
        }
    }
}
