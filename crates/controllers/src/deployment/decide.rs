//! The Deployment decisions, after upstream's `deployment/util`, `rolling.go`, `recreate.go`,
//! `sync.go` and `progress.go`: surge and unavailability fenceposts, how far to scale the new
//! and the old ReplicaSets in one step, proportional scaling, history cleanup, and the status
//! with its Available and Progressing conditions. Pure: ReplicaSets come in as [`Rs`] views,
//! steps go out as target sizes.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Annotation: a ReplicaSet's (and the Deployment's) revision.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Annotation: revisions a ReplicaSet had before it was rolled back to.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// Annotation: the Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// Annotation: replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells ReplicaSets of one Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// What the decisions need of the Deployment.
#[derive(Clone, Debug)]
pub struct Spec {
    pub replicas: i32,
    /// Whether the strategy is RollingUpdate (else Recreate).
    pub rolling: bool,
    pub max_surge: IntOrString,
    pub max_unavailable: IntOrString,
}

/// What the decisions need of a ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rs {
    pub name: String,
    /// spec.replicas.
    pub replicas: i32,
    /// status.replicas.
    pub actual: i32,
    pub ready: i32,
    pub available: i32,
    /// creationTimestamp, Unix seconds.
    pub created: i64,
    pub revision: i64,
    /// The max-replicas annotation.
    pub max_replicas: Option<i32>,
    /// The desired-replicas annotation.
    pub desired_replicas: Option<i32>,
}

/// `intstr` scaled against `total`: an integer as is, a percentage rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let num = pct * i64::from(total);
            let r = if round_up {
                (num + 99).div_euclid(100)
            } else {
                num.div_euclid(100)
            };
            i32::try_from(r).unwrap_or(i32::MAX)
        }
    }
}

/// (maxSurge, maxUnavailable) as absolute numbers; both zero would stall, so unavailability
/// becomes 1 then (upstream's `ResolveFenceposts`).
pub fn fenceposts(spec: &Spec) -> (i32, i32) {
    let surge = scaled_value(&spec.max_surge, spec.replicas, true);
    let mut unavailable = scaled_value(&spec.max_unavailable, spec.replicas, false);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

/// Pods that may be missing from `replicas` during a rollout.
pub fn max_unavailable(spec: &Spec) -> i32 {
    if !spec.rolling || spec.replicas == 0 {
        return 0;
    }
    fenceposts(spec).1.min(spec.replicas)
}

/// Pods a rollout may run above `replicas`.
pub fn max_surge(spec: &Spec) -> i32 {
    if !spec.rolling {
        return 0;
    }
    fenceposts(spec).0
}

fn total(rss: &[&Rs]) -> i32 {
    rss.iter().map(|r| r.replicas).sum()
}

/// The size of the new ReplicaSet in this step (upstream's `NewRSNewReplicas`).
pub fn new_rs_replicas(spec: &Spec, all: &[&Rs], new: &Rs) -> i32 {
    if !spec.rolling {
        return spec.replicas;
    }
    let current = total(all);
    let max_total = spec.replicas + max_surge(spec);
    if current >= max_total {
        return new.replicas;
    }
    let up = (max_total - current)
        .min(spec.replicas - new.replicas)
        .max(0);
    new.replicas + up
}

/// New sizes for old ReplicaSets in one rolling step (upstream's `reconcileOldReplicaSets`):
/// first unhealthy replicas, then healthy ones while availability stays above
/// `replicas - maxUnavailable`. Old sets are taken oldest first.
pub fn scale_down_old(spec: &Spec, new: &Rs, old: &[&Rs]) -> Vec<(String, i32)> {
    let mut old: Vec<Rs> = old.iter().map(|r| (*r).clone()).collect();
    old.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    let old_pods: i32 = old.iter().map(|r| r.replicas).sum();
    if old_pods == 0 {
        return vec![];
    }
    let all_pods = old_pods + new.replicas;
    let min_available = spec.replicas - max_unavailable(spec);
    let new_unavailable = new.replicas - new.available;
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return vec![];
    }
    let mut out: Vec<(String, i32)> = Vec::new();
    // Unhealthy replicas of old sets go first: removing them costs no availability.
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        if rs.replicas == 0 {
            continue;
        }
        let unhealthy = rs.replicas - rs.available;
        if unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        rs.replicas -= down;
        cleaned += down;
        out.push((rs.name.clone(), rs.replicas));
    }
    // Then available ones, as far as availability allows.
    let available: i32 =
        old.iter().map(|r| r.available.min(r.replicas)).sum::<i32>() + new.available;
    if available > min_available {
        let budget = available - min_available;
        let mut done = 0;
        for rs in old.iter_mut() {
            if done >= budget {
                break;
            }
            if rs.replicas == 0 {
                continue;
            }
            let down = rs.replicas.min(budget - done);
            rs.replicas -= down;
            done += down;
            match out.iter_mut().find(|(n, _)| *n == rs.name) {
                Some(e) => e.1 = rs.replicas,
                None => out.push((rs.name.clone(), rs.replicas)),
            }
        }
    }
    out
}

