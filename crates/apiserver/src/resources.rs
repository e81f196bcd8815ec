//! The resources the server serves: the built-in table (from `rudder-api`) plus custom resources
//! from CustomResourceDefinitions, looked up per request.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use rudder_machinery::conversion::{Conversion, convert};
use serde_json::Value;

/// Everything the generic handlers need to know about one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Subresource names (`status`, `scale`, ...).
    pub subresources: Vec<String>,
    /// OpenAPI v3 schema of a custom resource, used for validation and pruning.
    pub schema: Option<Value>,
    /// Whether this is a custom resource (stored and served without a typed check).
    pub custom: bool,
    /// The version objects are stored at when it is not the served one: a CRD's `storage: true`
    /// version, or the version a built-in kind shares its storage with (`autoscaling/v1`
    /// HorizontalPodAutoscalers are stored as `v2`). `None`: stored as served.
    pub storage_version: Option<String>,
    /// The group whose storage the kind shares when it is not its own (`events.k8s.io` Events
    /// live with core Events, as upstream keeps them).
    pub storage_group: Option<String>,
    /// How objects convert between the served and the stored version.
    pub conversion: Conversion,
    /// How `kubectl get` prints the objects: the kind's printer, or a CRD version's columns.
    pub printer: rudder_printers::Printer,
}

impl Resource {
    /// `apiVersion` objects are stored with (the served one, except for kinds stored at another
    /// version or in another group).
    pub fn storage_api_version(&self) -> String {
        let group = self.storage_group.as_deref().unwrap_or(&self.group);
        let version = self.storage_version.as_deref().unwrap_or(&self.version);
        if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        }
    }

    /// The group under whose key prefix the objects are stored.
    pub fn key_group(&self) -> &str {
        self.storage_group.as_deref().unwrap_or(&self.group)
    }

    fn converts(&self) -> bool {
        self.storage_version.is_some() || self.storage_group.is_some()
    }

    /// Converts `obj` to the version objects are stored at.
    pub fn to_storage(&self, obj: &mut Value) {
        if self.converts() {
            convert(self.conversion, obj, &self.storage_api_version());
        }
    }

    /// Converts a stored `obj` to this resource's (served) version.
    pub fn to_served(&self, obj: &mut Value) {
        if self.converts() {
            convert(self.conversion, obj, &self.api_version());
        }
    }

    /// The encoding of a stored object at this resource's version (as stored when they agree).
    pub fn serve(&self, json: &bytes::Bytes) -> bytes::Bytes {
        if !self.converts() {
            return json.clone();
        }
        let want = self.api_version();
        match serde_json::from_slice::<Value>(json) {
            Ok(mut v) if v.get("apiVersion").and_then(Value::as_str) != Some(want.as_str()) => {
                convert(self.conversion, &mut v, &want);
                serde_json::to_vec(&v)
                    .map(bytes::Bytes::from)
                    .unwrap_or_else(|_| json.clone())
            }
            _ => json.clone(),
        }
    }

    /// `apiVersion` of the objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Whether the resource has the subresource.
    pub fn has_sub(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// Whether the verb is allowed on the main resource.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// The metadata rules' view of this resource.
    pub fn kind_ref(&self) -> crate::objects::Kind<'_> {
        crate::objects::Kind {
            group: &self.group,
            version: &self.version,
            kind: &self.kind,
            resource: &self.plural,
            namespaced: self.namespaced,
            has_status: self.has_sub("status"),
        }
    }
}

/// Resources by `(group, version, plural)`.
#[derive(Default)]
pub struct Resources {
    builtin: BTreeMap<(String, String, String), Arc<Resource>>,
    custom: RwLock<BTreeMap<(String, String, String), Arc<Resource>>>,
}

impl Resources {
    /// The built-in resources.
    pub fn builtin(list: Vec<Resource>) -> Self {
        let builtin = list
            .into_iter()
            .map(|r| {
                (
                    (r.group.clone(), r.version.clone(), r.plural.clone()),
                    Arc::new(r),
                )
            })
            .collect();
        Self {
            builtin,
            custom: RwLock::default(),
        }
    }

