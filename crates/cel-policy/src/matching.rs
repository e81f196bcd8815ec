//! Which requests a policy's `matchConstraints` and a binding's `matchResources` select:
//! `resourceRules` (operations, groups, versions, resources with `*`, `pods/*`, `*/status`,
//! `resourceNames`, `scope`), `excludeResourceRules`, `namespaceSelector` and
//! `objectSelector`, as upstream's matcher decides them.

use rudder_machinery::LabelSelector;
use serde_json::Value as Json;

/// The facts of one request that matching reads.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `CREATE`, `UPDATE`, `DELETE` or `CONNECT`.
    pub operation: &'a str,
    pub group: &'a str,
    pub version: &'a str,
    /// The plural, e.g. `deployments`.
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub name: &'a str,
    pub namespaced: bool,
    /// The request's namespace object (`null` when cluster-scoped or unknown).
    pub namespace_object: &'a Json,
    pub object: &'a Json,
    pub old_object: &'a Json,
}

impl Request<'_> {
    fn is_namespace(&self) -> bool {
        self.group.is_empty() && self.resource == "namespaces" && self.subresource.is_none()
    }
}

fn strings(v: Option<&Json>) -> Vec<&str> {
    v.and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect()
}

fn any_or(list: &[&str], want: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == want)
}

/// Whether one `NamedRuleWithOperations` covers the request.
pub fn rule_matches(rule: &Json, r: &Request<'_>) -> bool {
    let resources = strings(rule.get("resources"));
    let resource_ok =
        resources
            .iter()
            .any(|pattern| match (pattern.split_once('/'), r.subresource) {
                (None, None) => *pattern == "*" || *pattern == r.resource,
                (None, Some(_)) => false,
                (Some((res, sub)), Some(want)) => {
                    (res == "*" || res == r.resource) && (sub == "*" || sub == want)
                }
                (Some((res, sub)), None) => res == "*" && sub == "*",
            });
    let names = strings(rule.get("resourceNames"));
    let scope_ok = match rule.get("scope").and_then(Json::as_str).unwrap_or("*") {
        "Namespaced" => r.namespaced,
        "Cluster" => !r.namespaced,
        _ => true,
    };
    any_or(&strings(rule.get("operations")), r.operation)
        && any_or(&strings(rule.get("apiGroups")), r.group)
        && any_or(&strings(rule.get("apiVersions")), r.version)
        && resource_ok
        && (names.is_empty() || names.contains(&r.name))
        && scope_ok
}

/// Whether the selector `field` of `m` (absent: everything) selects `labels_of`.
fn selects(m: &Json, field: &str, target: &Json) -> bool {
    match m.get(field) {
        None | Some(Json::Null) => true,
        Some(sel) => LabelSelector::from_value(Some(sel)).is_ok_and(|s| s.matches_object(target)),
    }
}