/// New sizes when the Deployment was scaled (or is paused) rather than changed: one active
/// set takes all replicas; a saturated new set leaves old ones at zero; otherwise the extra or
/// missing replicas are shared in proportion to each set's size (upstream's `scale`).
pub fn proportional(spec: &Spec, new: Option<&Rs>, old: &[&Rs]) -> Vec<(String, i32)> {
    let mut all: Vec<&Rs> = old.to_vec();
    if let Some(n) = new {
        all.push(n);
    }
    let active: Vec<&Rs> = all.iter().copied().filter(|r| r.replicas > 0).collect();
    let single = match active.len() {
        0 => new.or_else(|| {
            old.iter()
                .copied()
                .max_by_key(|r| (r.created, r.name.clone()))
        }),
        1 => Some(active[0]),
        _ => None,
    };
    if let Some(rs) = single {
        return if rs.replicas == spec.replicas {
            vec![]
        } else {
            vec![(rs.name.clone(), spec.replicas)]
        };
    }
    if let Some(n) = new
        && n.replicas == spec.replicas
        && n.available == spec.replicas
    {
        return old
            .iter()
            .filter(|r| r.replicas > 0)
            .map(|r| (r.name.clone(), 0))
            .collect();
    }
    if !spec.rolling {
        return vec![];
    }
    let allowed = if spec.replicas > 0 {
        spec.replicas + max_surge(spec)
    } else {
        0
    };
    let to_add = allowed - total(&active);
    if to_add == 0 {
        return vec![];
    }
    let mut sorted = active.clone();
    // Growing: largest (then newest) first; shrinking: largest (then oldest) first.
    sorted.sort_by(|a, b| {
        b.replicas.cmp(&a.replicas).then_with(|| {
            if to_add > 0 {
                b.created.cmp(&a.created)
            } else {
                a.created.cmp(&b.created)
            }
        })
    });
    let mut added = 0;
    let mut sizes: Vec<(String, i32)> = Vec::new();
    for rs in &sorted {
        let mut p = 0;
        if to_add != added && rs.replicas != 0 {
            let fraction = if spec.replicas == 0 {
                -rs.replicas
            } else {
                let annotated = rs
                    .max_replicas
                    .filter(|m| *m > 0)
                    .unwrap_or(total(&active).max(1));
                let target =
                    (f64::from(rs.replicas) * f64::from(allowed) / f64::from(annotated)).round();
                // Rounded like upstream's RoundToInt32; sizes fit i32.
                (target as i32) - rs.replicas
            };
            let left = to_add - added;
            p = if to_add > 0 {
                fraction.min(left)
            } else {
                fraction.max(left)
            };
        }
        added += p;
        sizes.push((rs.name.clone(), rs.replicas + p));
    }
    // Rounding leftovers go to the largest set.
    if let Some(first) = sizes.first_mut()
        && added != to_add
    {
        first.1 = (first.1 + to_add - added).max(0);
    }
    sizes
        .into_iter()
        .filter(|(n, size)| all.iter().any(|r| &r.name == n && r.replicas != *size))
        .collect()
}

/// Old sets to delete beyond `limit` (oldest revision first), only those scaled to zero.
pub fn history_to_delete(old: &[&Rs], limit: i32) -> Vec<String> {
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if old.len() <= limit {
        return vec![];
    }
    let mut sorted: Vec<&Rs> = old.to_vec();
    sorted.sort_by(|a, b| {
        a.revision
            .cmp(&b.revision)
            .then_with(|| a.created.cmp(&b.created))
    });
    let diff = old.len() - limit;
    sorted
        .into_iter()
        .take(diff)
        .filter(|r| r.replicas == 0 && r.actual == 0)
        .map(|r| r.name.clone())
        .collect()
}

/// Status counts computed from the sets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub replicas: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    pub unavailable: i32,
}

/// Upstream's `calculateStatus` counts.
pub fn counts(spec: &Spec, new: Option<&Rs>, old: &[&Rs]) -> Counts {
    let mut all: Vec<&Rs> = old.to_vec();
    all.extend(new);
    let available: i32 = all.iter().map(|r| r.available).sum();
    Counts {
        replicas: all.iter().map(|r| r.actual).sum(),
        updated: new.map_or(0, |n| n.actual),
        ready: all.iter().map(|r| r.ready).sum(),
        available,
        unavailable: (spec.replicas - available).max(0),
    }
}

