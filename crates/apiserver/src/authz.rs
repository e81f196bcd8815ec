//! Authorization in the API server (ADR 0010): the request's attributes, the RBAC policy built
//! from the watch cache's copy of the four RBAC kinds (rebuilt only when they change), the Node
//! authorizer's view of pods, impersonation, and the admission checks that stop a user from
//! granting more than they hold. The decisions themselves are `rudder_auth::rbac`'s.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rudder_auth::UserInfo;
use rudder_auth::rbac::node::{self, NodeGraph, Used};
use rudder_auth::rbac::{self, Attributes, Binding, Decision, Policy, Role, Rule};
use serde_json::Value;

use crate::cache::WatchCache;
use crate::http::ApiRequest;
use crate::keys;
use crate::request_info::{Target, Verb};
use crate::resources::Resource;
use crate::server::ApiServer;
use crate::status::{ApiError, Details, qualified};

/// Where the four RBAC kinds live in the store.
const RBAC_PREFIX: &str = "/registry/rbac.authorization.k8s.io/";

/// The RBAC objects' identity at one moment: how many there are and the newest revision
/// among them. Any create, update or delete changes it.
type Fingerprint = (usize, u64);

/// The parsed policy, cached until the RBAC objects change.
#[derive(Default)]
pub(crate) struct Authz {
    current: Mutex<Option<(Fingerprint, Arc<Policy>)>>,
}

impl Authz {
    /// The policy as of the watch cache now; parsing happens only after an RBAC object changed.
    pub fn policy(&self, cache: &WatchCache) -> Arc<Policy> {
        let (objects, _, _) = cache.list(RBAC_PREFIX, None, 0, |_| true);
        let fingerprint = (
            objects.len(),
            objects.iter().map(|o| o.rev).max().unwrap_or(0),
        );
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((fp, policy)) = current.as_ref()
            && *fp == fingerprint
        {
            return policy.clone();
        }
        let mut roles = Vec::new();
        let mut bindings = Vec::new();
        for o in &objects {
            let Ok(value) = o.value() else { continue };
            let resource = o
                .key
                .strip_prefix(RBAC_PREFIX)
                .and_then(|r| r.split('/').next())
                .unwrap_or("");
            match resource {
                "roles" | "clusterroles" => roles.extend(Role::from_object(&value)),
                "rolebindings" | "clusterrolebindings" => {
                    bindings.extend(Binding::from_object(&value));
                }
                _ => {}
            }
        }
        let policy = Arc::new(Policy::new(roles, bindings));
        *current = Some((fingerprint, policy.clone()));
        policy
    }
}

/// The Node authorizer's view of the cluster: pods by node, from the watch cache.
struct CacheGraph<'a> {
    cache: &'a WatchCache,
}

impl CacheGraph<'_> {
    fn pods_on(&self, node: &str, ns: Option<&str>) -> Vec<Value> {
        let prefix = keys::collection_prefix("", "pods", ns);
        let (pods, _, _) = self
            .cache
            .list(&prefix, None, 0, |o| o.field("spec.nodeName") == node);
        pods.iter().filter_map(|p| p.value().ok()).collect()
    }
}

impl NodeGraph for CacheGraph<'_> {
    fn pod_node(&self, namespace: &str, name: &str) -> Option<String> {
        let pod = self
            .cache
            .get(&keys::object_key("", "pods", Some(namespace), name))?;
        Some(pod.field("spec.nodeName").to_owned())
    }

    fn used_by_node(&self, node: &str, kind: Used, namespace: &str, name: &str) -> bool {
        self.pods_on(node, Some(namespace))
            .iter()
            .any(|p| node::pod_uses(p, kind, name))
    }

    fn volume_used_by_node(&self, node: &str, name: &str) -> bool {
        self.pods_on(node, None).iter().any(|pod| {
            let ns = pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
            volumes.into_iter().flatten().any(|v| {
                let Some(claim) = v
                    .pointer("/persistentVolumeClaim/claimName")
                    .and_then(Value::as_str)
                else {
                    return false;
                };
                self.cache
                    .get(&keys::object_key(
                        "",
                        "persistentvolumeclaims",
                        Some(ns),
                        claim,
                    ))
                    .and_then(|c| c.value().ok())
                    .is_some_and(|c| {
                        c.pointer("/spec/volumeName").and_then(Value::as_str) == Some(name)
                    })
            })
        })
    }
}

