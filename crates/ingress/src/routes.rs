//! The routing table, pure: which Ingresses are ours, their rules by host and path, and each
//! backend resolved to the ready endpoint addresses of its Service. Rebuilt whole from the
//! watched objects after every change; the proxy asks it [`Table::route`] per request.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};

/// The IngressClass this controller creates.
pub const CLASS_NAME: &str = "rudder";
/// The `spec.controller` of the IngressClasses this controller serves.
pub const CONTROLLER: &str = "rudder.io/ingress";
/// Marks an IngressClass as the one for Ingresses without a class.
pub const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The class annotation Ingresses used before `spec.ingressClassName` (still honoured upstream).
const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";
/// The label tying an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How a rule's path matches a request path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    /// The whole path, case-sensitive.
    Exact,
    /// Whole `/`-separated elements (`ImplementationSpecific` is treated the same).
    Prefix,
}

/// One Service port an Ingress sends traffic to, resolved to ready endpoints.
#[derive(Debug)]
pub struct Backend {
    /// `namespace/service:port`, for logs.
    pub name: String,
    /// Ready endpoint addresses (pod IPs and target ports); empty: answer 503.
    pub addrs: Vec<SocketAddr>,
    next: AtomicUsize,
}

impl Backend {
    fn new(name: String, addrs: Vec<SocketAddr>) -> Self {
        Self {
            name,
            addrs,
            next: AtomicUsize::new(0),
        }
    }

    /// The next endpoint, round-robin; `None` when there is no ready one.
    pub fn pick(&self) -> Option<SocketAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        Some(self.addrs[i])
    }
}

#[derive(Debug)]
struct PathRule {
    path: String,
    kind: PathKind,
    backend: Arc<Backend>,
}

/// The routing table.
#[derive(Debug, Default)]
pub struct Table {
    /// Rules by host: exact host names, `*.suffix` wildcards and "" (any host).
    hosts: HashMap<String, Vec<PathRule>>,
    default_backend: Option<Arc<Backend>>,
    /// The Ingresses served (namespace, name), for status updates.
    pub ingresses: Vec<(String, String)>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Decision {
    /// Forward to this backend.
    Backend(Arc<Backend>),
    /// No rule and no default backend matches: 404.
    NotFound,
}

impl Table {
    /// Builds the table from the cluster's objects.
    pub fn build(
        classes: &[IngressClass],
        ingresses: &[Ingress],
        services: &[Service],
        slices: &[EndpointSlice],
    ) -> Self {
        let ours = OurClasses::new(classes);
        let mut mine: Vec<&Ingress> = ingresses.iter().filter(|i| ours.serves(i)).collect();
        // Where two Ingresses claim the same host and path, the older wins (ingress-nginx).
        mine.sort_by(|a, b| {
            let key = |i: &Ingress| {
                (
                    i.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    i.metadata.namespace.clone().unwrap_or_default(),
                    i.metadata.name.clone().unwrap_or_default(),
                )
            };
            key(a).cmp(&key(b))
        });
        let resolver = Resolver::new(services, slices);
        let mut table = Table::default();
        for ing in mine {
            let ns = ing.metadata.namespace.as_deref().unwrap_or("default");
            table
                .ingresses
                .push((ns.to_owned(), ing.metadata.name.clone().unwrap_or_default()));
            let Some(spec) = &ing.spec else { continue };
            if table.default_backend.is_none()
                && let Some(b) = &spec.default_backend
            {
                table.default_backend = Some(resolver.backend(ns, b));
            }
            for rule in spec.rules.iter().flatten() {
                let host = rule.host.as_deref().unwrap_or("").to_ascii_lowercase();
                let Some(http) = &rule.http else { continue };
                let rules = table.hosts.entry(host).or_default();
                for p in &http.paths {
                    let kind = if p.path_type == "Exact" {
                        PathKind::Exact
                    } else {
                        PathKind::Prefix
                    };
                    let path = p.path.clone().unwrap_or_else(|| "/".to_owned());
                    if rules.iter().any(|r| r.kind == kind && r.path == path) {
                        continue;
                    }
                    rules.push(PathRule {
                        path,
                        kind,
                        backend: resolver.backend(ns, &p.backend),
                    });
                }
            }
        }
        table
    }

    /// Routes a request for `host` (the Host header or `:authority`, port allowed) and `path`
    /// (without the query). The host's own rules come first, then a matching wildcard's, then
    /// the rules without a host, then the default backend.
    pub fn route(&self, host: &str, path: &str) -> Decision {
        let host = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        let wildcard = host.split_once('.').map(|(_, rest)| format!("*.{rest}"));
        let candidates = [Some(host), wildcard, Some(String::new())];
        for h in candidates.iter().flatten() {
            if let Some(rules) = self.hosts.get(h)
                && let Some(b) = longest_match(rules, path)
            {
                return Decision::Backend(b);
            }
        }
        match &self.default_backend {
            Some(b) => Decision::Backend(b.clone()),
            None => Decision::NotFound,
        }
    }
}

/// The rule with the longest matching path; an Exact rule beats a Prefix rule of the same path.
fn longest_match(rules: &[PathRule], path: &str) -> Option<Arc<Backend>> {
    rules
        .iter()
        .filter(|r| path_matches(r.kind, &r.path, path))
        .max_by_key(|r| {
            (
                r.path.trim_end_matches('/').len(),
                r.kind == PathKind::Exact,
            )
        })
        .map(|r| r.backend.clone())
}

/// Whether a rule's path matches a request path. Prefix matches element by element, ignoring
/// a trailing `/` on either side: `/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`.
pub fn path_matches(kind: PathKind, rule: &str, path: &str) -> bool {
    match kind {
        PathKind::Exact => rule == path,
        PathKind::Prefix => {
            let elements = |p: &str| {
                p.split('/')
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            };
            let (r, p) = (elements(rule), elements(path));
            r.len() <= p.len() && r.iter().zip(&p).all(|(a, b)| a == b)
        }
    }
}

/// Whether a host (or SNI name) matches a rule or TLS host: equal, or `*.suffix` covering
/// exactly one more label (`*.example.com` matches `a.example.com`, not `a.b.example.com` or
/// `example.com`).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    let (pattern, host) = (pattern.to_ascii_lowercase(), host.to_ascii_lowercase());
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .split_once('.')
            .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix),
        None => pattern == host,
    }
}

