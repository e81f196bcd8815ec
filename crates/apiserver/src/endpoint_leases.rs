//! The API servers' endpoint Leases (upstream's `--endpoint-reconciler-type=lease`), pure: each
//! server keeps a `coordination.k8s.io/v1` Lease in `kube-system` naming its advertised address,
//! and the `kubernetes` Service's endpoints are the addresses of the live ones. This module
//! builds the Lease, reads Leases back, and decides which are live and what the endpoints
//! should be; `endpoint_reconciler` does the store I/O. ADR 0026 says why Lease objects.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};

/// Where the Leases live.
pub const NAMESPACE: &str = "kube-system";
/// The label upstream puts on its API servers' identity Leases; ours carry it too, so
/// `kubectl get lease -n kube-system -l apiserver.kubernetes.io/identity=kube-apiserver` lists
/// the servers.
pub const IDENTITY_LABEL: &str = "apiserver.kubernetes.io/identity";
/// The label's value.
pub const IDENTITY_VALUE: &str = "kube-apiserver";
/// The annotation holding the server's advertised `ip:port`. Only Leases with it count: an
/// identity Lease written by something else is not an endpoint.
pub const ADDRESS_ANNOTATION: &str = "rudder.io/kubernetes-endpoint";
/// How long a Lease lives without renewal (upstream's `DefaultEndpointReconcilerTTL`).
pub const LEASE_SECONDS: i64 = 15;
/// How often each server renews its Lease and reconciles the endpoints (upstream's
/// `EndpointReconcilerInterval`), well inside [`LEASE_SECONDS`] so one late round does not
/// drop a live server.
pub const PERIOD: Duration = Duration::from_secs(10);

/// The Lease name of the server advertising `addr`: readable, one per address (an IPv6
/// address's colons become dashes, which a name allows).
pub fn lease_name(addr: SocketAddr) -> String {
    let ip = addr.ip().to_string().replace(':', "-");
    format!("apiserver-{ip}-{}", addr.port())
}

/// The Lease of the server advertising `addr`, held by `holder` (unique per process) and
/// renewed at `renew_time` (`metav1.MicroTime`). No uid or creation time: the writer adds them.
pub fn lease(addr: SocketAddr, holder: &str, renew_time: &str) -> Value {
    json!({
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {
            "name": lease_name(addr),
            "namespace": NAMESPACE,
            "labels": {IDENTITY_LABEL: IDENTITY_VALUE},
            "annotations": {ADDRESS_ANNOTATION: addr.to_string()},
        },
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": LEASE_SECONDS,
            "acquireTime": renew_time,
            "renewTime": renew_time,
        },
    })
}

/// `fresh` written over `stored`: the stored object's uid and creation time stay, and so does
/// its acquire time while the holder is the same process.
pub fn renewed(stored: &Value, fresh: &Value) -> Value {
    let mut obj = fresh.clone();
    for field in ["uid", "creationTimestamp"] {
        if let Some(v) = stored.pointer(&format!("/metadata/{field}")) {
            obj["metadata"][field] = v.clone();
        }
    }
    if stored.pointer("/spec/holderIdentity") == fresh.pointer("/spec/holderIdentity")
        && let Some(t) = stored.pointer("/spec/acquireTime")
    {
        obj["spec"]["acquireTime"] = t.clone();
    }
    obj
}

/// One of our Leases as read back from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The Lease's name.
    pub name: String,
    /// The address it advertises; `None` when the annotation does not parse.
    pub address: Option<SocketAddr>,
    /// When it expires, Unix seconds; `None` when its renew time or duration is missing.
    pub expires: Option<i64>,
}

/// Reads a stored Lease; `None` when it is not an endpoint Lease (no identity label or no
/// address annotation: a leader-election Lease, say).
pub fn observe(lease: &Value) -> Option<Observed> {
    let meta = lease.get("metadata")?;
    if meta.pointer(&label_pointer()).and_then(Value::as_str) != Some(IDENTITY_VALUE) {
        return None;
    }
    let address = meta.get("annotations")?.get(ADDRESS_ANNOTATION)?.as_str()?;
    let name = meta.get("name")?.as_str()?.to_owned();
    let renew = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(rudder_machinery::timestamp::parse_rfc3339);
    let duration = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64);
    Some(Observed {
        name,
        address: address.parse().ok(),
        expires: renew.zip(duration).map(|(r, d)| r.saturating_add(d)),
    })
}

