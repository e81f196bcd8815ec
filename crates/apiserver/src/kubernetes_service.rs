//! The `default/kubernetes` Service and its Endpoints and EndpointSlices, which point at the API
//! servers (upstream's "kubernetes service" controller and endpoint reconciler). The objects,
//! and what to write to bring the stored ones to a set of live servers, are decided here, pure;
//! `bootstrap::ensure_kubernetes_service` writes the Service, `endpoint_reconciler` the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use serde_json::{Value, json};

/// The Service's (and its Endpoints' and EndpointSlice's) name, in `default`.
pub const NAME: &str = "kubernetes";
/// The namespace it lives in.
pub const NAMESPACE: &str = "default";

/// The Service as upstream creates it: port 443 named `https` to the API server's port.
pub fn service(cluster_ip: Ipv4Addr, api_port: u16) -> Value {
    json!({
        "kind": "Service",
        "apiVersion": "v1",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "ports": [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": api_port}],
            "clusterIP": cluster_ip.to_string(),
            "clusterIPs": [cluster_ip.to_string()],
            "type": "ClusterIP",
            "sessionAffinity": "None",
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "internalTrafficPolicy": "Cluster",
        },
        "status": {"loadBalancer": {}},
    })
}

/// The Endpoints naming `set`, the live API servers' addresses. Upstream repacks addresses by
/// their ports: one subset per port, each with that port's addresses in order, subsets by port.
/// Servers normally share a port (one subset, as upstream's); servers on one machine (tests,
/// here) differ only by port, and one subset per port keeps each subset's port names unique.
/// Marked so the EndpointSlice mirroring controller leaves it alone (the API server writes the
/// slices itself).
pub fn endpoints(set: &BTreeSet<SocketAddr>) -> Value {
    let mut by_port: BTreeMap<u16, Vec<IpAddr>> = BTreeMap::new();
    for a in set {
        by_port.entry(a.port()).or_default().push(a.ip());
    }
    let subsets: Vec<Value> = by_port
        .iter()
        .map(|(port, ips)| {
            let addresses: Vec<Value> =
                ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
            json!({
                "addresses": addresses,
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            })
        })
        .collect();
    json!({
        "kind": "Endpoints",
        "apiVersion": "v1",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": subsets,
    })
}

/// The EndpointSlices derived from [`endpoints`] (upstream's endpoints adapter): a slice holds
/// one address family and one list of ports, so one slice per (family, port). The first (IPv4
/// before IPv6, then by port) is `kubernetes`, as upstream's only one; the others are
/// `kubernetes-<port>` or `kubernetes-ipv6-<port>`.
pub fn endpoint_slices(set: &BTreeSet<SocketAddr>) -> Vec<Value> {
    let mut groups: BTreeMap<(bool, u16), Vec<IpAddr>> = BTreeMap::new();
    for a in set {
        groups
            .entry((a.is_ipv6(), a.port()))
            .or_default()
            .push(a.ip());
    }
    groups
        .iter()
        .enumerate()
        .map(|(i, ((v6, port), ips))| {
            let name = match (i, v6) {
                (0, _) => NAME.to_owned(),
                (_, false) => format!("{NAME}-{port}"),
                (_, true) => format!("{NAME}-ipv6-{port}"),
            };
            let endpoints: Vec<Value> = ips
                .iter()
                .map(|ip| json!({"addresses": [ip.to_string()], "conditions": {"ready": true}}))
                .collect();
            json!({
                "kind": "EndpointSlice",
                "apiVersion": "discovery.k8s.io/v1",
                "metadata": {
                    "name": name,
                    "namespace": NAMESPACE,
                    "labels": {"kubernetes.io/service-name": NAME},
                },
                "addressType": if *v6 { "IPv6" } else { "IPv4" },
                "endpoints": endpoints,
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            })
        })
        .collect()
}

/// Whether `name` is one of the slices [`endpoint_slices`] makes beside `kubernetes` (and so
/// ours to delete when its group is gone).
pub fn is_extra_slice(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(NAME).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let port = rest.strip_prefix("ipv6-").unwrap_or(rest);
    !port.starts_with('0') && port.parse::<u16>().is_ok()
}

/// What to write so the stored objects say `set`.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// The Endpoints, when the stored one differs (or is missing).
    pub endpoints: Option<Value>,
    /// The slices that differ or are missing.
    pub slices: Vec<Value>,
    /// Names of our extra slices no longer wanted.
    pub delete: Vec<String>,
}

impl Plan {
    /// Whether nothing is to be written: every server agrees on the set, so rounds on several
    /// servers write nothing and do not fight.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_none() && self.slices.is_empty() && self.delete.is_empty()
    }
}