/// The host part of a Host header: `a.b:8443` → `a.b`, `[::1]:80` → `::1`.
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

/// The IngressClasses this controller serves.
struct OurClasses {
    names: Vec<String>,
    has_default: bool,
}

impl OurClasses {
    fn new(classes: &[IngressClass]) -> Self {
        let ours: Vec<&IngressClass> = classes
            .iter()
            .filter(|c| c.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER))
            .collect();
        Self {
            names: ours
                .iter()
                .filter_map(|c| c.metadata.name.clone())
                .collect(),
            has_default: ours.iter().any(|c| {
                c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
            }),
        }
    }

    /// An Ingress is ours when its class (field, else the legacy annotation) is one of ours, or
    /// when it has none and one of ours is the default class.
    fn serves(&self, ing: &Ingress) -> bool {
        let class = ing
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.clone())
            .or_else(|| {
                ing.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION).cloned())
            });
        match class {
            Some(c) => self.names.contains(&c),
            None => self.has_default,
        }
    }
}

/// Resolves Ingress backends to endpoint addresses.
struct Resolver<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    /// EndpointSlices by (namespace, service name).
    slices: BTreeMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> Resolver<'a> {
    fn new(services: &'a [Service], slices: &'a [EndpointSlice]) -> Self {
        let services = services
            .iter()
            .filter_map(|s| {
                Some((
                    (
                        s.metadata.namespace.as_deref()?,
                        s.metadata.name.as_deref()?,
                    ),
                    s,
                ))
            })
            .collect();
        let mut by_service: BTreeMap<_, Vec<_>> = BTreeMap::new();
        for s in slices {
            if let (Some(ns), Some(svc)) = (
                s.metadata.namespace.as_deref(),
                s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(SERVICE_NAME_LABEL)),
            ) {
                by_service.entry((ns, svc.as_str())).or_default().push(s);
            }
        }
        Self {
            services,
            slices: by_service,
        }
    }

    /// The backend an Ingress backend names; with no addresses when the Service, its port or
    /// any ready endpoint is missing (a `resource` backend is not supported and has none).
    fn backend(&self, ns: &str, b: &IngressBackend) -> Arc<Backend> {
        let Some(sb) = &b.service else {
            return Arc::new(Backend::new(format!("{ns}/<resource>"), Vec::new()));
        };
        let port = sb.port.as_ref();
        let port_label = port
            .and_then(|p| p.name.clone().or(p.number.map(|n| n.to_string())))
            .unwrap_or_default();
        let name = format!("{ns}/{}:{port_label}", sb.name);
        let addrs = self.addresses(ns, &sb.name, port).unwrap_or_default();
        Arc::new(Backend::new(name, addrs))
    }

    fn addresses(
        &self,
        ns: &str,
        svc: &str,
        port: Option<&k8s_openapi::api::networking::v1::ServiceBackendPort>,
    ) -> Option<Vec<SocketAddr>> {
        let service = self.services.get(&(ns, svc))?;
        let port = port?;
        let sport = service.spec.as_ref()?.ports.as_ref()?.iter().find(|p| {
            port.number.is_some_and(|n| n == p.port)
                || port
                    .name
                    .as_ref()
                    .is_some_and(|n| Some(n) == p.name.as_ref())
        })?;
        let port_name = sport.name.clone().unwrap_or_default();
        let mut addrs = Vec::new();
        for slice in self.slices.get(&(ns, svc)).into_iter().flatten() {
            let Some(target) =
                slice.ports.iter().flatten().find_map(|p| {
                    (p.name.clone().unwrap_or_default() == port_name).then_some(p.port?)
                })
            else {
                continue;
            };
            let Ok(target) = u16::try_from(target) else {
                continue;
            };
            for ep in slice.endpoints.iter().flatten() {
                // Unknown readiness counts as ready (EndpointSlice API).
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                for a in &ep.addresses {
                    if let Ok(ip) = a.parse::<IpAddr>() {
                        let sa = SocketAddr::new(ip, target);
                        if !addrs.contains(&sa) {
                            addrs.push(sa);
                        }
                    }
                }
            }
        }
        addrs.sort();
        Some(addrs)
    }
}

#[cfg(test)]
#[path = "routes_tests.rs"]
mod tests;
