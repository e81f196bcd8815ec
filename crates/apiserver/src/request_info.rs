//! Turns an HTTP method, path and query into what the request is about (kube-apiserver's
//! "RequestInfo"): a discovery or non-resource path, or a verb on a resource. Pure.

use std::collections::HashMap;

/// What a request addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A path outside the resource tree (`/version`, `/healthz`, `/openapi/v2`, ...).
    NonResource(String),
    /// `/api`: the legacy group's versions.
    ApiVersions,
    /// `/apis`: all groups.
    ApiGroups,
    /// `/apis/{group}`: one group.
    ApiGroup(String),
    /// `/api/v1` or `/apis/{group}/{version}`: the resources of one group-version.
    ApiResources { group: String, version: String },
    /// A verb on a resource collection or object.
    Resource(ResourceRequest),
}

/// The Kubernetes verbs, as RBAC names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    Get,
    List,
    Watch,
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    /// The verb's name as it appears in RBAC rules and discovery.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }
}

/// A request on a resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceRequest {
    /// API group, `""` for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from the path, if any.
    pub namespace: Option<String>,
    /// Resource (plural), e.g. `pods`.
    pub resource: String,
    /// Object name, if the path names one.
    pub name: Option<String>,
    /// Subresource, e.g. `status`, `scale`, `log`.
    pub subresource: Option<String>,
    /// What is being done.
    pub verb: Verb,
}

/// Why a path is not a valid API path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not exist in the API.
    #[error("the server could not find the requested resource")]
    NotFound,
    /// The method is not allowed on this path.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
}

use rudder_machinery::query::decode as percent_decode;
pub use rudder_machinery::query::parse as parse_query;

fn is_watch(query: &HashMap<String, String>) -> bool {
    query
        .get("watch")
        .is_some_and(|v| crate::params::is_true(v))
}

