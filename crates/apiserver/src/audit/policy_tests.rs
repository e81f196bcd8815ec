//! Table tests of audit policy matching, after upstream's checker tests.

use rudder_auth::UserInfo;

use super::*;

const POLICY: &str = r#"
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: None
  users: ["system:kube-proxy"]
  verbs: [watch]
- level: None
  nonResourceURLs: ["/healthz*", "/version"]
- level: Metadata
  resources:
  - group: ""
    resources: [secrets]
- level: RequestResponse
  omitStages: [ResponseStarted]
  resources:
  - group: ""
    resources: [configmaps]
    resourceNames: [audited]
- level: Request
  resources:
  - group: ""
    resources: ["pods/log", "*/status"]
- level: Request
  resources:
  - group: "apps"
    resources: ["deployments/*"]
- level: Metadata
  userGroups: [devs]
  namespaces: ["team-a", ""]
- level: Request
  verbs: [create]
  omitManagedFields: true
"#;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name, groups.iter().map(|g| g.to_string()).collect())
}

fn res(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    let mut a = Attributes::resource(
        user("alice", &["system:authenticated"]),
        verb,
        group,
        resource,
    )
    .subresource(sub);
    a.namespace = ns.to_owned();
    a.name = name.to_owned();
    a
}

#[test]
fn levels_table() {
    let p = Policy::parse(POLICY).expect("valid policy");
    let with_user = |mut a: Attributes, u: UserInfo| {
        a.user = u;
        a
    };
    let cases = [
        (
            "proxy watches are not logged",
            with_user(
                res("watch", "", "endpoints", "", "", ""),
                user("system:kube-proxy", &[]),
            ),
            Level::None,
        ),
        (
            "but its gets are (falls to later rules: none match)",
            with_user(
                res("get", "", "endpoints", "", "x", "e"),
                user("system:kube-proxy", &[]),
            ),
            Level::None,
        ),
        (
            "health paths",
            Attributes::path(user("a", &[]), "get", "/healthz/etcd"),
            Level::None,
        ),
        (
            "exact path",
            Attributes::path(user("a", &[]), "get", "/version"),
            Level::None,
        ),
        (
            "secrets at metadata",
            res("get", "", "secrets", "", "default", "s"),
            Level::Metadata,
        ),
        (
            "secrets in another group do not match",
            res("get", "x.io", "secrets", "", "d", "s"),
            Level::None,
        ),
        (
            "named configmap",
            res("update", "", "configmaps", "", "d", "audited"),
            Level::RequestResponse,
        ),
        (
            "other configmap",
            res("update", "", "configmaps", "", "d", "other"),
            Level::None,
        ),
        (
            "subresource listed",
            res("get", "", "pods", "log", "d", "p"),
            Level::Request,
        ),
        (
            "pods themselves are not pods/log",
            res("get", "", "pods", "", "d", "p"),
            Level::None,
        ),
        (
            "*/status",
            res("update", "", "nodes", "status", "", "n"),
            Level::Request,
        ),
        (
            "deployments/* matches the resource",
            res("get", "apps", "deployments", "", "d", "x"),
            Level::Request,
        ),
        (
            "and its subresources",
            res("get", "apps", "deployments", "scale", "d", "x"),
            Level::Request,
        ),
        (
            "group rule, namespaced",
            with_user(
                res("list", "", "pods", "", "team-a", ""),
                user("bob", &["devs"]),
            ),
            Level::Metadata,
        ),
        (
            "group rule, cluster scope via \"\"",
            with_user(res("list", "", "nodes", "", "", ""), user("bob", &["devs"])),
            Level::Metadata,
        ),
        (
            "group rule, other namespace",
            with_user(
                res("list", "", "pods", "", "team-b", ""),
                user("bob", &["devs"]),
            ),
            Level::None,
        ),
        (
            "a namespaces rule never matches paths",
            with_user(
                Attributes::path(user("bob", &[]), "get", "/apis"),
                user("bob", &["devs"]),
            ),
            Level::None,
        ),
        (
            "catch-all on verb",
            res("create", "", "services", "", "d", ""),
            Level::Request,
        ),
        (
            "verb rules match paths too",
            Attributes::path(user("a", &[]), "create", "/x"),
            Level::Request,
        ),
    ];
    for (what, attrs, want) in cases {
        assert_eq!(p.decide(&attrs).level, want, "{what}");
    }
}

#[test]
fn stages_and_managed_fields() {
    let p = Policy::parse(POLICY).expect("valid policy");
    let d = p.decide(&res("update", "", "configmaps", "", "d", "audited"));
    assert!(!d.records(Stage::RequestReceived), "policy-wide omitStages");
    assert!(!d.records(Stage::ResponseStarted), "the rule's omitStages");
    assert!(d.records(Stage::ResponseComplete));
    assert!(!d.omit_managed_fields);
    assert!(
        p.decide(&res("create", "", "services", "", "d", ""))
            .omit_managed_fields
    );
    let none = p.decide(&res("get", "", "pods", "", "d", "p"));
    assert!(
        !none.records(Stage::ResponseComplete),
        "level None records nothing"
    );
}

#[test]
fn policy_wide_managed_fields_and_rule_override() {
    let p = Policy::parse(
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitManagedFields: true\nrules:\n- level: Request\n  verbs: [get]\n  omitManagedFields: false\n- level: Request\n",
    )
    .expect("valid");
    assert!(
        !p.decide(&res("get", "", "pods", "", "d", "p"))
            .omit_managed_fields
    );
    assert!(
        p.decide(&res("list", "", "pods", "", "d", ""))
            .omit_managed_fields
    );
}

#[test]
fn invalid_policies_table() {
    let cases = [
        (
            "apiVersion: v1\nkind: Policy\nrules: [{level: None}]",
            "audit.k8s.io/v1",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: []",
            "at least one rule",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: Everything}]",
            "unknown level",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, omitStages: [Later]}]",
            "unknown stage",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['/x'], namespaces: [a]}]",
            "not both",
        ),
        (
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules: [{level: None, nonResourceURLs: ['x']}]",
            "must start with '/'",
        ),
        ("{{{", "not YAML"),
    ];
    for (text, want) in cases {
        let err = Policy::parse(text).expect_err(text).to_string();
        assert!(err.contains(want), "{text} → {err}");
    }
}
