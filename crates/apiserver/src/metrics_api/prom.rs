//! Decoding a kubelet's `/metrics/resource` (Prometheus text format) into the points the
//! metrics storage keeps, as metrics-server's decoder does: the node's and each container's
//! cumulative CPU and working set, with the timestamps the kubelet read them at. Other
//! families (pod totals, start times, scrape errors) are not needed and are skipped. Pure.

use std::collections::BTreeMap;

/// One reading of cumulative CPU and working set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Point {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Working set, bytes.
    pub memory_bytes: u64,
    /// When it was read, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A pod: namespace and name.
pub type PodRef = (String, String);

/// What one node's scrape yielded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeBatch {
    /// The node's own reading, if it reported both counters.
    pub node: Option<Point>,
    /// Containers that reported both counters, by pod and container name.
    pub pods: BTreeMap<PodRef, BTreeMap<String, Point>>,
}

/// One sample line: metric name, labels, value, optional timestamp.
#[derive(Debug, PartialEq)]
struct Line<'a> {
    name: &'a str,
    labels: BTreeMap<String, String>,
    value: &'a str,
    timestamp_ms: Option<i64>,
}

/// Parses `{k="v",...}` starting after the `{`; returns the labels and the rest after `}`.
fn labels(mut s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut out = BTreeMap::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(rest) = s.strip_prefix('}') {
            return Some((out, rest));
        }
        let (key, rest) = s.split_once('=')?;
        let mut chars = rest.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        out.insert(key.trim().to_owned(), value);
        s = &rest[1 + end + 1..];
    }
}