/// Whether `m` (a policy's `matchConstraints` or a binding's `matchResources`) selects the
/// request. `empty_rules_match_all` is the binding's rule: its `resourceRules` may be empty,
/// meaning whatever the policy matches; a policy's may not.
pub fn matches(m: &Json, r: &Request<'_>, empty_rules_match_all: bool) -> bool {
    if m.is_null() {
        return empty_rules_match_all;
    }
    // Cluster-scoped objects have no namespace to select, except a Namespace itself, which
    // is selected by its own labels.
    let namespace_ok = if r.is_namespace() {
        selects(m, "namespaceSelector", r.object)
            || (!r.old_object.is_null() && selects(m, "namespaceSelector", r.old_object))
    } else {
        !r.namespaced || selects(m, "namespaceSelector", r.namespace_object)
    };
    let object_ok = selects(m, "objectSelector", r.object)
        || (!r.old_object.is_null() && selects(m, "objectSelector", r.old_object));
    let rules: Vec<&Json> = m
        .get("resourceRules")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .collect();
    let included = if rules.is_empty() {
        empty_rules_match_all
    } else {
        rules.iter().any(|rule| rule_matches(rule, r))
    };
    let excluded = m
        .get("excludeResourceRules")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .any(|rule| rule_matches(rule, r));
    namespace_ok && object_ok && included && !excluded
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request<'a>(
        op: &'a str,
        resource: &'a str,
        sub: Option<&'a str>,
        ns: &'a Json,
        obj: &'a Json,
    ) -> Request<'a> {
        Request {
            operation: op,
            group: "apps",
            version: "v1",
            resource,
            subresource: sub,
            name: "web",
            namespaced: true,
            namespace_object: ns,
            object: obj,
            old_object: &Json::Null,
        }
    }

    #[test]
    fn rules_table() {
        let deployments = json!({"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["deployments"]});
        let status = json!({"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*/status"]});
        let named = json!({"apiGroups": ["apps"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"], "resourceNames": ["db"]});
        let cluster = json!({"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["*"], "resources": ["*"], "scope": "Cluster"});
        let (ns, obj) = (Json::Null, json!({}));
        let cases = [
            (
                &deployments,
                request("CREATE", "deployments", None, &ns, &obj),
                true,
            ),
            (
                &deployments,
                request("DELETE", "deployments", None, &ns, &obj),
                false,
            ),
            (
                &deployments,
                request("CREATE", "deployments", Some("scale"), &ns, &obj),
                false,
            ),
            (
                &deployments,
                request("CREATE", "replicasets", None, &ns, &obj),
                false,
            ),
            (
                &status,
                request("UPDATE", "deployments", Some("status"), &ns, &obj),
                true,
            ),
            (
                &status,
                request("UPDATE", "deployments", None, &ns, &obj),
                false,
            ),
            (
                &named,
                request("CREATE", "deployments", None, &ns, &obj),
                false,
            ),
            (
                &cluster,
                request("CREATE", "deployments", None, &ns, &obj),
                false,
            ),
        ];
        for (rule, r, want) in cases {
            assert_eq!(
                rule_matches(rule, &r),
                want,
                "{rule} {} {} {:?}",
                r.operation,
                r.resource,
                r.subresource
            );
        }
    }

    #[test]
    fn selectors_and_exclusions_table() {
        let rules = json!([{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["*"], "resources": ["deployments"]}]);
        let test_ns = json!({"metadata": {"name": "t", "labels": {"environment": "test"}}});
        let prod_ns = json!({"metadata": {"name": "p", "labels": {"environment": "prod"}}});
        let labelled = json!({"metadata": {"labels": {"tier": "web"}}});
        let plain = json!({"metadata": {}});
        let by_ns = json!({"resourceRules": rules, "namespaceSelector": {"matchLabels": {"environment": "test"}}});
        let by_obj = json!({"resourceRules": rules, "objectSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}});
        let excluded = json!({"resourceRules": rules, "excludeResourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["*"], "resources": ["deployments"], "resourceNames": ["web"]}]});
        let binding_all = json!({"namespaceSelector": {"matchLabels": {"environment": "test"}}});
        let cases = [
            (&by_ns, &test_ns, &plain, false, true),
            (&by_ns, &prod_ns, &plain, false, false),
            (&by_obj, &prod_ns, &labelled, false, true),
            (&by_obj, &prod_ns, &plain, false, false),
            (&excluded, &test_ns, &plain, false, false),
            (&binding_all, &test_ns, &plain, true, true),
            (&binding_all, &test_ns, &plain, false, false),
            (&Json::Null, &test_ns, &plain, true, true),
        ];
        for (m, ns, obj, binding, want) in cases {
            let r = request("CREATE", "deployments", None, ns, obj);
            assert_eq!(matches(m, &r, binding), want, "{m} ns={ns} obj={obj}");
        }
    }

    #[test]
    fn namespaces_match_their_own_labels() {
        let m = json!({"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["namespaces"], "scope": "*"}],
            "namespaceSelector": {"matchLabels": {"team": "a"}}});
        let ns = json!({"metadata": {"name": "x", "labels": {"team": "a"}}});
        let mut r = request("CREATE", "namespaces", None, &Json::Null, &ns);
        r.group = "";
        r.namespaced = false;
        assert!(matches(&m, &r, false));
        let other = json!({"metadata": {"name": "y"}});
        r.object = &other;
        assert!(!matches(&m, &r, false));
    }
}