/// The authorizers' answer as of the cache now.
fn decide_now(server: &ApiServer, attrs: &Attributes) -> Decision {
    let policy = server.authz.policy(&server.cache);
    let graph = CacheGraph {
        cache: &server.cache,
    };
    rbac::authorize(&policy, &graph, attrs)
}

/// The authorizers' answer. A refusal is checked again once the cache has caught up with the
/// store, so a grant (or a pod binding) acknowledged just before is always seen.
pub(crate) async fn decide(server: &ApiServer, attrs: &Attributes) -> Result<Decision, ApiError> {
    let first = decide_now(server, attrs);
    if first.allowed {
        return Ok(first);
    }
    server.cache.sync().await?;
    Ok(decide_now(server, attrs))
}

/// Every RBAC rule `user` holds in `namespace` (the current cache).
pub(crate) fn rules_for(server: &ApiServer, user: &UserInfo, namespace: &str) -> Vec<Rule> {
    server
        .authz
        .policy(&server.cache)
        .rules_for(user, namespace)
}

/// 403 for a refused request, in upstream's words.
pub(crate) fn forbidden(attrs: &Attributes, reason: &str) -> ApiError {
    let mut why = attrs.refusal();
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    forbidden_because(attrs, &why)
}

/// 403 naming the request's resource and object, with `why`.
fn forbidden_because(attrs: &Attributes, why: &str) -> ApiError {
    if !attrs.resource_request {
        return ApiError::forbidden(format!("forbidden: {why}"));
    }
    let gr = qualified(&attrs.api_group, &attrs.resource);
    let message = if attrs.name.is_empty() {
        format!("{gr} is forbidden: {why}")
    } else {
        format!("{gr} {:?} is forbidden: {why}", attrs.name)
    };
    let mut e = ApiError::forbidden(message);
    e.details = Some(Box::new(Details {
        group: attrs.api_group.clone(),
        kind: attrs.resource.clone(),
        name: attrs.name.clone(),
        causes: Vec::new(),
    }));
    e
}

/// Fails with a 403 unless the authorizers allow `attrs`.
pub(crate) async fn require(server: &ApiServer, attrs: &Attributes) -> Result<(), ApiError> {
    let d = decide(server, attrs).await?;
    if d.allowed {
        Ok(())
    } else {
        tracing::debug!(user = %attrs.user.name, verb = %attrs.verb, resource = %attrs.resource, path = %attrs.path, "forbidden");
        Err(forbidden(attrs, &d.reason))
    }
}

/// The object a list or watch is narrowed to by `fieldSelector=metadata.name=X` (what a
/// client watching one object sends), as upstream's request info reads it.
fn selected_name(query: &HashMap<String, String>) -> Option<String> {
    let selector = query.get("fieldSelector")?;
    selector.split(',').find_map(|term| {
        let (k, v) = term.split_once("==").or_else(|| term.split_once('='))?;
        (k.trim() == "metadata.name" && !k.ends_with('!')).then(|| v.trim().to_owned())
    })
}

/// What the request asks of the authorizers.
pub(crate) fn attributes(
    user: &UserInfo,
    method: &str,
    path: &str,
    target: &Target,
    query: &HashMap<String, String>,
) -> Attributes {
    let Target::Resource(r) = target else {
        let verb = if method == "HEAD" {
            "get".to_owned()
        } else {
            method.to_ascii_lowercase()
        };
        let path = if path.len() > 1 {
            path.trim_end_matches('/')
        } else {
            path
        };
        return Attributes::path(user.clone(), &verb, path);
    };
    let sub = r.subresource.as_deref().unwrap_or("");
    // Upstream checks `create` for the streaming subresources whatever the method, so a
    // websocket GET needs the same permission as the SPDY POST.
    let verb = match (r.verb, sub) {
        (Verb::Get | Verb::Create, "exec" | "attach" | "portforward") => "create",
        (v, _) => v.as_str(),
    };
    let mut attrs =
        Attributes::resource(user.clone(), verb, &r.group, &r.resource).subresource(sub);
    let mut name = r.name.clone().unwrap_or_default();
    if name.is_empty() && matches!(r.verb, Verb::List | Verb::Watch) {
        name = selected_name(query).unwrap_or_default();
    }
    attrs.name = name;
    attrs.namespace = match (&r.namespace, r.resource.as_str(), &r.name) {
        (Some(ns), _, _) => ns.clone(),
        // A namespace is in its own scope: a RoleBinding in `a` may grant reading namespace `a`.
        (None, "namespaces", Some(n)) if r.group.is_empty() => n.clone(),
        _ => String::new(),
    };
    attrs
}

