//! NodeName: a pod that names its node fits only there.

use crate::framework::{CycleState, Plugin, Point, Status};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeName";
pub const REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::Filter]
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
            None | Some("") => Status::success(),
            Some(n) if n == node.name => Status::success(),
            Some(_) => Status::unresolvable(REASON),
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
                node("a", json!({}), json!({})),
                node("b", json!({}), json!({})),
            ],
            vec![],
        );
        let cases = vec![
            ("no name", json!({}), vec!["a", "b"]),
            ("names b", json!({"nodeName": "b"}), vec!["b"]),
            ("names missing node", json!({"nodeName": "z"}), vec![]),
        ];
        for (name, spec, want) in cases {
            assert_eq!(
                passing(&NodeName, &pod("p", json!({}), spec), &snap),
                want,
                "{name}"
            );
        }
    }
}
