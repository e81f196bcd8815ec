//! Table tests of rule matching, bindings, aggregation, coverage, the default policy and the
//! Node authorizer.

use serde_json::{Value, json};

use super::node::{NodeGraph, Used};
use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    crate::with_authenticated(UserInfo::new(
        name,
        groups.iter().map(|&g| g.to_owned()).collect(),
    ))
}

fn res(u: &UserInfo, verb: &str, group: &str, resource: &str, ns: &str, name: &str) -> Attributes {
    Attributes::resource(u.clone(), verb, group, resource)
        .in_namespace(ns)
        .named(name)
}

fn policy(objects: &[Value]) -> Policy {
    let mut roles = Vec::new();
    let mut bindings = Vec::new();
    for o in objects {
        match o["kind"].as_str() {
            Some("Role" | "ClusterRole") => roles.push(Role::from_object(o).expect("role")),
            _ => bindings.push(Binding::from_object(o).expect("binding")),
        }
    }
    Policy::new(roles, bindings)
}

fn with_defaults(extra: &[Value]) -> Policy {
    let mut all = defaults::cluster_roles();
    all.extend(defaults::cluster_role_bindings());
    all.extend_from_slice(extra);
    policy(&all)
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"kind": "RoleBinding", "metadata": {"namespace": ns, "name": name},
        "roleRef": {"kind": kind, "name": role}, "subjects": subjects})
}

#[test]
fn rule_matching_table() {
    let u = user("u", &[]);
    let cases: Vec<(Rule, Attributes, bool)> = vec![
        (
            Rule::resource(&["get"], &[""], &["pods"]),
            res(&u, "get", "", "pods", "a", "p"),
            true,
        ),
        (
            Rule::resource(&["get"], &[""], &["pods"]),
            res(&u, "list", "", "pods", "a", ""),
            false,
        ),
        (
            Rule::resource(&["*"], &[""], &["pods"]),
            res(&u, "delete", "", "pods", "a", "p"),
            true,
        ),
        (
            Rule::resource(&["get"], &["apps"], &["pods"]),
            res(&u, "get", "", "pods", "", ""),
            false,
        ),
        (
            Rule::resource(&["get"], &["*"], &["*"]),
            res(&u, "get", "x.io", "w", "", ""),
            true,
        ),
        // A subresource needs its own entry.
        (
            Rule::resource(&["get"], &[""], &["pods"]),
            res(&u, "get", "", "pods", "a", "p").subresource("log"),
            false,
        ),
        (
            Rule::resource(&["get"], &[""], &["pods/log"]),
            res(&u, "get", "", "pods", "a", "p").subresource("log"),
            true,
        ),
        (
            Rule::resource(&["get"], &[""], &["*/log"]),
            res(&u, "get", "", "pods", "a", "p").subresource("log"),
            true,
        ),
        (
            Rule::resource(&["get"], &[""], &["*/log"]),
            res(&u, "get", "", "pods", "a", "p"),
            false,
        ),
        (
            Rule::resource(&["get"], &[""], &["pods"]).names(&["p"]),
            res(&u, "get", "", "pods", "a", "p"),
            true,
        ),
        (
            Rule::resource(&["get"], &[""], &["pods"]).names(&["p"]),
            res(&u, "get", "", "pods", "a", "q"),
            false,
        ),
        (
            Rule::resource(&["list"], &[""], &["pods"]).names(&["p"]),
            res(&u, "list", "", "pods", "a", ""),
            false,
        ),
        (
            Rule::urls(&["get"], &["/healthz"]),
            Attributes::path(u.clone(), "get", "/healthz"),
            true,
        ),
        (
            Rule::urls(&["get"], &["/healthz"]),
            Attributes::path(u.clone(), "get", "/healthz/etcd"),
            false,
        ),
        (
            Rule::urls(&["get"], &["/apis/*"]),
            Attributes::path(u.clone(), "get", "/apis/apps/v1"),
            true,
        ),
        (
            Rule::urls(&["get"], &["/apis/*"]),
            Attributes::path(u.clone(), "get", "/apis"),
            false,
        ),
        (
            Rule::urls(&["*"], &["*"]),
            Attributes::path(u.clone(), "post", "/x"),
            true,
        ),
        // A resource rule never matches a path, nor a path rule a resource.
        (
            Rule::resource(&["*"], &["*"], &["*"]),
            Attributes::path(u.clone(), "get", "/x"),
            false,
        ),
        (
            Rule::urls(&["*"], &["*"]),
            res(&u, "get", "", "pods", "", ""),
            false,
        ),
    ];
    for (rule, attrs, want) in cases {
        assert_eq!(rule.allows(&attrs), want, "{rule:?} {attrs:?}");
    }
}

