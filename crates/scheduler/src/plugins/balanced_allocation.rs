//! NodeResourcesBalancedAllocation: prefers nodes whose CPU and memory would be used in similar
//! fractions, so neither runs out while the other idles.

use crate::framework::{CycleState, MAX_NODE_SCORE, Plugin, Point};
use crate::plugins::fit::usage;
use crate::snapshot::{NodeInfo, PodInfo};

pub const NAME: &str = "NodeResourcesBalancedAllocation";

pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::Score]
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let fraction = |r: &str| {
            let (req, cap) = usage(pod, node, r);
            if cap == 0 {
                0.0
            } else {
                (req as f64 / cap as f64).min(1.0)
            }
        };
        let fractions = [fraction("cpu"), fraction("memory")];
        let mean = fractions.iter().sum::<f64>() / fractions.len() as f64;
        let variance =
            fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / fractions.len() as f64;
        ((1.0 - variance.sqrt()) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn table() {
        let snap = snapshot(vec![node("n", json!({}), json!({}))], vec![]);
        let req = |cpu: &str, mem: &str| {
            pod(
                "p",
                json!({}),
                json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": cpu, "memory": mem}}}]}),
            )
        };
        let cases = vec![
            ("balanced", req("2", "4Gi"), 100),
            ("cpu heavy", req("4", "1Mi"), 50),
            ("half vs quarter", req("2", "2Gi"), 87),
        ];
        for (name, p, want) in cases {
            assert_eq!(scores(&BalancedAllocation, &p, &snap)[0].1, want, "{name}");
        }
    }
}