fn line(l: &str) -> Option<Line<'_>> {
    let l = l.trim();
    if l.is_empty() || l.starts_with('#') {
        return None;
    }
    let name_end = l.find(['{', ' ', '\t'])?;
    let (name, rest) = l.split_at(name_end);
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(inner) => labels(inner)?,
        None => (BTreeMap::new(), rest),
    };
    let mut fields = rest.split_whitespace();
    let value = fields.next()?;
    let timestamp_ms = fields.next().and_then(|t| t.parse().ok());
    Some(Line {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Seconds as nanoseconds. The exact decimal form (`12.000000001`) is converted without
/// floating point; other forms (`1.2e+01`, as Go's formatter writes) go through `f64`.
fn seconds_to_ns(v: &str) -> Option<u64> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 9
        && frac.bytes().all(|b| b.is_ascii_digit())
    {
        let whole: u64 = whole.parse().ok()?;
        let frac: u64 = format!("{frac:0<9}").parse().ok()?;
        return whole.checked_mul(1_000_000_000)?.checked_add(frac);
    }
    let f: f64 = v.parse().ok()?;
    (f.is_finite() && f >= 0.0).then_some((f * 1e9) as u64)
}

fn bytes(v: &str) -> Option<u64> {
    v.parse::<u64>().ok().or_else(|| {
        let f: f64 = v.parse().ok()?;
        (f.is_finite() && f >= 0.0).then_some(f as u64)
    })
}

/// Half-filled readings while decoding: cpu, memory, and the latest timestamp seen.
#[derive(Default)]
struct Partial {
    cpu: Option<u64>,
    memory: Option<u64>,
    timestamp_ms: i64,
}

impl Partial {
    fn point(&self) -> Option<Point> {
        Some(Point {
            cpu_ns: self.cpu?,
            memory_bytes: self.memory?,
            timestamp_ms: self.timestamp_ms,
        })
    }
}

/// Decodes a document; `scraped_ms` stands in for samples without a timestamp. Lines that do
/// not parse are skipped rather than failing the node: one bad container must not hide the
/// rest, and a reading missing either counter is left out.
pub fn decode(text: &str, scraped_ms: i64) -> NodeBatch {
    let mut node = Partial::default();
    let mut containers: BTreeMap<(PodRef, String), Partial> = BTreeMap::new();
    for l in text.lines().filter_map(line) {
        let ts = l.timestamp_ms.unwrap_or(scraped_ms);
        let target = match l.name {
            "node_cpu_usage_seconds_total" | "node_memory_working_set_bytes" => &mut node,
            "container_cpu_usage_seconds_total" | "container_memory_working_set_bytes" => {
                let get = |k: &str| l.labels.get(k).cloned().unwrap_or_default();
                let (ns, pod, container) = (get("namespace"), get("pod"), get("container"));
                if ns.is_empty() || pod.is_empty() || container.is_empty() {
                    continue;
                }
                containers.entry(((ns, pod), container)).or_default()
            }
            _ => continue,
        };
        if l.name.ends_with("_cpu_usage_seconds_total") {
            target.cpu = seconds_to_ns(l.value).or(target.cpu);
        } else {
            target.memory = bytes(l.value).or(target.memory);
        }
        target.timestamp_ms = target.timestamp_ms.max(ts);
    }
    let mut batch = NodeBatch {
        node: node.point(),
        pods: BTreeMap::new(),
    };
    for ((pod, container), partial) in containers {
        if let Some(p) = partial.point() {
            batch.pods.entry(pod).or_default().insert(container, p);
        }
    }
    batch
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
    fn kubelet_document() {
        // As upstream's kubelet writes it (Go float formatting), plus one of ours.
        let text = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="coredns",namespace="kube-system",pod="coredns-1"} 1.5e+01 1633253812125
container_cpu_usage_seconds_total{container="main",namespace="web",pod="a"} 2.000000001 1633253812200
container_cpu_usage_seconds_total{container="nomem",namespace="web",pod="a"} 3 1633253812200
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="coredns",namespace="kube-system",pod="coredns-1"} 1.2288e+07 1633253812125
container_memory_working_set_bytes{container="main",namespace="web",pod="a"} 8192 1633253812201
container_memory_working_set_bytes{container="",namespace="web",pod="a"} 8192 1633253812201
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 34390.420000000 1633253812000
node_memory_working_set_bytes 4.229046272e+09 1633253812000
pod_cpu_usage_seconds_total{namespace="web",pod="a"} 2.000000001 1633253812200
resource_scrape_error 0
"#;
        let batch = decode(text, 1);
        assert_eq!(
            batch.node,
            Some(p(34_390_420_000_000, 4_229_046_272, 1_633_253_812_000))
        );
        let pods: Vec<_> = batch
            .pods
            .iter()
            .flat_map(|((ns, pod), cs)| {
                cs.iter()
                    .map(move |(c, point)| (ns.as_str(), pod.as_str(), c.as_str(), *point))
            })
            .collect();
        assert_eq!(
            pods,
            [
                (
                    "kube-system",
                    "coredns-1",
                    "coredns",
                    p(15_000_000_000, 12_288_000, 1_633_253_812_125)
                ),
                (
                    "web",
                    "a",
                    "main",
                    p(2_000_000_001, 8192, 1_633_253_812_201)
                ),
            ]
        );
    }

    #[test]
    fn odd_lines_table() {
        let cases = [
            // No timestamp: the scrape time.
            (
                "node_cpu_usage_seconds_total 1\nnode_memory_working_set_bytes 2\n",
                Some(p(1_000_000_000, 2, 77)),
            ),
            // Only one counter: no reading.
            ("node_cpu_usage_seconds_total 1 5\n", None),
            // Garbage value: no reading.
            (
                "node_cpu_usage_seconds_total x 5\nnode_memory_working_set_bytes 2 5\n",
                None,
            ),
            (
                "node_cpu_usage_seconds_total -1 5\nnode_memory_working_set_bytes 2 5\n",
                None,
            ),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(decode(text, 77).node, want, "{text:?}");
        }
    }

    #[test]
    fn label_escapes() {
        let l = line(r#"m{a="x\"y",b="p\\q", c="n\nl"} 1 2"#).expect("line");
        assert_eq!(l.labels["a"], "x\"y");
        assert_eq!(l.labels["b"], "p\\q");
        assert_eq!(l.labels["c"], "n\nl");
        assert_eq!((l.value, l.timestamp_ms), ("1", Some(2)));
        assert!(line(r#"m{a="unterminated} 1"#).is_none());
        assert!(line("# HELP m x").is_none());
    }

    #[test]
    fn seconds_table() {
        let cases = [
            ("0", Some(0)),
            ("1.5", Some(1_500_000_000)),
            ("12.000000001", Some(12_000_000_001)),
            ("1.5e+01", Some(15_000_000_000)),
            ("NaN", None),
            ("-2", None),
            ("", None),
        ];
        for (v, want) in cases {
            assert_eq!(seconds_to_ns(v), want, "{v}");
        }
    }
}
