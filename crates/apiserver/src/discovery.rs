//! Discovery documents: `/api`, `/apis`, group and group-version resource lists, and the
//! aggregated forms (`apidiscovery.k8s.io` v2 and v2beta1) newer kubectl asks for.

use serde_json::{Value, json};

use crate::resources::{Resource, Resources};

/// Verbs and response kind of a subresource: `(verbs, (group, version, kind))`, where an empty
/// kind means "the parent's kind".
fn subresource_shape(
    parent: &Resource,
    sub: &str,
) -> (Vec<&'static str>, (String, String, String)) {
    if !parent.custom {
        let info = rudder_api::by_plural(&parent.group, &parent.version, &parent.plural);
        if let Some(s) = info.and_then(|i| i.subresource(sub)) {
            let verbs = s.verbs.iter().map(|v| v.as_str()).collect();
            return (
                verbs,
                (s.group.to_owned(), s.version.to_owned(), s.kind.to_owned()),
            );
        }
    }
    let same = (
        parent.group.clone(),
        parent.version.clone(),
        parent.kind.clone(),
    );
    let core = |k: &str| (String::new(), "v1".to_owned(), k.to_owned());
    match sub {
        "status" => (vec!["get", "patch", "update"], same),
        "scale" => (
            vec!["get", "patch", "update"],
            ("autoscaling".into(), "v1".into(), "Scale".into()),
        ),
        "binding" => (vec!["create"], core("Binding")),
        "eviction" => (
            vec!["create"],
            ("policy".into(), "v1".into(), "Eviction".into()),
        ),
        "log" => (vec!["get"], core("Pod")),
        "exec" => (vec!["create", "get"], core("PodExecOptions")),
        "attach" => (vec!["create", "get"], core("PodAttachOptions")),
        "portforward" => (vec!["create", "get"], core("PodPortForwardOptions")),
        "proxy" => (
            vec!["create", "delete", "get", "patch", "update"],
            core(&format!("{}ProxyOptions", parent.kind)),
        ),
        "token" => (
            vec!["create"],
            (
                "authentication.k8s.io".into(),
                "v1".into(),
                "TokenRequest".into(),
            ),
        ),
        "ephemeralcontainers" => (vec!["get", "patch", "update"], same),
        "resize" => (vec!["get", "patch", "update"], same),
        "finalize" => (vec!["update"], same),
        "approval" => (vec!["get", "patch", "update"], same),
        _ => (vec!["get"], same),
    }
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    let preferred = vs.first().cloned().unwrap_or(Value::Null);
    json!({"name": name, "versions": vs, "preferredVersion": preferred})
}

