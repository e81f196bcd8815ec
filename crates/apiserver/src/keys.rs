//! Where objects live in the store: `/registry/{group}/{resource}/[{namespace}/]{name}`.

/// Prefix under which the API server keeps every object.
pub const REGISTRY_PREFIX: &str = "/registry/";

fn group_segment(group: &str) -> &str {
    if group.is_empty() { "core" } else { group }
}

/// Prefix of every object of a resource, in all namespaces.
pub fn resource_prefix(group: &str, resource: &str) -> String {
    format!("{REGISTRY_PREFIX}{}/{resource}/", group_segment(group))
}

/// Prefix of a resource's objects in one namespace (or of a cluster-scoped resource).
pub fn collection_prefix(group: &str, resource: &str, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("{}{ns}/", resource_prefix(group, resource)),
        None => resource_prefix(group, resource),
    }
}

/// Key of one object.
pub fn object_key(group: &str, resource: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{}{name}", collection_prefix(group, resource, namespace))
}

/// Splits a key back into `(group, resource, rest)` where rest is `ns/name` or `name`.
pub fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let rest = key.strip_prefix(REGISTRY_PREFIX)?;
    let (group, rest) = rest.split_once('/')?;
    let (resource, rest) = rest.split_once('/')?;
    let group = if group == "core" { "" } else { group };
    Some((group, resource, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout_table() {
        let cases = [
            (
                ("", "pods", Some("default"), "web"),
                "/registry/core/pods/default/web",
            ),
            (
                ("apps", "deployments", Some("ns"), "d"),
                "/registry/apps/deployments/ns/d",
            ),
            (("", "nodes", None, "n1"), "/registry/core/nodes/n1"),
            (
                ("example.com", "widgets", Some("a"), "b"),
                "/registry/example.com/widgets/a/b",
            ),
        ];
        for ((g, r, ns, n), want) in cases {
            let key = object_key(g, r, ns, n);
            assert_eq!(key, want);
            let (g2, r2, rest) = split_key(&key).expect("split");
            assert_eq!((g2, r2), (g, r));
            assert!(rest.ends_with(n));
        }
        assert_eq!(
            collection_prefix("", "pods", Some("default")),
            "/registry/core/pods/default/"
        );
        assert_eq!(split_key("/other/x"), None);
    }
}
