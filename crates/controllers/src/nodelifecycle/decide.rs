//! Node lifecycle decisions, after upstream's `node_lifecycle_controller` and taint manager: a
//! node whose heartbeat (its Lease in `kube-node-lease`, or its Ready condition) is older than
//! the grace period goes Ready=Unknown; Unknown nodes carry the `unreachable` taints, Ready=False
//! nodes the `not-ready` ones; pods on a node with NoExecute taints are evicted once their
//! tolerations run out. The API server does not add upstream's default 300 s tolerations for
//! those taints (DefaultTolerationSeconds admission), so a pod without one is treated as having
//! it. Pure; times are Unix seconds.

use k8s_openapi::api::core::v1::{Taint, Toleration};
use serde_json::{Value, json};

use crate::daemonset::decide::tolerates;

/// Heartbeats older than this make a node Unknown (upstream's `--node-monitor-grace-period`).
pub const GRACE_SECONDS: i64 = 40;
/// How long a node that has never posted a Ready condition is left alone after it was created
/// (upstream's `--node-startup-grace-period`): its agent registers the Node and writes its
/// status just after, and marking it Unknown in between raced that write.
pub const STARTUP_GRACE_SECONDS: i64 = 60;
/// Upstream's default toleration of `not-ready`/`unreachable` (DefaultTolerationSeconds).
pub const DEFAULT_TOLERATION_SECONDS: i64 = 300;
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// The node's Ready state as the controller sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ready,
    NotReady,
    Unknown,
    /// Created less than [`STARTUP_GRACE_SECONDS`] ago and no Ready condition yet: neither its
    /// status nor its lifecycle taints are touched.
    Starting,
}

/// Health from the Ready condition's status, the last heartbeat and when the Node was created.
pub fn health(
    ready_status: Option<&str>,
    last_heartbeat: Option<i64>,
    created: Option<i64>,
    now: i64,
) -> Health {
    if ready_status.is_none() && created.is_some_and(|c| now - c <= STARTUP_GRACE_SECONDS) {
        return Health::Starting;
    }
    let stale = last_heartbeat.is_none_or(|t| now - t > GRACE_SECONDS);
    match ready_status {
        _ if stale => Health::Unknown,
        Some("True") => Health::Ready,
        Some("False") => Health::NotReady,
        _ => Health::Unknown,
    }
}

/// The lifecycle taints a node in this health carries (keys with both effects).
pub fn wanted_taints(h: Health) -> Vec<(&'static str, &'static str)> {
    let key = match h {
        Health::Ready | Health::Starting => return vec![],
        Health::NotReady => NOT_READY,
        Health::Unknown => UNREACHABLE,
    };
    vec![(key, "NoSchedule"), (key, "NoExecute")]
}

/// The node's taints after this sync: other taints kept, lifecycle taints as `h` wants (an
/// existing one keeps its timeAdded; a starting node's are left as they are).
pub fn taints_for(
    current: &[Taint],
    h: Health,
    now_taint: impl Fn(&str, &str) -> Taint,
) -> Vec<Taint> {
    if h == Health::Starting {
        return current.to_vec();
    }
    let wanted = wanted_taints(h);
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            (t.key != NOT_READY && t.key != UNREACHABLE)
                || wanted.contains(&(t.key.as_str(), t.effect.as_str()))
        })
        .cloned()
        .collect();
    for (k, e) in wanted {
        if !out.iter().any(|t| t.key == k && t.effect == e) {
            out.push(now_taint(k, e));
        }
    }
    out
}

/// The JSON patch (RFC 6902) taking a node's taints from what `node` (the Node as read, raw
/// JSON) holds to `wanted`.
///
/// It names no resourceVersion, so no write to the rest of the Node can make it fail. The merge
/// patch it replaces carried the cached Node's resourceVersion: any write since the cache saw
/// the Node failed it with a 409 (the controller's own Unknown status write just before it,
/// always; an agent's status write when it registers again), and its retries 200 ms later read
/// the same lagging cache: 14,914 conflicts at 1,000 nodes. Instead a `test` of the taints as
/// read makes the patch fail (422, as upstream answers a failed test) only when someone else
/// changed the taints in between, where a merge patch of `spec.taints` without a
/// resourceVersion would silently drop their change; the caller then reads the Node again. The
/// test compares the stored JSON, not a re-encoding of it. A JSON patch cannot test that a
/// member is absent, so for a Node without taints its `spec` is tested instead (a concurrent
/// spec change, rare, also fails it), and for one without a `spec` at all (made by hand) its
/// resourceVersion.
pub fn taint_patch(node: &Value, wanted: &[Taint]) -> Value {
    let value = serde_json::to_value(wanted).unwrap_or_else(|_| json!([]));
    match node.get("spec") {
        Some(spec @ Value::Object(fields)) => match fields.get("taints") {
            Some(read) => json!([
                {"op": "test", "path": "/spec/taints", "value": read},
                if wanted.is_empty() {
                    json!({"op": "remove", "path": "/spec/taints"})
                } else {
                    json!({"op": "replace", "path": "/spec/taints", "value": value})
                },
            ]),
            None => json!([
                {"op": "test", "path": "/spec", "value": spec},
                {"op": "add", "path": "/spec/taints", "value": value},
            ]),
        },
        _ => json!([
            {
                "op": "test",
                "path": "/metadata/resourceVersion",
                "value": node.pointer("/metadata/resourceVersion"),
            },
            {"op": "add", "path": "/spec", "value": {"taints": value}},
        ]),
    }
}

