//! The Node authorizer: a node agent (`system:node:NAME` in `system:nodes`) may touch its own
//! Node and Lease, the pods bound to it, the secrets, config maps, claims, volumes and
//! service accounts those pods use, and its DNS server's EndpointSlice — nothing else of that
//! kind — and read Namespaces and NetworkPolicies (its policy enforcer). Like upstream it never
//! refuses outright: what it does not allow goes on to RBAC, with its reason for the message.
//!
//! Where objects are is the caller's knowledge ([`NodeGraph`]); this module only decides.

use super::{Attributes, Decision, Rule};
use crate::UserInfo;

/// The group of node agents.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of a node agent's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";
/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The namespace of the EndpointSlices node DNS servers register themselves in.
pub const DNS_SLICE_NAMESPACE: &str = "kube-system";

/// The one EndpointSlice node `node` may write: the one its DNS server registers with
/// (`kube-system/kube-dns-<node>`, rudder-dns's `register::slice_name`). Upstream has no such
/// grant because CoreDNS is a pod; rudder's DNS runs in the node agent's process.
pub fn dns_slice_name(node: &str) -> String {
    format!("kube-dns-{node}")
}

/// The name an object of `group`/`plural` must have when node `node` writes it, for the kinds a
/// node may write only under its own name; `None` for other kinds. Upstream's NodeRestriction
/// admission: a create names its object in the body, which authorization does not see.
pub fn own_object_name(group: &str, plural: &str, node: &str) -> Option<String> {
    match (group, plural) {
        ("", "nodes") | ("coordination.k8s.io", "leases") => Some(node.to_owned()),
        ("discovery.k8s.io", "endpointslices") => Some(dns_slice_name(node)),
        _ => None,
    }
}

/// What a pod may reference that a node needs to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Used {
    /// A Secret (volumes, env, image pull secrets).
    Secret,
    /// A ConfigMap (volumes, env).
    ConfigMap,
    /// A PersistentVolumeClaim.
    Claim,
    /// The pod's ServiceAccount.
    ServiceAccount,
}

/// Facts about the cluster the Node authorizer needs.
pub trait NodeGraph {
    /// `spec.nodeName` of the pod, `None` when there is no such pod.
    fn pod_node(&self, namespace: &str, name: &str) -> Option<String>;
    /// Whether a pod bound to `node` references the object.
    fn used_by_node(&self, node: &str, kind: Used, namespace: &str, name: &str) -> bool;
    /// Whether the PersistentVolume is bound to a claim a pod on `node` uses.
    fn volume_used_by_node(&self, node: &str, name: &str) -> bool;
}

/// The node a user is, if it is a node agent with a name.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    if !user.groups.iter().any(|g| g == NODES_GROUP) {
        return None;
    }
    user.name
        .strip_prefix(NODE_USER_PREFIX)
        .filter(|n| !n.is_empty())
}

fn has(list: &[&str], verb: &str) -> bool {
    list.contains(&verb)
}

/// What every node may do regardless of which objects it names (upstream's `NodeRules`,
/// minus what is subdivided below).
fn static_rules() -> Vec<Rule> {
    vec![
        Rule::resource(&["list", "watch"], &[""], &["nodes"]),
        Rule::resource(&["get", "list", "watch"], &[""], &["pods"]),
        Rule::resource(
            &["create", "update", "patch"],
            &["", "events.k8s.io"],
            &["events"],
        ),
        Rule::resource(&["get", "list", "watch"], &[""], &["services", "endpoints"]),
        Rule::resource(
            &["get", "list", "watch"],
            &["discovery.k8s.io"],
            &["endpointslices"],
        ),
        Rule::resource(
            &["create", "get", "list", "watch"],
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
        ),
        Rule::resource(
            &["get", "list", "watch"],
            &["node.k8s.io"],
            &["runtimeclasses"],
        ),
        // rudder's NetworkPolicy enforcer runs in the node agent's process; upstream's
        // enforcers (kube-router, Calico) get the same reads through their own accounts.
        Rule::resource(&["get", "list", "watch"], &[""], &["namespaces"]),
        Rule::resource(
            &["get", "list", "watch"],
            &["networking.k8s.io"],
            &["networkpolicies"],
        ),
        Rule::resource(
            &["get", "list", "watch"],
            &["storage.k8s.io"],
            &["csidrivers", "csinodes", "volumeattachments"],
        ),
    ]
}