const IMPERSONATE_USER: &str = "impersonate-user";
const IMPERSONATE_GROUP: &str = "impersonate-group";
const IMPERSONATE_UID: &str = "impersonate-uid";
const IMPERSONATE_EXTRA: &str = "impersonate-extra-";

/// Replaces the request's user by the one its `Impersonate-*` headers name, after checking
/// that the requester may `impersonate` each part (user or service account, every group, the
/// uid, every extra value), as upstream's impersonation filter does.
pub(crate) async fn impersonate(server: &ApiServer, req: &mut ApiRequest) -> Result<(), ApiError> {
    let headers = &req.parts.headers;
    let text = |v: &http::HeaderValue| v.to_str().unwrap_or("").to_owned();
    let name = headers.get(IMPERSONATE_USER).map(text);
    let groups: Vec<String> = headers
        .get_all(IMPERSONATE_GROUP)
        .iter()
        .map(text)
        .collect();
    let uid = headers.get(IMPERSONATE_UID).map(text);
    let mut extra: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(IMPERSONATE_EXTRA) {
            let key = rudder_machinery::query::decode(key);
            extra.entry(key).or_default().push(text(v));
        }
    }
    let Some(name) = name else {
        if groups.is_empty() && uid.is_none() && extra.is_empty() {
            return Ok(());
        }
        return Err(ApiError::bad_request(format!(
            "requested {} without impersonating a user",
            describe_without_user(&groups, uid.as_deref(), &extra)
        )));
    };
    let actor = req
        .parts
        .extensions
        .get::<UserInfo>()
        .cloned()
        .ok_or_else(ApiError::unauthorized)?;
    let mut checks = Vec::new();
    let mut groups = groups;
    let core = |resource: &str, name: &str| {
        Attributes::resource(actor.clone(), "impersonate", "", resource).named(name)
    };
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, sa)) => {
            checks.push(core("serviceaccounts", sa).in_namespace(ns));
            // A service account's groups are known; they come with it unless named.
            if groups.is_empty() {
                groups = vec![
                    "system:serviceaccounts".to_owned(),
                    format!("system:serviceaccounts:{ns}"),
                ];
            } else {
                checks.extend(groups.iter().map(|g| core("groups", g)));
            }
        }
        None => {
            checks.push(core("users", &name));
            checks.extend(groups.iter().map(|g| core("groups", g)));
        }
    }
    let auth_group = "authentication.k8s.io";
    if let Some(u) = &uid {
        checks
            .push(Attributes::resource(actor.clone(), "impersonate", auth_group, "uids").named(u));
    }
    for (k, values) in &extra {
        for v in values {
            checks.push(
                Attributes::resource(actor.clone(), "impersonate", auth_group, "userextras")
                    .subresource(k)
                    .named(v),
            );
        }
    }
    for attrs in &checks {
        require(server, attrs).await?;
    }
    let add = if name == rudder_auth::ANONYMOUS {
        rudder_auth::ALL_UNAUTHENTICATED
    } else {
        rudder_auth::ALL_AUTHENTICATED
    };
    if !groups
        .iter()
        .any(|g| g == rudder_auth::ALL_AUTHENTICATED || g == rudder_auth::ALL_UNAUTHENTICATED)
    {
        groups.push(add.to_owned());
    }
    let user = UserInfo {
        name,
        uid: uid.unwrap_or_default(),
        groups,
        extra,
    };
    tracing::debug!(actor = %actor.name, as_user = %user.name, "impersonating");
    req.parts.extensions.insert(user);
    Ok(())
}

