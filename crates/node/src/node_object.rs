//! The Node object this agent registers and the status it reports, computed from [`Machine`]
//! facts. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use crate::machine::Machine;

/// The kubelet version the agent reports (the API version it implements).
pub const KUBELET_VERSION: &str = concat!("v1.34.0-rudder.", env!("CARGO_PKG_VERSION"));
/// The container runtime it reports when pods run in-process (embedded or simulated runtime).
pub const RUNTIME_VERSION: &str = concat!("rudder://", env!("CARGO_PKG_VERSION"));

/// The node's `containerRuntimeVersion` for a runtime named `runtime_name`
/// (`ContainerRuntime::name`): a CRI runtime's own (`containerd://1.6.20`), as the kubelet
/// reports it; rudder's in-process runtimes as [`RUNTIME_VERSION`].
pub fn runtime_version(runtime_name: &str) -> String {
    if runtime_name.starts_with("embedded://") || runtime_name.starts_with("simulated://") {
        RUNTIME_VERSION.to_owned()
    } else {
        runtime_name.to_owned()
    }
}

/// A container's `containerID` in pod statuses: the runtime's scheme and the id
/// (`containerd://<id>`, `rudder://<id>`).
pub fn container_id(runtime_name: &str, id: &rudder_runtime::ContainerId) -> String {
    let version = runtime_version(runtime_name);
    let scheme = version.split("://").next().unwrap_or("rudder");
    format!("{scheme}://{id}")
}
/// Memory kept back from pods (upstream's default hard eviction threshold).
const MEMORY_RESERVED: u64 = 100 * 1024 * 1024;

/// What the operator chose for this node.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// The Node's name (default: the host name).
    pub name: String,
    /// Maximum pods (`--max-pods`, upstream's default 110).
    pub max_pods: u32,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Port of the agent's HTTPS endpoint (logs), reported in `daemonEndpoints`.
    pub kubelet_port: u16,
}

fn bytes_quantity(bytes: u64) -> Quantity {
    Quantity(format!("{}Ki", bytes / 1024))
}

/// Capacity and allocatable: what the machine has, and what pods may use of it.
pub fn resources(
    m: &Machine,
    max_pods: u32,
) -> (BTreeMap<String, Quantity>, BTreeMap<String, Quantity>) {
    let mut capacity = BTreeMap::new();
    capacity.insert("cpu".to_owned(), Quantity(m.cpus.to_string()));
    capacity.insert("memory".to_owned(), bytes_quantity(m.memory_bytes));
    capacity.insert("ephemeral-storage".to_owned(), bytes_quantity(m.disk_bytes));
    capacity.insert("pods".to_owned(), Quantity(max_pods.to_string()));
    let mut allocatable = capacity.clone();
    allocatable.insert(
        "memory".to_owned(),
        bytes_quantity(m.memory_bytes.saturating_sub(MEMORY_RESERVED)),
    );
    // Upstream evicts below 10% free on the node filesystem: pods may not count on it.
    allocatable.insert(
        "ephemeral-storage".to_owned(),
        bytes_quantity(m.disk_bytes / 10 * 9),
    );
    (capacity, allocatable)
}

/// The labels upstream's kubelet sets on its Node.
pub fn labels(m: &Machine, opts: &NodeOptions) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert("kubernetes.io/hostname".to_owned(), opts.name.clone());
    l.insert("kubernetes.io/os".to_owned(), "linux".to_owned());
    l.insert("kubernetes.io/arch".to_owned(), m.architecture.clone());
    l.insert("beta.kubernetes.io/os".to_owned(), "linux".to_owned());
    l.insert("beta.kubernetes.io/arch".to_owned(), m.architecture.clone());
    l.extend(opts.labels.clone());
    l
}

/// The four conditions a healthy kubelet reports, with `now` as heartbeat time. A condition
/// keeps its `lastTransitionTime` from `previous` while its status does not change.
pub fn conditions(now: &Time, ready: bool, previous: &[NodeCondition]) -> Vec<NodeCondition> {
    let cond = |type_: &str, ok_status: &str, reason: &str, message: &str| {
        let transition = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == ok_status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        NodeCondition {
            type_: type_.to_owned(),
            status: ok_status.to_owned(),
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            last_heartbeat_time: Some(now.clone()),
            last_transition_time: Some(transition),
        }
    };
    vec![
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        if ready {
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            cond(
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime is not ready",
            )
        },
    ]
}

