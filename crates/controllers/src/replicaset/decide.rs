//! The ReplicaSet (and ReplicationController) decision: from the owner and the pods of its
//! namespace to the pods to adopt, release, create and delete, and the status to report. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use rudder_machinery::LabelSelector;

use crate::pods;

/// Most pods created or deleted in one sync (upstream's `burstReplicas`).
pub const BURST: usize = 500;

/// What the decision needs to know about the owner.
pub struct Owner<'a> {
    /// UID of the ReplicaSet or ReplicationController.
    pub uid: &'a str,
    /// Desired replicas.
    pub replicas: i32,
    /// Its pod selector.
    pub selector: &'a LabelSelector,
    /// Labels of its pod template (for `fullyLabeledReplicas`).
    pub template_labels: &'a BTreeMap<String, String>,
    /// `minReadySeconds`.
    pub min_ready_seconds: i64,
    /// Whether the owner is being deleted (it then adopts nothing).
    pub deleting: bool,
}

/// Status counts, as upstream computes them from the active pods the owner controls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub fully_labeled: i32,
    pub ready: i32,
    pub available: i32,
}

/// What to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Orphans matching the selector: set our controller reference (names).
    pub adopt: Vec<String>,
    /// Pods we control that no longer match: remove our reference (names).
    pub release: Vec<String>,
    /// How many pods to create from the template.
    pub create: usize,
    /// Pods to delete, first to go first: (name, uid).
    pub delete: Vec<(String, String)>,
    /// The status after this sync's observations.
    pub counts: Counts,
    /// When to look again for pods that are ready but not yet available (seconds).
    pub recheck_after: Option<i64>,
}

fn name(p: &Pod) -> String {
    p.metadata.name.clone().unwrap_or_default()
}

/// A pod's labels, borrowed: this runs for every pod of the namespace on every sync, and a
/// copy per pod was most of the controller's CPU with 30,000 pods.
fn labels(p: &Pod) -> &BTreeMap<String, String> {
    static NONE: BTreeMap<String, String> = BTreeMap::new();
    p.metadata.labels.as_ref().unwrap_or(&NONE)
}