/// The Node authorizer's decision; `allowed == false` means "no opinion" plus a reason.
pub fn authorize(graph: &dyn NodeGraph, attrs: &Attributes) -> Decision {
    let Some(node) = node_name(&attrs.user) else {
        return Decision::no_opinion("");
    };
    if !attrs.resource_request {
        return Decision::no_opinion("");
    }
    let verb = attrs.verb.as_str();
    let related = |ok: bool| {
        if ok {
            Decision::allow("")
        } else {
            Decision::no_opinion(format!(
                "no relationship found between node '{node}' and this object"
            ))
        }
    };
    let get_only = || Decision::no_opinion("can only get individual resources of this type");
    let ns = attrs.namespace.as_str();
    let name = attrs.name.as_str();
    let sub = attrs.subresource.as_str();
    let used = |kind| related(graph.used_by_node(node, kind, ns, name));
    match (attrs.api_group.as_str(), attrs.resource.as_str()) {
        ("", "secrets" | "configmaps") => {
            if !has(&["get", "list", "watch"], verb) || name.is_empty() || !sub.is_empty() {
                return get_only();
            }
            let kind = if attrs.resource == "secrets" {
                Used::Secret
            } else {
                Used::ConfigMap
            };
            used(kind)
        }
        ("", "persistentvolumeclaims") => match (verb, sub) {
            ("get", "") if !name.is_empty() => used(Used::Claim),
            ("update" | "patch", "status") => used(Used::Claim),
            _ => get_only(),
        },
        ("", "persistentvolumes") => {
            if verb != "get" || name.is_empty() || !sub.is_empty() {
                return get_only();
            }
            related(graph.volume_used_by_node(node, name))
        }
        ("", "serviceaccounts") => match (verb, sub) {
            ("get", "") | ("create", "token") if !name.is_empty() => used(Used::ServiceAccount),
            _ => Decision::no_opinion("can only create tokens for individual service accounts"),
        },
        ("coordination.k8s.io", "leases") => {
            if ns != LEASE_NAMESPACE || !has(&["get", "create", "update", "patch", "delete"], verb)
            {
                return Decision::no_opinion(format!(
                    "can only access leases in the {LEASE_NAMESPACE} namespace"
                ));
            }
            // A create names no object in its path; the name in the body is checked on
            // admission.
            if verb != "create" && name != node {
                return Decision::no_opinion(
                    "can only access node lease with the same name as the requesting node",
                );
            }
            Decision::allow("")
        }
        ("", "nodes") => {
            let own = name == node;
            let ok = match verb {
                // The name of a created Node is in the body, checked on admission.
                "create" => sub.is_empty(),
                "get" | "update" | "patch" | "delete" => own && (sub.is_empty() || sub == "status"),
                "list" | "watch" => sub.is_empty(),
                _ => false,
            };
            if ok {
                Decision::allow("")
            } else {
                Decision::no_opinion(format!("node '{node}' cannot modify node '{name}'"))
            }
        }
        ("discovery.k8s.io", "endpointslices")
            if has(&["create", "update", "patch", "delete"], verb) =>
        {
            let own = dns_slice_name(node);
            // A create names no object in its path; the name in the body is checked on
            // admission ([`own_object_name`]).
            if ns == DNS_SLICE_NAMESPACE && sub.is_empty() && (verb == "create" || name == own) {
                Decision::allow("")
            } else {
                Decision::no_opinion(format!(
                    "can only write the endpointslice {DNS_SLICE_NAMESPACE}/{own}"
                ))
            }
        }
        ("", "pods") => {
            let own = || graph.pod_node(ns, name).as_deref() == Some(node);
            match (verb, sub) {
                ("get" | "list" | "watch", "") => Decision::allow(""),
                ("update" | "patch", "status") | ("delete", "") | ("create", "eviction") => {
                    related(own())
                }
                _ => Decision::no_opinion(""),
            }
        }
        _ if static_rules().iter().any(|r| r.allows(attrs)) => Decision::allow(""),
        _ => Decision::no_opinion(""),
    }
}

/// Whether `pod` (a Pod object) references the `kind` object `name` of its namespace.
pub fn pod_uses(pod: &serde_json::Value, kind: Used, name: &str) -> bool {
    use serde_json::Value;
    let spec = pod.get("spec").unwrap_or(&Value::Null);
    let s = |v: &Value, p: &str| v.pointer(p).and_then(Value::as_str) == Some(name);
    let arr = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let volumes = arr(spec, "volumes");
    let containers: Vec<Value> = ["containers", "initContainers", "ephemeralContainers"]
        .iter()
        .flat_map(|k| arr(spec, k))
        .collect();
    let projected = |source: &str| {
        volumes.iter().any(|v| {
            arr(v.get("projected").unwrap_or(&Value::Null), "sources")
                .iter()
                .any(|src| s(src, &format!("/{source}/name")))
        })
    };
    let env = |key_ref: &str, from_ref: &str| {
        containers.iter().any(|c| {
            arr(c, "env")
                .iter()
                .any(|e| s(e, &format!("/valueFrom/{key_ref}/name")))
                || arr(c, "envFrom")
                    .iter()
                    .any(|e| s(e, &format!("/{from_ref}/name")))
        })
    };
    match kind {
        Used::Secret => {
            volumes.iter().any(|v| s(v, "/secret/secretName"))
                || projected("secret")
                || env("secretKeyRef", "secretRef")
                || arr(spec, "imagePullSecrets").iter().any(|r| s(r, "/name"))
        }
        Used::ConfigMap => {
            volumes.iter().any(|v| s(v, "/configMap/name"))
                || projected("configMap")
                || env("configMapKeyRef", "configMapRef")
        }
        Used::Claim => {
            let pod_name = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            volumes.iter().any(|v| {
                s(v, "/persistentVolumeClaim/claimName")
                    || (v.get("ephemeral").is_some()
                        && v.get("name")
                            .and_then(Value::as_str)
                            .is_some_and(|vol| format!("{pod_name}-{vol}") == name))
            })
        }
        Used::ServiceAccount => {
            let sa = spec
                .get("serviceAccountName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or("default");
            sa == name
        }
    }
}