/// The node's status: resources, conditions, addresses, system info.
pub fn status(
    m: &Machine,
    opts: &NodeOptions,
    now: &Time,
    ready: bool,
    previous: &[NodeCondition],
) -> NodeStatus {
    let (capacity, allocatable) = resources(m, opts.max_pods);
    let mut addresses = Vec::new();
    if let Some(ip) = &m.internal_ip {
        addresses.push(NodeAddress {
            type_: "InternalIP".into(),
            address: ip.clone(),
        });
    }
    addresses.push(NodeAddress {
        type_: "Hostname".into(),
        address: m.hostname.clone(),
    });
    NodeStatus {
        capacity: Some(capacity),
        allocatable: Some(allocatable),
        conditions: Some(conditions(now, ready, previous)),
        addresses: Some(addresses),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(opts.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            machine_id: m.machine_id.clone(),
            system_uuid: m.machine_id.clone(),
            boot_id: m.boot_id.clone(),
            kernel_version: m.kernel_version.clone(),
            os_image: m.os_image.clone(),
            container_runtime_version: RUNTIME_VERSION.to_owned(),
            kubelet_version: KUBELET_VERSION.to_owned(),
            kube_proxy_version: String::new(),
            operating_system: "linux".to_owned(),
            architecture: m.architecture.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Whether the Node, as the API holds it, says something about this agent that the agent must
/// correct at once: a Ready condition that is there and not `True` (the node lifecycle
/// controller marks it `Unknown` when leases stop coming). The kubelet re-asserts Ready on its
/// next status update, within 10 s, not at its next periodic report. A Node without the
/// condition yet is being registered and needs nothing.
pub fn ready_needs_correcting(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .is_some_and(|c| c.status != "True")
}

/// The Node to create at registration.
pub fn node(m: &Machine, opts: &NodeOptions, now: &Time) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(opts.name.clone()),
            labels: Some(labels(m, opts)),
            annotations: Some(BTreeMap::from([(
                "node.alpha.kubernetes.io/ttl".to_owned(),
                "0".to_owned(),
            )])),
            ..Default::default()
        },
        status: Some(status(m, opts, now, true, &[])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_versions_and_container_ids() {
        assert_eq!(runtime_version("embedded://0.1.0"), RUNTIME_VERSION);
        assert_eq!(runtime_version("simulated://0.1.0"), RUNTIME_VERSION);
        assert_eq!(
            runtime_version("containerd://1.6.20"),
            "containerd://1.6.20"
        );
        let id = rudder_runtime::ContainerId("abc".into());
        assert_eq!(container_id("containerd://1.6.20", &id), "containerd://abc");
        assert_eq!(container_id("embedded://0.1.0", &id), "rudder://abc");
    }

    fn machine() -> Machine {
        Machine {
            hostname: "host-a".into(),
            cpus: 2,
            memory_bytes: 24 * 1024 * 1024 * 1024,
            disk_bytes: 100 * 1024 * 1024 * 1024,
            kernel_version: "6.1.0".into(),
            os_image: "Debian GNU/Linux 12 (bookworm)".into(),
            architecture: "amd64".into(),
            machine_id: "abc".into(),
            boot_id: "boot".into(),
            internal_ip: Some("10.0.0.5".into()),
        }
    }

    fn opts() -> NodeOptions {
        NodeOptions {
            name: "host-a".into(),
            max_pods: 110,
            labels: BTreeMap::new(),
            kubelet_port: 10250,
        }
    }

    #[test]
    fn capacity_and_allocatable() {
        let (cap, alloc) = resources(&machine(), 110);
        let q = |m: &BTreeMap<String, Quantity>, k: &str| m[k].0.clone();
        let cases = [
            (q(&cap, "cpu"), "2"),
            (q(&cap, "memory"), "25165824Ki"),
            (q(&alloc, "memory"), "25063424Ki"),
            (q(&cap, "pods"), "110"),
            (q(&cap, "ephemeral-storage"), "104857600Ki"),
            (q(&alloc, "ephemeral-storage"), "94371840Ki"),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn node_labels_addresses_and_conditions() {
        let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_795_392_000).expect("time"));
        let n = node(&machine(), &opts(), &now);
        let labels = n.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["kubernetes.io/hostname"], "host-a");
        assert_eq!(labels["kubernetes.io/arch"], "amd64");
        let st = n.status.expect("status");
        let types: Vec<(String, String)> = st
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status))
            .collect();
        assert_eq!(types.last(), Some(&("Ready".to_owned(), "True".to_owned())));
        assert_eq!(st.addresses.unwrap_or_default()[0].address, "10.0.0.5");
    }

    #[test]
    fn only_a_ready_condition_that_is_not_true_needs_correcting() {
        let with = |conditions: &[(&str, &str)]| Node {
            status: Some(k8s_openapi::api::core::v1::NodeStatus {
                conditions: Some(
                    conditions
                        .iter()
                        .map(|(t, s)| NodeCondition {
                            type_: (*t).into(),
                            status: (*s).into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        };
        let cases = [
            (Node::default(), false),
            (with(&[]), false),
            (with(&[("MemoryPressure", "False")]), false),
            (
                with(&[("MemoryPressure", "False"), ("Ready", "True")]),
                false,
            ),
            (with(&[("Ready", "Unknown")]), true),
            (with(&[("Ready", "False")]), true),
            (
                with(&[("MemoryPressure", "Unknown"), ("Ready", "True")]),
                false,
            ),
        ];
        for (i, (node, want)) in cases.into_iter().enumerate() {
            assert_eq!(ready_needs_correcting(&node), want, "case {i}");
        }
    }

    #[test]
    fn transition_time_kept_while_status_holds() {
        let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).expect("time"));
        let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).expect("time"));
        let first = conditions(&t0, true, &[]);
        let again = conditions(&t1, true, &first);
        assert_eq!(again[3].last_transition_time, Some(t0.clone()));
        assert_eq!(again[3].last_heartbeat_time, Some(t1.clone()));
        let flipped = conditions(&t1, false, &first);
        assert_eq!(flipped[3].last_transition_time, Some(t1));
    }
}
