//! Subresources against upstream discovery: names, request/response kinds and verbs.

use rudder_api::{Verb, by_plural, preferred_version, resolve};

/// (group, plural, subresources by name)
const SUBRESOURCES: &[(&str, &str, &[&str])] = &[
    (
        "",
        "pods",
        &[
            "attach",
            "binding",
            "ephemeralcontainers",
            "eviction",
            "exec",
            "log",
            "portforward",
            "proxy",
            "resize",
            "status",
        ],
    ),
    ("", "services", &["proxy", "status"]),
    ("", "nodes", &["proxy", "status"]),
    ("", "namespaces", &["finalize", "status"]),
    ("", "serviceaccounts", &["token"]),
    ("", "replicationcontrollers", &["scale", "status"]),
    ("", "persistentvolumes", &["status"]),
    ("", "persistentvolumeclaims", &["status"]),
    ("", "resourcequotas", &["status"]),
    ("", "configmaps", &[]),
    ("", "secrets", &[]),
    ("", "bindings", &[]),
    ("apps", "deployments", &["scale", "status"]),
    ("apps", "replicasets", &["scale", "status"]),
    ("apps", "statefulsets", &["scale", "status"]),
    ("apps", "daemonsets", &["status"]),
    ("apps", "controllerrevisions", &[]),
    ("batch", "jobs", &["status"]),
    ("batch", "cronjobs", &["status"]),
    ("autoscaling", "horizontalpodautoscalers", &["status"]),
    ("networking.k8s.io", "ingresses", &["status"]),
    ("networking.k8s.io", "networkpolicies", &[]),
    ("policy", "poddisruptionbudgets", &["status"]),
    (
        "certificates.k8s.io",
        "certificatesigningrequests",
        &["approval", "status"],
    ),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        &["status"],
    ),
    ("storage.k8s.io", "volumeattachments", &["status"]),
    ("coordination.k8s.io", "leases", &[]),
];

#[test]
fn subresources_match_upstream() {
    for &(group, plural, expected) in SUBRESOURCES {
        let version = preferred_version(group).expect("group is served");
        let info = by_plural(group, version, plural).expect("resource is served");
        let names: Vec<&str> = info.subresources.iter().map(|sub| sub.name).collect();
        assert_eq!(names, expected, "{plural}");
    }
}

/// (parent plural, subresource, group, version, kind, verbs)
type SubresourceCase = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static [Verb],
);

#[test]
fn subresource_kinds_and_verbs_match_upstream() {
    // (parent plural, subresource, group, version, kind, verbs)
    let cases: &[SubresourceCase] = &[
        ("pods", "status", "", "v1", "Pod", Verb::GET_PATCH_UPDATE),
        ("pods", "binding", "", "v1", "Binding", &[Verb::Create]),
        (
            "pods",
            "eviction",
            "policy",
            "v1",
            "Eviction",
            &[Verb::Create],
        ),
        ("pods", "log", "", "v1", "Pod", &[Verb::Get]),
        (
            "pods",
            "exec",
            "",
            "v1",
            "PodExecOptions",
            &[Verb::Create, Verb::Get],
        ),
        (
            "pods",
            "attach",
            "",
            "v1",
            "PodAttachOptions",
            &[Verb::Create, Verb::Get],
        ),
        (
            "pods",
            "portforward",
            "",
            "v1",
            "PodPortForwardOptions",
            &[Verb::Create, Verb::Get],
        ),
        (
            "pods",
            "ephemeralcontainers",
            "",
            "v1",
            "Pod",
            Verb::GET_PATCH_UPDATE,
        ),
        (
            "deployments",
            "scale",
            "autoscaling",
            "v1",
            "Scale",
            Verb::GET_PATCH_UPDATE,
        ),
        (
            "statefulsets",
            "scale",
            "autoscaling",
            "v1",
            "Scale",
            Verb::GET_PATCH_UPDATE,
        ),
        (
            "replicationcontrollers",
            "scale",
            "autoscaling",
            "v1",
            "Scale",
            Verb::GET_PATCH_UPDATE,
        ),
        (
            "serviceaccounts",
            "token",
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
            &[Verb::Create],
        ),
        ("nodes", "proxy", "", "v1", "NodeProxyOptions", Verb::PROXY),
        (
            "services",
            "proxy",
            "",
            "v1",
            "ServiceProxyOptions",
            Verb::PROXY,
        ),
        (
            "namespaces",
            "finalize",
            "",
            "v1",
            "Namespace",
            &[Verb::Update],
        ),
        (
            "deployments",
            "status",
            "apps",
            "v1",
            "Deployment",
            Verb::GET_PATCH_UPDATE,
        ),
    ];
    for &(plural, name, group, version, kind, verbs) in cases {
        let info = resolve(plural).expect("resource is served");
        let sub = info
            .subresource(name)
            .unwrap_or_else(|| panic!("{plural}/{name}"));
        assert_eq!(
            (sub.group, sub.version, sub.kind, sub.verbs),
            (group, version, kind, verbs),
            "{plural}/{name}"
        );
    }
    let pods = resolve("pods").expect("pods are served");
    assert!(pods.subresource("scale").is_none());
    assert!(
        pods.subresource("exec")
            .is_some_and(|sub| sub.allows(Verb::Get))
    );
}
