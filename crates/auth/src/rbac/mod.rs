//! Authorization decisions without IO: who may do what.
//!
//! - [`Attributes`]: what a request asks (upstream's `authorizer.Attributes`).
//! - [`Policy`]: the RBAC objects of a cluster, parsed, with aggregated ClusterRoles resolved
//!   (ADR 0010): [`Policy::authorize`] answers a request, [`Policy::rules_for`] lists what a
//!   user may do (SelfSubjectRulesReview, escalation checks).
//! - [`node`]: the Node authorizer, which limits a node agent to its own objects.
//! - [`defaults`]: the bootstrap ClusterRoles and bindings every cluster starts with.
//! - [`authorize`]: the chain the API server runs: `system:masters`, then Node, then RBAC.

pub mod defaults;
pub mod node;
mod rules;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rudder_machinery::label_selector::LabelSelector;
use serde::Deserialize;
use serde_json::Value;

pub use rules::{Rule, uncovered};

use crate::UserInfo;

/// The group whose members may do everything (upstream's `system:masters`).
pub const SUPERUSER_GROUP: &str = "system:masters";
/// The API group of RBAC objects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What a request asks, as authorizers see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Who asks.
    pub user: UserInfo,
    /// The verb (`get`, `list`, `create`, `impersonate`, ...; for paths the lowercase method).
    pub verb: String,
    /// A request on a resource (else on a non-resource `path`).
    pub resource_request: bool,
    /// API group, `""` for core.
    pub api_group: String,
    /// Resource (plural).
    pub resource: String,
    /// Subresource, or `""`.
    pub subresource: String,
    /// Namespace, `""` for cluster scope or all namespaces.
    pub namespace: String,
    /// Object name, or `""`.
    pub name: String,
    /// The non-resource path.
    pub path: String,
}

impl Attributes {
    /// A resource request.
    pub fn resource(user: UserInfo, verb: &str, group: &str, resource: &str) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            resource_request: true,
            api_group: group.to_owned(),
            resource: resource.to_owned(),
            ..Default::default()
        }
    }

    /// A request on a non-resource path.
    pub fn path(user: UserInfo, verb: &str, path: &str) -> Self {
        Self {
            user,
            verb: verb.to_owned(),
            path: path.to_owned(),
            ..Default::default()
        }
    }

    /// With a namespace.
    #[must_use]
    pub fn in_namespace(mut self, ns: &str) -> Self {
        self.namespace = ns.to_owned();
        self
    }

    /// With an object name.
    #[must_use]
    pub fn named(mut self, name: &str) -> Self {
        self.name = name.to_owned();
        self
    }

    /// With a subresource.
    #[must_use]
    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_owned();
        self
    }

    /// Upstream's text for a refused request, without the `... is forbidden: ` prefix:
    /// `User "alice" cannot list resource "pods" in API group "" in the namespace "a"`.
    pub fn refusal(&self) -> String {
        let user = &self.user.name;
        let verb = &self.verb;
        if !self.resource_request {
            return format!("User {user:?} cannot {verb} path {:?}", self.path);
        }
        let resource = if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        };
        let group = &self.api_group;
        if self.namespace.is_empty() {
            format!(
                "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} at the cluster scope"
            )
        } else {
            format!(
                "User {user:?} cannot {verb} resource {resource:?} in API group {group:?} in the namespace {:?}",
                self.namespace
            )
        }
    }
}

/// An authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why (which binding allowed it, or why a node may not); may be empty.
    pub reason: String,
}

impl Decision {
    fn allow(reason: impl Into<String>) -> Self {
        Self {
            allowed: true,
            reason: reason.into(),
        }
    }

    fn no_opinion(reason: impl Into<String>) -> Self {
        Self {
            allowed: false,
            reason: reason.into(),
        }
    }
}

/// A subject of a binding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// The user, group or service-account name.
    pub name: String,
    /// The service account's namespace (the binding's when empty).
    pub namespace: String,
}

impl Subject {
    /// Whether the subject names `user`; `binding_ns` completes a service account's namespace.
    fn applies_to(&self, user: &UserInfo, binding_ns: &str) -> bool {
        match self.kind.as_str() {
            "User" => user.name == self.name,
            "Group" => user.groups.contains(&self.name),
            "ServiceAccount" => {
                let ns = if self.namespace.is_empty() {
                    binding_ns
                } else {
                    &self.namespace
                };
                user.name == format!("system:serviceaccount:{ns}:{}", self.name)
            }
            _ => false,
        }
    }
}

