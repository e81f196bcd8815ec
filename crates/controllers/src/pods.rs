//! Facts about pods and owner references that several controllers use (upstream's
//! `controller_utils`): activity, readiness, availability, controller references and the order
//! in which surplus pods are deleted. Pure.

use std::cmp::Ordering;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The pod index's key ([`crate::informer_index`]): the controller's UID, or for a pod without
/// a controller its namespace's [`orphans_key`].
pub fn controller_key(p: &Pod) -> String {
    match controller_ref(&p.metadata) {
        Some(r) => r.uid.clone(),
        None => orphans_key(p.metadata.namespace.as_deref().unwrap_or_default()),
    }
}

/// The index key of the pods of `ns` that have no controller (a UID never holds a `/`).
pub fn orphans_key(ns: &str) -> String {
    format!("/{ns}")
}

/// A controller reference to an owner, blocking the owner's foreground deletion as upstream's
/// controllers set it.
pub fn new_controller_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: name.into(),
        uid: uid.into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod's phase (empty when not reported yet).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Whether the pod counts toward a controller's replicas: not finished and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// Whether the pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// When the pod's Ready condition last turned True (Unix seconds), if it is Ready.
pub fn ready_since(pod: &Pod) -> Option<i64> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_deref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if cond.status != "True" {
        return None;
    }
    Some(
        cond.last_transition_time
            .as_ref()
            .map(|t| t.0.as_second())
            .unwrap_or(i64::MIN),
    )
}

/// Whether the pod is Ready.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Whether the pod has been Ready for `min_ready_seconds` at `now` (Unix seconds).
pub fn is_available(pod: &Pod, min_ready_seconds: i64, now: i64) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => since.saturating_add(min_ready_seconds) <= now,
    }
}

fn created(pod: &Pod) -> i64 {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .unwrap_or(0)
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Upstream's order for deleting surplus pods, first to go first: unscheduled before
/// scheduled, Pending before Unknown before Running, not ready before ready, ready for a
/// shorter time before longer, more restarts before fewer, newer before older.
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Pod| match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Ready longer ago = smaller timestamp = deleted later.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| created(b).cmp(&created(a)))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Pod fixtures for the table tests of the controllers.

    use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::new_controller_ref;

    /// A pod with labels `app=<app>`, created at `created` (Unix seconds).
    pub fn pod(name: &str, app: &str, created: i64) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                labels: Some([("app".to_string(), app.to_string())].into()),
                creation_timestamp: Some(Time(ts(created))),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        }
    }

    pub fn ts(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    /// Marks the pod owned (as controller) by `owner_uid`.
    pub fn owned(mut p: Pod, kind: &str, owner: &str, owner_uid: &str) -> Pod {
        p.metadata.owner_references =
            Some(vec![new_controller_ref("apps/v1", kind, owner, owner_uid)]);
        p
    }

    /// Marks the pod scheduled, Running and Ready since `since`.
    pub fn ready(mut p: Pod, since: i64) -> Pod {
        p.spec.get_or_insert_default().node_name = Some("node".into());
        let st = p.status.get_or_insert_default();
        st.phase = Some("Running".into());
        st.conditions = Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            last_transition_time: Some(Time(ts(since))),
            ..Default::default()
        }]);
        p
    }

    /// Marks the pod scheduled and Running but not ready.
    pub fn running(mut p: Pod) -> Pod {
        p.spec.get_or_insert_default().node_name = Some("node".into());
        p.status.get_or_insert_default().phase = Some("Running".into());
        p
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn deletion_order_prefers_unscheduled_pending_unready_newest() {
        let mut pods = [
            ready(pod("old-ready", "a", 10), 20),
            ready(pod("new-ready", "a", 30), 40),
            running(pod("running", "a", 5)),
            pod("pending", "a", 1),
            {
                let mut p = pod("scheduled-pending", "a", 2);
                p.spec.get_or_insert_default().node_name = Some("n".into());
                p
            },
        ];
        pods.sort_by(deletion_order);
        let names: Vec<_> = pods
            .iter()
            .map(|p| p.metadata.name.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            names,
            [
                "pending",
                "scheduled-pending",
                "running",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn availability_waits_min_ready_seconds() {
        let p = ready(pod("p", "a", 0), 100);
        assert!(is_available(&p, 0, 100));
        assert!(!is_available(&p, 10, 105));
        assert!(is_available(&p, 10, 110));
        assert!(!is_available(&pod("q", "a", 0), 0, 100));
    }
}
