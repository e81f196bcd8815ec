//! NodeUnschedulable: cordoned nodes (`spec.unschedulable`) take only pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::framework::{CycleState, Plugin, Point, Status};
use crate::plugins::taint_toleration::tolerates;
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeUnschedulable";
pub const REASON: &str = "node(s) were unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::Filter]
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let cordoned = node
            .node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        if !cordoned {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let tolerations = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        if tolerations.iter().any(|t| tolerates(t, &taint)) {
            Status::success()
        } else {
            Status::unresolvable(REASON)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn table() {
        let snap = snapshot(
            vec![
                node("ok", json!({}), json!({})),
                node(
                    "cordoned",
                    json!({}),
                    json!({"spec": {"unschedulable": true}}),
                ),
            ],
            vec![],
        );
        let cases = vec![
            ("plain pod", json!({}), vec!["ok"]),
            (
                "tolerates",
                json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
                vec!["cordoned", "ok"],
            ),
            (
                "tolerates everything",
                json!({"tolerations": [{"operator": "Exists"}]}),
                vec!["cordoned", "ok"],
            ),
        ];
        for (name, spec, want) in cases {
            assert_eq!(
                passing(&NodeUnschedulable, &pod("p", json!({}), spec), &snap),
                want,
                "{name}"
            );
        }
    }
}