/// A binding's `roleRef`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// A RoleBinding (namespaced) or ClusterRoleBinding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// The binding's namespace; empty for a ClusterRoleBinding.
    pub namespace: String,
    /// The binding's name.
    pub name: String,
    /// The role it grants.
    pub role_ref: RoleRef,
    /// Whom it grants it to.
    pub subjects: Vec<Subject>,
}

impl Binding {
    /// Parses a RoleBinding or ClusterRoleBinding object.
    pub fn from_object(obj: &Value) -> Option<Self> {
        let meta = obj.get("metadata")?;
        Some(Self {
            namespace: str_at(meta, "namespace").to_owned(),
            name: str_at(meta, "name").to_owned(),
            role_ref: RoleRef::deserialize(obj.get("roleRef")?).ok()?,
            subjects: obj
                .get("subjects")
                .and_then(|s| Vec::<Subject>::deserialize(s).ok())
                .unwrap_or_default(),
        })
    }

    fn applies_to(&self, user: &UserInfo) -> bool {
        self.subjects
            .iter()
            .any(|s| s.applies_to(user, &self.namespace))
    }

    fn describe(&self, subject: &Subject) -> String {
        let kind = if self.namespace.is_empty() {
            format!("ClusterRoleBinding {:?}", self.name)
        } else {
            format!("RoleBinding \"{}/{}\"", self.namespace, self.name)
        };
        let role = if self.role_ref.kind == "Role" {
            format!("Role \"{}/{}\"", self.namespace, self.role_ref.name)
        } else {
            format!("ClusterRole {:?}", self.role_ref.name)
        };
        format!("{kind} of {role} to {} {:?}", subject.kind, subject.name)
    }
}

/// A Role or ClusterRole.
#[derive(Clone, Debug, Default)]
pub struct Role {
    /// Namespace; empty for a ClusterRole.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels (aggregation selects ClusterRoles by them).
    pub labels: BTreeMap<String, String>,
    /// The rules as stored.
    pub rules: Vec<Rule>,
    /// `aggregationRule.clusterRoleSelectors`, when the role aggregates others.
    pub aggregation: Option<Vec<LabelSelector>>,
}

impl Role {
    /// Parses a Role or ClusterRole object.
    pub fn from_object(obj: &Value) -> Option<Self> {
        let meta = obj.get("metadata")?;
        let labels = meta
            .get("labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let aggregation = obj
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
            .map(|sels| {
                sels.iter()
                    .filter_map(|s| LabelSelector::from_value(Some(s)).ok())
                    .collect()
            });
        Some(Self {
            namespace: str_at(meta, "namespace").to_owned(),
            name: str_at(meta, "name").to_owned(),
            labels,
            rules: parse_rules(obj.get("rules")),
            aggregation,
        })
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Parses a `rules` array; rules that are not objects are skipped.
pub fn parse_rules(v: Option<&Value>) -> Vec<Rule> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| Rule::deserialize(r).ok())
        .collect()
}

/// The RBAC objects of a cluster, ready to answer requests.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Rules of each Role, by (namespace, name).
    roles: HashMap<(String, String), Vec<Rule>>,
    /// Effective rules of each ClusterRole (aggregation resolved), by name.
    cluster_roles: HashMap<String, Vec<Rule>>,
    cluster_bindings: Vec<Binding>,
    /// RoleBindings by namespace.
    bindings: HashMap<String, Vec<Binding>>,
}

