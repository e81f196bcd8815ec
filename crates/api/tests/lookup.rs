//! Lookups over the table: kubectl names, discovery groups and versions, URL paths.

use rudder_api::{
    RESOURCES, ResourceInfo, by_kind, by_plural, by_singular, group_version, group_versions,
    groups, preferred_version, resolve,
};

#[test]
fn singular_names_and_kubectl_forms_resolve() {
    let cases: &[(&str, &str, &str)] = &[
        ("pod", "", "Pod"),
        ("endpoints", "", "Endpoints"),
        ("networkpolicy", "networking.k8s.io", "NetworkPolicy"),
        ("ingressclass", "networking.k8s.io", "IngressClass"),
        ("Deployment", "apps", "Deployment"),
        ("deployments.apps", "apps", "Deployment"),
        ("deploy.apps", "apps", "Deployment"),
        ("events.events.k8s.io", "events.k8s.io", "Event"),
        ("ev", "", "Event"),
        ("event", "", "Event"),
        (
            "customresourcedefinition",
            "apiextensions.k8s.io",
            "CustomResourceDefinition",
        ),
    ];
    for &(name, group, kind) in cases {
        let info = resolve(name).unwrap_or_else(|| panic!("{name}"));
        assert_eq!((info.group, info.kind), (group, kind), "{name}");
    }
    assert_eq!(by_singular("pod").map(|info| info.plural), Some("pods"));
    assert_eq!(
        resolve("hpa.v1.autoscaling").map(|info| info.version),
        Some("v1")
    );
    assert_eq!(resolve("hpa").map(|info| info.version), Some("v2"));
    for unknown in [
        "pod.apps",
        "foo",
        "",
        "deployments.v1beta1.apps",
        "nodes.v2",
    ] {
        assert_eq!(resolve(unknown), None, "{unknown}");
    }
    assert_eq!(by_plural("", "v1", "deployments"), None);
    assert_eq!(by_plural("apps", "v1beta1", "deployments"), None);
    assert_eq!(by_kind("apps", "Pod"), None);
}

#[test]
fn groups_follow_upstream_discovery_order() {
    let names: Vec<&str> = groups().iter().map(|group| group.name).collect();
    assert_eq!(
        names,
        [
            "",
            "apps",
            "events.k8s.io",
            "authentication.k8s.io",
            "authorization.k8s.io",
            "autoscaling",
            "batch",
            "certificates.k8s.io",
            "networking.k8s.io",
            "policy",
            "rbac.authorization.k8s.io",
            "storage.k8s.io",
            "admissionregistration.k8s.io",
            "apiextensions.k8s.io",
            "scheduling.k8s.io",
            "coordination.k8s.io",
            "discovery.k8s.io",
        ]
    );
    let preferred: Vec<(&str, Option<&str>)> = [
        ("", Some("v1")),
        ("autoscaling", Some("v2")),
        ("apps", Some("v1")),
        ("extensions", None),
    ]
    .to_vec();
    for (group, version) in preferred {
        assert_eq!(preferred_version(group), version, "{group:?}");
    }
    let autoscaling: Vec<&str> = group_versions()
        .filter(|gv| gv.group == "autoscaling")
        .map(|gv| gv.group_version)
        .collect();
    assert_eq!(autoscaling, ["autoscaling/v2", "autoscaling/v1"]);
}

#[test]
fn group_versions_list_every_row_once_sorted_by_plural() {
    let mut count = 0;
    for gv in group_versions() {
        let plurals: Vec<&str> = gv.resources.iter().map(|info| info.plural).collect();
        let mut sorted = plurals.clone();
        sorted.sort_unstable();
        assert_eq!(plurals, sorted, "{}", gv.group_version);
        for info in &gv.resources {
            assert_eq!((info.group, info.version), (gv.group, gv.version));
        }
        count += gv.resources.len();
    }
    assert_eq!(count, RESOURCES.len());
    let core: Vec<&str> = group_version("", "v1")
        .expect("core is served")
        .resources
        .iter()
        .map(|info| info.plural)
        .collect();
    assert_eq!(
        core,
        [
            "bindings",
            "componentstatuses",
            "configmaps",
            "endpoints",
            "events",
            "limitranges",
            "namespaces",
            "nodes",
            "persistentvolumeclaims",
            "persistentvolumes",
            "pods",
            "podtemplates",
            "replicationcontrollers",
            "resourcequotas",
            "secrets",
            "serviceaccounts",
            "services",
        ]
    );
    assert!(group_version("apps", "v1beta2").is_none());
}

#[test]
fn paths_and_group_resources() {
    let pods: &ResourceInfo = resolve("pods").expect("pods are served");
    assert_eq!(pods.group_version_path(), "/api/v1");
    assert_eq!(pods.group_resource(), "pods");
    let deployments = resolve("deployments").expect("deployments are served");
    assert_eq!(deployments.group_version_path(), "/apis/apps/v1");
    assert_eq!(deployments.group_resource(), "deployments.apps");
}