/// Classifies a request. `path` is the URL path without the query.
pub fn parse(
    method: &str,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<Target, PathError> {
    let trimmed = path.trim_matches('/');
    let parts: Vec<String> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').map(percent_decode_path).collect()
    };
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let (group, version, rest): (&str, &str, &[&str]) = match parts.as_slice() {
        ["api"] => return discovery(method, Target::ApiVersions),
        ["apis"] => return discovery(method, Target::ApiGroups),
        ["apis", group] => return discovery(method, Target::ApiGroup((*group).to_owned())),
        ["api", version] => {
            return discovery(
                method,
                Target::ApiResources {
                    group: String::new(),
                    version: (*version).to_owned(),
                },
            );
        }
        ["apis", group, version] => {
            return discovery(
                method,
                Target::ApiResources {
                    group: (*group).to_owned(),
                    version: (*version).to_owned(),
                },
            );
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Ok(Target::NonResource(format!("/{trimmed}"))),
    };
    // The deprecated `/watch/` prefix turns any GET into a watch.
    let (legacy_watch, rest) = match rest {
        ["watch", rest @ ..] => (true, rest),
        _ => (false, rest),
    };
    let (namespace, resource, name, subresource) = match rest {
        ["namespaces", ns, resource, tail @ ..]
            if !tail.is_empty() || !is_namespace_sub(resource) =>
        {
            let (name, sub) = match tail {
                [] => (None, None),
                [name] => (Some(*name), None),
                [name, sub] => (Some(*name), Some(*sub)),
                _ => return Err(PathError::NotFound),
            };
            (Some(*ns), *resource, name, sub)
        }
        // `/namespaces/{name}` and `/namespaces/{name}/status|finalize` address the namespace.
        ["namespaces", name, sub] => (None, "namespaces", Some(*name), Some(*sub)),
        [resource] => (None, *resource, None, None),
        [resource, name] => (None, *resource, Some(*name), None),
        [resource, name, sub] => (None, *resource, Some(*name), Some(*sub)),
        // `nodes/{name}/proxy/{path...}`: the rest of the path goes to the node.
        [resource, name, "proxy", _, ..] => (None, *resource, Some(*name), Some("proxy")),
        _ => return Err(PathError::NotFound),
    };
    if resource.is_empty() || name == Some("") || namespace == Some("") {
        return Err(PathError::NotFound);
    }
    let watch = legacy_watch || is_watch(query);
    let verb = match (method, name.is_some()) {
        ("GET" | "HEAD", _) if watch => Verb::Watch,
        ("GET" | "HEAD", true) => Verb::Get,
        ("GET" | "HEAD", false) => Verb::List,
        ("POST", _) => Verb::Create,
        ("PUT", true) => Verb::Update,
        ("PATCH", true) => Verb::Patch,
        ("DELETE", true) => Verb::Delete,
        ("DELETE", false) => Verb::DeleteCollection,
        _ => return Err(PathError::MethodNotAllowed),
    };
    Ok(Target::Resource(ResourceRequest {
        group: group.to_owned(),
        version: version.to_owned(),
        namespace: namespace.map(str::to_owned),
        resource: resource.to_owned(),
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
        verb,
    }))
}

/// `namespaces/{name}/{status|finalize}` is a namespace subresource, not a namespaced resource.
fn is_namespace_sub(segment: &str) -> bool {
    matches!(segment, "status" | "finalize")
}

fn discovery(method: &str, target: Target) -> Result<Target, PathError> {
    match method {
        "GET" | "HEAD" => Ok(target),
        _ => Err(PathError::MethodNotAllowed),
    }
}

fn percent_decode_path(segment: &str) -> String {
    if segment.contains('%') {
        percent_decode(&segment.replace('+', "%2B"))
    } else {
        segment.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        group: &str,
        ns: Option<&str>,
        resource: &str,
        name: Option<&str>,
        sub: Option<&str>,
        verb: Verb,
    ) -> Target {
        Target::Resource(ResourceRequest {
            group: group.into(),
            version: "v1".into(),
            namespace: ns.map(Into::into),
            resource: resource.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
            verb,
        })
    }

    #[test]
    fn paths_table() {
        use Verb::*;
        let cases: Vec<(&str, &str, &str, Result<Target, PathError>)> = vec![
            ("GET", "/api", "", Ok(Target::ApiVersions)),
            ("GET", "/apis", "", Ok(Target::ApiGroups)),
            ("GET", "/apis/apps", "", Ok(Target::ApiGroup("apps".into()))),
            (
                "GET",
                "/api/v1",
                "",
                Ok(Target::ApiResources {
                    group: "".into(),
                    version: "v1".into(),
                }),
            ),
            (
                "GET",
                "/apis/apps/v1/",
                "",
                Ok(Target::ApiResources {
                    group: "apps".into(),
                    version: "v1".into(),
                }),
            ),
            ("POST", "/api/v1", "", Err(PathError::MethodNotAllowed)),
            (
                "GET",
                "/api/v1/nodes/n1/proxy/logs/pods/",
                "",
                Ok(Target::Resource(ResourceRequest {
                    group: "".into(),
                    version: "v1".into(),
                    namespace: None,
                    resource: "nodes".into(),
                    name: Some("n1".into()),
                    subresource: Some("proxy".into()),
                    verb: Get,
                })),
            ),
            (
                "GET",
                "/version",
                "",
                Ok(Target::NonResource("/version".into())),
            ),
            (
                "GET",
                "/openapi/v3/apis/apps/v1",
                "",
                Ok(Target::NonResource("/openapi/v3/apis/apps/v1".into())),
            ),
            (
                "GET",
                "/api/v1/pods",
                "",
                Ok(res("", None, "pods", None, None, List)),
            ),
            (
                "GET",
                "/api/v1/pods",
                "watch=true",
                Ok(res("", None, "pods", None, None, Watch)),
            ),
            (
                "GET",
                "/api/v1/watch/namespaces/default/pods",
                "",
                Ok(res("", Some("default"), "pods", None, None, Watch)),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods",
                "watch=1",
                Ok(res("", Some("default"), "pods", None, None, Watch)),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web",
                "",
                Ok(res("", Some("default"), "pods", Some("web"), None, Get)),
            ),
            (
                "GET",
                "/api/v1/namespaces/default/pods/web/log",
                "",
                Ok(res(
                    "",
                    Some("default"),
                    "pods",
                    Some("web"),
                    Some("log"),
                    Get,
                )),
            ),
            (
                "POST",
                "/api/v1/namespaces/default/pods",
                "",
                Ok(res("", Some("default"), "pods", None, None, Create)),
            ),
            (
                "PUT",
                "/api/v1/namespaces/default/pods/web/status",
                "",
                Ok(res(
                    "",
                    Some("default"),
                    "pods",
                    Some("web"),
                    Some("status"),
                    Update,
                )),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/ns/deployments/d/scale",
                "",
                Ok(res(
                    "apps",
                    Some("ns"),
                    "deployments",
                    Some("d"),
                    Some("scale"),
                    Patch,
                )),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/default/pods",
                "",
                Ok(res(
                    "",
                    Some("default"),
                    "pods",
                    None,
                    None,
                    DeleteCollection,
                )),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/default/pods/web",
                "",
                Ok(res("", Some("default"), "pods", Some("web"), None, Delete)),
            ),
            (
                "GET",
                "/api/v1/namespaces",
                "",
                Ok(res("", None, "namespaces", None, None, List)),
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system",
                "",
                Ok(res("", None, "namespaces", Some("kube-system"), None, Get)),
            ),
            (
                "PUT",
                "/api/v1/namespaces/x/finalize",
                "",
                Ok(res(
                    "",
                    None,
                    "namespaces",
                    Some("x"),
                    Some("finalize"),
                    Update,
                )),
            ),
            (
                "GET",
                "/api/v1/namespaces/x/status",
                "",
                Ok(res("", None, "namespaces", Some("x"), Some("status"), Get)),
            ),
            (
                "GET",
                "/api/v1/nodes/n1",
                "",
                Ok(res("", None, "nodes", Some("n1"), None, Get)),
            ),
            ("PUT", "/api/v1/nodes", "", Err(PathError::MethodNotAllowed)),
            (
                "GET",
                "/api/v1/namespaces/a/pods/b/c/d",
                "",
                Err(PathError::NotFound),
            ),
            (
                "GET",
                "/apis/example.com/v1/namespaces/default/widgets/w%2B1",
                "",
                Ok(Target::Resource(ResourceRequest {
                    group: "example.com".into(),
                    version: "v1".into(),
                    namespace: Some("default".into()),
                    resource: "widgets".into(),
                    name: Some("w+1".into()),
                    subresource: None,
                    verb: Get,
                })),
            ),
        ];
        for (method, path, query, want) in cases {
            let q = parse_query(Some(query));
            assert_eq!(parse(method, path, &q), want, "{method} {path}?{query}");
        }
    }

    #[test]
    fn query_decoding_table() {
        let q = parse_query(Some(
            "labelSelector=app%3Dweb%2Ctier+in+(a%2Cb)&limit=5&watch&x=%zz",
        ));
        assert_eq!(q["labelSelector"], "app=web,tier in (a,b)");
        assert_eq!(q["limit"], "5");
        assert_eq!(q["watch"], "");
        assert_eq!(q["x"], "%zz");
        assert!(parse_query(None).is_empty());
    }
}
