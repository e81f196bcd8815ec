//! Quantiles from the API server's own `apiserver_request_duration_seconds` histogram, as
//! Kubernetes' SLO measurements read them: bucket counts summed over the label sets of one call
//! kind, the difference between two scrapes, and the quantile as the upper bound of the bucket
//! it falls in (so a figure is never lower than the truth).

use std::collections::BTreeMap;

/// The call kinds the upstream API SLOs name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallKind {
    /// POST, PUT, PATCH, DELETE (not long-running).
    Mutating,
    /// GET of one object.
    Read,
    /// LIST within a namespace.
    ListNamespace,
    /// LIST across the cluster.
    ListCluster,
}

impl CallKind {
    fn of(verb: &str, scope: &str) -> Option<Self> {
        match verb {
            "POST" | "PUT" | "PATCH" | "DELETE" | "APPLY" => Some(Self::Mutating),
            "GET" if scope == "resource" => Some(Self::Read),
            "LIST" if scope == "namespace" => Some(Self::ListNamespace),
            "LIST" if scope == "cluster" => Some(Self::ListCluster),
            _ => None,
        }
    }
}

/// Cumulative bucket counts per call kind: `le` (seconds; `+Inf` as infinity) → count.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets(BTreeMap<CallKind, Vec<(f64, f64)>>);

/// Reads `apiserver_request_duration_seconds_bucket` lines from a `/metrics` text.
pub fn parse(text: &str) -> Buckets {
    let mut sums: BTreeMap<CallKind, BTreeMap<u64, (f64, f64)>> = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_duration_seconds_bucket{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let Ok(count) = value.trim().parse::<f64>() else {
            continue;
        };
        let label = |name: &str| -> Option<&str> {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let len = labels[start..].find('"')?;
            Some(&labels[start..start + len])
        };
        let (Some(verb), Some(le)) = (label("verb"), label("le")) else {
            continue;
        };
        let Some(kind) = CallKind::of(verb, label("scope").unwrap_or("")) else {
            continue;
        };
        let le = if le == "+Inf" {
            f64::INFINITY
        } else {
            match le.parse::<f64>() {
                Ok(v) => v,
                Err(_) => continue,
            }
        };
        let entry = sums
            .entry(kind)
            .or_default()
            .entry(le.to_bits())
            .or_insert((le, 0.0));
        entry.1 += count;
    }
    Buckets(
        sums.into_iter()
            .map(|(kind, by_le)| {
                let mut v: Vec<(f64, f64)> = by_le.into_values().collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                (kind, v)
            })
            .collect(),
    )
}

impl Buckets {
    /// The calls made between `earlier` and `self`.
    pub fn since(&self, earlier: &Buckets) -> Buckets {
        Buckets(
            self.0
                .iter()
                .map(|(kind, now)| {
                    let before = earlier.0.get(kind);
                    let diff = now
                        .iter()
                        .map(|&(le, count)| {
                            let was = before
                                .and_then(|b| b.iter().find(|(l, _)| l.to_bits() == le.to_bits()))
                                .map_or(0.0, |(_, c)| *c);
                            (le, count - was)
                        })
                        .collect();
                    (*kind, diff)
                })
                .collect(),
        )
    }

    /// How many calls of `kind`.
    pub fn count(&self, kind: CallKind) -> u64 {
        self.0
            .get(&kind)
            .and_then(|b| b.last())
            .map_or(0, |&(_, c)| c as u64)
    }

    /// The `q` quantile of `kind` in seconds: the upper bound of the bucket holding it
    /// (infinity when it is past the last finite bucket); `None` without calls.
    pub fn quantile(&self, kind: CallKind, q: f64) -> Option<f64> {
        let buckets = self.0.get(&kind)?;
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let rank = q * total;
        buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank)
            .map(|(le, _)| *le)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(verb: &str, scope: &str, resource: &str, le: &str, count: u64) -> String {
        format!(
            "apiserver_request_duration_seconds_bucket{{verb=\"{verb}\",dry_run=\"\",group=\"\",version=\"v1\",resource=\"{resource}\",subresource=\"\",scope=\"{scope}\",component=\"apiserver\",le=\"{le}\"}} {count}"
        )
    }