    /// Looks a resource up.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<Resource>> {
        let key = (group.to_owned(), version.to_owned(), plural.to_owned());
        if let Some(r) = self.builtin.get(&key) {
            return Some(r.clone());
        }
        self.custom
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned()
    }

    /// Every resource, built-in first.
    pub fn all(&self) -> Vec<Arc<Resource>> {
        let mut out: Vec<_> = self.builtin.values().cloned().collect();
        out.extend(
            self.custom
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned(),
        );
        out
    }

    /// Replaces the set of custom resources (from the current CRDs).
    pub fn set_custom(&self, list: Vec<Resource>) {
        let map = list
            .into_iter()
            .filter(|r| {
                !self
                    .builtin
                    .contains_key(&(r.group.clone(), r.version.clone(), r.plural.clone()))
            })
            .map(|r| {
                (
                    (r.group.clone(), r.version.clone(), r.plural.clone()),
                    Arc::new(r),
                )
            })
            .collect();
        *self.custom.write().unwrap_or_else(|p| p.into_inner()) = map;
    }

    /// Groups with their versions, core group first, in a stable order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.all() {
            let versions = groups.entry(r.group.clone()).or_default();
            if !versions.contains(&r.version) {
                versions.push(r.version.clone());
            }
        }
        let mut out: Vec<(String, Vec<String>)> = groups.into_iter().collect();
        for (_, versions) in &mut out {
            versions.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }
}

/// The built-in resources, from the `rudder-api` table, and `metrics.k8s.io`'s two.
pub fn builtin() -> Vec<Resource> {
    rudder_api::resources()
        .iter()
        .map(|r| Resource {
            group: r.group.to_owned(),
            version: r.version.to_owned(),
            kind: r.kind.to_owned(),
            plural: r.plural.to_owned(),
            singular: r.singular.to_owned(),
            namespaced: r.namespaced,
            short_names: r.short_names.iter().map(|s| (*s).to_owned()).collect(),
            categories: r.categories.iter().map(|s| (*s).to_owned()).collect(),
            verbs: r.verbs.iter().map(|v| v.as_str().to_owned()).collect(),
            subresources: r.subresources.iter().map(|s| s.name.to_owned()).collect(),
            schema: None,
            custom: false,
            storage_version: shared_storage(r.group, r.version, r.kind)
                .map(|(_, v, _)| v.to_owned()),
            storage_group: shared_storage(r.group, r.version, r.kind)
                .map(|(g, _, _)| g.to_owned())
                .filter(|g| g != r.group),
            conversion: shared_storage(r.group, r.version, r.kind)
                .map_or(Conversion::ApiVersionOnly, |(_, _, c)| c),
            printer: rudder_printers::Printer::for_kind(r.group, r.kind),
        })
        .chain(crate::metrics_api::resources())
        .collect()
}

/// Built-in kinds served at one version and stored at another `(group, version)`, as upstream
/// stores each kind once whatever version it is written at.
fn shared_storage(
    group: &str,
    version: &str,
    kind: &str,
) -> Option<(&'static str, &'static str, Conversion)> {
    match (group, version, kind) {
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => {
            Some(("autoscaling", "v2", Conversion::HorizontalPodAutoscaler))
        }
        ("events.k8s.io", "v1", "Event") => Some(("", "v1", Conversion::Event)),
        _ => None,
    }
}

/// Kubernetes' version ordering: GA > beta > alpha, higher numbers first.
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major: u32 = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, num) = if let Some(n) = tail.strip_prefix("beta") {
        (2, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, n)
    } else {
        return (0, 0, 0);
    };
    (level, major, num.parse().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order_table() {
        let mut v = vec![
            "v1beta1", "v1", "v2alpha1", "v1alpha1", "v2", "v1beta2", "foo",
        ];
        v.sort_by_key(|x| std::cmp::Reverse(version_priority(x)));
        assert_eq!(
            v,
            [
                "v2", "v1", "v1beta2", "v1beta1", "v2alpha1", "v1alpha1", "foo"
            ]
        );
    }
}
