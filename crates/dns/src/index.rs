//! The cluster's DNS records as data: Services, EndpointSlices and Pods turned into an index,
//! and the answer to one question (name, type) by the Kubernetes DNS specification. Pure: the
//! server converts [`Answer`]s to wire records, the watchers rebuild the index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// TTL of every record (CoreDNS's default for cluster records): short, so a moved Service is
/// found again quickly.
pub const TTL: u32 = 5;
/// The schema version answered at `dns-version.<zone>` (spec §2.2).
pub const SCHEMA_VERSION: &str = "1.1.0";
/// Label naming the Service an EndpointSlice belongs to.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A question's type, reduced to what the index distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
    /// Service location.
    Srv,
    /// Reverse lookup.
    Ptr,
    /// Text (the schema version).
    Txt,
    /// The zone's start of authority.
    Soa,
    /// Every type.
    Any,
    /// Anything else (answered with no data when the name exists).
    Other,
}

/// A record's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Data {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// An alias (ExternalName Services).
    Cname(String),
    /// A service location.
    Srv {
        /// Port the service listens on.
        port: u16,
        /// Host serving it.
        target: String,
    },
    /// The name of an address.
    Ptr(String),
    /// Text.
    Txt(String),
    /// The zone's start of authority.
    Soa,
}

/// One record: its owner name (fully qualified, without the trailing dot) and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lowercase.
    pub name: String,
    /// Data.
    pub data: Data,
}

/// The answer to one question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The name exists: these records answer (none: the name exists without data of the type).
    Found {
        /// The answer section.
        answers: Vec<Record>,
        /// The additional section (addresses of SRV targets).
        additionals: Vec<Record>,
    },
    /// The name is inside the cluster domain and does not exist.
    NxDomain,
    /// Not ours: ask the node's resolvers.
    Forward,
}

#[derive(Clone, Debug, Default)]
struct Port {
    name: String,
    protocol: String,
    port: u16,
}

#[derive(Clone, Debug)]
struct Endpoint {
    ip: IpAddr,
    hostname: Option<String>,
}

#[derive(Clone, Debug)]
enum Kind {
    ClusterIp(Vec<IpAddr>),
    Headless,
    ExternalName(String),
}

#[derive(Clone, Debug)]
struct Svc {
    kind: Kind,
    ports: Vec<Port>,
    /// Ready endpoints (deduplicated by address), with the ports their slices list.
    endpoints: Vec<(Endpoint, Vec<Port>)>,
}

/// The records of a cluster, for one cluster domain.
#[derive(Clone, Debug, Default)]
pub struct Index {
    zone: String,
    /// (namespace, name) → Service.
    services: BTreeMap<(String, String), Svc>,
    namespaces: BTreeSet<String>,
    /// (namespace, address) of every pod with an address.
    pods: BTreeSet<(String, Ipv4Addr)>,
    /// Address → name, for reverse lookups.
    ptr: HashMap<IpAddr, String>,
}

/// The unique name of an endpoint without a hostname (spec: "system-assigned"; CoreDNS's
/// form): its address with dashes.
fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

fn parse_dashed_v4(label: &str) -> Option<Ipv4Addr> {
    label.replace('-', ".").parse().ok()
}

fn service_ports(svc: &Service) -> Vec<Port> {
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().filter(|n| !n.is_empty())?.to_lowercase(),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                port: u16::try_from(p.port).ok()?,
            })
        })
        .collect()
}

fn slice_ports(slice: &EndpointSlice) -> Vec<Port> {
    slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(Port {
                name: p.name.clone().filter(|n| !n.is_empty())?.to_lowercase(),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_lowercase(),
                port: u16::try_from(p.port?).ok()?,
            })
        })
        .collect()
}

