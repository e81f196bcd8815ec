//! The labels of `apiserver_request_*` for one request, as upstream derives them from its
//! RequestInfo (`endpoints/metrics`: CanonicalVerb and cleanVerb). Pure.

use std::collections::HashMap;

use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, EncodeLabelValue, LabelSetEncoder};
use rudder_metrics::prometheus_client;

use crate::request_info::{Target, Verb};

/// Subresources upstream serves as CONNECT (streams), whatever the HTTP method.
const CONNECT_SUBRESOURCES: &[&str] = &["exec", "attach", "portforward", "proxy"];

/// One request's labels. `dry_run` and `code` are left out of the encoding when `None`, so
/// one type serves the counter (with the code), the histogram and the long-running gauge
/// (without dry_run), and a request builds it once.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestLabels {
    /// Upstream's uppercase verb: GET, LIST, WATCH, POST, PUT, PATCH, APPLY, DELETE, CONNECT.
    pub verb: &'static str,
    /// `""`, or `"All"` for `?dryRun=All`.
    pub dry_run: Option<&'static str>,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    /// `resource` (one object), `namespace`, `cluster`, or `""` outside the resource tree.
    pub scope: &'static str,
    pub component: &'static str,
    /// The HTTP status code (the counter only).
    pub code: Option<u16>,
}

impl RequestLabels {
    /// A request that failed before it was routed (authentication, a bad path): only the
    /// method is known.
    pub fn unrouted(method: &str) -> Self {
        Self::non_resource(method)
    }

    fn non_resource(method: &str) -> Self {
        Self {
            verb: method_verb(method),
            dry_run: Some(""),
            group: String::new(),
            version: String::new(),
            resource: String::new(),
            subresource: String::new(),
            scope: "",
            component: "apiserver",
            code: None,
        }
    }

    /// Watches (and streams) count in `apiserver_longrunning_requests` while they run.
    pub fn is_long_running(&self) -> bool {
        matches!(self.verb, "WATCH" | "CONNECT")
    }

    /// The labels of `apiserver_longrunning_requests` (no dry_run, no code).
    pub fn long_running(&self) -> Self {
        Self {
            dry_run: None,
            code: None,
            ..self.clone()
        }
    }

    /// Forgets the resource of a request for a resource the server does not serve, so random
    /// paths cannot grow the families without bound.
    pub fn forget_resource(&mut self) {
        self.group.clear();
        self.version.clear();
        self.resource.clear();
        self.subresource.clear();
        self.scope = "";
    }
}

/// A method as upstream reports it outside the resource tree.
fn method_verb(method: &str) -> &'static str {
    match method {
        "GET" | "HEAD" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    }
}

/// The labels of a routed request. `content_type` tells a server-side apply (APPLY) from
/// other patches.
pub fn request_labels(
    method: &str,
    target: &Target,
    query: &HashMap<String, String>,
    content_type: &str,
) -> RequestLabels {
    let Target::Resource(r) = target else {
        return RequestLabels::non_resource(method);
    };
    let sub = r.subresource.as_deref().unwrap_or("");
    let verb = match r.verb {
        _ if CONNECT_SUBRESOURCES.contains(&sub) => "CONNECT",
        Verb::Watch => "WATCH",
        Verb::List => "LIST",
        Verb::Get => "GET",
        Verb::Create => "POST",
        Verb::Update => "PUT",
        Verb::Patch if content_type.starts_with("application/apply-patch") => "APPLY",
        Verb::Patch => "PATCH",
        Verb::Delete | Verb::DeleteCollection => "DELETE",
    };
    let scope = match (&r.name, &r.namespace) {
        (Some(_), _) => "resource",
        (None, Some(_)) => "namespace",
        (None, None) => "cluster",
    };
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => "",
        Some(_) => "All",
    };
    RequestLabels {
        verb,
        dry_run: Some(dry_run),
        group: r.group.clone(),
        version: r.version.clone(),
        resource: r.resource.clone(),
        subresource: sub.to_owned(),
        scope,
        component: "apiserver",
        code: None,
    }
}

fn label<V: EncodeLabelValue>(
    encoder: &mut LabelSetEncoder,
    key: &'static str,
    value: V,
) -> Result<(), std::fmt::Error> {
    (key, value).encode(encoder.encode_label())
}

