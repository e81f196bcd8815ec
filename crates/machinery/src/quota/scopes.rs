//! Which pods a scoped ResourceQuota tracks, after upstream's pod evaluator: `spec.scopes` and
//! `spec.scopeSelector` (all must hold) over Terminating (`activeDeadlineSeconds` set),
//! NotTerminating, BestEffort (no CPU or memory requests or limits in any container),
//! NotBestEffort, PriorityClass (In/NotIn/Exists/DoesNotExist on `priorityClassName`) and
//! CrossNamespacePodAffinity (affinity terms naming other namespaces). Pure.

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, ResourceQuotaSpec};

/// Whether the quota tracks `pod`; an unscoped quota tracks every pod.
pub fn tracks(spec: &ResourceQuotaSpec, pod: &Pod) -> bool {
    let scopes = spec.scopes.as_deref().unwrap_or_default();
    let selector = spec
        .scope_selector
        .as_ref()
        .and_then(|s| s.match_expressions.as_deref())
        .unwrap_or_default();
    scopes.iter().all(|s| matches_scope(pod, s, "Exists", &[]))
        && selector.iter().all(|e| {
            matches_scope(
                pod,
                &e.scope_name,
                &e.operator,
                e.values.as_deref().unwrap_or_default(),
            )
        })
}

/// Whether `pod` is in `scope` under `operator` (`values` for PriorityClass In/NotIn). For the
/// scopes without values, `Exists` (and `In`) means "in the scope", `DoesNotExist` (and
/// `NotIn`) "not in it".
pub fn matches_scope(pod: &Pod, scope: &str, operator: &str, values: &[String]) -> bool {
    let spec = pod.spec.as_ref();
    let terminating = spec.is_some_and(|s| s.active_deadline_seconds.is_some_and(|d| d >= 0));
    let in_scope = match scope {
        "Terminating" => terminating,
        "NotTerminating" => !terminating,
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = spec.and_then(|s| s.priority_class_name.as_deref());
            return match operator {
                "In" => class.is_some_and(|c| values.iter().any(|v| v == c)),
                "NotIn" => !class.is_some_and(|c| values.iter().any(|v| v == c)),
                "Exists" => class.is_some_and(|c| !c.is_empty()),
                "DoesNotExist" => class.is_none_or(str::is_empty),
                _ => false,
            };
        }
        // A scope this version does not know tracks nothing, as upstream's evaluator.
        _ => return false,
    };
    match operator {
        "Exists" | "In" => in_scope,
        "DoesNotExist" | "NotIn" => !in_scope,
        _ => false,
    }
}

/// Upstream's BestEffort QoS class: no container (init containers included) requests or
/// limits CPU or memory.
fn best_effort(pod: &Pod) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .all(|c| {
            let r = c.resources.as_ref();
            let none = |m: Option<&std::collections::BTreeMap<String, _>>| {
                m.is_none_or(|m| !m.contains_key("cpu") && !m.contains_key("memory"))
            };
            none(r.and_then(|r| r.requests.as_ref())) && none(r.and_then(|r| r.limits.as_ref()))
        })
}

fn cross_namespace_affinity(pod: &Pod) -> bool {
    let Some(affinity) = pod.spec.as_ref().and_then(|s| s.affinity.as_ref()) else {
        return false;
    };
    let crosses = |t: &PodAffinityTerm| {
        t.namespace_selector.is_some() || t.namespaces.as_ref().is_some_and(|n| !n.is_empty())
    };
    let terms =
        |required: Option<&Vec<PodAffinityTerm>>,
         preferred: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
            required.into_iter().flatten().any(crosses)
                || preferred
                    .into_iter()
                    .flatten()
                    .any(|w| crosses(&w.pod_affinity_term))
        };
    affinity.pod_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    }) || affinity.pod_anti_affinity.as_ref().is_some_and(|a| {
        terms(
            a.required_during_scheduling_ignored_during_execution
                .as_ref(),
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
    }

    fn quota(spec: serde_json::Value) -> ResourceQuotaSpec {
        serde_json::from_value(spec).expect("quota spec")
    }

    #[test]
    fn scopes_select_pods() {
        let plain = pod(json!({"containers": [{"name": "c"}]}));
        let deadline = pod(json!({"activeDeadlineSeconds": 30, "containers": [{"name": "c"}]}));
        let requests = pod(json!({"containers": [{"name": "c",
            "resources": {"requests": {"cpu": "100m"}}}]}));
        let init_limits = pod(json!({"containers": [{"name": "c"}],
            "initContainers": [{"name": "i", "resources": {"limits": {"memory": "1Gi"}}}]}));
        let storage_only = pod(json!({"containers": [{"name": "c",
            "resources": {"requests": {"ephemeral-storage": "1Gi"}}}]}));
        let high = pod(json!({"priorityClassName": "high", "containers": [{"name": "c"}]}));
        let cross = pod(
            json!({"containers": [{"name": "c"}], "affinity": {"podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "k", "namespaces": ["other"]}]}}}),
        );
        let pods = [
            ("plain", &plain),
            ("deadline", &deadline),
            ("requests", &requests),
            ("init limits", &init_limits),
            ("storage only", &storage_only),
            ("high", &high),
            ("cross", &cross),
        ];
        let priority = |op: &str, values: &[&str]| {
            json!({"scopeSelector": {"matchExpressions": [
                {"scopeName": "PriorityClass", "operator": op, "values": values}]}})
        };
        // (quota spec, names of the pods it tracks)
        let cases: Vec<(serde_json::Value, Vec<&str>)> = vec![
            (
                json!({}),
                vec![
                    "plain",
                    "deadline",
                    "requests",
                    "init limits",
                    "storage only",
                    "high",
                    "cross",
                ],
            ),
            (json!({"scopes": ["Terminating"]}), vec!["deadline"]),
            (
                json!({"scopes": ["NotTerminating"]}),
                vec![
                    "plain",
                    "requests",
                    "init limits",
                    "storage only",
                    "high",
                    "cross",
                ],
            ),
            (
                json!({"scopes": ["BestEffort"]}),
                vec!["plain", "deadline", "storage only", "high", "cross"],
            ),
            (
                json!({"scopes": ["NotBestEffort"]}),
                vec!["requests", "init limits"],
            ),
            (
                json!({"scopes": ["NotBestEffort", "NotTerminating"]}),
                vec!["requests", "init limits"],
            ),
            (priority("In", &["high", "low"]), vec!["high"]),
            (
                priority("NotIn", &["high"]),
                vec![
                    "plain",
                    "deadline",
                    "requests",
                    "init limits",
                    "storage only",
                    "cross",
                ],
            ),
            (priority("Exists", &[]), vec!["high"]),
            (
                priority("DoesNotExist", &[]),
                vec![
                    "plain",
                    "deadline",
                    "requests",
                    "init limits",
                    "storage only",
                    "cross",
                ],
            ),
            (
                json!({"scopes": ["CrossNamespacePodAffinity"]}),
                vec!["cross"],
            ),
            (
                json!({"scopeSelector": {"matchExpressions": [
                {"scopeName": "Terminating", "operator": "DoesNotExist"},
                {"scopeName": "BestEffort", "operator": "Exists"}]}}),
                vec!["plain", "storage only", "high", "cross"],
            ),
            (json!({"scopes": ["NoSuchScope"]}), vec![]),
        ];
        for (spec, want) in cases {
            let q = quota(spec.clone());
            let got: Vec<&str> = pods
                .iter()
                .filter(|(_, p)| tracks(&q, p))
                .map(|(n, _)| *n)
                .collect();
            assert_eq!(got, want, "{spec}");
        }
    }
}
