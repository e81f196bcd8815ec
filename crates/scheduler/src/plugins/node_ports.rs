//! NodePorts: a pod's host ports must be free on the node (0.0.0.0 conflicts with every IP).

use crate::framework::{CycleState, Plugin, Point, Status};
use crate::snapshot::{HostPort, NodeInfo, PodInfo};

pub const NAME: &str = "NodePorts";
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

fn conflicts(a: &HostPort, b: &HostPort) -> bool {
    a.1 == b.1 && a.2 == b.2 && (a.0 == b.0 || a.0 == "0.0.0.0" || b.0 == "0.0.0.0")
}

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::PreFilter, Point::Filter]
    }

    fn pre_filter(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &crate::snapshot::Snapshot,
    ) -> Status {
        if pod.host_ports.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let clash = pod
            .host_ports
            .iter()
            .any(|want| node.used_ports.iter().any(|used| conflicts(want, used)));
        if clash {
            Status::unschedulable(REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn port_pod(name: &str, ports: serde_json::Value) -> PodInfo {
        pod(
            name,
            json!({}),
            json!({"containers": [{"name": "c", "ports": ports}]}),
        )
    }

    #[test]
    fn table() {
        let snap = snapshot(
            vec![
                node("a", json!({}), json!({})),
                node("b", json!({}), json!({})),
            ],
            vec![(
                "a",
                port_pod("used", json!([{"containerPort": 80, "hostPort": 8080}])),
            )],
        );
        let cases = vec![
            (
                "no host port",
                json!([{"containerPort": 80}]),
                vec!["a", "b"],
            ),
            (
                "same port",
                json!([{"containerPort": 80, "hostPort": 8080}]),
                vec!["b"],
            ),
            (
                "same port, udp",
                json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
                vec!["a", "b"],
            ),
            (
                "same port, specific ip",
                json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
                vec!["b"],
            ),
            (
                "other port",
                json!([{"containerPort": 80, "hostPort": 9090}]),
                vec!["a", "b"],
            ),
        ];
        for (name, ports, want) in cases {
            assert_eq!(
                passing(&NodePorts, &port_pod("p", ports), &snap),
                want,
                "{name}"
            );
        }
    }
}
