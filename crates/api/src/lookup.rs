//! Lookups over the resource table: by URL (group, version, plural), by kind, by kubectl name,
//! and the group/version lists discovery serves.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::info::ResourceInfo;
use crate::table::RESOURCES;

/// One served group-version and its resources, for `/api/v1` and `/apis/{group}/{version}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupVersion {
    /// The group (`""` for core).
    pub group: &'static str,
    /// The version.
    pub version: &'static str,
    /// `version` for core, `group/version` otherwise (discovery's `groupVersion`).
    pub group_version: &'static str,
    /// The resources of the group-version, sorted by plural as upstream discovery lists them.
    pub resources: Vec<&'static ResourceInfo>,
}

/// One API group with its versions, for `/api` and `/apis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiGroup {
    /// The group name (`""` for core).
    pub name: &'static str,
    /// The versions served, preferred first.
    pub versions: Vec<GroupVersion>,
}

impl ApiGroup {
    /// The version clients should use (`v2` for `autoscaling`).
    pub fn preferred_version(&self) -> Option<&GroupVersion> {
        self.versions.first()
    }
}

type Triple = (&'static str, &'static str, &'static str);

struct Index {
    by_plural: HashMap<Triple, usize>,
    by_gvk: HashMap<Triple, usize>,
    by_group_kind: HashMap<(&'static str, &'static str), usize>,
    by_short_name: HashMap<&'static str, usize>,
    by_singular: HashMap<&'static str, usize>,
    groups: Vec<ApiGroup>,
}

static INDEX: LazyLock<Index> = LazyLock::new(build_index);

fn build_index() -> Index {
    let mut index = Index {
        by_plural: HashMap::new(),
        by_gvk: HashMap::new(),
        by_group_kind: HashMap::new(),
        by_short_name: HashMap::new(),
        by_singular: HashMap::new(),
        groups: Vec::new(),
    };
    for (i, info) in RESOURCES.iter().enumerate() {
        index
            .by_plural
            .entry((info.group, info.version, info.plural))
            .or_insert(i);
        index
            .by_gvk
            .entry((info.group, info.version, info.kind))
            .or_insert(i);
        // First row wins: the table lists the preferred version of a group first, and the
        // groups in upstream priority order (core `ev` before events.k8s.io `ev`).
        index
            .by_group_kind
            .entry((info.group, info.kind))
            .or_insert(i);
        index.by_singular.entry(info.singular).or_insert(i);
        for short in info.short_names {
            index.by_short_name.entry(short).or_insert(i);
        }

        let group = match index.groups.iter_mut().position(|g| g.name == info.group) {
            Some(position) => &mut index.groups[position],
            None => {
                index.groups.push(ApiGroup {
                    name: info.group,
                    versions: Vec::new(),
                });
                let last = index.groups.len() - 1;
                &mut index.groups[last]
            }
        };
        match group
            .versions
            .iter_mut()
            .find(|v| v.version == info.version)
        {
            Some(version) => version.resources.push(info),
            None => group.versions.push(GroupVersion {
                group: info.group,
                version: info.version,
                group_version: info.api_version,
                resources: vec![info],
            }),
        }
    }
    for group in &mut index.groups {
        for version in &mut group.versions {
            version.resources.sort_by_key(|info| info.plural);
        }
    }
    index
}

/// Every row of the table, in upstream discovery order.
pub fn resources() -> &'static [ResourceInfo] {
    RESOURCES
}

/// The resource served at `/api[s]/{group}/{version}/.../{plural}`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static ResourceInfo> {
    let map: &HashMap<(&str, &str, &str), usize> = &INDEX.by_plural;
    map.get(&(group, version, plural))
        .and_then(|&i| RESOURCES.get(i))
}

/// The resource of an object's `apiVersion` (split into group and version) and `kind`.
pub fn by_gvk(group: &str, version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    index_of(group, version, kind).and_then(|i| RESOURCES.get(i))
}

/// The resource of an object's `apiVersion` (`v1`, `apps/v1`) and `kind`.
pub fn by_api_version_kind(api_version: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let (group, version) = split_api_version(api_version);
    by_gvk(group, version, kind)
}