/// Compares the stored Endpoints and slices (those named `kubernetes` or
/// [`is_extra_slice`], by name) with what `set` calls for.
pub fn plan(
    endpoints_now: Option<&Value>,
    slices_now: &BTreeMap<String, Value>,
    set: &BTreeSet<SocketAddr>,
) -> Plan {
    let wanted = endpoints(set);
    let endpoints = match endpoints_now {
        Some(stored) if up_to_date(stored, &wanted) => None,
        _ => Some(wanted),
    };
    let wanted_slices = endpoint_slices(set);
    let names: BTreeSet<&str> = wanted_slices
        .iter()
        .filter_map(|s| s.pointer("/metadata/name").and_then(Value::as_str))
        .collect();
    let delete = slices_now
        .keys()
        .filter(|n| is_extra_slice(n) && !names.contains(n.as_str()))
        .cloned()
        .collect();
    let slices = wanted_slices
        .into_iter()
        .filter(|w| {
            let name = w
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or(NAME);
            !slices_now.get(name).is_some_and(|s| up_to_date(s, w))
        })
        .collect();
    Plan {
        endpoints,
        slices,
        delete,
    }
}

/// Whether `stored` already says what `wanted` says (ignoring the metadata the store adds), so
/// a restart does not rewrite an unchanged object.
pub fn up_to_date(stored: &Value, wanted: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(obj) = v.as_object_mut() {
            let labels = obj.get("metadata").and_then(|m| m.get("labels")).cloned();
            obj.insert("metadata".into(), json!({"labels": labels}));
        }
        v
    };
    strip(stored) == strip(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(addrs: &[&str]) -> BTreeSet<SocketAddr> {
        addrs.iter().map(|a| a.parse().expect("addr")).collect()
    }

    #[test]
    fn service() {
        let svc = super::service(Ipv4Addr::new(10, 43, 0, 1), 6443);
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 6443);
        assert_eq!(svc["spec"]["ports"][0]["port"], 443);
        assert_eq!(svc["spec"]["clusterIP"], "10.43.0.1");
        assert!(
            svc["spec"].get("selector").is_none(),
            "no selector: not the controllers' to manage"
        );
    }

    #[test]
    fn one_server_is_one_subset_and_one_slice() {
        let one = set(&["192.0.2.2:6443"]);
        let eps = endpoints(&one);
        assert_eq!(
            eps["subsets"],
            json!([{"addresses": [{"ip": "192.0.2.2"}],
                    "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
        );
        let slices = endpoint_slices(&one);
        assert_eq!(slices.len(), 1);
        let slice = &slices[0];
        assert_eq!(slice["metadata"]["name"], NAME);
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            NAME
        );
        assert_eq!(slice["ports"][0]["port"], 6443);
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(slice["endpoints"][0]["addresses"][0], "192.0.2.2");
    }

    /// (addresses, subsets as (port, ips), slices as (name, family, port, ips)).
    type Case = (
        &'static [&'static str],
        Vec<(u16, Vec<&'static str>)>,
        Vec<(&'static str, &'static str, u16, Vec<&'static str>)>,
    );

    #[test]
    fn grouping_table() {
        let cases: Vec<Case> = vec![
            (
                &["10.0.0.3:6443", "10.0.0.1:6443", "10.0.0.2:6443"],
                vec![(6443, vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"])],
                vec![(
                    "kubernetes",
                    "IPv4",
                    6443,
                    vec!["10.0.0.1", "10.0.0.2", "10.0.0.3"],
                )],
            ),
            (
                // Three servers on one machine: one (ip, port) each, every port its subset.
                &["127.0.0.1:6445", "127.0.0.1:6443", "127.0.0.1:6444"],
                vec![
                    (6443, vec!["127.0.0.1"]),
                    (6444, vec!["127.0.0.1"]),
                    (6445, vec!["127.0.0.1"]),
                ],
                vec![
                    ("kubernetes", "IPv4", 6443, vec!["127.0.0.1"]),
                    ("kubernetes-6444", "IPv4", 6444, vec!["127.0.0.1"]),
                    ("kubernetes-6445", "IPv4", 6445, vec!["127.0.0.1"]),
                ],
            ),
            (
                &["10.0.0.2:7443", "10.0.0.1:6443", "10.0.0.2:6443"],
                vec![
                    (6443, vec!["10.0.0.1", "10.0.0.2"]),
                    (7443, vec!["10.0.0.2"]),
                ],
                vec![
                    ("kubernetes", "IPv4", 6443, vec!["10.0.0.1", "10.0.0.2"]),
                    ("kubernetes-7443", "IPv4", 7443, vec!["10.0.0.2"]),
                ],
            ),
            (
                &["[fd00::1]:6443", "10.0.0.1:6443"],
                vec![(6443, vec!["10.0.0.1", "fd00::1"])],
                vec![
                    ("kubernetes", "IPv4", 6443, vec!["10.0.0.1"]),
                    ("kubernetes-ipv6-6443", "IPv6", 6443, vec!["fd00::1"]),
                ],
            ),
        ];
        for (addrs, subsets, slices) in cases {
            let eps = endpoints(&set(addrs));
            let want: Vec<Value> = subsets
                .iter()
                .map(|(port, ips)| {
                    let addresses: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
                    json!({"addresses": addresses,
                           "ports": [{"name": "https", "port": port, "protocol": "TCP"}]})
                })
                .collect();
            assert_eq!(eps["subsets"], json!(want), "{addrs:?}");
            let got = endpoint_slices(&set(addrs));
            assert_eq!(got.len(), slices.len(), "{addrs:?}");
            for (slice, (name, family, port, ips)) in got.iter().zip(&slices) {
                assert_eq!(slice["metadata"]["name"], *name, "{addrs:?}");
                assert_eq!(slice["addressType"], *family, "{addrs:?}");
                assert_eq!(
                    slice["ports"],
                    json!([{"name": "https", "port": port, "protocol": "TCP"}])
                );
                let got_ips: Vec<&str> = slice["endpoints"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["addresses"][0].as_str())
                    .collect();
                assert_eq!(&got_ips, ips, "{addrs:?}");
                assert!(*name == NAME || is_extra_slice(name), "{name}");
            }
        }
    }

    #[test]
    fn extra_slice_names() {
        for (name, ours) in [
            ("kubernetes-6444", true),
            ("kubernetes-ipv6-443", true),
            ("kubernetes", false),
            ("kubernetes-", false),
            ("kubernetes-abcde", false),
            ("kubernetes-70000", false),
            ("kubernetes-06443", false),
            ("kubernetes2-6443", false),
            ("web-6443", false),
        ] {
            assert_eq!(is_extra_slice(name), ours, "{name}");
        }
    }

    #[test]
    fn up_to_date_ignores_server_metadata() {
        let ep = set(&["192.0.2.2:6443"]);
        let mut stored = endpoints(&ep);
        stored["metadata"]["uid"] = json!("u");
        stored["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(up_to_date(&stored, &endpoints(&ep)));
        assert!(!up_to_date(&stored, &endpoints(&set(&["192.0.2.3:6443"]))));
        stored["metadata"]["labels"] = json!({});
        assert!(!up_to_date(&stored, &endpoints(&ep)));
    }

    /// Stored objects as the store holds them: with a uid and a creation time.
    fn stored(mut v: Value) -> Value {
        v["metadata"]["uid"] = json!("u");
        v["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        v
    }

    fn slices_of(addrs: &[&str]) -> BTreeMap<String, Value> {
        endpoint_slices(&set(addrs))
            .into_iter()
            .map(|s| {
                let name = s["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                (name, stored(s))
            })
            .collect()
    }

    /// (what, stored addresses or `None` for nothing stored, wanted, endpoints written, slices
    /// written, slices deleted).
    type PlanCase<'a> = (
        &'a str,
        Option<&'a [&'a str]>,
        &'a [&'a str],
        bool,
        Vec<&'a str>,
        Vec<&'a str>,
    );

    #[test]
    fn plan_table() {
        let three = ["127.0.0.1:6443", "127.0.0.1:6444", "127.0.0.1:6445"];
        let two = ["127.0.0.1:6443", "127.0.0.1:6445"];
        let cases: [PlanCase; 6] = [
            (
                "nothing stored",
                None,
                &three,
                true,
                vec!["kubernetes", "kubernetes-6444", "kubernetes-6445"],
                vec![],
            ),
            (
                "in agreement: no write",
                Some(&three),
                &three,
                false,
                vec![],
                vec![],
            ),
            (
                "one server gone",
                Some(&three),
                &two,
                true,
                vec![],
                vec!["kubernetes-6444"],
            ),
            (
                "the lowest port gone: its slice takes the next group",
                Some(&three),
                &["127.0.0.1:6444", "127.0.0.1:6445"],
                true,
                vec!["kubernetes"],
                vec!["kubernetes-6444"],
            ),
            (
                "one server back",
                Some(&two),
                &three,
                true,
                vec!["kubernetes-6444"],
                vec![],
            ),
            (
                "single server, moved",
                Some(&["192.0.2.2:6443"]),
                &["192.0.2.3:6443"],
                true,
                vec!["kubernetes"],
                vec![],
            ),
        ];
        for (what, now, wanted, eps, write, delete) in cases {
            let eps_now = now.map(|a| stored(endpoints(&set(a))));
            let slices_now = now.map(slices_of).unwrap_or_default();
            let p = plan(eps_now.as_ref(), &slices_now, &set(wanted));
            assert_eq!(p.endpoints.is_some(), eps, "{what}");
            if let Some(e) = &p.endpoints {
                assert_eq!(*e, endpoints(&set(wanted)), "{what}");
            }
            let written: Vec<&str> = p
                .slices
                .iter()
                .filter_map(|s| s["metadata"]["name"].as_str())
                .collect();
            assert_eq!(written, write, "{what}");
            assert_eq!(p.delete, delete, "{what}");
            assert_eq!(
                p.is_empty(),
                !eps && write.is_empty() && delete.is_empty(),
                "{what}"
            );
        }
    }

    #[test]
    fn plan_leaves_other_slices_alone() {
        let mut now = slices_of(&["10.0.0.1:6443"]);
        now.insert(
            "kubernetes-abcde".into(),
            json!({"metadata": {"name": "kubernetes-abcde"}}),
        );
        let eps = stored(endpoints(&set(&["10.0.0.1:6443"])));
        let p = plan(Some(&eps), &now, &set(&["10.0.0.1:6443"]));
        assert!(p.is_empty(), "{p:?}");
    }
}
