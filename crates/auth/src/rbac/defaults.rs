//! The ClusterRoles and ClusterRoleBindings every cluster starts with: the semantics of
//! upstream's bootstrap policy (user-facing `cluster-admin`/`admin`/`edit`/`view`, aggregated
//! from the `system:aggregate-to-*` roles; discovery, basic-user and public-info for everyone;
//! the node and bootstrapper roles). Objects are plain JSON for the API server to store.

use serde_json::{Value, json};

use super::Rule;

/// The annotation that marks an object the server keeps as shipped.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Paths that tell anyone whether the server is up and which version it is.
const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version", "/version/"];

fn label(key: &str) -> String {
    format!("rbac.authorization.k8s.io/{key}")
}

fn cluster_role(name: &str, labels: &[&str], rules: &[Rule], aggregate_from: &[&str]) -> Value {
    let mut meta_labels = serde_json::Map::new();
    meta_labels.insert("kubernetes.io/bootstrapping".into(), "rbac-defaults".into());
    for l in labels {
        meta_labels.insert(label(l), "true".into());
    }
    let mut role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": meta_labels,
            "annotations": {AUTOUPDATE: "true"},
        },
        "rules": rules,
    });
    if !aggregate_from.is_empty() {
        let selectors: Vec<Value> = aggregate_from
            .iter()
            .map(|l| json!({"matchLabels": {label(l): "true"}}))
            .collect();
        role["aggregationRule"] = json!({"clusterRoleSelectors": selectors});
    }
    role
}

