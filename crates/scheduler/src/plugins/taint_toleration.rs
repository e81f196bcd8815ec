//! TaintToleration: a node's NoSchedule/NoExecute taints keep out pods that do not tolerate them;
//! untolerated PreferNoSchedule taints lower the node's score.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{CycleState, Plugin, Point, Status, normalize_reverse};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "TaintToleration";

pub struct TaintToleration;

/// Whether `toleration` tolerates `taint`, by upstream's rules: an empty effect matches every
/// effect, an empty key with `Exists` matches every taint, `Equal` (the default) compares values.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    let effect = toleration.effect.as_deref().unwrap_or("");
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let operator = toleration.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return operator == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match operator {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// What the filter says about a taint the pod does not tolerate.
pub fn reason(taint: &Taint) -> String {
    let value = taint.value.as_deref().unwrap_or("");
    format!("node(s) had untolerated taint {{{}: {value}}}", taint.key)
}

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::Filter, Point::PreScore, Point::Score]
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tols = tolerations(pod);
        let untolerated = taints(node).iter().position(|t| {
            matches!(t.effect.as_str(), "NoSchedule" | "NoExecute")
                && !tols.iter().any(|tol| tolerates(tol, t))
        });
        match untolerated {
            None => Status::success(),
            Some(i) => match node.taint_reasons.get(i) {
                Some(reason) => Status::unresolvable(reason.clone()),
                // Only a NodeInfo built other than by `NodeInfo::new` lacks them.
                None => Status::unresolvable(reason(&taints(node)[i])),
            },
        }
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        // Only tolerations that can apply to PreferNoSchedule count here.
        let tols: Vec<&Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        let n = taints(node)
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tols.iter().any(|tol| tolerates(tol, t)))
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    fn normalize_score(&self, _: &CycleState, scores: &mut [i64]) {
        normalize_reverse(scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn tolerates_table() {
        let taint = |k: &str, v: &str, e: &str| Taint {
            key: k.into(),
            value: Some(v.into()),
            effect: e.into(),
            ..Taint::default()
        };
        let tol =
            |v: serde_json::Value| -> Toleration { serde_json::from_value(v).expect("toleration") };
        let cases = vec![
            (
                "equal",
                tol(json!({"key": "k", "value": "v", "effect": "NoSchedule"})),
                taint("k", "v", "NoSchedule"),
                true,
            ),
            (
                "value differs",
                tol(json!({"key": "k", "value": "x", "effect": "NoSchedule"})),
                taint("k", "v", "NoSchedule"),
                false,
            ),
            (
                "exists",
                tol(json!({"key": "k", "operator": "Exists"})),
                taint("k", "v", "NoExecute"),
                true,
            ),
            (
                "effect differs",
                tol(json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})),
                taint("k", "v", "NoSchedule"),
                false,
            ),
            (
                "empty key exists",
                tol(json!({"operator": "Exists"})),
                taint("any", "", "NoSchedule"),
                true,
            ),
            (
                "empty key equal",
                tol(json!({"operator": "Equal"})),
                taint("any", "", "NoSchedule"),
                false,
            ),
            (
                "key differs",
                tol(json!({"key": "j", "operator": "Exists"})),
                taint("k", "", "NoSchedule"),
                false,
            ),
        ];
        for (name, t, taint, want) in cases {
            assert_eq!(tolerates(&t, &taint), want, "{name}");
        }
    }

    #[test]
    fn filter_and_score() {
        let cp = json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}});
        let soft = json!({"spec": {"taints": [{"key": "soft", "value": "1", "effect": "PreferNoSchedule"}]}});
        let snap = snapshot(
            vec![
                node("cp", json!({}), cp),
                node("plain", json!({}), json!({})),
                node("soft", json!({}), soft),
            ],
            vec![],
        );
        let p = pod("p", json!({}), json!({}));
        let statuses = filter_all(&TaintToleration, &p, &snap);
        assert_eq!(
            statuses[0].1,
            Status::unresolvable(
                "node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
            )
        );
        assert_eq!(passing(&TaintToleration, &p, &snap), vec!["plain", "soft"]);
        assert_eq!(
            scores(&TaintToleration, &p, &snap),
            vec![
                ("cp".into(), 100),
                ("plain".into(), 100),
                ("soft".into(), 0)
            ]
        );
        let tolerant = pod(
            "t",
            json!({}),
            json!({"tolerations": [{"key": "soft", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
        );
        assert_eq!(
            scores(&TaintToleration, &tolerant, &snap)[2],
            ("soft".into(), 100)
        );
    }
}