impl Index {
    /// Builds the index of `zone` (e.g. `cluster.local`) from the cluster's objects.
    pub fn build(zone: &str, services: &[Service], slices: &[EndpointSlice], pods: &[Pod]) -> Self {
        let zone = zone.trim_end_matches('.').to_lowercase();
        let mut index = Index {
            zone: zone.clone(),
            ..Index::default()
        };
        for svc in services {
            let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) else {
                continue;
            };
            let Some(spec) = &svc.spec else { continue };
            let kind = if spec.type_.as_deref() == Some("ExternalName") {
                let Some(target) = spec.external_name.clone().filter(|t| !t.is_empty()) else {
                    continue;
                };
                Kind::ExternalName(target.trim_end_matches('.').to_lowercase())
            } else {
                let ips: Vec<IpAddr> = spec
                    .cluster_ips
                    .iter()
                    .flatten()
                    .chain(spec.cluster_ip.iter())
                    .filter_map(|ip| ip.parse().ok())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if ips.is_empty() {
                    Kind::Headless
                } else {
                    Kind::ClusterIp(ips)
                }
            };
            let (ns, name) = (ns.to_lowercase(), name.to_lowercase());
            if let Kind::ClusterIp(ips) = &kind {
                for ip in ips {
                    index.ptr.insert(*ip, format!("{name}.{ns}.svc.{zone}"));
                }
            }
            index.namespaces.insert(ns.clone());
            index.services.insert(
                (ns, name),
                Svc {
                    kind,
                    ports: service_ports(svc),
                    endpoints: Vec::new(),
                },
            );
        }
        for slice in slices {
            let Some(ns) = slice.metadata.namespace.as_deref() else {
                continue;
            };
            let Some(owner) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
            else {
                continue;
            };
            let key = (ns.to_lowercase(), owner.to_lowercase());
            let Some(svc) = index.services.get_mut(&key) else {
                continue;
            };
            let ports = slice_ports(slice);
            for ep in slice.endpoints.iter().flatten() {
                // An unset condition means ready (the API's documented meaning).
                if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                    continue;
                }
                let hostname = ep.hostname.clone().map(|h| h.to_lowercase());
                for addr in &ep.addresses {
                    let Ok(ip) = addr.parse::<IpAddr>() else {
                        continue;
                    };
                    if svc.endpoints.iter().any(|(e, _)| e.ip == ip) {
                        continue;
                    }
                    if let (Kind::Headless, Some(h)) = (&svc.kind, &hostname) {
                        index
                            .ptr
                            .entry(ip)
                            .or_insert_with(|| format!("{h}.{}.{}.svc.{zone}", key.1, key.0));
                    }
                    svc.endpoints.push((
                        Endpoint {
                            ip,
                            hostname: hostname.clone(),
                        },
                        ports.clone(),
                    ));
                }
            }
        }
        for pod in pods {
            let Some(ns) = &pod.metadata.namespace else {
                continue;
            };
            let status = pod.status.as_ref();
            let ips = status
                .and_then(|s| s.pod_ips.as_ref())
                .into_iter()
                .flatten()
                .map(|p| p.ip.clone())
                .chain(status.and_then(|s| s.pod_ip.clone()));
            for ip in ips {
                if let Ok(v4) = ip.parse::<Ipv4Addr>() {
                    index.pods.insert((ns.to_lowercase(), v4));
                }
            }
        }
        index
    }

    /// The cluster domain this index answers for.
    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// Answers `name` (any case, with or without the trailing dot) for `qtype`.
    pub fn lookup(&self, name: &str, qtype: QType) -> Answer {
        let name = name.trim_end_matches('.').to_lowercase();
        if qtype == QType::Ptr
            && let Some(ip) = reverse_ip(&name)
            && let Some(target) = self.ptr.get(&ip)
        {
            return found(vec![record(&name, Data::Ptr(target.clone()))]);
        }
        let rest = if name == self.zone {
            ""
        } else if let Some(rest) = name.strip_suffix(&format!(".{}", self.zone)) {
            rest
        } else {
            return Answer::Forward;
        };
        let labels: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('.').collect()
        };
        match labels.as_slice() {
            [] => match qtype {
                QType::Soa | QType::Any => found(vec![record(&name, Data::Soa)]),
                _ => found(Vec::new()),
            },
            ["dns-version"] => match qtype {
                QType::Txt | QType::Any => {
                    found(vec![record(&name, Data::Txt(SCHEMA_VERSION.into()))])
                }
                _ => found(Vec::new()),
            },
            ["svc" | "pod"] => found(Vec::new()),
            [ns, "svc" | "pod"] => {
                if self.namespaces.contains(*ns) {
                    found(Vec::new())
                } else {
                    Answer::NxDomain
                }
            }
            [svc, ns, "svc"] => self.service(&name, ns, svc, qtype),
            [host, svc, ns, "svc"] => self.endpoint(&name, ns, svc, host, qtype),
            [port, proto, svc, ns, "svc"] => {
                match (port.strip_prefix('_'), proto.strip_prefix('_')) {
                    (Some(port), Some(proto)) => self.srv(&name, ns, svc, Some((port, proto))),
                    _ => Answer::NxDomain,
                }
            }
            [dashed_ip, ns, "pod"] => match parse_dashed_v4(dashed_ip) {
                Some(ip) if self.pods.contains(&((*ns).to_owned(), ip)) => match qtype {
                    QType::A | QType::Any => found(vec![record(&name, Data::A(ip))]),
                    _ => found(Vec::new()),
                },
                _ => Answer::NxDomain,
            },
            _ => Answer::NxDomain,
        }
    }

    fn get(&self, ns: &str, svc: &str) -> Option<&Svc> {
        self.services.get(&(ns.to_owned(), svc.to_owned()))
    }

    fn service(&self, name: &str, ns: &str, svc_name: &str, qtype: QType) -> Answer {
        let Some(svc) = self.get(ns, svc_name) else {
            return Answer::NxDomain;
        };
        let addresses = |ips: &mut dyn Iterator<Item = IpAddr>| -> Vec<Record> {
            ips.filter_map(|ip| address_record(name, ip, qtype))
                .collect()
        };
        match (&svc.kind, qtype) {
            (Kind::ExternalName(target), _) => {
                found(vec![record(name, Data::Cname(target.clone()))])
            }
            (_, QType::Srv) => self.srv(name, ns, svc_name, None),
            (Kind::ClusterIp(ips), _) => found(addresses(&mut ips.iter().copied())),
            (Kind::Headless, _) => found(addresses(&mut svc.endpoints.iter().map(|(e, _)| e.ip))),
        }
    }

    fn endpoint(&self, name: &str, ns: &str, svc: &str, host: &str, qtype: QType) -> Answer {
        let Some(Svc {
            kind: Kind::Headless,
            endpoints,
            ..
        }) = self.get(ns, svc)
        else {
            return Answer::NxDomain;
        };
        let matching: Vec<IpAddr> = endpoints
            .iter()
            .filter(|(e, _)| endpoint_host(e) == host)
            .map(|(e, _)| e.ip)
            .collect();
        if matching.is_empty() {
            return Answer::NxDomain;
        }
        found(
            matching
                .into_iter()
                .filter_map(|ip| address_record(name, ip, qtype))
                .collect(),
        )
    }

    /// SRV records of a Service: one named port (`wanted` = (port name, protocol)) or all.
    fn srv(&self, name: &str, ns: &str, svc_name: &str, wanted: Option<(&str, &str)>) -> Answer {
        let Some(svc) = self.get(ns, svc_name) else {
            return Answer::NxDomain;
        };
        let matches = |p: &Port| wanted.is_none_or(|(n, proto)| p.name == n && p.protocol == proto);
        let svc_fqdn = format!("{svc_name}.{ns}.svc.{}", self.zone);
        let (mut answers, mut additionals) = (Vec::new(), Vec::new());
        match &svc.kind {
            Kind::ExternalName(_) => {}
            Kind::ClusterIp(ips) => {
                for p in svc.ports.iter().filter(|p| matches(p)) {
                    answers.push(srv_record(name, p.port, &svc_fqdn));
                }
                if !answers.is_empty() {
                    additionals.extend(
                        ips.iter()
                            .filter_map(|ip| address_record(&svc_fqdn, *ip, QType::Any)),
                    );
                }
            }
            Kind::Headless => {
                for (ep, ports) in &svc.endpoints {
                    let target = format!("{}.{svc_fqdn}", endpoint_host(ep));
                    let mut any = false;
                    for p in ports.iter().filter(|p| matches(p)) {
                        answers.push(srv_record(name, p.port, &target));
                        any = true;
                    }
                    if any {
                        additionals.extend(address_record(&target, ep.ip, QType::Any));
                    }
                }
            }
        }
        if answers.is_empty() && wanted.is_some() {
            return Answer::NxDomain;
        }
        Answer::Found {
            answers,
            additionals,
        }
    }
}