impl Policy {
    /// Builds the policy; an aggregating ClusterRole's rules become the union of the rules of
    /// the ClusterRoles its selectors match (transitively), as upstream's aggregation
    /// controller would write them.
    pub fn new(roles: Vec<Role>, bindings: Vec<Binding>) -> Self {
        let mut policy = Self::default();
        let (cluster, namespaced): (Vec<Role>, Vec<Role>) =
            roles.into_iter().partition(|r| r.namespace.is_empty());
        for r in namespaced {
            policy.roles.insert((r.namespace, r.name), r.rules);
        }
        let mut effective: HashMap<String, Vec<Rule>> = cluster
            .iter()
            .map(|r| (r.name.clone(), r.rules.clone()))
            .collect();
        // Each round folds in one more level of nesting; roles only grow, so this ends.
        for _ in 0..=cluster.len() {
            let mut changed = false;
            for role in &cluster {
                let Some(selectors) = &role.aggregation else {
                    continue;
                };
                let mut rules: BTreeSet<Rule> = BTreeSet::new();
                for other in &cluster {
                    if other.name != role.name && selectors.iter().any(|s| s.matches(&other.labels))
                    {
                        rules.extend(effective.get(&other.name).into_iter().flatten().cloned());
                    }
                }
                let rules: Vec<Rule> = rules.into_iter().collect();
                if effective.get(&role.name) != Some(&rules) {
                    effective.insert(role.name.clone(), rules);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        policy.cluster_roles = effective;
        for b in bindings {
            if b.namespace.is_empty() {
                policy.cluster_bindings.push(b);
            } else {
                policy
                    .bindings
                    .entry(b.namespace.clone())
                    .or_default()
                    .push(b);
            }
        }
        policy
    }

    /// The rules a binding's role grants (none when the role does not exist).
    fn granted(&self, b: &Binding) -> &[Rule] {
        let rules = match b.role_ref.kind.as_str() {
            "ClusterRole" => self.cluster_roles.get(&b.role_ref.name),
            "Role" if !b.namespace.is_empty() => self
                .roles
                .get(&(b.namespace.clone(), b.role_ref.name.clone())),
            _ => None,
        };
        rules.map_or(&[], Vec::as_slice)
    }

    /// The effective rules of a ClusterRole (`namespace` empty) or Role.
    pub fn role_rules(&self, namespace: &str, name: &str) -> Option<&[Rule]> {
        if namespace.is_empty() {
            self.cluster_roles.get(name).map(Vec::as_slice)
        } else {
            self.roles
                .get(&(namespace.to_owned(), name.to_owned()))
                .map(Vec::as_slice)
        }
    }

    /// Bindings that apply in `namespace`: every ClusterRoleBinding, then the namespace's
    /// RoleBindings.
    fn bindings_in<'a>(&'a self, namespace: &str) -> impl Iterator<Item = &'a Binding> {
        let local = if namespace.is_empty() {
            None
        } else {
            self.bindings.get(namespace)
        };
        self.cluster_bindings
            .iter()
            .chain(local.into_iter().flatten())
    }

    /// RBAC's answer: allowed when a binding for the user grants a matching rule.
    pub fn authorize(&self, attrs: &Attributes) -> Decision {
        for b in self.bindings_in(&attrs.namespace) {
            let Some(subject) = b
                .subjects
                .iter()
                .find(|s| s.applies_to(&attrs.user, &b.namespace))
            else {
                continue;
            };
            if self.granted(b).iter().any(|r| r.allows(attrs)) {
                return Decision::allow(format!("RBAC: allowed by {}", b.describe(subject)));
            }
        }
        Decision::no_opinion("")
    }

    /// Every rule granted to `user` in `namespace` (cluster-wide grants included).
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> Vec<Rule> {
        let mut out: Vec<Rule> = Vec::new();
        for b in self.bindings_in(namespace) {
            if b.applies_to(user) {
                for r in self.granted(b) {
                    if !out.contains(r) {
                        out.push(r.clone());
                    }
                }
            }
        }
        out
    }
}

/// Whether the user is in the superuser group.
pub fn is_superuser(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == SUPERUSER_GROUP)
}

/// The API server's chain (`--authorization-mode=Node,RBAC` behind the privileged group):
/// `system:masters` is allowed everything, a node is answered by the Node authorizer when it
/// has an opinion, then RBAC. A refusal carries the reasons given, joined as upstream does.
pub fn authorize(policy: &Policy, graph: &dyn node::NodeGraph, attrs: &Attributes) -> Decision {
    if is_superuser(&attrs.user) {
        return Decision::allow("");
    }
    let node = node::authorize(graph, attrs);
    if node.allowed {
        return node;
    }
    let rbac = policy.authorize(attrs);
    if rbac.allowed {
        return rbac;
    }
    let reasons: Vec<&str> = [node.reason.as_str(), rbac.reason.as_str()]
        .into_iter()
        .filter(|r| !r.is_empty())
        .collect();
    Decision::no_opinion(reasons.join(", "))
}
