//! NodeResourcesFit: the pod's requests must fit in what the node's pods leave of its
//! allocatable; scoring spreads (LeastAllocated, Borg's worst fit) or packs (MostAllocated, best
//! fit) over weighted resources.

use serde_json::Value;

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Point, Reasons, Status};
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeResourcesFit";

/// How to score the fraction of a node the pod would leave used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    LeastAllocated,
    MostAllocated,
}

pub struct Fit {
    pub strategy: Strategy,
    /// (resource name, weight); upstream's default is cpu and memory, weight 1 each.
    pub resources: Vec<(String, i64)>,
}

impl Fit {
    /// Reads `scoringStrategy` from the plugin's args (`{type, resources: [{name, weight}]}`).
    pub fn new(args: &Value) -> Self {
        let strategy = args
            .pointer("/scoringStrategy/type")
            .and_then(Value::as_str);
        let strategy = match strategy {
            Some("MostAllocated") => Strategy::MostAllocated,
            _ => Strategy::LeastAllocated,
        };
        let resources: Vec<(String, i64)> = args
            .pointer("/scoringStrategy/resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| {
                Some((
                    r.get("name")?.as_str()?.to_owned(),
                    r.get("weight").and_then(Value::as_i64).unwrap_or(1),
                ))
            })
            .collect();
        Fit {
            strategy,
            resources: if resources.is_empty() {
                vec![("cpu".into(), 1), ("memory".into(), 1)]
            } else {
                resources
            },
        }
    }
}

/// Every resource the pod lacks on `node`, as upstream words them ("Too many pods",
/// "Insufficient cpu", …). The fixed resources' reasons are constants: this runs for every
/// node a decision rejects.
pub fn insufficient(pod: &PodInfo, node: &NodeInfo) -> Reasons {
    let mut reasons = Reasons::default();
    let alloc = &node.allocatable;
    let used = &node.requested;
    if used.pods + 1 > alloc.pods {
        reasons.push("Too many pods");
    }
    let want = &pod.requests;
    let lacks = |want: i64, used: i64, alloc: i64| want > 0 && used + want > alloc;
    if lacks(want.milli_cpu, used.milli_cpu, alloc.milli_cpu) {
        reasons.push("Insufficient cpu");
    }
    if lacks(want.memory, used.memory, alloc.memory) {
        reasons.push("Insufficient memory");
    }
    if lacks(
        want.ephemeral_storage,
        used.ephemeral_storage,
        alloc.ephemeral_storage,
    ) {
        reasons.push("Insufficient ephemeral-storage");
    }
    for (name, &amount) in &want.scalar {
        if lacks(amount, used.get(name), alloc.get(name)) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

/// (requested after placing the pod, allocatable) of one resource, with CPU and memory counted
/// the non-zero way so best-effort pods still spread.
pub fn usage(pod: &PodInfo, node: &NodeInfo, resource: &str) -> (i64, i64) {
    match resource {
        "cpu" => (
            node.non_zero_requested.0 + pod.non_zero.0,
            node.allocatable.milli_cpu,
        ),
        "memory" => (
            node.non_zero_requested.1 + pod.non_zero.1,
            node.allocatable.memory,
        ),
        other => (
            node.requested.get(other) + pod.requests.get(other),
            node.allocatable.get(other),
        ),
    }
}

impl Plugin for Fit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::Filter, Point::Score]
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let reasons = insufficient(pod, node);
        if reasons.is_empty() {
            Status::success()
        } else {
            Status {
                code: crate::framework::Code::Unschedulable,
                reasons,
                plugin: "",
            }
        }
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let (mut total, mut weights) = (0, 0);
        for (name, weight) in &self.resources {
            let (requested, capacity) = usage(pod, node, name);
            if capacity == 0 {
                continue;
            }
            let score = match self.strategy {
                Strategy::LeastAllocated if requested > capacity => 0,
                Strategy::LeastAllocated => (capacity - requested) * MAX_NODE_SCORE / capacity,
                Strategy::MostAllocated => requested.min(capacity) * MAX_NODE_SCORE / capacity,
            };
            total += score * weight;
            weights += weight;
        }
        if weights == 0 { 0 } else { total / weights }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn req(cpu: &str, mem: &str) -> serde_json::Value {
        json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]})
    }

    #[test]
    fn filter_table() {
        let small = json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "2", "example.com/gpu": "1"}}});
        let snap = snapshot(
            vec![
                node("small", json!({}), small),
                node("big", json!({}), json!({})),
            ],
            vec![("small", pod("used", json!({}), req("500m", "512Mi")))],
        );
        let cases = vec![
            (
                "fits both",
                req("500m", "512Mi"),
                vec![],
                vec!["big", "small"],
            ),
            (
                "cpu",
                req("600m", "1Mi"),
                vec!["Insufficient cpu"],
                vec!["big"],
            ),
            (
                "cpu and memory",
                req("2", "800Mi"),
                vec!["Insufficient cpu", "Insufficient memory"],
                vec!["big"],
            ),
            ("nowhere", req("5", "1Mi"), vec!["Insufficient cpu"], vec![]),
            (
                "extended resource",
                json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]}),
                vec![],
                vec!["small"],
            ),
        ];
        let fit = Fit::new(&Value::Null);
        for (name, spec, small_reasons, want) in cases {
            let p = pod("p", json!({}), spec);
            let statuses = filter_all(&fit, &p, &snap);
            assert_eq!(statuses[0].1.reasons, small_reasons, "{name}");
            if name != "extended resource" {
                assert_eq!(passing(&fit, &p, &snap), want, "{name}");
            }
        }
        let gpu = pod(
            "g",
            json!({}),
            json!({"containers": [{"name": "c", "resources": {"requests": {"example.com/gpu": "1"}}}]}),
        );
        assert_eq!(
            filter_all(&fit, &gpu, &snap)[1].1.reasons,
            vec!["Insufficient example.com/gpu"]
        );
    }

    #[test]
    fn too_many_pods() {
        let one = json!({"status": {"allocatable": {"cpu": "1", "memory": "1Gi", "pods": "1"}}});
        let snap = snapshot(
            vec![node("n", json!({}), one)],
            vec![("n", pod("a", json!({}), json!({})))],
        );
        let s = filter_all(
            &Fit::new(&Value::Null),
            &pod("b", json!({}), json!({})),
            &snap,
        );
        assert_eq!(s[0].1.reasons, vec!["Too many pods"]);
    }

    #[test]
    fn strategies_table() {
        // "half" has 2 of its 4 CPUs and 4 of its 8 GiB requested; "empty" nothing.
        let snap = snapshot(
            vec![
                node("empty", json!({}), json!({})),
                node("half", json!({}), json!({})),
            ],
            vec![("half", pod("used", json!({}), req("2", "4Gi")))],
        );
        let p = pod("p", json!({}), req("1", "2Gi"));
        let cases = vec![
            (
                "least",
                json!({}),
                vec![("empty".to_owned(), 75), ("half".to_owned(), 25)],
            ),
            (
                "most",
                json!({"scoringStrategy": {"type": "MostAllocated"}}),
                vec![("empty".to_owned(), 25), ("half".to_owned(), 75)],
            ),
            (
                "most, cpu only",
                json!({"scoringStrategy": {"type": "MostAllocated", "resources": [{"name": "cpu", "weight": 1}]}}),
                vec![("empty".to_owned(), 25), ("half".to_owned(), 75)],
            ),
        ];
        for (name, args, want) in cases {
            assert_eq!(scores(&Fit::new(&args), &p, &snap), want, "{name}");
        }
    }
}
