//! The kubelet's `/metrics/resource` document in Prometheus text format 0.0.4: what
//! metrics-server (and rudder's API server) scrape for `kubectl top`. Metric names, labels and
//! units are upstream's: cumulative CPU in core-seconds, working set in bytes, each sample
//! with the millisecond timestamp it was read at. Pure.

use std::collections::BTreeMap;
use std::fmt::Write;

/// One reading of a node's, pod's or container's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Working set, bytes.
    pub memory_working_set_bytes: u64,
    /// When it was read, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
}

/// A running container's reading, by the labels upstream uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSample {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// The reading.
    pub sample: Sample,
}

/// Core-seconds with nanosecond precision, written exactly (no float rounding).
fn seconds(ns: u64) -> String {
    format!("{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

/// A label value escaped as the text format requires.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} [STABLE] {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Pods' readings: the sums of their containers', read at the latest of their times (the
/// kubelet reads the pod cgroup, which is that sum).
fn pods(containers: &[ContainerSample]) -> BTreeMap<(String, String), Sample> {
    let mut out: BTreeMap<(String, String), Sample> = BTreeMap::new();
    for c in containers {
        let p = out.entry((c.namespace.clone(), c.pod.clone())).or_default();
        p.cpu_ns = p.cpu_ns.saturating_add(c.sample.cpu_ns);
        p.memory_working_set_bytes = p
            .memory_working_set_bytes
            .saturating_add(c.sample.memory_working_set_bytes);
        p.timestamp_ms = p.timestamp_ms.max(c.sample.timestamp_ms);
    }
    out
}

/// The document: containers sorted by namespace, pod and name; `scrape_error` when some
/// container's counters could not be read.
pub fn render(node: Option<Sample>, containers: &[ContainerSample], scrape_error: bool) -> String {
    let mut containers = containers.to_vec();
    containers.sort_by(|a, b| {
        (&a.namespace, &a.pod, &a.container).cmp(&(&b.namespace, &b.pod, &b.container))
    });
    let mut out = String::new();
    let label = |c: &ContainerSample| {
        format!(
            "container=\"{}\",namespace=\"{}\",pod=\"{}\"",
            escape(&c.container),
            escape(&c.namespace),
            escape(&c.pod)
        )
    };
    family(
        &mut out,
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        "counter",
    );
    for c in &containers {
        let s = c.sample;
        let _ = writeln!(
            out,
            "container_cpu_usage_seconds_total{{{}}} {} {}",
            label(c),
            seconds(s.cpu_ns),
            s.timestamp_ms
        );
    }
    family(
        &mut out,
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        "gauge",
    );
    for c in &containers {
        let s = c.sample;
        let _ = writeln!(
            out,
            "container_memory_working_set_bytes{{{}}} {} {}",
            label(c),
            s.memory_working_set_bytes,
            s.timestamp_ms
        );
    }
    if let Some(n) = node {
        family(
            &mut out,
            "node_cpu_usage_seconds_total",
            "Cumulative cpu time consumed by the node in core-seconds",
            "counter",
        );
        let _ = writeln!(
            out,
            "node_cpu_usage_seconds_total {} {}",
            seconds(n.cpu_ns),
            n.timestamp_ms
        );
        family(
            &mut out,
            "node_memory_working_set_bytes",
            "Current working set of the node in bytes",
            "gauge",
        );
        let _ = writeln!(
            out,
            "node_memory_working_set_bytes {} {}",
            n.memory_working_set_bytes, n.timestamp_ms
        );
    }
    let pods = pods(&containers);
    family(
        &mut out,
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        "counter",
    );
    for ((ns, pod), s) in &pods {
        let _ = writeln!(
            out,
            "pod_cpu_usage_seconds_total{{namespace=\"{}\",pod=\"{}\"}} {} {}",
            escape(ns),
            escape(pod),
            seconds(s.cpu_ns),
            s.timestamp_ms
        );
    }
    family(
        &mut out,
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        "gauge",
    );
    for ((ns, pod), s) in &pods {
        let _ = writeln!(
            out,
            "pod_memory_working_set_bytes{{namespace=\"{}\",pod=\"{}\"}} {} {}",
            escape(ns),
            escape(pod),
            s.memory_working_set_bytes,
            s.timestamp_ms
        );
    }
    family(
        &mut out,
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        "gauge",
    );
    let _ = writeln!(out, "resource_scrape_error {}", u8::from(scrape_error));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(ns: &str, pod: &str, name: &str, cpu_ns: u64, mem: u64, ts: i64) -> ContainerSample {
        ContainerSample {
            namespace: ns.into(),
            pod: pod.into(),
            container: name.into(),
            sample: Sample {
                cpu_ns,
                memory_working_set_bytes: mem,
                timestamp_ms: ts,
            },
        }
    }

    #[test]
    fn document() {
        let node = Sample {
            cpu_ns: 34_390_420_000_000,
            memory_working_set_bytes: 4_229_046_272,
            timestamp_ms: 1_700_000_000_123,
        };
        let containers = [
            c(
                "web",
                "b",
                "main",
                2_500_000_001,
                8_388_608,
                1_700_000_000_120,
            ),
            c("web", "a", "side", 1, 4096, 1_700_000_000_118),
            c("web", "a", "main", 1_000_000_000, 8192, 1_700_000_000_119),
        ];
        let text = render(Some(node), &containers, false);
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                r#"container_cpu_usage_seconds_total{container="main",namespace="web",pod="a"} 1.000000000 1700000000119"#,
                r#"container_cpu_usage_seconds_total{container="side",namespace="web",pod="a"} 0.000000001 1700000000118"#,
                r#"container_cpu_usage_seconds_total{container="main",namespace="web",pod="b"} 2.500000001 1700000000120"#,
                r#"container_memory_working_set_bytes{container="main",namespace="web",pod="a"} 8192 1700000000119"#,
                r#"container_memory_working_set_bytes{container="side",namespace="web",pod="a"} 4096 1700000000118"#,
                r#"container_memory_working_set_bytes{container="main",namespace="web",pod="b"} 8388608 1700000000120"#,
                "node_cpu_usage_seconds_total 34390.420000000 1700000000123",
                "node_memory_working_set_bytes 4229046272 1700000000123",
                r#"pod_cpu_usage_seconds_total{namespace="web",pod="a"} 1.000000001 1700000000119"#,
                r#"pod_cpu_usage_seconds_total{namespace="web",pod="b"} 2.500000001 1700000000120"#,
                r#"pod_memory_working_set_bytes{namespace="web",pod="a"} 12288 1700000000119"#,
                r#"pod_memory_working_set_bytes{namespace="web",pod="b"} 8388608 1700000000120"#,
                "resource_scrape_error 0",
            ]
        );
        assert!(text.contains("# TYPE node_cpu_usage_seconds_total counter\n"));
        assert!(text.contains("# TYPE pod_memory_working_set_bytes gauge\n"));
    }

    #[test]
    fn no_node_reading_and_escaping() {
        let text = render(None, &[c("n\"s", "p\\o", "x\ny", 0, 0, 5)], true);
        assert!(!text.contains("node_cpu_usage_seconds_total "));
        assert!(text.contains(r#"{container="x\ny",namespace="n\"s",pod="p\\o"} 0.000000000 5"#));
        assert!(text.ends_with("resource_scrape_error 1\n"));
    }
}
