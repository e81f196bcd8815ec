//! The resource table against upstream values: names, scope, verbs, categories, list kinds.

use std::collections::{BTreeSet, HashMap};

use rudder_api::{
    RESOURCES, Verb, by_api_version_kind, by_gvk, by_kind, by_plural, by_short_name, in_category,
    preferred_version, resolve, split_api_version,
};

/// (name kubectl accepts, group, version, kind, plural, namespaced), as upstream reports them.
const NAMES: &[(&str, &str, &str, &str, &str, bool)] = &[
    ("po", "", "v1", "Pod", "pods", true),
    ("svc", "", "v1", "Service", "services", true),
    ("ep", "", "v1", "Endpoints", "endpoints", true),
    ("cm", "", "v1", "ConfigMap", "configmaps", true),
    ("ns", "", "v1", "Namespace", "namespaces", false),
    ("no", "", "v1", "Node", "nodes", false),
    ("ev", "", "v1", "Event", "events", true),
    ("sa", "", "v1", "ServiceAccount", "serviceaccounts", true),
    (
        "pv",
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
    ),
    (
        "pvc",
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    (
        "rc",
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    ("quota", "", "v1", "ResourceQuota", "resourcequotas", true),
    ("limits", "", "v1", "LimitRange", "limitranges", true),
    (
        "cs",
        "",
        "v1",
        "ComponentStatus",
        "componentstatuses",
        false,
    ),
    ("deploy", "apps", "v1", "Deployment", "deployments", true),
    ("rs", "apps", "v1", "ReplicaSet", "replicasets", true),
    ("sts", "apps", "v1", "StatefulSet", "statefulsets", true),
    ("ds", "apps", "v1", "DaemonSet", "daemonsets", true),
    ("cj", "batch", "v1", "CronJob", "cronjobs", true),
    (
        "hpa",
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "ing",
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
    ),
    (
        "netpol",
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
    ),
    (
        "pdb",
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "pc",
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
    ),
    (
        "sc",
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
    ),
    (
        "crd",
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "crds",
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
    ),
    (
        "csr",
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        false,
    ),
];

#[test]
fn short_names_resolve_to_upstream_rows() {
    for &(short, group, version, kind, plural, namespaced) in NAMES {
        let info = by_short_name(short).unwrap_or_else(|| panic!("short name {short}"));
        assert_eq!(
            (
                info.group,
                info.version,
                info.kind,
                info.plural,
                info.namespaced
            ),
            (group, version, kind, plural, namespaced),
            "{short}"
        );
        assert!(info.short_names.contains(&short), "{short}");
        assert_eq!(resolve(short), Some(info), "resolve {short}");
        assert_eq!(resolve(plural), Some(info), "resolve {plural}");
        assert_eq!(by_plural(group, version, plural), Some(info), "{plural}");
        assert_eq!(by_kind(group, kind), Some(info), "{kind}");
        assert_eq!(by_gvk(group, version, kind), Some(info), "{kind}");
        assert_eq!(
            by_api_version_kind(info.api_version, kind),
            Some(info),
            "{kind}"
        );
    }
}

#[test]
fn every_upstream_short_name_is_present() {
    let expected: BTreeSet<&str> = [
        "cm", "cj", "crd", "crds", "cs", "csr", "deploy", "ds", "ep", "ev", "hpa", "ing", "limits",
        "netpol", "no", "ns", "pc", "pdb", "po", "pv", "pvc", "quota", "rc", "rs", "sa", "sc",
        "sts", "svc",
    ]
    .into_iter()
    .collect();
    let actual: BTreeSet<&str> = RESOURCES
        .iter()
        .flat_map(|info| info.short_names.iter().copied())
        .collect();
    assert_eq!(actual, expected);
}

#[test]
fn api_versions_and_plurals_match_upstream() {
    // (apiVersion, kind, plural, namespaced, list kind)
    let cases: &[(&str, &str, &str, bool, Option<&str>)] = &[
        ("v1", "Binding", "bindings", true, None),
        ("v1", "Secret", "secrets", true, Some("SecretList")),
        (
            "v1",
            "PodTemplate",
            "podtemplates",
            true,
            Some("PodTemplateList"),
        ),
        (
            "apps/v1",
            "ControllerRevision",
            "controllerrevisions",
            true,
            Some("ControllerRevisionList"),
        ),
        ("batch/v1", "Job", "jobs", true, Some("JobList")),
        (
            "autoscaling/v1",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            Some("HorizontalPodAutoscalerList"),
        ),
        (
            "networking.k8s.io/v1",
            "IngressClass",
            "ingressclasses",
            false,
            Some("IngressClassList"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "Role",
            "roles",
            true,
            Some("RoleList"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            "clusterroles",
            false,
            Some("ClusterRoleList"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "RoleBinding",
            "rolebindings",
            true,
            Some("RoleBindingList"),
        ),
        (
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            Some("ClusterRoleBindingList"),
        ),
        (
            "coordination.k8s.io/v1",
            "Lease",
            "leases",
            true,
            Some("LeaseList"),
        ),
        (
            "discovery.k8s.io/v1",
            "EndpointSlice",
            "endpointslices",
            true,
            Some("EndpointSliceList"),
        ),
        (
            "events.k8s.io/v1",
            "Event",
            "events",
            true,
            Some("EventList"),
        ),
        (
            "storage.k8s.io/v1",
            "CSIDriver",
            "csidrivers",
            false,
            Some("CSIDriverList"),
        ),
        (
            "storage.k8s.io/v1",
            "CSINode",
            "csinodes",
            false,
            Some("CSINodeList"),
        ),
        (
            "storage.k8s.io/v1",
            "VolumeAttachment",
            "volumeattachments",
            false,
            Some("VolumeAttachmentList"),
        ),
        (
            "storage.k8s.io/v1",
            "CSIStorageCapacity",
            "csistoragecapacities",
            true,
            Some("CSIStorageCapacityList"),
        ),
        (
            "authorization.k8s.io/v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
            None,
        ),
        (
            "authorization.k8s.io/v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
            None,
        ),
        (
            "authorization.k8s.io/v1",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
            None,
        ),
        (
            "authorization.k8s.io/v1",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
            None,
        ),
        (
            "authentication.k8s.io/v1",
            "TokenReview",
            "tokenreviews",
            false,
            None,
        ),
        (
            "authentication.k8s.io/v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
            None,
        ),
    ];
    for &(api_version, kind, plural, namespaced, list_kind) in cases {
        let info = by_api_version_kind(api_version, kind)
            .unwrap_or_else(|| panic!("{api_version} {kind}"));
        assert_eq!(
            (info.plural, info.namespaced, info.list_kind),
            (plural, namespaced, list_kind),
            "{api_version} {kind}"
        );
        let (group, version) = split_api_version(api_version);
        assert_eq!(by_plural(group, version, plural), Some(info));
    }
}

#[test]
fn cluster_scoped_resources() {
    let cluster_scoped: BTreeSet<&str> = RESOURCES
        .iter()
        .filter(|info| !info.namespaced)
        .map(|info| info.plural)
        .collect();
    let expected: BTreeSet<&str> = [
        "certificatesigningrequests",
        "clusterrolebindings",
        "clusterroles",
        "componentstatuses",
        "csidrivers",
        "csinodes",
        "customresourcedefinitions",
        "ingressclasses",
        "mutatingwebhookconfigurations",
        "namespaces",
        "nodes",
        "persistentvolumes",
        "priorityclasses",
        "selfsubjectaccessreviews",
        "selfsubjectreviews",
        "selfsubjectrulesreviews",
        "storageclasses",
        "subjectaccessreviews",
        "tokenreviews",
        "validatingadmissionpolicies",
        "validatingadmissionpolicybindings",
        "validatingwebhookconfigurations",
        "volumeattachments",
    ]
    .into_iter()
    .collect();
    assert_eq!(cluster_scoped, expected);
}

#[test]
fn verbs_match_upstream() {
    let cases: &[(&str, &str, &[Verb])] = &[
        ("", "pods", Verb::STANDARD),
        ("", "services", Verb::STANDARD),
        ("", "events", Verb::STANDARD),
        ("", "namespaces", Verb::NO_DELETE_COLLECTION),
        ("", "bindings", &[Verb::Create]),
        ("", "componentstatuses", &[Verb::Get, Verb::List]),
        ("authentication.k8s.io", "tokenreviews", &[Verb::Create]),
        (
            "authorization.k8s.io",
            "subjectaccessreviews",
            &[Verb::Create],
        ),
        (
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            &[Verb::Create],
        ),
        ("apps", "deployments", Verb::STANDARD),
        (
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            Verb::STANDARD,
        ),
    ];
    for &(group, plural, verbs) in cases {
        let version = preferred_version(group).expect("group is served");
        let info = by_plural(group, version, plural).expect("resource is served");
        assert_eq!(info.verbs, verbs, "{plural}");
    }
    let strings: Vec<&str> = Verb::STANDARD.iter().map(|verb| verb.as_str()).collect();
    assert_eq!(
        strings,
        [
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]
    );
    for verb in Verb::STANDARD {
        assert_eq!(verb.to_string().parse::<Verb>(), Ok(*verb));
    }
    assert!("escalate".parse::<Verb>().is_err());
}

#[test]
fn category_all_is_exactly_the_upstream_set() {
    let all: Vec<String> = RESOURCES
        .iter()
        .filter(|info| info.categories.contains(&"all"))
        .map(|info| format!("{}/{}", info.api_version, info.plural))
        .collect();
    assert_eq!(
        all,
        [
            "v1/pods",
            "v1/replicationcontrollers",
            "v1/services",
            "apps/v1/daemonsets",
            "apps/v1/deployments",
            "apps/v1/replicasets",
            "apps/v1/statefulsets",
            "autoscaling/v2/horizontalpodautoscalers",
            "autoscaling/v1/horizontalpodautoscalers",
            "batch/v1/cronjobs",
            "batch/v1/jobs",
        ]
    );
    // `kubectl get all` takes preferred versions only.
    let preferred: Vec<&str> = in_category("all").iter().map(|info| info.plural).collect();
    assert_eq!(
        preferred,
        [
            "pods",
            "replicationcontrollers",
            "services",
            "daemonsets",
            "deployments",
            "replicasets",
            "statefulsets",
            "horizontalpodautoscalers",
            "cronjobs",
            "jobs",
        ]
    );
    let extensions: Vec<&str> = in_category("api-extensions")
        .iter()
        .map(|info| info.plural)
        .collect();
    assert_eq!(
        extensions,
        [
            "mutatingwebhookconfigurations",
            "validatingadmissionpolicies",
            "validatingadmissionpolicybindings",
            "validatingwebhookconfigurations",
            "customresourcedefinitions"
        ]
    );
}

#[test]
fn rows_are_consistent() {
    let mut seen = HashMap::new();
    for info in RESOURCES {
        assert_eq!(
            info.singular,
            info.kind.to_ascii_lowercase(),
            "{}",
            info.kind
        );
        assert_eq!(
            info.list_kind.is_some(),
            info.allows(Verb::List),
            "{}: listable iff it serves list",
            info.kind
        );
        if let Some(list_kind) = info.list_kind {
            assert_eq!(list_kind, format!("{}List", info.kind));
        }
        let expected_api_version = if info.group.is_empty() {
            info.version.to_owned()
        } else {
            format!("{}/{}", info.group, info.version)
        };
        assert_eq!(info.api_version, expected_api_version);
        assert!(
            seen.insert((info.group, info.version, info.plural), info.kind)
                .is_none(),
            "{} served twice",
            info.plural
        );
        let mut names: Vec<&str> = info.subresources.iter().map(|sub| sub.name).collect();
        names.dedup();
        assert_eq!(names.len(), info.subresources.len(), "{}", info.plural);
    }
}
