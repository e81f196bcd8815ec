//! The `metrics.k8s.io/v1beta1` objects as metrics-server writes them: NodeMetrics and
//! PodMetrics with `timestamp`, `window` (a Go duration string) and `usage`, CPU in the
//! canonical form of a nanocore quantity (`12345n`, `250m`, `2`) and memory in that of a
//! binary byte quantity (`16132Ki`). Pure.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::storage::{PodUsage, Usage};

/// The API group and version.
pub const GROUP: &str = "metrics.k8s.io";
/// The served version.
pub const VERSION: &str = "v1beta1";

/// `value × 10^-9` in Go's canonical decimal-SI form: trailing zeros folded into the
/// exponent, which is then a multiple of three (n, u, m, none, k, M, G, ...).
pub fn cpu_quantity(nanocores: u64) -> String {
    if nanocores == 0 {
        return "0".into();
    }
    let (mut amount, mut exponent) = (u128::from(nanocores), -9i32);
    while amount % 10 == 0 {
        amount /= 10;
        exponent += 1;
    }
    // Back down to a multiple of three (Go's `int64Amount.AsCanonicalBytes`).
    while exponent.rem_euclid(3) != 0 {
        amount *= 10;
        exponent -= 1;
    }
    let suffix = match exponent {
        -9 => "n",
        -6 => "u",
        -3 => "m",
        0 => "",
        3 => "k",
        6 => "M",
        9 => "G",
        12 => "T",
        15 => "P",
        _ => "E",
    };
    format!("{amount}{suffix}")
}

/// Bytes in Go's canonical binary-SI form: a power-of-1024 suffix when the value divides
/// exactly (`8196Ki`), the plain number otherwise or below 1024.
pub fn memory_quantity(bytes: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let (mut amount, mut i) = (bytes, 0);
    while amount >= 1024 && amount % 1024 == 0 && i + 1 < SUFFIXES.len() {
        amount /= 1024;
        i += 1;
    }
    format!("{amount}{}", SUFFIXES[i])
}

/// A millisecond duration as Go's `time.Duration.String` writes it (`15.012s`, `1m0.5s`,
/// `250ms`), the form `metav1.Duration` has in JSON.
pub fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
    let mut secs = s.to_string();
    if frac != 0 {
        let f = format!("{frac:03}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

fn timestamp(ms: i64) -> String {
    rudder_machinery::timestamp::format_rfc3339(ms.div_euclid(1000))
}

fn usage_json(u: &Usage) -> Value {
    json!({"cpu": cpu_quantity(u.cpu_nanocores), "memory": memory_quantity(u.memory_bytes)})
}

fn metadata(
    name: &str,
    namespace: Option<&str>,
    labels: &BTreeMap<String, String>,
    now: &str,
) -> Value {
    let mut m = json!({"name": name, "creationTimestamp": now});
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    if !labels.is_empty() {
        m["labels"] = json!(labels);
    }
    m
}

/// A NodeMetrics; `labels` are the Node's, `now` the creation time metrics-server stamps.
pub fn node_metrics(
    name: &str,
    labels: &BTreeMap<String, String>,
    usage: &Usage,
    now: &str,
) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": metadata(name, None, labels, now),
        "timestamp": timestamp(usage.timestamp_ms),
        "window": go_duration(usage.window_ms),
        "usage": usage_json(usage),
    })
}

/// A PodMetrics; `labels` are the Pod's.
pub fn pod_metrics(
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    usage: &PodUsage,
    now: &str,
) -> Value {
    let containers: Vec<Value> = usage
        .containers
        .iter()
        .map(|(c, u)| json!({"name": c, "usage": usage_json(u)}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": metadata(name, Some(namespace), labels, now),
        "timestamp": timestamp(usage.timestamp_ms),
        "window": go_duration(usage.window_ms),
        "containers": containers,
    })
}

/// A `NodeMetricsList` or `PodMetricsList`.
pub fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({
        "kind": format!("{kind}List"),
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_table() {
        let cases = [
            (0, "0"),
            (1, "1n"),
            (2_086_204, "2086204n"),
            (123_456_000, "123456u"),
            (250_000_000, "250m"),
            (1_000_000_000, "1"),
            (1_500_000_000, "1500m"),
            (10_000_000, "10m"),
            (100_000_000, "100m"),
            (20_000_000_000, "20"),
            (1_000_000_000_000, "1k"),
        ];
        for (n, want) in cases {
            assert_eq!(cpu_quantity(n), want, "{n}");
        }
    }

    #[test]
    fn memory_table() {
        let cases = [
            (0, "0"),
            (1000, "1000"),
            (1024, "1Ki"),
            (1500, "1500"),
            (16_519_168, "16132Ki"),
            (8 << 20, "8Mi"),
            (3 << 30, "3Gi"),
            (4_229_046_272, "4129928Ki"),
        ];
        for (b, want) in cases {
            assert_eq!(memory_quantity(b), want, "{b}");
        }
    }

    #[test]
    fn duration_table() {
        let cases = [
            (0, "0s"),
            (250, "250ms"),
            (1000, "1s"),
            (15_012, "15.012s"),
            (10_500, "10.5s"),
            (60_000, "1m0s"),
            (65_500, "1m5.5s"),
            (3_600_000, "1h0m0s"),
            (-1500, "-1.5s"),
        ];
        for (ms, want) in cases {
            assert_eq!(go_duration(ms), want, "{ms}");
        }
    }

    #[test]
    fn objects() {
        let u = Usage {
            timestamp_ms: 1_700_000_000_900,
            window_ms: 15_012,
            cpu_nanocores: 2_086_204,
            memory_bytes: 16_519_168,
        };
        let labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        let node = node_metrics("n1", &labels, &u, "2023-11-14T22:13:30Z");
        assert_eq!(
            node,
            json!({
                "kind": "NodeMetrics",
                "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": "n1", "creationTimestamp": "2023-11-14T22:13:30Z", "labels": {"app": "web"}},
                "timestamp": "2023-11-14T22:13:20Z",
                "window": "15.012s",
                "usage": {"cpu": "2086204n", "memory": "16132Ki"},
            })
        );
        let pod = PodUsage {
            timestamp_ms: u.timestamp_ms,
            window_ms: u.window_ms,
            containers: vec![("main".into(), u)],
        };
        let p = pod_metrics("web", "a", &BTreeMap::new(), &pod, "x");
        assert_eq!(
            p["metadata"],
            json!({"name": "a", "namespace": "web", "creationTimestamp": "x"})
        );
        assert_eq!(
            p["containers"],
            json!([{"name": "main", "usage": {"cpu": "2086204n", "memory": "16132Ki"}}])
        );
        assert_eq!(list("PodMetrics", vec![p])["kind"], "PodMetricsList");
    }
}