/// `/apis`.
pub fn api_groups(resources: &Resources) -> Value {
    let groups: Vec<Value> = resources
        .groups()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_json(&g, &vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`, if the group exists.
pub fn api_group(resources: &Resources, group: &str) -> Option<Value> {
    let (g, vs) = resources
        .groups()
        .into_iter()
        .find(|(g, _)| g == group && !g.is_empty())?;
    let mut doc = group_json(&g, &vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

/// `/api/v1` or `/apis/{group}/{version}`, if it exists.
pub fn api_resources(resources: &Resources, group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    let mut found = false;
    let mut all = resources.all();
    all.sort_by(|a, b| a.plural.cmp(&b.plural));
    for r in all
        .iter()
        .filter(|r| r.group == group && r.version == version)
    {
        found = true;
        let mut entry = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        list.push(entry);
        for sub in &r.subresources {
            let (verbs, (g, v, k)) = subresource_shape(r, sub);
            let mut e = json!({
                "name": format!("{}/{sub}", r.plural),
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": k,
                "verbs": verbs,
            });
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            list.push(e);
        }
    }
    if !found {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

/// Which aggregated discovery form a client asked for in `Accept`, if any.
pub fn aggregated_version(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p = part.replace(' ', "");
        if p.contains("g=apidiscovery.k8s.io") && p.contains("as=APIGroupDiscoveryList") {
            if p.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if p.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

/// Aggregated discovery for the core group (`/api`) or all other groups (`/apis`).
pub fn aggregated(resources: &Resources, legacy: bool, version: &str) -> Value {
    let mut items = Vec::new();
    for (group, versions) in resources.groups() {
        if legacy != group.is_empty() {
            continue;
        }
        let mut vs = Vec::new();
        for v in &versions {
            let mut rs: Vec<Value> = Vec::new();
            let mut all = resources.all();
            all.sort_by(|a, b| a.plural.cmp(&b.plural));
            for r in all.iter().filter(|r| r.group == group && &r.version == v) {
                let subs: Vec<Value> = r
                    .subresources
                    .iter()
                    .map(|s| {
                        let (verbs, (g, ver, k)) = subresource_shape(r, s);
                        json!({"subresource": s, "responseKind": {"group": g, "version": ver, "kind": k}, "verbs": verbs})
                    })
                    .collect();
                let mut e = json!({
                    "resource": r.plural,
                    "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": r.singular,
                    "verbs": r.verbs,
                });
                if !r.short_names.is_empty() {
                    e["shortNames"] = json!(r.short_names);
                }
                if !r.categories.is_empty() {
                    e["categories"] = json!(r.categories);
                }
                if !subs.is_empty() {
                    e["subresources"] = Value::Array(subs);
                }
                rs.push(e);
            }
            vs.push(json!({"version": v, "resources": rs, "freshness": "Current"}));
        }
        items.push(json!({"metadata": {"name": group}, "versions": vs}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        subs: &[&str],
    ) -> Resource {
        Resource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: vec![],
            categories: vec![],
            verbs: [
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
            .map(String::from)
            .to_vec(),
            subresources: subs.iter().map(|s| s.to_string()).collect(),
            schema: None,
            custom: false,
            storage_version: None,
            storage_group: None,
            conversion: rudder_machinery::conversion::Conversion::ApiVersionOnly,
            printer: rudder_printers::Printer::for_kind(group, kind),
        }
    }

    fn sample() -> Resources {
        Resources::builtin(vec![
            res("", "v1", "Pod", "pods", true, &["status", "log", "binding"]),
            res("", "v1", "Node", "nodes", false, &["status"]),
            res(
                "apps",
                "v1",
                "Deployment",
                "deployments",
                true,
                &["status", "scale"],
            ),
            res(
                "autoscaling",
                "v2",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                true,
                &["status"],
            ),
            res(
                "autoscaling",
                "v1",
                "HorizontalPodAutoscaler",
                "horizontalpodautoscalers",
                true,
                &["status"],
            ),
        ])
    }

    #[test]
    fn accept_headers_table() {
        let cases = [
            (
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
                Some("v2"),
            ),
            (
                "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json",
                Some("v2beta1"),
            ),
            ("application/json, */*", None),
            ("", None),
        ];
        for (accept, want) in cases {
            assert_eq!(aggregated_version(accept), want, "{accept}");
        }
    }

    #[test]
    fn documents() {
        let r = sample();
        let groups = api_groups(&r);
        assert_eq!(groups["groups"][0]["name"], "apps");
        assert_eq!(groups["groups"][1]["preferredVersion"]["version"], "v2");
        let core = api_resources(&r, "", "v1").expect("core");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .expect("list")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "nodes",
                "nodes/status",
                "pods",
                "pods/status",
                "pods/log",
                "pods/binding"
            ]
        );
        let apps = api_resources(&r, "apps", "v1").expect("apps");
        let scale = &apps["resources"][2];
        assert_eq!(
            (
                scale["name"].as_str(),
                scale["kind"].as_str(),
                scale["group"].as_str()
            ),
            (
                Some("deployments/scale"),
                Some("Scale"),
                Some("autoscaling")
            )
        );
        assert!(api_resources(&r, "apps", "v9").is_none());
        assert!(api_group(&r, "nope").is_none());
        let agg = aggregated(&r, false, "v2");
        assert_eq!(agg["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(agg["items"][1]["versions"][0]["version"], "v2");
        let legacy = aggregated(&r, true, "v2beta1");
        assert_eq!(legacy["apiVersion"], "apidiscovery.k8s.io/v2beta1");
        assert_eq!(
            legacy["items"][0]["versions"][0]["resources"][1]["scope"],
            "Namespaced"
        );
    }
}