#[test]
fn bindings_table() {
    let objects = [
        json!({"kind": "Role", "metadata": {"namespace": "a", "name": "reader"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "pod-reader"},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
        role_binding(
            "a",
            "alice-reader",
            "Role",
            "reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        role_binding(
            "a",
            "devs-pods",
            "ClusterRole",
            "pod-reader",
            json!([{"kind": "Group", "name": "devs"}]),
        ),
        role_binding(
            "a",
            "sa-pods",
            "ClusterRole",
            "pod-reader",
            json!([{"kind": "ServiceAccount", "name": "bot"}, {"kind": "ServiceAccount", "name": "x", "namespace": "b"}]),
        ),
        role_binding(
            "a",
            "dangling",
            "Role",
            "missing",
            json!([{"kind": "User", "name": "carol"}]),
        ),
        json!({"kind": "ClusterRoleBinding", "metadata": {"name": "bob-pods"},
            "roleRef": {"kind": "ClusterRole", "name": "pod-reader"}, "subjects": [{"kind": "User", "name": "bob"}]}),
    ];
    let p = policy(&objects);
    let alice = user("alice", &[]);
    let dev = user("dave", &["devs"]);
    let bob = user("bob", &[]);
    let bot = user("system:serviceaccount:a:bot", &[]);
    let x = user("system:serviceaccount:b:x", &[]);
    let carol = user("carol", &[]);
    let cases = [
        (res(&alice, "get", "", "configmaps", "a", "c"), true),
        (res(&alice, "list", "", "configmaps", "a", ""), true),
        (res(&alice, "list", "", "configmaps", "b", ""), false),
        (res(&alice, "list", "", "configmaps", "", ""), false),
        (res(&alice, "get", "", "pods", "a", "p"), false),
        (res(&dev, "get", "", "pods", "a", "p"), true),
        // A ClusterRole bound by a RoleBinding grants only in that namespace.
        (res(&dev, "get", "", "pods", "b", "p"), false),
        (res(&bob, "get", "", "pods", "b", "p"), true),
        (res(&bob, "get", "", "pods", "", ""), true),
        (res(&bot, "get", "", "pods", "a", "p"), true),
        (res(&x, "get", "", "pods", "a", "p"), true),
        (
            res(
                &user("system:serviceaccount:b:bot", &[]),
                "get",
                "",
                "pods",
                "a",
                "p",
            ),
            false,
        ),
        (res(&carol, "get", "", "pods", "a", "p"), false),
    ];
    for (attrs, want) in cases {
        assert_eq!(p.authorize(&attrs).allowed, want, "{attrs:?}");
    }
    let d = p.authorize(&res(&alice, "get", "", "configmaps", "a", "c"));
    assert_eq!(
        d.reason,
        r#"RBAC: allowed by RoleBinding "a/alice-reader" of Role "a/reader" to User "alice""#
    );
}

#[test]
fn aggregation_unions_matching_roles_transitively() {
    let extra = [
        json!({"kind": "ClusterRole", "metadata": {"name": "widgets-view",
        "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"verbs": ["get"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}),
    ];
    let p = with_defaults(&extra);
    let widgets = Rule::resource(&["get"], &["example.com"], &["widgets"]);
    for role in ["view", "edit", "admin"] {
        let rules = p.role_rules("", role).expect(role);
        assert!(rules.contains(&widgets), "{role}");
    }
    let view = p.role_rules("", "view").expect("view");
    assert!(
        !view
            .iter()
            .any(|r| r.resources.contains(&"secrets".to_owned()))
    );
    let edit = p.role_rules("", "edit").expect("edit");
    assert!(
        edit.iter()
            .any(|r| r.resources.contains(&"secrets".to_owned()))
    );
    let without = with_defaults(&[]);
    assert!(
        !without
            .role_rules("", "view")
            .expect("view")
            .contains(&widgets)
    );
}

#[test]
fn default_policy_table() {
    let alice_rb = role_binding(
        "a",
        "alice-view",
        "ClusterRole",
        "view",
        json!([{"kind": "User", "name": "alice"}]),
    );
    let p = with_defaults(&[alice_rb]);
    let alice = user("alice", &[]);
    let anon = UserInfo::new(
        crate::ANONYMOUS,
        vec![crate::ALL_UNAUTHENTICATED.to_owned()],
    );
    let admin = user("admin", &[SUPERUSER_GROUP]);
    let monitor = user("prometheus", &["system:monitoring"]);
    let cases = [
        (res(&alice, "get", "", "pods", "a", "p"), true),
        (res(&alice, "list", "", "pods", "a", ""), true),
        (res(&alice, "watch", "", "configmaps", "a", ""), true),
        (
            res(&alice, "get", "", "pods", "a", "p").subresource("log"),
            true,
        ),
        (res(&alice, "get", "", "namespaces", "a", "a"), true),
        // `kubectl top pods` for a viewer, through system:aggregated-metrics-reader.
        (res(&alice, "list", "metrics.k8s.io", "pods", "a", ""), true),
        (res(&alice, "get", "metrics.k8s.io", "pods", "a", "p"), true),
        (
            res(&alice, "list", "metrics.k8s.io", "pods", "b", ""),
            false,
        ),
        (res(&alice, "get", "", "secrets", "a", "s"), false),
        (res(&alice, "list", "", "pods", "b", ""), false),
        (res(&alice, "create", "", "pods", "a", ""), false),
        (res(&alice, "delete", "", "configmaps", "a", "c"), false),
        (
            res(&alice, "create", "", "pods", "a", "p").subresource("exec"),
            false,
        ),
        (
            res(
                &alice,
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
            ),
            true,
        ),
        (
            res(
                &alice,
                "create",
                "authorization.k8s.io",
                "subjectaccessreviews",
                "",
                "",
            ),
            false,
        ),
        (Attributes::path(alice.clone(), "get", "/apis/apps"), true),
        (Attributes::path(alice.clone(), "get", "/metrics"), false),
        (Attributes::path(anon.clone(), "get", "/healthz"), true),
        (Attributes::path(anon.clone(), "get", "/version"), true),
        (Attributes::path(anon.clone(), "get", "/api"), false),
        (res(&admin, "delete", "", "nodes", "", "n"), true),
        (Attributes::path(admin.clone(), "get", "/metrics"), true),
        // Prometheus' identity, through the default system:monitoring binding.
        (Attributes::path(monitor.clone(), "get", "/metrics"), true),
        (
            Attributes::path(monitor.clone(), "get", "/readyz/ping"),
            true,
        ),
        (Attributes::path(monitor.clone(), "get", "/api"), true),
        (res(&monitor, "list", "", "pods", "a", ""), false),
        // `rudder snapshot save` holds every Secret: cluster administrators only.
        (Attributes::path(admin.clone(), "get", "/snapshot"), true),
        (Attributes::path(monitor.clone(), "get", "/snapshot"), false),
        (Attributes::path(alice.clone(), "get", "/snapshot"), false),
        (Attributes::path(anon.clone(), "get", "/snapshot"), false),
    ];
    let graph = NoPods;
    for (attrs, want) in cases {
        assert_eq!(authorize(&p, &graph, &attrs).allowed, want, "{attrs:?}");
    }
}

#[test]
fn coverage_table() {
    let owner = vec![
        Rule::resource(&["get", "list"], &[""], &["pods", "configmaps"]),
        Rule::resource(&["*"], &["apps"], &["deployments/*"]),
        Rule::resource(&["get"], &[""], &["secrets"]).names(&["s1"]),
        Rule::urls(&["get"], &["/logs/*"]),
    ];
    let cases: Vec<(Rule, bool)> = vec![
        (Rule::resource(&["get"], &[""], &["pods"]), true),
        (
            Rule::resource(&["get", "list"], &[""], &["pods", "configmaps"]),
            true,
        ),
        (Rule::resource(&["watch"], &[""], &["pods"]), false),
        (Rule::resource(&["get"], &["*"], &["pods"]), false),
        (
            Rule::resource(&["delete"], &["apps"], &["deployments/scale"]),
            true,
        ),
        (
            Rule::resource(&["delete"], &["apps"], &["deployments"]),
            false,
        ),
        (
            Rule::resource(&["get"], &[""], &["secrets"]).names(&["s1"]),
            true,
        ),
        (Rule::resource(&["get"], &[""], &["secrets"]), false),
        (Rule::urls(&["get"], &["/logs/x"]), true),
        (Rule::urls(&["get"], &["/metrics"]), false),
    ];
    for (wanted, covered) in cases {
        let missing = uncovered(&owner, std::slice::from_ref(&wanted));
        assert_eq!(missing.is_empty(), covered, "{wanted:?}: {missing:?}");
    }
    let missing = uncovered(
        &owner,
        &[Rule::resource(&["get", "watch"], &[""], &["pods"])],
    );
    assert_eq!(missing, vec![Rule::resource(&["watch"], &[""], &["pods"])]);
}

#[test]
fn refusal_messages_table() {
    let alice = user("alice", &[]);
    let cases = [
        (
            res(&alice, "list", "", "pods", "default", ""),
            r#"User "alice" cannot list resource "pods" in API group "" in the namespace "default""#,
        ),
        (
            res(&alice, "get", "apps", "deployments", "", "").subresource("scale"),
            r#"User "alice" cannot get resource "deployments/scale" in API group "apps" at the cluster scope"#,
        ),
        (
            Attributes::path(alice.clone(), "get", "/metrics"),
            r#"User "alice" cannot get path "/metrics""#,
        ),
    ];
    for (attrs, want) in cases {
        assert_eq!(attrs.refusal(), want);
    }
}

struct NoPods;

impl NodeGraph for NoPods {
    fn pod_node(&self, _: &str, _: &str) -> Option<String> {
        None
    }
    fn used_by_node(&self, _: &str, _: Used, _: &str, _: &str) -> bool {
        false
    }
    fn volume_used_by_node(&self, _: &str, _: &str) -> bool {
        false
    }
}

/// Pod `ns/web` runs on `n1` and uses secret `ns/s1`, config map `ns/c1`, claim `ns/data`
/// (bound to volume `pv1`) and service account `ns/default`.
struct OnePod;

impl NodeGraph for OnePod {
    fn pod_node(&self, ns: &str, name: &str) -> Option<String> {
        (ns == "ns" && name == "web").then(|| "n1".to_owned())
    }
    fn used_by_node(&self, node: &str, kind: Used, ns: &str, name: &str) -> bool {
        let want = match kind {
            Used::Secret => "s1",
            Used::ConfigMap => "c1",
            Used::Claim => "data",
            Used::ServiceAccount => "default",
        };
        node == "n1" && ns == "ns" && name == want
    }
    fn volume_used_by_node(&self, node: &str, name: &str) -> bool {
        node == "n1" && name == "pv1"
    }
}

#[test]
fn node_authorizer_table() {
    let n1 = user("system:node:n1", &["system:nodes"]);
    let n2 = user("system:node:n2", &["system:nodes"]);
    let not_node = user("system:node:n1", &[]);
    let cases = [
        (res(&n1, "get", "", "nodes", "", "n1"), true),
        (
            res(&n1, "patch", "", "nodes", "", "n1").subresource("status"),
            true,
        ),
        (res(&n1, "create", "", "nodes", "", ""), true),
        (res(&n1, "list", "", "nodes", "", ""), true),
        (res(&n1, "delete", "", "nodes", "", "n2"), false),
        (res(&n1, "update", "", "nodes", "", "n2"), false),
        (
            res(
                &n1,
                "get",
                "coordination.k8s.io",
                "leases",
                "kube-node-lease",
                "n1",
            ),
            true,
        ),
        (
            res(
                &n1,
                "update",
                "coordination.k8s.io",
                "leases",
                "kube-node-lease",
                "n2",
            ),
            false,
        ),
        (
            res(&n1, "get", "coordination.k8s.io", "leases", "default", "n1"),
            false,
        ),
        (res(&n1, "watch", "", "pods", "", ""), true),
        (
            res(&n1, "patch", "", "pods", "ns", "web").subresource("status"),
            true,
        ),
        (
            res(&n2, "patch", "", "pods", "ns", "web").subresource("status"),
            false,
        ),
        (res(&n1, "delete", "", "pods", "ns", "web"), true),
        (res(&n1, "delete", "", "pods", "ns", "other"), false),
        (res(&n1, "update", "", "pods", "ns", "web"), false),
        (res(&n1, "get", "", "secrets", "ns", "s1"), true),
        (res(&n1, "watch", "", "secrets", "ns", "s1"), true),
        (res(&n2, "get", "", "secrets", "ns", "s1"), false),
        (res(&n1, "get", "", "secrets", "ns", "s2"), false),
        (res(&n1, "list", "", "secrets", "ns", ""), false),
        (res(&n1, "get", "", "configmaps", "ns", "c1"), true),
        (
            res(&n1, "get", "", "persistentvolumeclaims", "ns", "data"),
            true,
        ),
        (res(&n1, "get", "", "persistentvolumes", "", "pv1"), true),
        (res(&n1, "get", "", "persistentvolumes", "", "pv2"), false),
        (
            res(&n1, "create", "", "serviceaccounts", "ns", "default").subresource("token"),
            true,
        ),
        (
            res(&n1, "create", "", "serviceaccounts", "ns", "other").subresource("token"),
            false,
        ),
        (res(&n1, "create", "", "events", "ns", ""), true),
        (
            res(
                &n1,
                "create",
                "certificates.k8s.io",
                "certificatesigningrequests",
                "",
                "",
            ),
            true,
        ),
        (res(&n1, "create", "", "namespaces", "", ""), false),
        (res(&n1, "watch", "", "namespaces", "", ""), true),
        (
            res(&n1, "list", "networking.k8s.io", "networkpolicies", "", ""),
            true,
        ),
        (
            res(
                &n1,
                "create",
                "networking.k8s.io",
                "networkpolicies",
                "ns",
                "",
            ),
            false,
        ),
        (res(&not_node, "get", "", "nodes", "", "n1"), false),
        // Its DNS server's EndpointSlice, and no other.
        (slice(&n1, "create", "kube-system", ""), true),
        (slice(&n1, "update", "kube-system", "kube-dns-n1"), true),
        (slice(&n1, "patch", "kube-system", "kube-dns-n1"), true),
        (slice(&n1, "delete", "kube-system", "kube-dns-n1"), true),
        (slice(&n1, "get", "kube-system", "kube-dns-n2"), true),
        (slice(&n1, "list", "", ""), true),
        (slice(&n1, "update", "kube-system", "kube-dns-n2"), false),
        (slice(&n1, "delete", "kube-system", "kube-dns-n2"), false),
        (slice(&n1, "delete", "kube-system", "web-abcde"), false),
        (slice(&n1, "create", "default", ""), false),
        (slice(&n1, "update", "default", "kube-dns-n1"), false),
        (slice(&n1, "deletecollection", "kube-system", ""), false),
        (slice(&not_node, "create", "kube-system", ""), false),
    ];
    let p = with_defaults(&[]);
    for (attrs, want) in cases {
        assert_eq!(authorize(&p, &OnePod, &attrs).allowed, want, "{attrs:?}");
    }
    let d = authorize(&p, &OnePod, &res(&n1, "get", "", "secrets", "ns", "s2"));
    assert_eq!(
        d.reason,
        "no relationship found between node 'n1' and this object"
    );
}

fn slice(u: &UserInfo, verb: &str, ns: &str, name: &str) -> Attributes {
    res(u, verb, "discovery.k8s.io", "endpointslices", ns, name)
}

#[test]
fn names_nodes_write_under() {
    let cases = [
        ("", "nodes", Some("n1")),
        ("coordination.k8s.io", "leases", Some("n1")),
        ("discovery.k8s.io", "endpointslices", Some("kube-dns-n1")),
        ("", "pods", None),
        ("", "endpoints", None),
    ];
    for (group, plural, want) in cases {
        assert_eq!(
            node::own_object_name(group, plural, "n1").as_deref(),
            want,
            "{group}/{plural}"
        );
    }
}

#[test]
fn pod_references_table() {
    let pod = json!({"metadata": {"name": "web"}, "spec": {
        "serviceAccountName": "bot",
        "imagePullSecrets": [{"name": "pull"}],
        "volumes": [
            {"name": "a", "secret": {"secretName": "vol-secret"}},
            {"name": "b", "configMap": {"name": "vol-cm"}},
            {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
            {"name": "d", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
            {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}},
        ],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
        "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}]}],
    }});
    let cases = [
        (Used::Secret, "vol-secret", true),
        (Used::Secret, "proj-secret", true),
        (Used::Secret, "init-env", true),
        (Used::Secret, "pull", true),
        (Used::Secret, "vol-cm", false),
        (Used::ConfigMap, "vol-cm", true),
        (Used::ConfigMap, "proj-cm", true),
        (Used::ConfigMap, "env-cm", true),
        (Used::ConfigMap, "other", false),
        (Used::Claim, "data", true),
        (Used::Claim, "web-scratch", true),
        (Used::Claim, "other", false),
        (Used::ServiceAccount, "bot", true),
        (Used::ServiceAccount, "default", false),
    ];
    for (kind, name, want) in cases {
        assert_eq!(node::pod_uses(&pod, kind, name), want, "{kind:?} {name}");
    }
    assert!(node::pod_uses(
        &json!({"spec": {}}),
        Used::ServiceAccount,
        "default"
    ));
}

#[test]
fn reconcile_adds_and_keeps() {
    let shipped = defaults::cluster_role_bindings()
        .into_iter()
        .find(|b| b["metadata"]["name"] == "system:basic-user")
        .expect("basic-user binding");
    // Unchanged: nothing to do.
    assert_eq!(defaults::reconcile(&shipped, &shipped), None);
    // A subject removed comes back; an added one stays.
    let mut edited = shipped.clone();
    edited["subjects"] = json!([{"kind": "User", "name": "extra"}]);
    let fixed = defaults::reconcile(&edited, &shipped).expect("reconciled");
    let subjects = fixed["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 2);
    assert_eq!(subjects[0]["name"], "extra");
    // Without the annotation the object is the administrator's.
    edited["metadata"]["annotations"][defaults::AUTOUPDATE] = json!("false");
    assert_eq!(defaults::reconcile(&edited, &shipped), None);
}
