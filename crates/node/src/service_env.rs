//! The Service environment variables the kubelet gives every container: `FOO_SERVICE_HOST`,
//! `FOO_SERVICE_PORT[_NAME]` and the Docker-link style `FOO_PORT_80_TCP...`, for the Services
//! of the pod's namespace (when `enableServiceLinks`, the default) and always for the
//! `kubernetes` Service of `default` (upstream's pkg/kubelet/envvars). Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

/// Services of `default` whose variables every pod gets (upstream's "master services").
const MASTER_SERVICES: [&str; 1] = ["kubernetes"];

/// The variables for a pod in `namespace` from `services` (those of its namespace and of
/// `default`; others are ignored), in a stable order.
pub fn variables(
    namespace: &str,
    enable_service_links: bool,
    services: &[Service],
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for svc in services {
        let (Some(ns), Some(name)) = (
            svc.metadata.namespace.as_deref(),
            svc.metadata.name.as_deref(),
        ) else {
            continue;
        };
        if !has_address(svc) {
            continue;
        }
        if ns == "default" && MASTER_SERVICES.contains(&name) {
            // A Service of the pod's own namespace with the same name wins.
            chosen.entry(name).or_insert(svc);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, svc);
        }
    }
    let mut out = Vec::new();
    for (name, svc) in chosen {
        from_service(name, svc, &mut out);
    }
    out
}

fn has_address(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// `my-svc` → `MY_SVC`.
fn env_name(s: &str) -> String {
    s.to_ascii_uppercase().replace('-', "_")
}

fn from_service(name: &str, svc: &Service, out: &mut Vec<(String, String)>) {
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    let ip = spec.cluster_ip.clone().unwrap_or_default();
    let prefix = env_name(name);
    let ports = spec.ports.as_deref().unwrap_or_default();
    out.push((format!("{prefix}_SERVICE_HOST"), ip.clone()));
    if let Some(first) = ports.first() {
        out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    }
    for p in ports {
        if let Some(port_name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", env_name(port_name)),
                p.port.to_string(),
            ));
        }
    }
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.clone()
    };
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let lower = proto.to_ascii_lowercase();
        let url = format!("{lower}://{host}:{}", p.port);
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let base = format!("{prefix}_PORT_{}_{}", p.port, proto.to_ascii_uppercase());
        out.push((format!("{base}_PROTO"), lower));
        out.push((format!("{base}_PORT"), p.port.to_string()));
        out.push((format!("{base}_ADDR"), ip.clone()));
        out.push((base, url));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports},
        }))
        .expect("service")
    }

    fn kubernetes() -> Service {
        svc(
            "default",
            "kubernetes",
            "10.43.0.1",
            json!([{"name": "https", "port": 443, "protocol": "TCP"}]),
        )
    }

    fn get<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn variables_of_a_service() {
        let services = [svc(
            "app",
            "redis-primary",
            "10.43.0.11",
            json!([{"name": "redis", "port": 6379}, {"name": "metrics", "port": 9121, "protocol": "UDP"}]),
        )];
        let vars = variables("app", true, &services);
        let want = [
            ("REDIS_PRIMARY_SERVICE_HOST", "10.43.0.11"),
            ("REDIS_PRIMARY_SERVICE_PORT", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_REDIS", "6379"),
            ("REDIS_PRIMARY_SERVICE_PORT_METRICS", "9121"),
            ("REDIS_PRIMARY_PORT", "tcp://10.43.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP", "tcp://10.43.0.11:6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PROTO", "tcp"),
            ("REDIS_PRIMARY_PORT_6379_TCP_PORT", "6379"),
            ("REDIS_PRIMARY_PORT_6379_TCP_ADDR", "10.43.0.11"),
            ("REDIS_PRIMARY_PORT_9121_UDP", "udp://10.43.0.11:9121"),
            ("REDIS_PRIMARY_PORT_9121_UDP_PROTO", "udp"),
        ];
        for (name, value) in want {
            assert_eq!(get(&vars, name), Some(value), "{name} in {vars:?}");
        }
        assert_eq!(vars.len(), 13);
    }

    #[test]
    fn which_services() {
        let all = [
            kubernetes(),
            svc("default", "other", "10.43.0.20", json!([{"port": 80}])),
            svc("app", "web", "10.43.0.30", json!([{"port": 80}])),
            svc("app", "headless", "None", json!([{"port": 80}])),
            svc("app", "pending", "", json!([{"port": 80}])),
            svc("elsewhere", "db", "10.43.0.40", json!([{"port": 5432}])),
        ];
        let hosts = |ns: &str, links: bool| -> Vec<String> {
            variables(ns, links, &all)
                .into_iter()
                .filter(|(n, _)| n.ends_with("_SERVICE_HOST"))
                .map(|(n, _)| n)
                .collect()
        };
        let cases: &[(&str, bool, &[&str])] = &[
            (
                "app",
                true,
                &["KUBERNETES_SERVICE_HOST", "WEB_SERVICE_HOST"],
            ),
            ("app", false, &["KUBERNETES_SERVICE_HOST"]),
            (
                "default",
                true,
                &["KUBERNETES_SERVICE_HOST", "OTHER_SERVICE_HOST"],
            ),
            ("default", false, &["KUBERNETES_SERVICE_HOST"]),
        ];
        for (ns, links, want) in cases {
            assert_eq!(hosts(ns, *links), *want, "{ns} links={links}");
        }
    }

    #[test]
    fn a_namespace_service_named_kubernetes_wins() {
        let own = svc("app", "kubernetes", "10.43.0.99", json!([{"port": 80}]));
        for services in [[kubernetes(), own.clone()], [own.clone(), kubernetes()]] {
            let vars = variables("app", true, &services);
            assert_eq!(get(&vars, "KUBERNETES_SERVICE_HOST"), Some("10.43.0.99"));
        }
    }
}