fn label_pointer() -> String {
    // A JSON pointer escapes '/' in a key as "~1".
    format!("/labels/{}", IDENTITY_LABEL.replace('/', "~1"))
}

/// The Leases sorted at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sorted {
    /// The addresses of the live Leases, ordered (ip, then port).
    pub live: BTreeSet<SocketAddr>,
    /// The names of the Leases to delete: expired, or unreadable (a live server rewrites its
    /// own at its next round, so deleting a damaged one costs at most a period).
    pub expired: Vec<String>,
}

/// Which Leases are live at `now` (Unix seconds): those whose renew time plus duration is still
/// ahead. Renew times are read to the second, so a Lease ends up to a second early, never late.
pub fn sort(leases: &[Observed], now: i64) -> Sorted {
    let mut sorted = Sorted::default();
    for l in leases {
        match (l.address, l.expires) {
            (Some(addr), Some(expires)) if now < expires => {
                sorted.live.insert(addr);
            }
            _ => sorted.expired.push(l.name.clone()),
        }
    }
    sorted
}

/// The addresses the endpoints should name: the live ones with this server's own (its Lease was
/// just renewed; a clock behind the others' must not drop it), or without it when it is
/// leaving. `None` when that leaves nothing: as upstream, the endpoints are never emptied (the
/// last server to stop leaves its address, and the next to start replaces it).
pub fn desired(
    live: &BTreeSet<SocketAddr>,
    own: SocketAddr,
    leaving: bool,
) -> Option<BTreeSet<SocketAddr>> {
    let mut set = live.clone();
    if leaving {
        set.remove(&own);
    } else {
        set.insert(own);
    }
    (!set.is_empty()).then_some(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn names_are_unique_per_address_and_valid() {
        let cases = [
            ("127.0.0.1:6443", "apiserver-127.0.0.1-6443"),
            ("127.0.0.1:6444", "apiserver-127.0.0.1-6444"),
            ("10.0.0.2:6443", "apiserver-10.0.0.2-6443"),
            ("[::1]:6443", "apiserver---1-6443"),
            ("[fd00::2]:443", "apiserver-fd00--2-443"),
        ];
        for (a, want) in cases {
            let name = lease_name(addr(a));
            assert_eq!(name, want);
            assert!(
                name.len() <= 253
                    && name.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b"-.".contains(&b)),
                "{name}"
            );
        }
    }

    #[test]
    fn a_built_lease_reads_back() {
        let a = addr("127.0.0.1:6443");
        let l = lease(a, "apiserver_x", "2026-01-01T00:00:10.000123Z");
        let seen = observe(&l).expect("ours");
        assert_eq!(seen.name, "apiserver-127.0.0.1-6443");
        assert_eq!(seen.address, Some(a));
        // 2026-01-01T00:00:10Z is 1767225610.
        assert_eq!(seen.expires, Some(1_767_225_610 + LEASE_SECONDS));
    }

    #[test]
    fn observe_table() {
        let a = addr("127.0.0.1:6443");
        let base = lease(a, "h", "2026-01-01T00:00:00Z");
        let edit = |f: &dyn Fn(&mut Value)| {
            let mut v = base.clone();
            f(&mut v);
            v
        };
        let cases: Vec<(&str, Value, Option<Observed>)> = vec![
            (
                "a leader-election Lease",
                json!({"metadata": {"name": "kube-scheduler"},
                       "spec": {"holderIdentity": "x", "renewTime": "2026-01-01T00:00:00Z",
                                "leaseDurationSeconds": 15}}),
                None,
            ),
            (
                "identity label without our annotation",
                edit(&|v| v["metadata"]["annotations"] = json!({})),
                None,
            ),
            (
                "annotation without the label",
                edit(&|v| v["metadata"]["labels"] = json!({})),
                None,
            ),
            (
                "unparsable address",
                edit(&|v| v["metadata"]["annotations"][ADDRESS_ANNOTATION] = json!("nope")),
                Some(Observed {
                    name: lease_name(a),
                    address: None,
                    expires: Some(1_767_225_600 + 15),
                }),
            ),
            (
                "no renew time",
                edit(&|v| v["spec"]["renewTime"] = Value::Null),
                Some(Observed {
                    name: lease_name(a),
                    address: Some(a),
                    expires: None,
                }),
            ),
            (
                "no duration",
                edit(&|v| v["spec"]["leaseDurationSeconds"] = Value::Null),
                Some(Observed {
                    name: lease_name(a),
                    address: Some(a),
                    expires: None,
                }),
            ),
        ];
        for (what, v, want) in cases {
            assert_eq!(observe(&v), want, "{what}");
        }
    }

    #[test]
    fn sort_table() {
        let obs = |name: &str, a: Option<&str>, expires: Option<i64>| Observed {
            name: name.into(),
            address: a.map(addr),
            expires,
        };
        let now = 1000;
        let cases = [
            ("none", vec![], vec![], vec![]),
            (
                "live until the expiry's second",
                vec![obs("a", Some("10.0.0.1:6443"), Some(1001))],
                vec!["10.0.0.1:6443"],
                vec![],
            ),
            (
                "expired at the expiry",
                vec![obs("a", Some("10.0.0.1:6443"), Some(1000))],
                vec![],
                vec!["a"],
            ),
            (
                "three servers on one ip, one crashed",
                vec![
                    obs("c", Some("127.0.0.1:6445"), Some(1010)),
                    obs("a", Some("127.0.0.1:6443"), Some(1010)),
                    obs("b", Some("127.0.0.1:6444"), Some(990)),
                ],
                vec!["127.0.0.1:6443", "127.0.0.1:6445"],
                vec!["b"],
            ),
            (
                "unreadable ones are deleted",
                vec![
                    obs("x", None, Some(1010)),
                    obs("y", Some("10.0.0.2:6443"), None),
                ],
                vec![],
                vec!["x", "y"],
            ),
        ];
        for (what, leases, live, expired) in cases {
            let got = sort(&leases, now);
            let live: BTreeSet<SocketAddr> = live.into_iter().map(addr).collect();
            assert_eq!(got.live, live, "{what}");
            assert_eq!(got.expired, expired, "{what}");
        }
    }

    #[test]
    fn live_addresses_are_ordered_by_ip_then_port() {
        let leases: Vec<Observed> = ["10.0.0.3:6443", "10.0.0.1:6444", "10.0.0.1:6443"]
            .iter()
            .enumerate()
            .map(|(i, a)| Observed {
                name: i.to_string(),
                address: Some(addr(a)),
                expires: Some(100),
            })
            .collect();
        let order: Vec<String> = sort(&leases, 0)
            .live
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(order, ["10.0.0.1:6443", "10.0.0.1:6444", "10.0.0.3:6443"]);
    }

    #[test]
    fn desired_table() {
        let set = |v: &[&str]| v.iter().map(|a| addr(a)).collect::<BTreeSet<_>>();
        let own = addr("127.0.0.1:6443");
        let cases = [
            ("alone", set(&[]), false, Some(set(&["127.0.0.1:6443"]))),
            (
                "own lease seen",
                set(&["127.0.0.1:6443", "127.0.0.1:6444"]),
                false,
                Some(set(&["127.0.0.1:6443", "127.0.0.1:6444"])),
            ),
            (
                "own lease looks expired to a skewed clock: still named",
                set(&["127.0.0.1:6444"]),
                false,
                Some(set(&["127.0.0.1:6443", "127.0.0.1:6444"])),
            ),
            (
                "leaving with others",
                set(&["127.0.0.1:6443", "127.0.0.1:6444"]),
                true,
                Some(set(&["127.0.0.1:6444"])),
            ),
            (
                "the last one leaving: no write",
                set(&["127.0.0.1:6443"]),
                true,
                None,
            ),
            ("leaving, nothing live", set(&[]), true, None),
        ];
        for (what, live, leaving, want) in cases {
            assert_eq!(desired(&live, own, leaving), want, "{what}");
        }
    }

    #[test]
    fn renewal_keeps_identity_and_acquire_time_of_the_same_holder() {
        let a = addr("127.0.0.1:6443");
        let mut stored = lease(a, "p1", "2026-01-01T00:00:00.000000Z");
        stored["metadata"]["uid"] = json!("u");
        stored["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
        let same = renewed(&stored, &lease(a, "p1", "2026-01-01T00:00:10.000000Z"));
        assert_eq!(same["metadata"]["uid"], "u");
        assert_eq!(same["spec"]["acquireTime"], "2026-01-01T00:00:00.000000Z");
        assert_eq!(same["spec"]["renewTime"], "2026-01-01T00:00:10.000000Z");
        let other = renewed(&stored, &lease(a, "p2", "2026-01-01T00:00:10.000000Z"));
        assert_eq!(other["metadata"]["uid"], "u");
        assert_eq!(other["spec"]["acquireTime"], "2026-01-01T00:00:10.000000Z");
        assert_eq!(other["spec"]["holderIdentity"], "p2");
    }
}
