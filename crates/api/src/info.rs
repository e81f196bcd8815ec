//! The data types of the resource table: [`ResourceInfo`], [`Verb`] and [`Subresource`].

use std::fmt;
use std::str::FromStr;

use k8s_openapi::Resource;

use crate::ApiError;

/// A verb of the Kubernetes API, as discovery and RBAC spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `POST` to a collection (or to a create-only subresource).
    Create,
    /// `DELETE` of one object.
    Delete,
    /// `DELETE` of a collection, with selectors.
    DeleteCollection,
    /// `GET` of one object.
    Get,
    /// `GET` of a collection.
    List,
    /// `PATCH` of one object.
    Patch,
    /// `PUT` of one object.
    Update,
    /// `GET ?watch=true`.
    Watch,
}

impl Verb {
    /// Every verb a plain stored resource serves, in the order discovery prints them.
    pub const STANDARD: &'static [Verb] = &[
        Verb::Create,
        Verb::Delete,
        Verb::DeleteCollection,
        Verb::Get,
        Verb::List,
        Verb::Patch,
        Verb::Update,
        Verb::Watch,
    ];

    /// The verbs of `namespaces`: everything but `deletecollection`.
    pub const NO_DELETE_COLLECTION: &'static [Verb] = &[
        Verb::Create,
        Verb::Delete,
        Verb::Get,
        Verb::List,
        Verb::Patch,
        Verb::Update,
        Verb::Watch,
    ];

    /// The verbs of a virtual, create-only resource (`bindings`, the review kinds).
    pub const CREATE_ONLY: &'static [Verb] = &[Verb::Create];

    /// The verbs of a read-only resource (`componentstatuses`).
    pub const GET_LIST: &'static [Verb] = &[Verb::Get, Verb::List];

    /// The verbs of `status`, `scale` and similar subresources.
    pub const GET_PATCH_UPDATE: &'static [Verb] = &[Verb::Get, Verb::Patch, Verb::Update];

    /// The verbs of `exec`, `attach` and `portforward` (WebSocket/SPDY upgrades by GET or POST).
    pub const CREATE_GET: &'static [Verb] = &[Verb::Create, Verb::Get];

    /// The verbs of the `proxy` subresources (every HTTP method is passed through).
    pub const PROXY: &'static [Verb] = &[
        Verb::Create,
        Verb::Delete,
        Verb::Get,
        Verb::Patch,
        Verb::Update,
    ];

    /// The verb as the API spells it (`"deletecollection"`, ...).
    pub const fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Patch => "patch",
            Verb::Update => "update",
            Verb::Watch => "watch",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Verb {
    type Err = ApiError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Verb::STANDARD
            .iter()
            .copied()
            .find(|verb| verb.as_str() == s)
            .ok_or_else(|| ApiError::UnknownVerb(s.to_owned()))
    }
}

/// A subresource of a resource (`pods/status`, `deployments/scale`, `pods/exec`, ...).
///
/// `group`, `version` and `kind` name the object the subresource accepts and returns, as
/// upstream discovery reports it: `Scale` in `autoscaling/v1` for every `scale`, `Eviction` in
/// `policy/v1` for `pods/eviction`, the parent's own kind for `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subresource {
    /// The last path segment: `status`, `scale`, `log`, ...
    pub name: &'static str,
    /// Group of the request/response kind (`""` for core).
    pub group: &'static str,
    /// Version of the request/response kind.
    pub version: &'static str,
    /// The request/response kind (`Pod`, `Scale`, `PodExecOptions`, ...).
    pub kind: &'static str,
    /// The verbs the subresource serves.
    pub verbs: &'static [Verb],
}

impl Subresource {
    /// A subresource whose kind is a k8s-openapi type (`Scale`, `Eviction`, the parent itself).
    pub const fn typed<T: Resource>(name: &'static str, verbs: &'static [Verb]) -> Self {
        Subresource {
            name,
            group: T::GROUP,
            version: T::VERSION,
            kind: T::KIND,
            verbs,
        }
    }

    /// A subresource whose kind has no k8s-openapi type (`PodExecOptions`, `NodeProxyOptions`).
    pub const fn untyped(
        name: &'static str,
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        verbs: &'static [Verb],
    ) -> Self {
        Subresource {
            name,
            group,
            version,
            kind,
            verbs,
        }
    }

    /// Whether the subresource serves `verb`.
    pub fn allows(&self, verb: Verb) -> bool {
        self.verbs.contains(&verb)
    }
}

/// One row of the resource table: everything the generic API server needs to know about a
/// resource to route, store and describe it, with the values upstream discovery reports.
///
/// `group`, `version`, `kind`, `plural`, `api_version`, `namespaced` and `list_kind` come from the
/// k8s-openapi type's `Resource`/`ListableResource` implementations, so they cannot drift from
/// the types; the rest (short names, categories, verbs, subresources) is upstream knowledge
/// written once in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceInfo {
    /// API group, `""` for the core (legacy) group served under `/api`.
    pub group: &'static str,
    /// API version within the group (`v1`, `v2`, ...).
    pub version: &'static str,
    /// The `apiVersion` field of objects: `version` for core, `group/version` otherwise.
    pub api_version: &'static str,
    /// The kind (`Pod`).
    pub kind: &'static str,
    /// The resource name in URLs (`pods`, `endpoints`).
    pub plural: &'static str,
    /// The singular name (`pod`, `endpoints`): the kind in lower case, as upstream.
    pub singular: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names kubectl accepts (`po`, `deploy`).
    pub short_names: &'static [&'static str],
    /// Categories the resource belongs to (`all` for the workload kinds).
    pub categories: &'static [&'static str],
    /// The verbs the resource itself serves.
    pub verbs: &'static [Verb],
    /// The subresources, by name.
    pub subresources: &'static [Subresource],
    /// The kind of a list of these objects (`PodList`), `None` for create-only kinds.
    pub list_kind: Option<&'static str>,
}

impl ResourceInfo {
    /// Whether the resource serves `verb`.
    pub fn allows(&self, verb: Verb) -> bool {
        self.verbs.contains(&verb)
    }

    /// The subresource called `name`, if the resource has it.
    pub fn subresource(&self, name: &str) -> Option<&'static Subresource> {
        self.subresources.iter().find(|sub| sub.name == name)
    }

    /// The URL prefix of the group-version: `/api/v1` or `/apis/{group}/{version}`.
    pub fn group_version_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or just `plural` for core), the name RBAC and CRDs use.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// Maps a k8s-openapi scope marker to the `namespaced` flag.
///
/// Implemented for the namespace and cluster scopes only, so a subresource-scoped type
/// (`Scale`, `Eviction`) cannot be put in the table by mistake.
pub(crate) trait ScopeFlag {
    const NAMESPACED: bool;
}

impl ScopeFlag for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl ScopeFlag for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// ASCII lower case of `s` as a fixed-size array, usable in constants (`N` must be `s.len()`).
pub(crate) const fn ascii_lowercase<const N: usize>(s: &str) -> [u8; N] {
    let bytes = s.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i].to_ascii_lowercase();
        i += 1;
    }
    out
}