/// Decides one sync of `owner` over `ns_pods` (the pods of its namespace) at `now` (Unix
/// seconds). With `manage` false (expectations pending) it only claims pods and counts.
pub fn decide(owner: &Owner<'_>, ns_pods: &[Arc<Pod>], now: i64, manage: bool) -> Plan {
    let mut plan = Plan::default();
    let mut mine: Vec<&Pod> = Vec::new();
    for p in ns_pods {
        let controller = pods::controller_ref(&p.metadata);
        // Other controllers' pods are neither ours nor orphans: no selector to evaluate.
        if controller.as_ref().is_some_and(|r| r.uid != owner.uid) {
            continue;
        }
        let matches = !owner.selector.matches_nothing() && owner.selector.matches(labels(p));
        match controller {
            Some(r) if r.uid == owner.uid => {
                if matches {
                    mine.push(p);
                } else if !pods::is_terminating(p) {
                    plan.release.push(name(p));
                }
            }
            Some(_) => {}
            None => {
                if matches && !owner.deleting && !pods::is_terminating(p) {
                    plan.adopt.push(name(p));
                    mine.push(p);
                }
            }
        }
    }
    let active: Vec<&Pod> = mine.into_iter().filter(|p| pods::is_active(p)).collect();

    let desired = usize::try_from(owner.replicas.max(0)).unwrap_or(0);
    if manage && !owner.deleting {
        if active.len() < desired {
            plan.create = (desired - active.len()).min(BURST);
        } else if active.len() > desired {
            let mut victims = active.clone();
            victims.sort_by(|a, b| pods::deletion_order(a, b));
            plan.delete = victims
                .into_iter()
                .take((active.len() - desired).min(BURST))
                .map(|p| (name(p), p.metadata.uid.clone().unwrap_or_default()))
                .collect();
        }
    }

    let mut c = Counts::default();
    for p in &active {
        c.replicas += 1;
        let l = labels(p);
        if owner
            .template_labels
            .iter()
            .all(|(k, v)| l.get(k) == Some(v))
        {
            c.fully_labeled += 1;
        }
        if let Some(since) = pods::ready_since(p) {
            c.ready += 1;
            if pods::is_available(p, owner.min_ready_seconds, now) {
                c.available += 1;
            } else {
                let left = since.saturating_add(owner.min_ready_seconds) - now;
                plan.recheck_after = Some(plan.recheck_after.map_or(left, |r: i64| r.min(left)));
            }
        }
    }
    plan.counts = c;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::*;

    struct Case {
        name: &'static str,
        replicas: i32,
        pods: Vec<Pod>,
        manage: bool,
        adopt: &'static [&'static str],
        release: &'static [&'static str],
        create: usize,
        delete: &'static [&'static str],
        counts: Counts,
    }

    fn mine(p: Pod) -> Pod {
        owned(p, "ReplicaSet", "rs", "rs-uid")
    }

    #[test]
    fn table() {
        let cases = vec![
            Case {
                name: "creates missing pods",
                replicas: 3,
                pods: vec![mine(pod("a", "web", 1))],
                manage: true,
                adopt: &[],
                release: &[],
                create: 2,
                delete: &[],
                counts: Counts {
                    replicas: 1,
                    fully_labeled: 1,
                    ..Default::default()
                },
            },
            Case {
                name: "pending expectations: no creates",
                replicas: 3,
                pods: vec![],
                manage: false,
                adopt: &[],
                release: &[],
                create: 0,
                delete: &[],
                counts: Counts::default(),
            },
            Case {
                name: "adopts orphans, ignores others' pods and other apps, releases non-matching",
                replicas: 2,
                pods: vec![
                    pod("orphan", "web", 1),
                    owned(pod("theirs", "web", 1), "ReplicaSet", "other", "other-uid"),
                    pod("db", "db", 1),
                    mine(pod("relabeled", "db", 1)),
                    mine(pod("a", "web", 2)),
                ],
                manage: true,
                adopt: &["orphan"],
                release: &["relabeled"],
                create: 0,
                delete: &[],
                counts: Counts {
                    replicas: 2,
                    fully_labeled: 2,
                    ..Default::default()
                },
            },
            Case {
                name: "scales down unscheduled, then not ready, then newest",
                replicas: 1,
                pods: vec![
                    mine(ready(pod("old", "web", 1), 5)),
                    mine(ready(pod("new", "web", 3), 6)),
                    mine(running(pod("unready", "web", 0))),
                    mine(pod("unscheduled", "web", 0)),
                ],
                manage: true,
                adopt: &[],
                release: &[],
                create: 0,
                delete: &["unscheduled", "unready", "new"],
                counts: Counts {
                    replicas: 4,
                    fully_labeled: 4,
                    ready: 2,
                    available: 2,
                },
            },
            Case {
                name: "finished and terminating pods do not count",
                replicas: 1,
                pods: vec![
                    {
                        let mut p = mine(pod("done", "web", 1));
                        p.status.get_or_insert_default().phase = Some("Succeeded".into());
                        p
                    },
                    {
                        let mut p = mine(pod("going", "web", 1));
                        p.metadata.deletion_timestamp = p.metadata.creation_timestamp.clone();
                        p
                    },
                ],
                manage: true,
                adopt: &[],
                release: &[],
                create: 1,
                delete: &[],
                counts: Counts::default(),
            },
        ];
        let selector = LabelSelector::parse("app=web").expect("selector");
        let template_labels: BTreeMap<String, String> =
            [("app".to_string(), "web".to_string())].into();
        for c in cases {
            let owner = Owner {
                uid: "rs-uid",
                replicas: c.replicas,
                selector: &selector,
                template_labels: &template_labels,
                min_ready_seconds: 0,
                deleting: false,
            };
            let pods: Vec<Arc<Pod>> = c.pods.into_iter().map(Arc::new).collect();
            let plan = decide(&owner, &pods, 100, c.manage);
            assert_eq!(plan.adopt, c.adopt, "{}: adopt", c.name);
            assert_eq!(plan.release, c.release, "{}: release", c.name);
            assert_eq!(plan.create, c.create, "{}: create", c.name);
            let deleted: Vec<&str> = plan.delete.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(deleted, c.delete, "{}: delete", c.name);
            assert_eq!(plan.counts, c.counts, "{}: counts", c.name);
        }
    }

    #[test]
    fn min_ready_seconds_delays_availability_and_asks_for_a_recheck() {
        let selector = LabelSelector::parse("app=web").expect("selector");
        let labels = BTreeMap::new();
        let owner = Owner {
            uid: "rs-uid",
            replicas: 1,
            selector: &selector,
            template_labels: &labels,
            min_ready_seconds: 10,
            deleting: false,
        };
        let pods = vec![Arc::new(mine(ready(pod("a", "web", 1), 95)))];
        let plan = decide(&owner, &pods, 100, true);
        assert_eq!(plan.counts.ready, 1);
        assert_eq!(plan.counts.available, 0);
        assert_eq!(plan.recheck_after, Some(5));
    }

    #[test]
    fn creates_and_deletes_are_capped_at_burst_replicas() {
        let selector = LabelSelector::parse("app=web").expect("selector");
        let labels = BTreeMap::new();
        let owner = |replicas| Owner {
            uid: "rs-uid",
            replicas,
            selector: &selector,
            template_labels: &labels,
            min_ready_seconds: 0,
            deleting: false,
        };
        assert_eq!(
            decide(&owner(BURST as i32 + 100), &[], 100, true).create,
            BURST
        );
        let pods: Vec<Arc<Pod>> = (0..BURST + 100)
            .map(|i| Arc::new(mine(pod(&format!("p{i}"), "web", 1))))
            .collect();
        let plan = decide(&owner(0), &pods, 100, true);
        assert_eq!(plan.delete.len(), BURST);
        assert_eq!(decide(&owner(90), &pods, 100, true).delete.len(), BURST);
        assert_eq!(
            decide(&owner(110), &pods, 100, true).delete.len(),
            BURST - 10
        );
    }
}