fn cluster_binding(name: &str, role: &str, subjects: &[(&str, &str)]) -> Value {
    let subjects: Vec<Value> = subjects
        .iter()
        .map(|(kind, name)| {
            json!({"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name})
        })
        .collect();
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

fn r(verbs: &[&str], group: &str, resources: &[&str]) -> Rule {
    Rule::resource(verbs, &[group], resources)
}

fn view_rules() -> Vec<Rule> {
    vec![
        r(
            READ,
            "",
            &[
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "configmaps",
            ],
        ),
        r(
            READ,
            "",
            &[
                "limitranges",
                "resourcequotas",
                "bindings",
                "events",
                "pods/status",
                "resourcequotas/status",
                "namespaces/status",
                "replicationcontrollers/status",
                "pods/log",
            ],
        ),
        // Reading namespaces in a namespace's scope means reading that namespace.
        r(READ, "", &["namespaces"]),
        r(READ, "discovery.k8s.io", &["endpointslices"]),
        r(
            READ,
            "apps",
            &[
                "controllerrevisions",
                "statefulsets",
                "statefulsets/status",
                "statefulsets/scale",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/status",
                "deployments/scale",
                "replicasets",
                "replicasets/status",
                "replicasets/scale",
            ],
        ),
        r(
            READ,
            "autoscaling",
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
        ),
        r(
            READ,
            "batch",
            &["jobs", "cronjobs", "cronjobs/status", "jobs/status"],
        ),
        r(
            READ,
            "policy",
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
        ),
        r(
            READ,
            "networking.k8s.io",
            &["networkpolicies", "ingresses", "ingresses/status"],
        ),
    ]
}

fn edit_rules() -> Vec<Rule> {
    vec![
        // Reading what lets one act as someone else (secrets, exec) is an edit right.
        r(
            READ,
            "",
            &[
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
                "secrets",
                "services/proxy",
            ],
        ),
        r(&["impersonate"], "", &["serviceaccounts"]),
        r(
            WRITE,
            "",
            &[
                "pods",
                "pods/attach",
                "pods/proxy",
                "pods/exec",
                "pods/portforward",
            ],
        ),
        r(&["create"], "", &["pods/eviction"]),
        r(
            WRITE,
            "",
            &[
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/proxy",
                "persistentvolumeclaims",
                "configmaps",
                "secrets",
                "events",
            ],
        ),
        r(&["create"], "", &["serviceaccounts/token"]),
        r(
            WRITE,
            "apps",
            &[
                "statefulsets",
                "statefulsets/scale",
                "daemonsets",
                "deployments",
                "deployments/scale",
                "deployments/rollback",
                "replicasets",
                "replicasets/scale",
            ],
        ),
        r(WRITE, "autoscaling", &["horizontalpodautoscalers"]),
        r(WRITE, "batch", &["jobs", "cronjobs"]),
        r(WRITE, "policy", &["poddisruptionbudgets"]),
        r(
            WRITE,
            "networking.k8s.io",
            &["networkpolicies", "ingresses"],
        ),
        r(READ_WRITE, "coordination.k8s.io", &["leases"]),
    ]
}

fn admin_rules() -> Vec<Rule> {
    vec![
        r(
            READ_WRITE,
            "rbac.authorization.k8s.io",
            &["roles", "rolebindings"],
        ),
        r(
            &["create"],
            "authorization.k8s.io",
            &["localsubjectaccessreviews"],
        ),
    ]
}

/// What a node agent needs, for clusters that grant it through RBAC (upstream's `system:node`;
/// unbound by default: the Node authorizer answers nodes).
fn node_rules() -> Vec<Rule> {
    vec![
        r(
            &[
                "create", "get", "list", "watch", "update", "patch", "delete",
            ],
            "",
            &["nodes"],
        ),
        r(&["patch", "update"], "", &["nodes/status"]),
        r(&["create", "update", "patch"], "", &["events"]),
        r(&["create", "update", "patch"], "events.k8s.io", &["events"]),
        r(READ, "", &["pods"]),
        r(&["delete"], "", &["pods"]),
        r(&["update", "patch"], "", &["pods/status"]),
        r(&["create"], "", &["pods/eviction"]),
        r(
            READ,
            "",
            &["services", "endpoints", "secrets", "configmaps"],
        ),
        r(
            &["get"],
            "",
            &["persistentvolumeclaims", "persistentvolumes"],
        ),
        r(&["update", "patch"], "", &["persistentvolumeclaims/status"]),
        r(&["create"], "", &["serviceaccounts/token"]),
        r(
            &["create", "get", "list", "watch"],
            "certificates.k8s.io",
            &["certificatesigningrequests"],
        ),
        r(
            &["get", "create", "update", "patch", "delete"],
            "coordination.k8s.io",
            &["leases"],
        ),
        r(READ, "node.k8s.io", &["runtimeclasses"]),
        r(READ, "discovery.k8s.io", &["endpointslices"]),
    ]
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    let everything = vec![
        Rule::resource(&["*"], &["*"], &["*"]),
        Rule::urls(&["*"], &["*"]),
    ];
    vec![
        cluster_role("cluster-admin", &[], &everything, &[]),
        cluster_role("admin", &[], &[], &["aggregate-to-admin"]),
        cluster_role("edit", &["aggregate-to-admin"], &[], &["aggregate-to-edit"]),
        cluster_role("view", &["aggregate-to-edit"], &[], &["aggregate-to-view"]),
        cluster_role(
            "system:aggregate-to-admin",
            &["aggregate-to-admin"],
            &admin_rules(),
            &[],
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &["aggregate-to-edit"],
            &edit_rules(),
            &[],
        ),
        cluster_role(
            "system:aggregate-to-view",
            &["aggregate-to-view"],
            &view_rules(),
            &[],
        ),
        // What metrics-server ships so `view`, `edit` and `admin` include `kubectl top`.
        cluster_role(
            "system:aggregated-metrics-reader",
            &[
                "aggregate-to-view",
                "aggregate-to-edit",
                "aggregate-to-admin",
            ],
            &[r(READ, "metrics.k8s.io", &["pods", "nodes"])],
            &[],
        ),
        cluster_role(
            "system:discovery",
            &[],
            &[Rule::urls(
                &["get"],
                &[
                    "/livez",
                    "/readyz",
                    "/healthz",
                    "/version",
                    "/version/",
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/openapi",
                    "/openapi/*",
                ],
            )],
            &[],
        ),
        cluster_role(
            "system:basic-user",
            &[],
            &[
                r(
                    &["create"],
                    "authorization.k8s.io",
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                r(
                    &["create"],
                    "authentication.k8s.io",
                    &["selfsubjectreviews"],
                ),
            ],
            &[],
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            &[Rule::urls(&["get"], PUBLIC_PATHS)],
            &[],
        ),
        // Upstream's: what Prometheus needs to scrape the API server (bound to the
        // `system:monitoring` group).
        cluster_role(
            "system:monitoring",
            &[],
            &[Rule::urls(
                &["get"],
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/readyz",
                    "/readyz/*",
                    "/metrics",
                    "/metrics/slis",
                ],
            )],
            &[],
        ),
        cluster_role("system:node", &[], &node_rules(), &[]),
        cluster_role(
            "system:node-bootstrapper",
            &[],
            &[r(
                &["create", "get", "list", "watch"],
                "certificates.k8s.io",
                &["certificatesigningrequests"],
            )],
            &[],
        ),
    ]
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        cluster_binding(
            "cluster-admin",
            "cluster-admin",
            &[("Group", super::SUPERUSER_GROUP)],
        ),
        cluster_binding(
            "system:discovery",
            "system:discovery",
            &[("Group", crate::ALL_AUTHENTICATED)],
        ),
        cluster_binding(
            "system:basic-user",
            "system:basic-user",
            &[("Group", crate::ALL_AUTHENTICATED)],
        ),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[
                ("Group", crate::ALL_AUTHENTICATED),
                ("Group", crate::ALL_UNAUTHENTICATED),
            ],
        ),
        cluster_binding(
            "system:monitoring",
            "system:monitoring",
            &[("Group", "system:monitoring")],
        ),
        // Bootstrap-token users ask for their node's first client certificate.
        cluster_binding(
            "system:node-bootstrapper",
            "system:node-bootstrapper",
            &[("Group", crate::bootstrap::GROUP)],
        ),
    ]
}

/// What a stored default object should become so it again grants what `shipped` does, when
/// it is marked for auto-update: missing rules, aggregation selectors, subjects and labels
/// are added, nothing is taken away (upstream's additive reconciliation). `None` when nothing
/// is to change.
pub fn reconcile(stored: &Value, shipped: &Value) -> Option<Value> {
    let marked = stored
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(AUTOUPDATE))
        .and_then(Value::as_str)
        == Some("true");
    if !marked {
        return None;
    }
    let mut out = stored.clone();
    for list in ["rules", "subjects"] {
        let Some(want) = shipped.get(list).and_then(Value::as_array) else {
            continue;
        };
        let mut have = out
            .get(list)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for item in want {
            if !have.contains(item) {
                have.push(item.clone());
            }
        }
        out[list] = Value::Array(have);
    }
    if let Some(agg) = shipped.get("aggregationRule") {
        out["aggregationRule"] = agg.clone();
    }
    if let Some(labels) = shipped
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
    {
        for (k, v) in labels {
            if out.pointer("/metadata/labels").is_none_or(Value::is_null) {
                out["metadata"]["labels"] = json!({});
            }
            out["metadata"]["labels"][k] = v.clone();
        }
    }
    (out != *stored).then_some(out)
}
