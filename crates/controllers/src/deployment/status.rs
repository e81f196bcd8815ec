//! A Deployment's conditions, after upstream's `progress.go` and `sync.go`: Available from the
//! minimum availability, Progressing from what the rollout did since the last sync, timing out
//! after `progressDeadlineSeconds` without progress. Pure; times are Unix seconds.

use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::decide::Counts;

pub const PROGRESSING: &str = "Progressing";
pub const AVAILABLE: &str = "Available";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

fn time(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH))
}

/// A condition as upstream's `NewDeploymentCondition` makes it.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: i64,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: Some(type_.into()),
        status: Some(status.into()),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(time(now)),
        last_transition_time: Some(time(now)),
    }
}

/// Finds the condition of `type_`.
pub fn get<'a>(conds: &'a [DeploymentCondition], type_: &str) -> Option<&'a DeploymentCondition> {
    conds.iter().find(|c| c.type_.as_deref() == Some(type_))
}

/// Upstream's `SetDeploymentCondition`: the same status and reason changes nothing; the same
/// status keeps the transition time; otherwise the condition replaces the old one.
pub fn set(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(cur) = get(conds, c.type_.as_deref().unwrap_or_default()) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

/// Replaces the condition, refreshing its update time (progress resets the deadline) but
/// keeping the transition time when it stays True.
pub fn refresh(conds: &mut Vec<DeploymentCondition>, mut c: DeploymentCondition) {
    if let Some(cur) = get(conds, c.type_.as_deref().unwrap_or_default())
        && cur.status.as_deref() == Some("True")
        && c.status.as_deref() == Some("True")
    {
        c.last_transition_time = cur.last_transition_time.clone();
    }
    conds.retain(|x| x.type_ != c.type_);
    conds.push(c);
}

/// Whether the rollout moved since the previous status (upstream's `DeploymentProgressing`).
pub fn progressed(old: Option<&DeploymentStatus>, new: &Counts) -> bool {
    let o = |f: fn(&DeploymentStatus) -> Option<i32>| old.and_then(f).unwrap_or(0);
    let old_updated = o(|s| s.updated_replicas);
    let old_old = o(|s| s.replicas) - old_updated;
    new.updated > old_updated
        || new.replicas - new.updated < old_old
        || new.ready > o(|s| s.ready_replicas)
        || new.available > o(|s| s.available_replicas)
}

/// Whether the Progressing condition is past its deadline at `now`.
pub fn timed_out(conds: &[DeploymentCondition], deadline: Option<i64>, now: i64) -> bool {
    let (Some(deadline), Some(c)) = (deadline, get(conds, PROGRESSING)) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => false,
        Some(TIMED_OUT) => true,
        _ => c
            .last_update_time
            .as_ref()
            .is_some_and(|t| t.0.as_second().saturating_add(deadline) < now),
    }
}

/// Seconds until the Progressing condition would time out, if it can.
pub fn time_left(conds: &[DeploymentCondition], deadline: Option<i64>, now: i64) -> Option<i64> {
    let c = get(conds, PROGRESSING)?;
    if matches!(
        c.reason.as_deref(),
        Some(NEW_RS_AVAILABLE | TIMED_OUT | PAUSED)
    ) {
        return None;
    }
    let from = c.last_update_time.as_ref()?.0.as_second();
    Some((from + deadline? - now).max(0) + 1)
}

/// The Progressing update after a rollout step that found the new set `new_rs`.
pub fn after_rollout(
    conds: &mut Vec<DeploymentCondition>,
    old: Option<&DeploymentStatus>,
    counts: &Counts,
    complete: bool,
    new_rs: Option<&str>,
    deadline: Option<i64>,
    now: i64,
) {
    if deadline.is_none() {
        conds.retain(|c| c.type_.as_deref() != Some(PROGRESSING));
        return;
    }
    let name = new_rs.unwrap_or_default();
    if complete && new_rs.is_some() {
        set(
            conds,
            condition(
                PROGRESSING,
                "True",
                NEW_RS_AVAILABLE,
                format!("ReplicaSet \"{name}\" has successfully progressed."),
                now,
            ),
        );
    } else if progressed(old, counts) && new_rs.is_some() {
        refresh(
            conds,
            condition(
                PROGRESSING,
                "True",
                RS_UPDATED,
                format!("ReplicaSet \"{name}\" is progressing."),
                now,
            ),
        );
    } else if timed_out(conds, deadline, now) && new_rs.is_some() {
        set(
            conds,
            condition(
                PROGRESSING,
                "False",
                TIMED_OUT,
                format!("ReplicaSet \"{name}\" has timed out progressing."),
                now,
            ),
        );
    }
}

/// The Available condition from the minimum availability.
pub fn availability(conds: &mut Vec<DeploymentCondition>, available: bool, now: i64) {
    let c = if available {
        condition(
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.".into(),
            now,
        )
    } else {
        condition(
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.".into(),
            now,
        )
    };
    set(conds, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(conds: &[DeploymentCondition]) -> Option<&str> {
        get(conds, PROGRESSING)?.reason.as_deref()
    }

    #[test]
    fn progressing_lifecycle() {
        let mut conds = vec![];
        set(
            &mut conds,
            condition(
                PROGRESSING,
                "True",
                NEW_RS_CREATED,
                "Created new replica set \"d-1\"".into(),
                100,
            ),
        );
        let zero = Counts::default();
        let one = Counts {
            replicas: 1,
            updated: 1,
            ..Default::default()
        };
        // Progress refreshes the update time, keeps the transition time.
        after_rollout(&mut conds, None, &one, false, Some("d-1"), Some(60), 130);
        let c = get(&conds, PROGRESSING).cloned().expect("condition");
        assert_eq!(c.reason.as_deref(), Some(RS_UPDATED));
        assert_eq!(c.last_update_time.map(|t| t.0.as_second()), Some(130));
        assert_eq!(c.last_transition_time.map(|t| t.0.as_second()), Some(100));
        assert_eq!(time_left(&conds, Some(60), 150), Some(41));
        // No progress within the deadline: timed out.
        let old = DeploymentStatus {
            replicas: Some(1),
            updated_replicas: Some(1),
            ..Default::default()
        };
        after_rollout(
            &mut conds,
            Some(&old),
            &one,
            false,
            Some("d-1"),
            Some(60),
            180,
        );
        assert_eq!(reason(&conds), Some(RS_UPDATED));
        after_rollout(
            &mut conds,
            Some(&old),
            &one,
            false,
            Some("d-1"),
            Some(60),
            191,
        );
        assert_eq!(reason(&conds), Some(TIMED_OUT));
        assert_eq!(
            get(&conds, PROGRESSING).and_then(|c| c.status.as_deref()),
            Some("False")
        );
        // Completion.
        after_rollout(
            &mut conds,
            Some(&old),
            &zero,
            true,
            Some("d-1"),
            Some(60),
            200,
        );
        assert_eq!(reason(&conds), Some(NEW_RS_AVAILABLE));
        assert!(!timed_out(&conds, Some(60), 10_000));
    }

    #[test]
    fn set_keeps_unchanged_conditions() {
        let mut conds = vec![];
        availability(&mut conds, true, 1);
        availability(&mut conds, true, 50);
        let c = get(&conds, AVAILABLE).cloned().expect("available");
        assert_eq!(c.last_update_time.map(|t| t.0.as_second()), Some(1));
        availability(&mut conds, false, 60);
        assert_eq!(
            get(&conds, AVAILABLE).and_then(|c| c.status.as_deref()),
            Some("False")
        );
        assert_eq!(conds.len(), 1);
    }
}
