//! NodeAffinity: `spec.nodeSelector` and required node affinity must match the node's labels
//! (and name, for `matchFields`); preferred terms add their weights to the score.

use k8s_openapi::api::core::v1::{NodeSelector, NodeSelectorRequirement, NodeSelectorTerm};
use rudder_machinery::label_selector::{Operator, Requirement};

use crate::framework::{CycleState, Plugin, Point, Status, normalize_max};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeAffinity";
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

/// Whether one node selector requirement holds for `value` (the label, or the node's name for a
/// field requirement), through the label selector code so operators mean what they mean there.
fn requirement_matches(
    r: &NodeSelectorRequirement,
    key: &str,
    node: &NodeInfo,
    field: bool,
) -> bool {
    let op = match r.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return false,
    };
    // An invalid requirement (In without values, Gt with a non-integer) matches nothing.
    let Ok(req) = Requirement::new(key, op, r.values.clone().unwrap_or_default()) else {
        return false;
    };
    if field {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert(key.to_owned(), node.name.clone());
        req.matches(&fields)
    } else {
        req.matches(&node.labels)
    }
}

/// A term holds when all its requirements hold; an empty term selects nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, &r.key, node, false))
        && fields
            .iter()
            .all(|r| r.key == "metadata.name" && requirement_matches(r, &r.key, node, true))
}

/// A node selector holds when any of its terms does.
pub fn selector_matches(selector: &NodeSelector, node: &NodeInfo) -> bool {
    selector
        .node_selector_terms
        .iter()
        .any(|t| term_matches(t, node))
}

/// Whether `node` satisfies the pod's `nodeSelector` and required node affinity.
pub fn pod_matches_node(pod: &PodInfo, node: &NodeInfo) -> bool {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok && required.is_none_or(|r| selector_matches(r, node))
}

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::Filter, Point::Score]
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod_matches_node(pod, node) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let preferred = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        preferred
            .into_iter()
            .flatten()
            .filter(|t| term_matches(&t.preference, node))
            .map(|t| i64::from(t.weight))
            .sum()
    }

    fn normalize_score(&self, _: &CycleState, scores: &mut [i64]) {
        normalize_max(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn required(exprs: serde_json::Value) -> serde_json::Value {
        json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": exprs}}}})
    }

    #[test]
    fn filter_table() {
        let snap = snapshot(
            vec![
                node(
                    "a",
                    json!({"zone": "z1", "disk": "ssd", "gen": "3"}),
                    json!({}),
                ),
                node("b", json!({"zone": "z2", "gen": "5"}), json!({})),
                node("c", json!({}), json!({})),
            ],
            vec![],
        );
        let cases = vec![
            ("nothing", json!({}), vec!["a", "b", "c"]),
            (
                "nodeSelector",
                json!({"nodeSelector": {"disk": "ssd"}}),
                vec!["a"],
            ),
            (
                "nodeSelector no match",
                json!({"nodeSelector": {"disk": "hdd"}}),
                vec![],
            ),
            (
                "In",
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}]),
                ),
                vec!["a", "b"],
            ),
            (
                "NotIn",
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}]),
                ),
                vec!["b", "c"],
            ),
            (
                "Exists",
                required(json!([{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}])),
                vec!["a"],
            ),
            (
                "DoesNotExist",
                required(
                    json!([{"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}]),
                ),
                vec!["c"],
            ),
            (
                "Gt",
                required(
                    json!([{"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}]),
                ),
                vec!["b"],
            ),
            (
                "Lt",
                required(
                    json!([{"matchExpressions": [{"key": "gen", "operator": "Lt", "values": ["4"]}]}]),
                ),
                vec!["a"],
            ),
            (
                "terms are ORed",
                required(json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
                {"matchExpressions": [{"key": "gen", "operator": "In", "values": ["5"]}]}])),
                vec!["a", "b"],
            ),
            (
                "matchFields",
                required(
                    json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["c"]}]}]),
                ),
                vec!["c"],
            ),
            ("empty term matches nothing", required(json!([{}])), vec![]),
            (
                "invalid In without values",
                required(json!([{"matchExpressions": [{"key": "zone", "operator": "In"}]}])),
                vec![],
            ),
            (
                "selector and affinity both",
                json!({"nodeSelector": {"zone": "z2"},
                "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms":
                    [{"matchExpressions": [{"key": "disk", "operator": "Exists"}]}]}}}}),
                vec![],
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(
                passing(&NodeAffinity, &pod("p", json!({}), spec), &snap),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn score_prefers_weights() {
        let snap = snapshot(
            vec![
                node("a", json!({"zone": "z1"}), json!({})),
                node("b", json!({"zone": "z2", "ssd": "y"}), json!({})),
            ],
            vec![],
        );
        let p = pod(
            "p",
            json!({}),
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
            {"weight": 40, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}]}}}),
        );
        assert_eq!(
            scores(&NodeAffinity, &p, &snap),
            vec![("a".into(), 25), ("b".into(), 100)]
        );
    }
}
