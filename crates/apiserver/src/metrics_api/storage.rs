//! The latest two points per node and per container, and the usage computed from them, by
//! metrics-server's rules: CPU usage is the cumulative counter's increase divided by the time
//! between the two points (the window), memory is the latest working set; a pod is reported
//! only when every container it reported has two points, with the earliest container
//! timestamp and its window. Pure: the scraper hands in whole scrape rounds.

use std::collections::{BTreeMap, HashMap};

use super::prom::{NodeBatch, PodRef, Point};

/// Usage over a window, as NodeMetrics and PodMetrics report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// The end of the window (the latest point's time), ms since the epoch.
    pub timestamp_ms: i64,
    /// The window's length, ms.
    pub window_ms: i64,
    /// Average CPU over the window, nanocores (1e-9 cores).
    pub cpu_nanocores: u64,
    /// Working set at the end of the window, bytes.
    pub memory_bytes: u64,
}

/// A pod's containers' usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodUsage {
    /// The earliest container timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// That container's window, ms.
    pub window_ms: i64,
    /// Per container, by name.
    pub containers: Vec<(String, Usage)>,
}

/// The latest point and, when there is one, the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pair {
    last: Point,
    prev: Option<Point>,
}

/// Advances `old` with `new`: the stored last point becomes the previous one if `new` is
/// later; a repeated or older `new` (a kubelet answering from its cache) keeps the stored
/// previous point if that one is still older than `new`.
fn advance(old: Option<&Pair>, new: Point) -> Pair {
    let prev = old.and_then(|o| {
        if new.timestamp_ms > o.last.timestamp_ms {
            Some(o.last)
        } else {
            o.prev.filter(|p| p.timestamp_ms < new.timestamp_ms)
        }
    });
    Pair { last: new, prev }
}

/// The usage between two points; `None` without a window or when the counter went backwards
/// (the container restarted and its counter began again).
pub fn rate(last: Point, prev: Point) -> Option<Usage> {
    let window_ms = last.timestamp_ms.checked_sub(prev.timestamp_ms)?;
    if window_ms <= 0 || last.cpu_ns < prev.cpu_ns {
        return None;
    }
    let used = u128::from(last.cpu_ns - prev.cpu_ns);
    // ns / s = nanocores; window in ms, hence × 1000.
    let nanocores = used * 1000 / u128::try_from(window_ms).ok()?;
    Some(Usage {
        timestamp_ms: last.timestamp_ms,
        window_ms,
        cpu_nanocores: u64::try_from(nanocores).unwrap_or(u64::MAX),
        memory_bytes: last.memory_bytes,
    })
}

impl Pair {
    fn usage(&self) -> Option<Usage> {
        rate(self.last, self.prev?)
    }
}

/// Points of every node and container from the latest scrape rounds.
#[derive(Debug, Default)]
pub struct Storage {
    nodes: HashMap<String, Pair>,
    pods: HashMap<PodRef, BTreeMap<String, Pair>>,
}

impl Storage {
    /// Takes one scrape round, by node name. What the round lacks is forgotten: a node that
    /// failed to answer, a pod that is gone. A pod reported by two nodes (moved, or a stale
    /// kubelet) keeps the first node's report, in name order, so the result is stable.
    pub fn store(&mut self, round: BTreeMap<String, NodeBatch>) {
        let mut nodes = HashMap::new();
        let mut pods: HashMap<PodRef, BTreeMap<String, Pair>> = HashMap::new();
        for (name, batch) in round {
            if let Some(point) = batch.node {
                nodes.insert(name.clone(), advance(self.nodes.get(&name), point));
            }
            for (pod, containers) in batch.pods {
                if pods.contains_key(&pod) {
                    continue;
                }
                let old = self.pods.get(&pod);
                let pairs = containers
                    .into_iter()
                    .map(|(c, point)| {
                        let pair = advance(old.and_then(|o| o.get(&c)), point);
                        (c, pair)
                    })
                    .collect();
                pods.insert(pod, pairs);
            }
        }
        self.nodes = nodes;
        self.pods = pods;
    }

    /// A node's usage, once it has two points.
    pub fn node(&self, name: &str) -> Option<Usage> {
        self.nodes.get(name)?.usage()
    }

