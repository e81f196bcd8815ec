//! Which pods back a Service and on which ports, after upstream's `endpointslice` and
//! `endpoints` controllers: pods of the selector that have an IP and are not finished; named
//! target ports resolved per pod (pods may differ); endpoints grouped by address family and
//! port set; ready/serving/terminating conditions. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::pods;

/// Most endpoints in one EndpointSlice (upstream's default `--max-endpoints-per-slice`).
pub const MAX_PER_SLICE: usize = 100;

/// One port of a group.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Port {
    pub name: Option<String>,
    pub port: i32,
    pub protocol: String,
    pub app_protocol: Option<String>,
}

/// One pod as an endpoint.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodEndpoint {
    pub ip: String,
    pub pod: String,
    pub uid: String,
    pub node_name: Option<String>,
    pub hostname: Option<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

/// Endpoints sharing an address family and a port set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// `IPv4` or `IPv6`.
    pub address_type: &'static str,
    pub ports: Vec<Port>,
    /// Sorted by IP.
    pub endpoints: Vec<PodEndpoint>,
}

/// The service's selector, if it has one (services without are not managed here).
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

fn matches(sel: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    sel.iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Whether `pod` is selected by `svc` (same namespace, selector matches).
pub fn selects(svc: &Service, pod: &Pod) -> bool {
    svc.metadata.namespace == pod.metadata.namespace
        && selector(svc).is_some_and(|s| matches(s, pod))
}

/// The container port a service port targets on `pod`, if the pod has it.
fn target_port(sp: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(p)) => Some(*p),
        Some(IntOrString::String(name)) => {
            let proto = sp.protocol.as_deref().unwrap_or("TCP");
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.as_deref().unwrap_or_default())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// The groups of endpoints `svc` should have; `None` when the service has no selector.
/// `include_terminating`: EndpointSlices list terminating pods (with their conditions), the
/// legacy Endpoints do not.
pub fn desired(
    svc: &Service,
    ns_pods: &[Arc<Pod>],
    include_terminating: bool,
) -> Option<Vec<Group>> {
    let sel = selector(svc)?;
    let spec = svc.spec.as_ref()?;
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let svc_name = svc.metadata.name.as_deref().unwrap_or_default();
    let mut groups: BTreeMap<(&'static str, Vec<Port>), Vec<PodEndpoint>> = BTreeMap::new();
    for pod in ns_pods {
        if pod.metadata.namespace != svc.metadata.namespace || !matches(sel, pod) {
            continue;
        }
        let status = pod.status.as_ref();
        let ip = status.and_then(|s| s.pod_ip.clone()).unwrap_or_default();
        let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
        // No IP yet, or finished: not an endpoint.
        if ip.is_empty() || matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        let terminating = pods::is_terminating(pod);
        if terminating && !include_terminating && !publish_not_ready {
            continue;
        }
        let pod_ready = pods::is_ready(pod);
        let mut ports: Vec<Port> = spec
            .ports
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|sp| {
                Some(Port {
                    name: sp
                        .name
                        .clone()
                        .or_else(|| Some(String::new()))
                        .filter(|n| !n.is_empty()),
                    port: target_port(sp, pod)?,
                    protocol: sp.protocol.clone().unwrap_or_else(|| "TCP".into()),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        ports.sort();
        let pod_spec = pod.spec.as_ref();
        let hostname = pod_spec
            .filter(|s| s.subdomain.as_deref() == Some(svc_name))
            .and_then(|s| s.hostname.clone());
        let family = if ip.contains(':') { "IPv6" } else { "IPv4" };
        groups
            .entry((family, ports))
            .or_default()
            .push(PodEndpoint {
                ip,
                pod: pod.metadata.name.clone().unwrap_or_default(),
                uid: pod.metadata.uid.clone().unwrap_or_default(),
                node_name: pod_spec.and_then(|s| s.node_name.clone()),
                hostname,
                ready: publish_not_ready || (pod_ready && !terminating),
                serving: publish_not_ready || pod_ready,
                terminating,
            });
    }
    Some(
        groups
            .into_iter()
            .map(|((address_type, ports), mut endpoints)| {
                endpoints.sort();
                Group {
                    address_type,
                    ports,
                    endpoints,
                }
            })
            .collect(),
    )
}

/// Groups cut into slices of at most [`MAX_PER_SLICE`] endpoints.
pub fn slices(groups: &[Group]) -> Vec<Group> {
    let mut out = Vec::new();
    for g in groups {
        if g.endpoints.is_empty() {
            out.push(g.clone());
        }
        for chunk in g.endpoints.chunks(MAX_PER_SLICE) {
            out.push(Group {
                address_type: g.address_type,
                ports: g.ports.clone(),
                endpoints: chunk.to_vec(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::testing::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, ServicePort, ServiceSpec};

    fn service(target: IntOrString) -> Service {
        Service {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                selector: Some([("app".to_string(), "web".to_string())].into()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Some("TCP".into()),
                    target_port: Some(target),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn with_ip(mut p: Pod, ip: &str, port: i32) -> Pod {
        p.status.get_or_insert_default().pod_ip = Some(ip.into());
        p.spec.get_or_insert_default().containers = vec![Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("web".into()),
                container_port: port,
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }];
        p
    }

    #[test]
    fn selection_conditions_and_named_ports() {
        let ready_pod = with_ip(ready(pod("a", "web", 1), 1), "10.0.0.2", 8080);
        let unready = with_ip(running(pod("b", "web", 1)), "10.0.0.3", 9090);
        let no_ip = ready(pod("c", "web", 1), 1);
        let other = with_ip(ready(pod("d", "db", 1), 1), "10.0.0.5", 8080);
        let mut going = with_ip(ready(pod("e", "web", 1), 1), "10.0.0.6", 8080);
        going.metadata.deletion_timestamp = going.metadata.creation_timestamp.clone();
        let pods: Vec<Arc<Pod>> = [ready_pod, unready, no_ip, other, going]
            .into_iter()
            .map(Arc::new)
            .collect();

        let groups =
            desired(&service(IntOrString::String("web".into())), &pods, true).expect("selector");
        // Two port sets: 8080 (a, e) and 9090 (b).
        assert_eq!(groups.len(), 2);
        let g8080 = groups
            .iter()
            .find(|g| g.ports[0].port == 8080)
            .expect("8080");
        let ips: Vec<&str> = g8080.endpoints.iter().map(|e| e.ip.as_str()).collect();
        assert_eq!(ips, ["10.0.0.2", "10.0.0.6"]);
        let e = &g8080.endpoints[1];
        assert!(!e.ready && e.serving && e.terminating);
        let g9090 = groups
            .iter()
            .find(|g| g.ports[0].port == 9090)
            .expect("9090");
        assert!(!g9090.endpoints[0].ready && !g9090.endpoints[0].serving);
        assert_eq!(g9090.ports[0].name.as_deref(), Some("http"));

        // Legacy Endpoints leave terminating pods out.
        let legacy = desired(&service(IntOrString::Int(8080)), &pods, false).expect("selector");
        let all: usize = legacy.iter().map(|g| g.endpoints.len()).sum();
        assert_eq!(all, 2);

        let mut no_selector = service(IntOrString::Int(80));
        if let Some(s) = no_selector.spec.as_mut() {
            s.selector = None;
        }
        assert!(desired(&no_selector, &pods, true).is_none());
    }

    #[test]
    fn slices_hold_at_most_100() {
        let g = Group {
            address_type: "IPv4",
            ports: vec![],
            endpoints: (0..250)
                .map(|i| PodEndpoint {
                    ip: format!("10.0.{}.{}", i / 200, i % 200),
                    pod: format!("p{i}"),
                    uid: String::new(),
                    node_name: None,
                    hostname: None,
                    ready: true,
                    serving: true,
                    terminating: false,
                })
                .collect(),
        };
        let sizes: Vec<usize> = slices(&[g]).iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }
}