fn describe_without_user(
    groups: &[String],
    uid: Option<&str>,
    extra: &std::collections::BTreeMap<String, Vec<String>>,
) -> String {
    let mut parts = Vec::new();
    if !groups.is_empty() {
        parts.push(format!("groups {groups:?}"));
    }
    if let Some(u) = uid {
        parts.push(format!("uid {u:?}"));
    }
    if !extra.is_empty() {
        parts.push(format!("extra {extra:?}"));
    }
    parts.join(", ")
}

/// Upstream's compact form of a rule in escalation messages.
fn compact(rule: &Rule) -> String {
    let list = |v: &[String]| {
        let quoted: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
        format!("[{}]", quoted.join(" "))
    };
    let mut parts = Vec::new();
    if !rule.api_groups.is_empty() {
        parts.push(format!("APIGroups:{}", list(&rule.api_groups)));
    }
    if !rule.resources.is_empty() {
        parts.push(format!("Resources:{}", list(&rule.resources)));
    }
    if !rule.resource_names.is_empty() {
        parts.push(format!("ResourceNames:{}", list(&rule.resource_names)));
    }
    if !rule.non_resource_urls.is_empty() {
        parts.push(format!("NonResourceURLs:{}", list(&rule.non_resource_urls)));
    }
    parts.push(format!("Verbs:{}", list(&rule.verbs)));
    format!("{{{}}}", parts.join(", "))
}