/// The resource of `kind` in `group`, in the group's preferred version.
pub fn by_kind(group: &str, kind: &str) -> Option<&'static ResourceInfo> {
    let map: &HashMap<(&str, &str), usize> = &INDEX.by_group_kind;
    map.get(&(group, kind)).and_then(|&i| RESOURCES.get(i))
}

/// The resource a short name (`po`, `deploy`, `crds`) stands for, preferred group and version
/// first (`ev` is the core `Event`, `hpa` is `autoscaling/v2`).
pub fn by_short_name(short_name: &str) -> Option<&'static ResourceInfo> {
    let map: &HashMap<&str, usize> = &INDEX.by_short_name;
    map.get(short_name).and_then(|&i| RESOURCES.get(i))
}

/// The resource whose singular name (`pod`, `endpoints`, `networkpolicy`) is `singular`,
/// preferred group and version first.
pub fn by_singular(singular: &str) -> Option<&'static ResourceInfo> {
    let map: &HashMap<&str, usize> = &INDEX.by_singular;
    map.get(singular).and_then(|&i| RESOURCES.get(i))
}

/// Resolves a name the way kubectl does for `kubectl get NAME`: a plural, singular or short
/// name, case-insensitive, optionally qualified by group (`deployments.apps`, `deploy.apps`) or
/// by version and group (`hpa.v1.autoscaling`). Unqualified names prefer the core group, then
/// the named groups in discovery order, each in its preferred version.
pub fn resolve(name: &str) -> Option<&'static ResourceInfo> {
    let name = name.to_ascii_lowercase();
    let (resource, qualifier) = match name.split_once('.') {
        Some((resource, qualifier)) => (resource, Some(qualifier)),
        None => (name.as_str(), None),
    };
    let matches_name = |info: &&ResourceInfo| {
        info.plural == resource || info.singular == resource || info.short_names.contains(&resource)
    };
    match qualifier {
        None => RESOURCES.iter().find(matches_name),
        Some(qualifier) => RESOURCES
            .iter()
            .filter(matches_name)
            .find(|info| info.group == qualifier)
            .or_else(|| {
                let (version, group) = qualifier.split_once('.')?;
                RESOURCES
                    .iter()
                    .filter(matches_name)
                    .find(|info| info.group == group && info.version == version)
            }),
    }
}

/// Every resource in `category` (`all`), preferred versions only, in discovery order.
pub fn in_category(category: &str) -> Vec<&'static ResourceInfo> {
    INDEX
        .groups
        .iter()
        .filter_map(ApiGroup::preferred_version)
        .flat_map(|version| version.resources.iter().copied())
        .filter(|info| info.categories.contains(&category))
        .collect()
}

/// The API groups with their versions and resources: core (`""`) first, then the named groups
/// in the order `/apis` lists them.
pub fn groups() -> &'static [ApiGroup] {
    &INDEX.groups
}

/// The group called `name` (`""` for core).
pub fn group(name: &str) -> Option<&'static ApiGroup> {
    INDEX.groups.iter().find(|group| group.name == name)
}

/// Every served group-version with its resources, in discovery order.
pub fn group_versions() -> impl Iterator<Item = &'static GroupVersion> {
    INDEX.groups.iter().flat_map(|group| group.versions.iter())
}

/// The group-version `group`/`version`, if served.
pub fn group_version(group_name: &str, version: &str) -> Option<&'static GroupVersion> {
    group(group_name)?
        .versions
        .iter()
        .find(|v| v.version == version)
}

/// The preferred version of `group` (`v1` for core, `v2` for `autoscaling`).
pub fn preferred_version(group_name: &str) -> Option<&'static str> {
    group(group_name)?
        .preferred_version()
        .map(|version| version.version)
}

/// Splits an `apiVersion` into group and version: `v1` → (`""`, `v1`), `apps/v1` → (`apps`, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

pub(crate) fn index_of(group: &str, version: &str, kind: &str) -> Option<usize> {
    let map: &HashMap<(&str, &str, &str), usize> = &INDEX.by_gvk;
    map.get(&(group, version, kind)).copied()
}