/// When a pod on a node with these NoExecute taints must go (Unix seconds), `None` if never.
/// A taint the pod does not tolerate evicts at once; otherwise the shortest
/// `tolerationSeconds` counts from when the taint was added.
pub fn eviction_time(taints: &[Taint], tolerations: &[Toleration], now: i64) -> Option<i64> {
    let mut when: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let added = taint.time_added.as_ref().map_or(now, |t| t.0.as_second());
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let seconds = if matching.is_empty() {
            if taint.key == NOT_READY || taint.key == UNREACHABLE {
                Some(DEFAULT_TOLERATION_SECONDS)
            } else {
                Some(0)
            }
        } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            None
        } else {
            matching.iter().filter_map(|t| t.toleration_seconds).min()
        };
        if let Some(s) = seconds {
            let at = added + s.max(0);
            when = Some(when.map_or(at, |w: i64| w.min(at)));
        }
    }
    when
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn taint(key: &str, effect: &str, added: i64) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: Some(Time(Timestamp::from_second(added).expect("ts"))),
        }
    }

    #[test]
    fn health_from_heartbeats() {
        let created = Some(0);
        assert_eq!(health(Some("True"), Some(100), created, 130), Health::Ready);
        assert_eq!(
            health(Some("True"), Some(100), created, 141),
            Health::Unknown
        );
        assert_eq!(
            health(Some("False"), Some(100), created, 110),
            Health::NotReady
        );
        assert_eq!(health(None, None, None, 0), Health::Unknown);
        // Registered, status not yet written: left alone for the startup grace, then Unknown.
        assert_eq!(health(None, None, Some(100), 160), Health::Starting);
        assert_eq!(health(None, Some(150), Some(100), 160), Health::Starting);
        assert_eq!(health(None, None, Some(100), 161), Health::Unknown);
        // A Ready condition ends the grace at once.
        assert_eq!(
            health(Some("True"), Some(100), Some(100), 100),
            Health::Ready
        );
        assert_eq!(
            health(Some("Unknown"), Some(100), Some(100), 100),
            Health::Unknown
        );
    }

    #[test]
    fn a_starting_node_keeps_its_taints() {
        let t = vec![
            taint(UNREACHABLE, "NoExecute", 1),
            taint("dedicated", "NoSchedule", 1),
        ];
        assert_eq!(taints_for(&t, Health::Starting, |k, e| taint(k, e, 50)), t);
        assert_eq!(
            taints_for(&[], Health::Starting, |k, e| taint(k, e, 50)),
            vec![]
        );
    }

    /// What the API server does with the patch: applied to the Node as read, after a status
    /// write, and after someone else changed the taints.
    #[test]
    fn taint_patch_guards_taints_only() {
        struct Case {
            name: &'static str,
            node: Value,
            wanted: Vec<Taint>,
            patch: Value,
            /// The node after someone else's change to it that the patch must fail on.
            changed_taints: Value,
        }
        let unreachable = vec![
            taint(UNREACHABLE, "NoSchedule", 50),
            taint(UNREACHABLE, "NoExecute", 50),
        ];
        let unreachable_json = serde_json::to_value(&unreachable).expect("json");
        // Stored as some client wrote it: a re-encoding would drop the fraction and the test
        // would never pass.
        let stored = json!([{"key": "dedicated", "effect": "NoSchedule", "timeAdded": "1970-01-01T00:00:01.500Z"}]);
        let dedicated: Vec<Taint> = serde_json::from_value(stored.clone()).expect("taints");
        let node = |spec: Value| {
            let mut n = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": "n", "resourceVersion": "7"},
                "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]},
            });
            if !spec.is_null() {
                n["spec"] = spec;
            }
            n
        };
        let cases = vec![
            Case {
                name: "taints added beside others",
                node: node(json!({"podCIDR": "10.0.0.0/24", "taints": stored})),
                wanted: [dedicated.clone(), unreachable.clone()].concat(),
                patch: json!([
                    {"op": "test", "path": "/spec/taints", "value": stored},
                    {"op": "replace", "path": "/spec/taints", "value": serde_json::to_value([dedicated.clone(), unreachable.clone()].concat()).expect("json")},
                ]),
                changed_taints: node(json!({"podCIDR": "10.0.0.0/24", "taints": []})),
            },
            Case {
                name: "the last taints removed",
                node: node(json!({"taints": unreachable_json})),
                wanted: vec![],
                patch: json!([
                    {"op": "test", "path": "/spec/taints", "value": unreachable_json},
                    {"op": "remove", "path": "/spec/taints"},
                ]),
                changed_taints: node(json!({"taints": [unreachable_json[0]]})),
            },
            Case {
                name: "no taints yet: the spec is tested",
                node: node(json!({"podCIDR": "10.0.0.0/24"})),
                wanted: unreachable.clone(),
                patch: json!([
                    {"op": "test", "path": "/spec", "value": {"podCIDR": "10.0.0.0/24"}},
                    {"op": "add", "path": "/spec/taints", "value": unreachable_json},
                ]),
                changed_taints: node(json!({"podCIDR": "10.0.0.0/24", "taints": stored})),
            },
            Case {
                name: "no spec: the resourceVersion is tested",
                node: node(Value::Null),
                wanted: unreachable.clone(),
                patch: json!([
                    {"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                    {"op": "add", "path": "/spec", "value": {"taints": unreachable_json}},
                ]),
                changed_taints: {
                    let mut n = node(json!({"taints": stored}));
                    n["metadata"]["resourceVersion"] = json!("8");
                    n
                },
            },
        ];
        for c in cases {
            let patch = taint_patch(&c.node, &c.wanted);
            assert_eq!(patch, c.patch, "{}: patch", c.name);
            let ops = patch.as_array().expect("ops");
            assert!(
                ops.iter()
                    .all(|op| op["path"] != "/metadata/resourceVersion")
                    || c.node.get("spec").is_none(),
                "{}: only a Node without spec is guarded by its resourceVersion",
                c.name
            );
            let wanted = serde_json::to_value(&c.wanted).expect("json");
            let taints_after =
                |doc: &Value| doc.pointer("/spec/taints").cloned().unwrap_or(json!([]));
            let patched = rudder_machinery::apply_json_patch(&c.node, &patch).expect(c.name);
            assert_eq!(taints_after(&patched), wanted, "{}: applied", c.name);
            if c.node.get("spec").is_some() {
                // The agent wrote its status (a new resourceVersion): the patch still applies.
                let mut written = c.node.clone();
                written["metadata"]["resourceVersion"] = json!("8");
                written["status"]["conditions"][0]["status"] = json!("True");
                let patched = rudder_machinery::apply_json_patch(&written, &patch).expect(c.name);
                assert_eq!(
                    taints_after(&patched),
                    wanted,
                    "{}: after a status write",
                    c.name
                );
                assert_eq!(
                    patched["status"], written["status"],
                    "{}: status kept",
                    c.name
                );
            }
            let err = rudder_machinery::apply_json_patch(&c.changed_taints, &patch)
                .expect_err(c.name)
                .to_string();
            assert!(err.contains("test failed"), "{}: {err}", c.name);
        }
    }

    #[test]
    fn taints_follow_health() {
        let other = taint("dedicated", "NoSchedule", 1);
        let make = |k: &str, e: &str| taint(k, e, 50);
        let t = taints_for(std::slice::from_ref(&other), Health::Unknown, make);
        assert_eq!(t.len(), 3);
        assert!(
            t.iter()
                .any(|x| x.key == UNREACHABLE && x.effect == "NoExecute")
        );
        // Recovered: lifecycle taints go, others stay.
        assert_eq!(taints_for(&t, Health::Ready, make), vec![other.clone()]);
        // Not ready replaces unreachable.
        let nr = taints_for(&t, Health::NotReady, make);
        assert!(nr.iter().all(|x| x.key != UNREACHABLE));
        assert!(nr.iter().any(|x| x.key == NOT_READY));
    }

    #[test]
    fn eviction_follows_tolerations() {
        let taints = [taint(UNREACHABLE, "NoExecute", 100)];
        assert_eq!(eviction_time(&taints, &[], 100), Some(400));
        let tol = |secs: Option<i64>| Toleration {
            key: Some(UNREACHABLE.into()),
            operator: Some("Exists".into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        };
        assert_eq!(eviction_time(&taints, &[tol(Some(5))], 100), Some(105));
        assert_eq!(eviction_time(&taints, &[tol(None)], 100), None);
        let foreign = [taint("example.com/evict", "NoExecute", 100)];
        assert_eq!(eviction_time(&foreign, &[], 120), Some(100));
        assert_eq!(eviction_time(&[taint("x", "NoSchedule", 1)], &[], 5), None);
    }
}
