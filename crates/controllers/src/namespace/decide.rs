//! What the namespace controller reports while it empties a namespace: upstream's five
//! deletion conditions, from what discovery, deletion and the remaining content showed. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NamespaceCondition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The spec finalizer this controller is responsible for.
pub const KUBERNETES: &str = "kubernetes";

/// What one pass over the namespace's content found.
#[derive(Debug, Default)]
pub struct Pass {
    /// Discovery errors (group versions that could not be listed).
    pub discovery_errors: Vec<String>,
    /// Resources whose deletion failed, with the error.
    pub delete_errors: Vec<String>,
    /// Resource (`pods.`, `deployments.apps`) → objects remaining.
    pub remaining: BTreeMap<String, usize>,
    /// Finalizer → objects remaining that carry it.
    pub finalizers: BTreeMap<String, usize>,
}

impl Pass {
    /// Whether the namespace is empty, so the `kubernetes` finalizer may go.
    pub fn done(&self) -> bool {
        self.discovery_errors.is_empty()
            && self.delete_errors.is_empty()
            && self.remaining.is_empty()
    }
}

fn cond(
    type_: &str,
    failing: bool,
    reason: &str,
    message: String,
    now: Timestamp,
) -> NamespaceCondition {
    NamespaceCondition {
        type_: type_.into(),
        status: if failing { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_transition_time: Some(Time(now)),
    }
}

fn counted(m: &BTreeMap<String, usize>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k} has {n} resource instances"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Upstream's conditions for a pass, keeping the transition time of unchanged ones.
pub fn conditions(
    pass: &Pass,
    old: &[NamespaceCondition],
    now: Timestamp,
) -> Vec<NamespaceCondition> {
    let mut out = vec![
        if pass.discovery_errors.is_empty() {
            cond(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
                now,
            )
        } else {
            cond(
                "NamespaceDeletionDiscoveryFailure",
                true,
                "DiscoveryFailed",
                format!(
                    "Discovery failed for some groups, {} failing: {}",
                    pass.discovery_errors.len(),
                    pass.discovery_errors.join(", ")
                ),
                now,
            )
        },
        cond(
            "NamespaceDeletionGroupVersionParsingFailure",
            false,
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
            now,
        ),
        if pass.delete_errors.is_empty() {
            cond(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
                now,
            )
        } else {
            cond(
                "NamespaceDeletionContentFailure",
                true,
                "ContentDeletionFailed",
                format!(
                    "Failed to delete all resource types, {} remaining: {}",
                    pass.delete_errors.len(),
                    pass.delete_errors.join(", ")
                ),
                now,
            )
        },
        if pass.remaining.is_empty() {
            cond(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
                now,
            )
        } else {
            cond(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", counted(&pass.remaining)),
                now,
            )
        },
        if pass.finalizers.is_empty() {
            cond(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
                now,
            )
        } else {
            let f = pass
                .finalizers
                .iter()
                .map(|(k, n)| format!("{k} in {n} resource instances"))
                .collect::<Vec<_>>()
                .join(", ");
            cond(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!("Some content in the namespace has finalizers remaining: {f}"),
                now,
            )
        },
    ];
    for c in &mut out {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_)
            && o.status == c.status
        {
            c.last_transition_time = o.last_transition_time.clone();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_report_what_remains() {
        let now = Timestamp::UNIX_EPOCH;
        let mut pass = Pass::default();
        pass.remaining.insert("pods.".into(), 2);
        pass.finalizers.insert("example.com/hold".into(), 1);
        assert!(!pass.done());
        let c = conditions(&pass, &[], now);
        let find = |t: &str| c.iter().find(|c| c.type_ == t).cloned().expect(t);
        assert_eq!(find("NamespaceContentRemaining").status, "True");
        assert_eq!(
            find("NamespaceContentRemaining").message.as_deref(),
            Some("Some resources are remaining: pods. has 2 resource instances")
        );
        assert_eq!(
            find("NamespaceFinalizersRemaining").message.as_deref(),
            Some(
                "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"
            )
        );
        assert_eq!(
            find("NamespaceDeletionContentFailure").reason.as_deref(),
            Some("ContentDeleted")
        );
        let later = Timestamp::from_second(100).expect("ts");
        let again = conditions(&pass, &c, later);
        assert_eq!(again[3].last_transition_time, c[3].last_transition_time);
        assert!(Pass::default().done());
    }
}