/// Whether the rollout is done: every replica updated and available, nothing old left.
pub fn complete(spec: &Spec, c: &Counts) -> bool {
    c.updated == spec.replicas && c.replicas == spec.replicas && c.available == spec.replicas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Spec {
        Spec {
            replicas,
            rolling: true,
            max_surge: surge,
            max_unavailable: unavailable,
        }
    }
    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }
    fn rs(name: &str, replicas: i32, available: i32, created: i64) -> Rs {
        Rs {
            name: name.into(),
            replicas,
            actual: replicas,
            ready: available,
            available,
            created,
            ..Default::default()
        }
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let cases = [
            (10, pct("25%"), pct("25%"), (3, 2)),
            (3, pct("25%"), pct("25%"), (1, 0)),
            (1, pct("25%"), pct("25%"), (1, 0)),
            (4, IntOrString::Int(0), IntOrString::Int(0), (0, 1)),
            (5, IntOrString::Int(2), pct("50%"), (2, 2)),
        ];
        for (replicas, s, u, want) in cases {
            assert_eq!(fenceposts(&spec(replicas, s, u)), want, "{replicas}");
        }
        let mut recreate = spec(3, pct("25%"), pct("25%"));
        recreate.rolling = false;
        assert_eq!(max_unavailable(&recreate), 0);
        assert_eq!(max_surge(&recreate), 0);
    }

    #[test]
    fn rolling_steps() {
        // 3 replicas, 25%/25%: surge 1, unavailable 0.
        let s = spec(3, pct("25%"), pct("25%"));
        let old = rs("old", 3, 3, 1);
        let new = rs("new", 0, 0, 2);
        assert_eq!(new_rs_replicas(&s, &[&old, &new], &new), 1);
        // New set not yet available: nothing old may go.
        let new1 = rs("new", 1, 0, 2);
        assert_eq!(scale_down_old(&s, &new1, &[&old]), vec![]);
        // New pod available: one old pod may go.
        let new1 = rs("new", 1, 1, 2);
        assert_eq!(
            scale_down_old(&s, &new1, &[&old]),
            vec![("old".to_string(), 2)]
        );
        // At the surge limit the new set waits.
        assert_eq!(new_rs_replicas(&s, &[&old, &new1], &new1), 1);
        // Unhealthy old replicas go first, regardless of availability.
        let sick = rs("old", 3, 1, 1);
        let new0 = rs("new", 1, 0, 2);
        assert_eq!(scale_down_old(&s, &new0, &[&sick]), vec![]);
        let s10 = spec(10, pct("25%"), pct("25%"));
        let old10 = rs("old", 10, 6, 1);
        let new3 = rs("new", 3, 0, 2);
        // all 13, minAvailable 8, new unavailable 3: may remove 2, both unhealthy.
        assert_eq!(
            scale_down_old(&s10, &new3, &[&old10]),
            vec![("old".to_string(), 8)]
        );
    }

    #[test]
    fn proportional_scaling() {
        let s = spec(10, IntOrString::Int(0), IntOrString::Int(1));
        // One active set takes everything.
        let only = rs("a", 5, 5, 1);
        assert_eq!(
            proportional(&s, None, &[&only]),
            vec![("a".to_string(), 10)]
        );
        // Two active sets, 5 and 5 of 10 → 20 (max-replicas annotations 10).
        let mut s20 = s.clone();
        s20.replicas = 20;
        let mut a = rs("a", 5, 5, 1);
        let mut b = rs("b", 5, 0, 2);
        a.max_replicas = Some(10);
        b.max_replicas = Some(10);
        let mut got = proportional(&s20, Some(&b), &[&a]);
        got.sort();
        assert_eq!(got, vec![("a".to_string(), 10), ("b".to_string(), 10)]);
    }

    #[test]
    fn history_keeps_limit_and_never_deletes_scaled_sets() {
        let mut a = rs("a", 0, 0, 1);
        a.revision = 1;
        let mut b = rs("b", 0, 0, 2);
        b.revision = 2;
        let mut c = rs("c", 1, 1, 3);
        c.revision = 3;
        assert_eq!(
            history_to_delete(&[&c, &b, &a], 1),
            vec!["a".to_string(), "b".to_string()]
        );
        assert_eq!(history_to_delete(&[&c, &a], 0), vec!["a".to_string()]);
        assert!(history_to_delete(&[&a], 10).is_empty());
    }

    #[test]
    fn counts_and_completion() {
        let s = spec(2, pct("25%"), pct("25%"));
        let new = rs("new", 2, 2, 2);
        let old = rs("old", 0, 0, 1);
        let c = counts(&s, Some(&new), &[&old]);
        assert_eq!(
            c,
            Counts {
                replicas: 2,
                updated: 2,
                ready: 2,
                available: 2,
                unavailable: 0
            }
        );
        assert!(complete(&s, &c));
        let old1 = rs("old", 1, 1, 1);
        assert!(!complete(&s, &counts(&s, Some(&new), &[&old1])));
    }
}
