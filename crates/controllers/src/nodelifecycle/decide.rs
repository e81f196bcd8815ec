//! Node lifecycle decisions, after upstream's `node_lifecycle_controller` and taint manager: a
//! node whose heartbeat (its Lease in `kube-node-lease`, or its Ready condition) is older than
//! the grace period goes Ready=Unknown; Unknown nodes carry the `unreachable` taints, Ready=False
//! nodes the `not-ready` ones; pods on a node with NoExecute taints are evicted once their
//! tolerations run out. The API server does not add upstream's default 300 s tolerations for
//! those taints (DefaultTolerationSeconds admission), so a pod without one is treated as having
//! it. Pure; times are Unix seconds.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::daemonset::decide::tolerates;

/// Heartbeats older than this make a node Unknown (upstream's `--node-monitor-grace-period`).
pub const GRACE_SECONDS: i64 = 40;
/// Upstream's default toleration of `not-ready`/`unreachable` (DefaultTolerationSeconds).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// The node's Ready state as the controller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ready,
    NotReady,
    Unknown,
}

/// Health from the Ready condition's status and the last heartbeat.
pub fn health(ready_status: Option<&str>, last_heartbeat: Option<i64>, now: i64) -> Health {
    let stale = last_heartbeat.is_none_or(|t| now - t > GRACE_SECONDS);
    match ready_status {
        _ if stale => Health::Unknown,
        Some("True") => Health::Ready,
        Some("False") => Health::NotReady,
        _ => Health::Unknown,
    }
}

/// The lifecycle taints a node in this health carries (keys with both effects).
pub fn wanted_taints(h: Health) -> Vec<(&'static str, &'static str)> {
    let key = match h {
        Health::Ready => return vec![],
        Health::NotReady => NOT_READY,
        Health::Unknown => UNREACHABLE,
    };
    vec![(key, "NoSchedule"), (key, "NoExecute")]
}

/// The node's taints after this sync: other taints kept, lifecycle taints as `h` wants (an
/// existing one keeps its timeAdded).
pub fn taints_for(
    current: &[Taint],
    h: Health,
    now_taint: impl Fn(&str, &str) -> Taint,
) -> Vec<Taint> {
    let wanted = wanted_taints(h);
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            (t.key != NOT_READY && t.key != UNREACHABLE)
                || wanted.contains(&(t.key.as_str(), t.effect.as_str()))
        })
        .cloned()
        .collect();
    for (k, e) in wanted {
        if !out.iter().any(|t| t.key == k && t.effect == e) {
            out.push(now_taint(k, e));
        }
    }
    out
}

/// When a pod on a node with these NoExecute taints must go (Unix seconds), `None` if never.
/// A taint the pod does not tolerate evicts at once; otherwise the shortest
/// `tolerationSeconds` counts from when the taint was added.
pub fn eviction_time(taints: &[Taint], tolerations: &[Toleration], now: i64) -> Option<i64> {
    let mut when: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = taint.time_added.as_ref().map_or(now, |t| t.0.as_second());
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let seconds = if matching.is_empty() {
            if taint.key == NOT_READY || taint.key == UNREACHABLE {
                Some(DEFAULT_TOLERATION_SECONDS)
            } else {
                Some(0)
            }
        } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            None
        } else {
            matching.iter().filter_map(|t| t.toleration_seconds).min()
        };
        if let Some(s) = seconds {
            let at = added + s.max(0);
            when = Some(when.map_or(at, |w: i64| w.min(at)));
        }
    }
    when
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn taint(key: &str, effect: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: Some(Time(Timestamp::from_second(added).expect("ts"))),
        }
    }

    #[test]
    fn health_from_heartbeats() {
        assert_eq!(health(Some("True"), Some(100), 130), Health::Ready);
        assert_eq!(health(Some("True"), Some(100), 141), Health::Unknown);
        assert_eq!(health(Some("False"), Some(100), 110), Health::NotReady);
        assert_eq!(health(None, None, 0), Health::Unknown);
    }

    #[test]
    fn taints_follow_health() {
        let other = taint("dedicated", "NoSchedule", 1);
        let make = |k: &str, e: &str| taint(k, e, 50);
        let t = taints_for(std::slice::from_ref(&other), Health::Unknown, make);
        assert_eq!(t.len(), 3);
        assert!(
            t.iter()
                .any(|x| x.key == UNREACHABLE && x.effect == "NoExecute")
        );
        // Recovered: lifecycle taints go, others stay.
        assert_eq!(taints_for(&t, Health::Ready, make), vec![other.clone()]);
        // Not ready replaces unreachable.
        let nr = taints_for(&t, Health::NotReady, make);
        assert!(nr.iter().all(|x| x.key != UNREACHABLE));
        assert!(nr.iter().any(|x| x.key == NOT_READY));
    }

    #[test]
    fn eviction_follows_tolerations() {
        let taints = [taint(UNREACHABLE, "NoExecute", 100)];
        assert_eq!(eviction_time(&taints, &[], 100), Some(400));
        let tol = |secs: Option<i64>| Toleration {
            key: Some(UNREACHABLE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        };
        assert_eq!(eviction_time(&taints, &[tol(Some(5))], 100), Some(105));
        assert_eq!(eviction_time(&taints, &[tol(None)], 100), None);
        let foreign = [taint("example.com/evict", "NoExecute", 100)];
        assert_eq!(eviction_time(&foreign, &[], 120), Some(100));
        assert_eq!(eviction_time(&[taint("x", "NoSchedule", 1)], &[], 5), None);
    }
}