/// Checks a Role, ClusterRole or binding about to be written against its writer's own
/// rights, and a node's Node, Lease or DNS EndpointSlice against its name (upstream's
/// NodeRestriction). `obj` is the object as it will be stored.
pub(crate) async fn admit(
    server: &ApiServer,
    req: &ApiRequest,
    resource: &Resource,
    obj: &Value,
) -> Result<(), ApiError> {
    let Some(user) = req.parts.extensions.get::<UserInfo>() else {
        return Ok(());
    };
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    if let Some(node) = node::node_name(user) {
        let own = node::own_object_name(&resource.group, &resource.plural, node);
        if own.is_some_and(|own| name != own) {
            return Err(ApiError::forbidden(format!(
                "{} {name:?} is forbidden: node {node:?} is not allowed to modify {} {name:?}",
                qualified(&resource.group, &resource.plural),
                resource.kind.to_ascii_lowercase(),
            )));
        }
    }
    if resource.group != rbac::RBAC_GROUP || rbac::is_superuser(user) {
        return Ok(());
    }
    let attrs = |verb: &str, plural: &str, name: &str, ns: &str| {
        Attributes::resource(user.clone(), verb, rbac::RBAC_GROUP, plural)
            .named(name)
            .in_namespace(ns)
    };
    let target = attrs("create", &resource.plural, name, ns);
    let wanted: Vec<Rule> = match resource.plural.as_str() {
        "roles" | "clusterroles" => {
            if decide(server, &attrs("escalate", &resource.plural, name, ns))
                .await?
                .allowed
            {
                return Ok(());
            }
            if obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                return Err(forbidden_because(
                    &target,
                    "must have cluster-admin privileges to use an aggregationRule",
                ));
            }
            rbac::parse_rules(obj.get("rules"))
        }
        "rolebindings" | "clusterrolebindings" => {
            let kind = obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or("");
            let role = obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let plural = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            if decide(server, &attrs("bind", plural, role, ns))
                .await?
                .allowed
            {
                return Ok(());
            }
            let role_ns = if kind == "Role" { ns } else { "" };
            let policy = server.authz.policy(&server.cache);
            policy
                .role_rules(role_ns, role)
                .map(<[Rule]>::to_vec)
                .unwrap_or_default()
        }
        _ => return Ok(()),
    };
    let mut missing = rbac::uncovered(&rules_for(server, user, ns), &wanted);
    if !missing.is_empty() {
        server.cache.sync().await?;
        missing = rbac::uncovered(&rules_for(server, user, ns), &wanted);
    }
    if missing.is_empty() {
        return Ok(());
    }
    let listed: Vec<String> = missing.iter().map(compact).collect();
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    Err(forbidden_because(
        &target,
        &format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            user.name,
            groups.join(" "),
            listed.join("\n")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_info::{parse, parse_query};

    #[test]
    fn request_attributes_table() {
        let u = UserInfo::new("u", vec![]);
        // (method, path, query, verb, resource, sub, namespace, name, path attr)
        let cases = [
            (
                "GET",
                "/api/v1/namespaces/a/pods",
                "",
                "list",
                "pods",
                "",
                "a",
                "",
                "",
            ),
            (
                "GET",
                "/api/v1/pods",
                "watch=true",
                "watch",
                "pods",
                "",
                "",
                "",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/p",
                "",
                "get",
                "pods",
                "",
                "a",
                "p",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/p/log",
                "",
                "get",
                "pods",
                "log",
                "a",
                "p",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/p/exec",
                "command=ls",
                "create",
                "pods",
                "exec",
                "a",
                "p",
                "",
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods/p/portforward",
                "",
                "create",
                "pods",
                "portforward",
                "a",
                "p",
                "",
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/configmaps",
                "",
                "deletecollection",
                "configmaps",
                "",
                "a",
                "",
                "",
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                "",
                "patch",
                "deployments",
                "scale",
                "a",
                "d",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/a",
                "",
                "get",
                "namespaces",
                "",
                "a",
                "a",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces",
                "",
                "list",
                "namespaces",
                "",
                "",
                "",
                "",
            ),
            (
                "GET",
                "/api/v1/namespaces/a/secrets",
                "fieldSelector=metadata.name%3Ds&watch=1",
                "watch",
                "secrets",
                "",
                "a",
                "s",
                "",
            ),
            (
                "GET",
                "/api/v1/nodes",
                "fieldSelector=metadata.name!%3Dn",
                "list",
                "nodes",
                "",
                "",
                "",
                "",
            ),
            ("GET", "/apis/", "", "get", "", "", "", "", "/apis"),
            ("GET", "/healthz", "", "get", "", "", "", "", "/healthz"),
            ("HEAD", "/version", "", "get", "", "", "", "", "/version"),
        ];
        for (method, path, query, verb, resource, sub, ns, name, p) in cases {
            let q = parse_query(Some(query));
            let target = parse(method, path, &q).expect(path);
            let a = attributes(&u, method, path, &target, &q);
            assert_eq!(
                (
                    a.verb.as_str(),
                    a.resource.as_str(),
                    a.subresource.as_str(),
                    a.namespace.as_str(),
                    a.name.as_str(),
                    a.path.as_str()
                ),
                (verb, resource, sub, ns, name, p),
                "{method} {path}?{query}"
            );
            assert_eq!(a.resource_request, p.is_empty(), "{path}");
        }
    }

    #[test]
    fn forbidden_messages_table() {
        let u = UserInfo::new("alice", vec![]);
        let cases = [
            (
                Attributes::resource(u.clone(), "list", "", "pods").in_namespace("default"),
                "",
                r#"pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace "default""#,
            ),
            (
                Attributes::resource(u.clone(), "delete", "", "nodes").named("n2"),
                "why not",
                r#"nodes "n2" is forbidden: User "alice" cannot delete resource "nodes" in API group "" at the cluster scope: why not"#,
            ),
            (
                Attributes::resource(u.clone(), "get", "apps", "deployments")
                    .named("d")
                    .in_namespace("a"),
                "",
                r#"deployments.apps "d" is forbidden: User "alice" cannot get resource "deployments" in API group "apps" in the namespace "a""#,
            ),
            (
                Attributes::path(u.clone(), "get", "/metrics"),
                "",
                r#"forbidden: User "alice" cannot get path "/metrics""#,
            ),
        ];
        for (attrs, reason, want) in cases {
            let e = forbidden(&attrs, reason);
            assert_eq!(
                (e.code, e.reason, e.message.as_str()),
                (403, "Forbidden", want)
            );
        }
    }

    #[test]
    fn compact_rules() {
        let r = Rule::resource(&["get"], &[""], &["secrets"]).names(&["s"]);
        assert_eq!(
            compact(&r),
            r#"{APIGroups:[""], Resources:["secrets"], ResourceNames:["s"], Verbs:["get"]}"#
        );
        assert_eq!(
            compact(&Rule::urls(&["get"], &["/x"])),
            r#"{NonResourceURLs:["/x"], Verbs:["get"]}"#
        );
    }
}