impl EncodeLabelSet for RequestLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        label(encoder, "verb", self.verb)?;
        if let Some(d) = self.dry_run {
            label(encoder, "dry_run", d)?;
        }
        label(encoder, "group", self.group.as_str())?;
        label(encoder, "version", self.version.as_str())?;
        label(encoder, "resource", self.resource.as_str())?;
        label(encoder, "subresource", self.subresource.as_str())?;
        label(encoder, "scope", self.scope)?;
        label(encoder, "component", self.component)?;
        if let Some(c) = self.code {
            label(encoder, "code", c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request_info::{parse, parse_query};

    #[test]
    fn labels_table() {
        // (method, path, query, content type) → (verb, group, resource, subresource, scope, dry run)
        let cases = [
            (
                "GET",
                "/api/v1/pods",
                "",
                "",
                ("LIST", "", "pods", "", "cluster", ""),
            ),
            (
                "HEAD",
                "/api/v1/namespaces/a/pods",
                "",
                "",
                ("LIST", "", "pods", "", "namespace", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods",
                "watch=true",
                "",
                ("WATCH", "", "pods", "", "namespace", ""),
            ),
            (
                "GET",
                "/api/v1/watch/pods",
                "",
                "",
                ("WATCH", "", "pods", "", "cluster", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/p",
                "",
                "",
                ("GET", "", "pods", "", "resource", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/p/log",
                "",
                "",
                ("GET", "", "pods", "log", "resource", ""),
            ),
            (
                "POST",
                "/api/v1/namespaces/a/pods/p/exec",
                "",
                "",
                ("CONNECT", "", "pods", "exec", "resource", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/a/pods/p/portforward",
                "",
                "",
                ("CONNECT", "", "pods", "portforward", "resource", ""),
            ),
            (
                "POST",
                "/apis/apps/v1/namespaces/a/deployments",
                "dryRun=All",
                "application/json",
                ("POST", "apps", "deployments", "", "namespace", "All"),
            ),
            (
                "PUT",
                "/apis/apps/v1/namespaces/a/deployments/d/status",
                "",
                "",
                ("PUT", "apps", "deployments", "status", "resource", ""),
            ),
            (
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d/scale",
                "",
                "application/merge-patch+json",
                ("PATCH", "apps", "deployments", "scale", "resource", ""),
            ),
            (
                "PATCH",
                "/api/v1/namespaces/a/configmaps/c",
                "",
                "application/apply-patch+yaml",
                ("APPLY", "", "configmaps", "", "resource", ""),
            ),
            (
                "DELETE",
                "/api/v1/namespaces/a/pods",
                "",
                "",
                ("DELETE", "", "pods", "", "namespace", ""),
            ),
            (
                "DELETE",
                "/api/v1/nodes/n",
                "",
                "",
                ("DELETE", "", "nodes", "", "resource", ""),
            ),
            (
                "GET",
                "/api/v1/namespaces/kube-system",
                "",
                "",
                ("GET", "", "namespaces", "", "resource", ""),
            ),
            ("GET", "/metrics", "", "", ("GET", "", "", "", "", "")),
            ("GET", "/apis", "", "", ("GET", "", "", "", "", "")),
        ];
        for (method, path, query, ct, (verb, group, resource, sub, scope, dry)) in cases {
            let q = parse_query(Some(query));
            let target = parse(method, path, &q).expect(path);
            let l = request_labels(method, &target, &q, ct);
            assert_eq!(
                (
                    l.verb,
                    l.group.as_str(),
                    l.resource.as_str(),
                    l.subresource.as_str(),
                    l.scope,
                    l.dry_run
                ),
                (verb, group, resource, sub, scope, Some(dry)),
                "{method} {path}?{query}"
            );
            assert_eq!(l.component, "apiserver");
            assert_eq!(
                l.is_long_running(),
                matches!(verb, "WATCH" | "CONNECT"),
                "{path}"
            );
        }
        assert_eq!(RequestLabels::unrouted("BREW").verb, "other");
        assert_eq!(RequestLabels::unrouted("POST").verb, "POST");
    }

    #[test]
    fn encoding_leaves_out_what_a_family_does_not_have() {
        use prometheus_client::metrics::{counter::Counter, family::Family};
        let q = parse_query(Some(""));
        let target = parse("GET", "/api/v1/namespaces/a/pods", &q).expect("path");
        let mut l = request_labels("GET", &target, &q, "");
        let family = Family::<RequestLabels, Counter>::default();
        l.code = Some(200);
        family.get_or_create(&l).inc();
        family.get_or_create(&l.long_running()).inc();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("t", "t", family);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(text.contains("t_total{verb=\"LIST\",dry_run=\"\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"namespace\",component=\"apiserver\",code=\"200\"} 1\n"), "{text}");
        assert!(text.contains("t_total{verb=\"LIST\",group=\"\",version=\"v1\",resource=\"pods\",subresource=\"\",scope=\"namespace\",component=\"apiserver\"} 1\n"), "{text}");
        l.forget_resource();
        assert_eq!((l.resource.as_str(), l.scope, l.verb), ("", "", "LIST"));
    }
}