    /// A pod's usage: every container must have two points (a container that just started
    /// holds the pod back until its second scrape); a container whose counter went backwards
    /// is left out for this round.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<PodUsage> {
        let containers = self.pods.get(&(namespace.to_owned(), name.to_owned()))?;
        let mut out = Vec::new();
        let mut earliest: Option<(i64, i64)> = None;
        for (c, pair) in containers {
            pair.prev?;
            let Some(u) = pair.usage() else { continue };
            if earliest.is_none_or(|(ts, _)| u.timestamp_ms < ts) {
                earliest = Some((u.timestamp_ms, u.window_ms));
            }
            out.push((c.clone(), u));
        }
        let (timestamp_ms, window_ms) = earliest?;
        Some(PodUsage {
            timestamp_ms,
            window_ms,
            containers: out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cpu_ns: u64, memory_bytes: u64, timestamp_ms: i64) -> Point {
        Point {
            cpu_ns,
            memory_bytes,
            timestamp_ms,
        }
    }

    #[test]
    fn rate_table() {
        let cases = [
            // Half a core for 10 s.
            (
                (p(6_000_000_000, 7, 20_000), p(1_000_000_000, 3, 10_000)),
                Some(Usage {
                    timestamp_ms: 20_000,
                    window_ms: 10_000,
                    cpu_nanocores: 500_000_000,
                    memory_bytes: 7,
                }),
            ),
            // Idle.
            (
                (p(5, 4096, 15_000), p(5, 4096, 0)),
                Some(Usage {
                    timestamp_ms: 15_000,
                    window_ms: 15_000,
                    cpu_nanocores: 0,
                    memory_bytes: 4096,
                }),
            ),
            // Counter reset, no window, time going backwards.
            ((p(1, 0, 20_000), p(2, 0, 10_000)), None),
            ((p(2, 0, 10_000), p(1, 0, 10_000)), None),
            ((p(2, 0, 9_000), p(1, 0, 10_000)), None),
        ];
        for ((last, prev), want) in cases {
            assert_eq!(rate(last, prev), want, "{last:?} {prev:?}");
        }
    }

    #[test]
    fn advance_table() {
        let a = p(1, 0, 1000);
        let b = p(2, 0, 2000);
        let c = p(3, 0, 3000);
        let cases = [
            (
                None,
                a,
                Pair {
                    last: a,
                    prev: None,
                },
            ),
            (
                Some(Pair {
                    last: a,
                    prev: None,
                }),
                b,
                Pair {
                    last: b,
                    prev: Some(a),
                },
            ),
            (
                Some(Pair {
                    last: b,
                    prev: Some(a),
                }),
                c,
                Pair {
                    last: c,
                    prev: Some(b),
                },
            ),
            // The kubelet answered with the same reading again: keep the previous one.
            (
                Some(Pair {
                    last: b,
                    prev: Some(a),
                }),
                b,
                Pair {
                    last: b,
                    prev: Some(a),
                },
            ),
            // An older reading than the previous one: no previous point is usable.
            (
                Some(Pair {
                    last: c,
                    prev: Some(b),
                }),
                a,
                Pair {
                    last: a,
                    prev: None,
                },
            ),
        ];
        for (old, new, want) in cases {
            assert_eq!(advance(old.as_ref(), new), want, "{old:?} {new:?}");
        }
    }

    fn batch(node: Option<Point>, containers: &[(&str, &str, &str, Point)]) -> NodeBatch {
        let mut b = NodeBatch {
            node,
            pods: BTreeMap::new(),
        };
        for (ns, pod, c, point) in containers {
            b.pods
                .entry(((*ns).into(), (*pod).into()))
                .or_default()
                .insert((*c).into(), *point);
        }
        b
    }

    #[test]
    fn rounds() {
        let mut s = Storage::default();
        let round = |n1: Option<Point>, cs: &[(&str, &str, &str, Point)]| {
            BTreeMap::from([("n1".to_owned(), batch(n1, cs))])
        };
        // First round: one point each, nothing to report yet.
        s.store(round(
            Some(p(0, 100, 10_000)),
            &[("web", "a", "main", p(0, 10, 10_000))],
        ));
        assert_eq!(s.node("n1"), None);
        assert_eq!(s.pod("web", "a"), None);
        // Second round: rates; a sidecar appeared and holds the pod back.
        s.store(round(
            Some(p(20_000_000_000, 200, 20_000)),
            &[
                ("web", "a", "main", p(1_000_000_000, 20, 20_000)),
                ("web", "a", "side", p(0, 5, 20_000)),
            ],
        ));
        let node = s.node("n1").expect("node usage");
        assert_eq!(
            (node.cpu_nanocores, node.memory_bytes, node.window_ms),
            (2_000_000_000, 200, 10_000)
        );
        assert_eq!(s.pod("web", "a"), None);
        // Third round: both containers have two points; the earliest timestamp wins.
        s.store(round(
            Some(p(30_000_000_000, 300, 30_000)),
            &[
                ("web", "a", "main", p(2_000_000_000, 30, 30_000)),
                ("web", "a", "side", p(100_000_000, 6, 29_000)),
            ],
        ));
        let pod = s.pod("web", "a").expect("pod usage");
        assert_eq!((pod.timestamp_ms, pod.window_ms), (29_000, 9_000));
        let cpu: Vec<(&str, u64)> = pod
            .containers
            .iter()
            .map(|(c, u)| (c.as_str(), u.cpu_nanocores))
            .collect();
        assert_eq!(cpu, [("main", 100_000_000), ("side", 11_111_111)]);
        // A restarted container (counter back to 0) is left out; the pod still shows.
        s.store(round(
            None,
            &[
                ("web", "a", "main", p(10, 30, 40_000)),
                ("web", "a", "side", p(200_000_000, 6, 39_000)),
            ],
        ));
        let pod = s.pod("web", "a").expect("pod usage");
        assert_eq!(pod.containers.len(), 1);
        assert_eq!(pod.containers[0].0, "side");
        // The node sent no reading this round: forgotten, as is everything after an empty round.
        assert_eq!(s.node("n1"), None);
        s.store(BTreeMap::new());
        assert_eq!(s.pod("web", "a"), None);
    }

    #[test]
    fn pod_on_two_nodes_keeps_the_first() {
        let mut s = Storage::default();
        for (t, cpu) in [(1000, 0), (2000, 1_000_000)] {
            s.store(BTreeMap::from([
                (
                    "a".to_owned(),
                    batch(None, &[("ns", "p", "c", p(cpu, 1, t))]),
                ),
                (
                    "b".to_owned(),
                    batch(None, &[("ns", "p", "c", p(cpu * 5, 9, t))]),
                ),
            ]));
        }
        let pod = s.pod("ns", "p").expect("pod");
        assert_eq!(pod.containers[0].1.cpu_nanocores, 1_000_000);
        assert_eq!(pod.containers[0].1.memory_bytes, 1);
    }
}