    fn text(rows: &[(&str, &str, &str, &str, u64)]) -> String {
        let mut out = vec![
            "# HELP apiserver_request_duration_seconds x".to_owned(),
            "# TYPE apiserver_request_duration_seconds histogram".to_owned(),
        ];
        out.extend(rows.iter().map(|r| line(r.0, r.1, r.2, r.3, r.4)));
        out.push("apiserver_request_duration_seconds_sum{verb=\"POST\"} 3.5".to_owned());
        out.join("\n")
    }

    #[test]
    fn kinds_sum_over_label_sets_and_quantiles_take_the_bucket_bound() {
        let t = text(&[
            ("POST", "namespace", "pods", "0.1", 90),
            ("POST", "namespace", "pods", "1", 99),
            ("POST", "namespace", "pods", "+Inf", 100),
            ("PATCH", "namespace", "configmaps", "0.1", 100),
            ("PATCH", "namespace", "configmaps", "1", 100),
            ("PATCH", "namespace", "configmaps", "+Inf", 100),
            ("GET", "resource", "pods", "0.1", 10),
            ("GET", "resource", "pods", "1", 10),
            ("GET", "resource", "pods", "+Inf", 10),
            ("WATCH", "namespace", "pods", "+Inf", 7),
            ("LIST", "cluster", "pods", "0.1", 0),
            ("LIST", "cluster", "pods", "1", 2),
            ("LIST", "cluster", "pods", "+Inf", 2),
        ]);
        let b = parse(&t);
        assert_eq!(b.count(CallKind::Mutating), 200);
        assert_eq!(b.count(CallKind::Read), 10);
        assert_eq!(b.count(CallKind::ListCluster), 2);
        assert_eq!(b.count(CallKind::ListNamespace), 0);
        // 190 of 200 mutating calls within 0.1 s: p50 in the first bucket, p99 (198) in the second.
        assert_eq!(b.quantile(CallKind::Mutating, 0.5), Some(0.1));
        assert_eq!(b.quantile(CallKind::Mutating, 0.99), Some(1.0));
        assert_eq!(b.quantile(CallKind::Mutating, 1.0), Some(f64::INFINITY));
        assert_eq!(b.quantile(CallKind::ListCluster, 0.99), Some(1.0));
        assert_eq!(b.quantile(CallKind::ListNamespace, 0.99), None);
    }

    #[test]
    fn since_subtracts_an_earlier_scrape() {
        let before = parse(&text(&[
            ("POST", "namespace", "pods", "0.1", 50),
            ("POST", "namespace", "pods", "+Inf", 50),
        ]));
        let after = parse(&text(&[
            ("POST", "namespace", "pods", "0.1", 50),
            ("POST", "namespace", "pods", "+Inf", 60),
            ("GET", "resource", "pods", "0.1", 4),
            ("GET", "resource", "pods", "+Inf", 4),
        ]));
        let d = after.since(&before);
        assert_eq!(d.count(CallKind::Mutating), 10);
        // Every new mutating call was slower than 0.1 s.
        assert_eq!(d.quantile(CallKind::Mutating, 0.5), Some(f64::INFINITY));
        assert_eq!(d.count(CallKind::Read), 4);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let b = parse(
            "apiserver_request_duration_seconds_bucket{verb=\"POST\",le=\"x\"} 3\n\
             apiserver_request_duration_seconds_bucket{verb=\"POST\",le=\"0.1\"} nan?\n\
             apiserver_request_duration_seconds_bucket{le=\"0.1\"} 3\n\
             garbage",
        );
        assert_eq!(b, Buckets::default());
    }
}