fn endpoint_host(e: &Endpoint) -> String {
    e.hostname.clone().unwrap_or_else(|| dashed(e.ip))
}

fn found(answers: Vec<Record>) -> Answer {
    Answer::Found {
        answers,
        additionals: Vec::new(),
    }
}

fn record(name: &str, data: Data) -> Record {
    Record {
        name: name.to_owned(),
        data,
    }
}

fn srv_record(name: &str, port: u16, target: &str) -> Record {
    record(
        name,
        Data::Srv {
            port,
            target: target.to_owned(),
        },
    )
}

/// The address record of `ip` at `name` if `qtype` asks for its family.
fn address_record(name: &str, ip: IpAddr, qtype: QType) -> Option<Record> {
    match (ip, qtype) {
        (IpAddr::V4(v4), QType::A | QType::Any) => Some(record(name, Data::A(v4))),
        (IpAddr::V6(v6), QType::Aaaa | QType::Any) => Some(record(name, Data::Aaaa(v6))),
        _ => None,
    }
}

/// The address a reverse name (`4.3.2.1.in-addr.arpa`) stands for; IPv4 only.
fn reverse_ip(name: &str) -> Option<IpAddr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let octets: Vec<u8> = rest
        .split('.')
        .rev()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let octets: [u8; 4] = octets.try_into().ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(octets)))
}

#[cfg(test)]
mod tests;
