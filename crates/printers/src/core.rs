//! Printers of the core (`v1`) kinds other than Pod: nodes, namespaces, services and endpoints,
//! config, events, volumes and quotas.

use serde_json::Value;

use crate::columns::{AGE, Col, NAME};
use crate::duration::since;
use crate::format::{
    age, arr, containers, format_labels, i, join_host_port, key_count, list_with_more,
    load_balancer_ingress, name, opt_i, opt_s, or_none, present, quantity, s,
};

pub(crate) const POD_TEMPLATE: &[Col] = &[
    NAME,
    Col::string("Containers", "Names of the containers in the template."),
    Col::string("Images", "Images of the containers in the template."),
    Col::string("Pod Labels", "Labels of the template's pods."),
];

pub(crate) fn pod_template(obj: &Value, _now: i64) -> Vec<Value> {
    let (names, images) = containers(arr(obj, "/template/spec/containers"));
    vec![
        name(obj),
        names.into(),
        images.into(),
        format_labels(obj.pointer("/template/metadata/labels")).into(),
    ]
}

pub(crate) const NODE: &[Col] = &[
    NAME,
    Col::string(
        "Status",
        "Whether the node is ready, and whether it takes new pods.",
    ),
    Col::string("Roles", "The node's roles, from its node-role labels."),
    AGE,
    Col::string("Version", "Version of the node agent."),
    Col::string("Internal-IP", "The node's first internal address.").wide(),
    Col::string("External-IP", "The node's first external address.").wide(),
    Col::string("OS-Image", "The node's operating system image.").wide(),
    Col::string("Kernel-Version", "The node's kernel version.").wide(),
    Col::string(
        "Container-Runtime",
        "The node's container runtime and its version.",
    )
    .wide(),
];

/// Roles from `node-role.kubernetes.io/<role>` labels and the `kubernetes.io/role` label,
/// sorted and de-duplicated.
pub(crate) fn node_roles(node: &Value) -> Vec<String> {
    let mut roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                (!role.is_empty()).then(|| role.to_owned())
            } else if k == "kubernetes.io/role" {
                v.as_str().filter(|r| !r.is_empty()).map(str::to_owned)
            } else {
                None
            }
        })
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

/// The node's first address of type `ty`, or `<none>`.
fn node_address(node: &Value, ty: &str) -> String {
    arr(node, "/status/addresses")
        .iter()
        .find(|a| s(a, "/type") == ty)
        .map_or_else(|| "<none>".into(), |a| s(a, "/address").to_owned())
}

pub(crate) fn node(obj: &Value, now: i64) -> Vec<Value> {
    // Upstream keys conditions by type, so a later duplicate wins.
    let ready = arr(obj, "/status/conditions")
        .iter()
        .rfind(|c| s(c, "/type") == "Ready")
        .map(|c| s(c, "/status"));
    let mut status = vec![match ready {
        Some("True") => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if obj.pointer("/spec/unschedulable") == Some(&Value::Bool(true)) {
        status.push("SchedulingDisabled");
    }
    let roles = node_roles(obj).join(",");
    let unknown = |v: &str| {
        if v.is_empty() {
            "<unknown>".to_owned()
        } else {
            v.to_owned()
        }
    };
    vec![
        name(obj),
        status.join(",").into(),
        or_none(&roles).into(),
        age(obj, now),
        s(obj, "/status/nodeInfo/kubeletVersion").into(),
        node_address(obj, "InternalIP").into(),
        node_address(obj, "ExternalIP").into(),
        unknown(s(obj, "/status/nodeInfo/osImage")).into(),
        unknown(s(obj, "/status/nodeInfo/kernelVersion")).into(),
        unknown(s(obj, "/status/nodeInfo/containerRuntimeVersion")).into(),
    ]
}

pub(crate) const NAMESPACE: &[Col] = &[NAME, Col::string("Status", "The namespace's phase."), AGE];

pub(crate) fn namespace(obj: &Value, now: i64) -> Vec<Value> {
    vec![name(obj), s(obj, "/status/phase").into(), age(obj, now)]
}

pub(crate) const SERVICE: &[Col] = &[
    NAME,
    Col::string("Type", "How the service is exposed."),
    Col::string("Cluster-IP", "The service's cluster IP."),
    Col::string(
        "External-IP",
        "Addresses the service is reachable on from outside.",
    ),
    Col::string("Port(s)", "The service's ports."),
    AGE,
    Col::string("Selector", "Labels of the pods the service routes to.").wide(),
];

/// The EXTERNAL-IP cell of a service.
pub(crate) fn service_external_ip(svc: &Value) -> String {
    let external: Vec<&str> = arr(svc, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match s(svc, "/spec/type") {
        "ClusterIP" | "NodePort" => {
            if external.is_empty() {
                "<none>".into()
            } else {
                external.join(",")
            }
        }
        "LoadBalancer" => {
            let lb = load_balancer_ingress(svc, "/status/loadBalancer/ingress");
            if !external.is_empty() {
                let mut all: Vec<&str> = lb.split(',').filter(|x| !x.is_empty()).collect();
                all.extend(external);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".into()
            }
        }
        "ExternalName" => s(svc, "/spec/externalName").into(),
        _ => "<unknown>".into(),
    }
}

/// The PORT(S) cell: `80/TCP`, or `80:30080/TCP` with a node port.
pub(crate) fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr(svc, "/spec/ports")
        .iter()
        .map(|p| {
            let protocol = opt_s(p, "/protocol").unwrap_or("TCP");
            let port = i(p, "/port");
            match i(p, "/nodePort") {
                np if np > 0 => format!("{port}:{np}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

pub(crate) fn service(obj: &Value, now: i64) -> Vec<Value> {
    let cluster_ip = arr(obj, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_s(obj, "/spec/clusterIP"))
        .unwrap_or("");
    vec![
        name(obj),
        s(obj, "/spec/type").into(),
        or_none(cluster_ip).into(),
        service_external_ip(obj).into(),
        service_ports(obj).into(),
        age(obj, now),
        format_labels(obj.pointer("/spec/selector")).into(),
    ]
}

pub(crate) const ENDPOINTS: &[Col] = &[
    NAME,
    Col::string(
        "Endpoints",
        "The first few endpoint addresses with their ports.",
    ),
    AGE,
];

/// Upstream's `formatEndpoints` with every port: up to three `ip:port` entries.
pub(crate) fn format_endpoints(obj: &Value) -> String {
    const MAX: usize = 3;
    let subsets = arr(obj, "/subsets");
    if subsets.is_empty() {
        return "<none>".into();
    }
    let (mut list, mut more, mut count) = (Vec::new(), false, 0usize);
    for ss in subsets {
        let addresses = arr(ss, "/addresses");
        let ports = arr(ss, "/ports");
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(s(a, "/ip").to_owned());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(s(a, "/ip"), i(port, "/port")));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count.saturating_sub(MAX))
    } else {
        joined
    }
}

pub(crate) fn endpoints(obj: &Value, now: i64) -> Vec<Value> {
    vec![name(obj), format_endpoints(obj).into(), age(obj, now)]
}

pub(crate) const ENDPOINT_SLICE: &[Col] = &[
    NAME,
    Col::string("AddressType", "The kind of addresses the slice holds."),
    Col::string("Ports", "The slice's ports."),
    Col::string("Endpoints", "The first few endpoint addresses."),
    AGE,
];

pub(crate) fn endpoint_slice(obj: &Value, now: i64) -> Vec<Value> {
    const MAX: usize = 3;
    let ports: Vec<String> = arr(obj, "/ports")
        .iter()
        .map(|p| match (opt_i(p, "/port"), opt_s(p, "/name")) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n.to_owned(),
            (None, None) => "*".to_owned(),
        })
        .collect();
    let shown_ports: Vec<String> = ports.iter().take(MAX).cloned().collect();
    let ports_cell = list_with_more(&shown_ports, ports.len() > MAX, ports.len(), MAX);
    let addresses: Vec<String> = arr(obj, "/endpoints")
        .iter()
        .flat_map(|e| arr(e, "/addresses"))
        .map(|a| a.as_str().unwrap_or("").to_owned())
        .collect();
    let shown: Vec<String> = addresses.iter().take(MAX).cloned().collect();
    let endpoints_cell = list_with_more(&shown, addresses.len() > MAX, addresses.len(), MAX);
    vec![
        name(obj),
        s(obj, "/addressType").into(),
        ports_cell.into(),
        endpoints_cell.into(),
        age(obj, now),
    ]
}

pub(crate) const CONFIG_MAP: &[Col] = &[
    NAME,
    Col::string("Data", "Number of keys in data and binaryData."),
    AGE,
];

pub(crate) fn config_map(obj: &Value, now: i64) -> Vec<Value> {
    let keys = key_count(obj, "/data") + key_count(obj, "/binaryData");
    vec![name(obj), keys.into(), age(obj, now)]
}

pub(crate) const SECRET: &[Col] = &[
    NAME,
    Col::string("Type", "The secret's type."),
    Col::string("Data", "Number of keys in data."),
    AGE,
];

pub(crate) fn secret(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        name(obj),
        s(obj, "/type").into(),
        key_count(obj, "/data").into(),
        age(obj, now),
    ]
}

pub(crate) const SERVICE_ACCOUNT: &[Col] = &[
    NAME,
    Col::string(
        "Secrets",
        "Number of secrets listed in the service account.",
    ),
    AGE,
];

pub(crate) fn service_account(obj: &Value, now: i64) -> Vec<Value> {
    let n = arr(obj, "/secrets").len() as i64;
    vec![name(obj), n.into(), age(obj, now)]
}

pub(crate) const COMPONENT_STATUS: &[Col] = &[
    NAME,
    Col::string("Status", "Whether the component is healthy."),
    Col::string("Message", "Message of the component's Healthy condition."),
    Col::string("Error", "Error of the component's Healthy condition."),
];

pub(crate) fn component_status(obj: &Value, _now: i64) -> Vec<Value> {
    let healthy = arr(obj, "/conditions")
        .iter()
        .find(|c| s(c, "/type") == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) if s(c, "/status") == "True" => ("Healthy", s(c, "/message"), s(c, "/error")),
        Some(c) => ("Unhealthy", s(c, "/message"), s(c, "/error")),
        None => ("Unknown", "", ""),
    };
    vec![name(obj), status.into(), message.into(), error.into()]
}

pub(crate) const EVENT: &[Col] = &[
    Col::string("Last Seen", "Time since the event was last seen."),
    Col::string("Type", "The event's type (Normal, Warning)."),
    Col::string("Reason", "Why the event happened, in one word."),
    Col::string("Object", "The object the event is about."),
    Col::string("Subobject", "The part of the object the event is about.").wide(),
    Col::string("Source", "The component that reported the event.").wide(),
    Col::string("Message", "What happened."),
    Col::string("First Seen", "Time since the event was first seen.").wide(),
    Col::string("Count", "How often the event happened.").wide(),
    Col::string("Name", "Name of the event object.")
        .named()
        .wide(),
];

/// The fields of an event, from `v1` or `events.k8s.io/v1` field names.
pub(crate) fn event(obj: &Value, now: i64) -> Vec<Value> {
    let new_api = s(obj, "/apiVersion").starts_with("events.k8s.io/")
        || obj.get("regarding").is_some()
        || obj.get("note").is_some();
    let pick = |core: &'static str, events: &'static str| if new_api { events } else { core };
    let regarding = obj
        .get(pick("involvedObject", "regarding"))
        .unwrap_or(&Value::Null);
    let source = obj
        .get(pick("source", "deprecatedSource"))
        .unwrap_or(&Value::Null);
    let reporting_controller = s(obj, pick("/reportingComponent", "/reportingController"));
    let first_ts = opt_s(obj, pick("/firstTimestamp", "/deprecatedFirstTimestamp"));
    let last_ts = opt_s(obj, pick("/lastTimestamp", "/deprecatedLastTimestamp"));
    let message = s(obj, pick("/message", "/note"));
    let mut count = i(obj, pick("/count", "/deprecatedCount"));

    let first = match first_ts {
        Some(t) if !t.is_empty() => since(Some(t), now),
        _ => since(opt_s(obj, "/eventTime"), now),
    };
    let mut last = match last_ts {
        Some(t) if !t.is_empty() => since(Some(t), now),
        _ => first.clone(),
    };
    if present(obj, "/series") {
        last = since(opt_s(obj, "/series/lastObservedTime"), now);
        count = i(obj, "/series/count");
    } else if count == 0 {
        // Singleton events of the new API carry no count.
        count = 1;
    }
    let kind = s(regarding, "/kind").to_lowercase();
    let involved = s(regarding, "/name");
    let target = if involved.is_empty() {
        kind
    } else {
        format!("{kind}/{involved}")
    };
    let component = match s(source, "/component") {
        "" => reporting_controller,
        c => c,
    };
    let instance = match s(source, "/host") {
        "" => s(obj, "/reportingInstance"),
        h => h,
    };
    let source_text = if instance.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {instance}")
    };
    vec![
        last.into(),
        s(obj, "/type").into(),
        s(obj, "/reason").into(),
        target.into(),
        s(regarding, "/fieldPath").into(),
        source_text.into(),
        message.trim().into(),
        first.into(),
        count.into(),
        name(obj),
    ]
}

pub(crate) const REPLICATION_CONTROLLER: &[Col] = &[
    NAME,
    Col::integer("Desired", "Number of replicas the controller should run."),
    Col::integer("Current", "Number of replicas the controller runs."),
    Col::integer("Ready", "Number of ready replicas."),
    AGE,
    crate::columns::CONTAINERS,
    crate::columns::IMAGES,
    crate::columns::SELECTOR,
];

pub(crate) fn replication_controller(obj: &Value, now: i64) -> Vec<Value> {
    let [names, images] = crate::format::template_cells(obj, "/spec/template");
    vec![
        name(obj),
        opt_i(obj, "/spec/replicas").unwrap_or(1).into(),
        i(obj, "/status/replicas").into(),
        i(obj, "/status/readyReplicas").into(),
        age(obj, now),
        names,
        images,
        format_labels(obj.pointer("/spec/selector")).into(),
    ]
}

pub(crate) const PERSISTENT_VOLUME: &[Col] = &[
    NAME,
    Col::string("Capacity", "The volume's storage capacity."),
    Col::string("Access Modes", "How the volume can be mounted."),
    Col::string(
        "Reclaim Policy",
        "What happens to the volume when its claim goes away.",
    ),
    Col::string("Status", "The volume's phase."),
    Col::string("Claim", "The claim bound to the volume."),
    Col::string("StorageClass", "The volume's storage class."),
    Col::string("VolumeAttributesClass", "The volume's attributes class."),
    Col::string("Reason", "Why the volume is in its phase."),
    AGE,
    Col::string(
        "VolumeMode",
        "Whether the volume is a filesystem or a block device.",
    )
    .wide(),
];

/// Upstream's `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order.
pub(crate) fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|x| x.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A volume's or claim's class: the beta annotation wins over `spec.storageClassName`.
fn storage_class(obj: &Value) -> String {
    let annotation = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("volume.beta.kubernetes.io/storage-class"))
        .and_then(Value::as_str);
    annotation
        .unwrap_or_else(|| s(obj, "/spec/storageClassName"))
        .to_owned()
}

fn unset_or(v: Option<&str>) -> String {
    v.map_or_else(|| "<unset>".into(), str::to_owned)
}

fn deleting(obj: &Value) -> bool {
    present(obj, "/metadata/deletionTimestamp")
}

pub(crate) fn persistent_volume(obj: &Value, now: i64) -> Vec<Value> {
    let claim = match obj.pointer("/spec/claimRef") {
        Some(r) if r.is_object() => format!("{}/{}", s(r, "/namespace"), s(r, "/name")),
        _ => String::new(),
    };
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        s(obj, "/status/phase")
    };
    vec![
        name(obj),
        quantity(obj.pointer("/spec/capacity/storage")).into(),
        access_modes(arr(obj, "/spec/accessModes")).into(),
        s(obj, "/spec/persistentVolumeReclaimPolicy").into(),
        phase.into(),
        claim.into(),
        storage_class(obj).into(),
        unset_or(opt_s(obj, "/spec/volumeAttributesClassName")).into(),
        s(obj, "/status/reason").into(),
        age(obj, now),
        unset_or(opt_s(obj, "/spec/volumeMode")).into(),
    ]
}

pub(crate) const PERSISTENT_VOLUME_CLAIM: &[Col] = &[
    NAME,
    Col::string("Status", "The claim's phase."),
    Col::string("Volume", "The volume bound to the claim."),
    Col::string("Capacity", "Storage capacity of the bound volume."),
    Col::string("Access Modes", "How the bound volume can be mounted."),
    Col::string("StorageClass", "The claim's storage class."),
    Col::string("VolumeAttributesClass", "The claim's attributes class."),
    AGE,
    Col::string(
        "VolumeMode",
        "Whether the claim is for a filesystem or a block device.",
    )
    .wide(),
];

pub(crate) fn persistent_volume_claim(obj: &Value, now: i64) -> Vec<Value> {
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        s(obj, "/status/phase")
    };
    let volume = s(obj, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(obj.pointer("/status/capacity/storage")),
            access_modes(arr(obj, "/status/accessModes")),
        )
    };
    vec![
        name(obj),
        phase.into(),
        volume.into(),
        capacity.into(),
        modes.into(),
        storage_class(obj).into(),
        unset_or(opt_s(obj, "/spec/volumeAttributesClassName")).into(),
        age(obj, now),
        unset_or(opt_s(obj, "/spec/volumeMode")).into(),
    ]
}

pub(crate) const RESOURCE_QUOTA: &[Col] = &[
    NAME,
    Col::string("Request", "Used out of hard limits of requests and counts."),
    Col::string("Limit", "Used out of hard limits of limits.* resources."),
    AGE,
];

pub(crate) fn resource_quota(obj: &Value, now: i64) -> Vec<Value> {
    let hard = obj.pointer("/status/hard").and_then(Value::as_object);
    let mut resources: Vec<&String> = hard.into_iter().flat_map(|m| m.keys()).collect();
    resources.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for r in resources {
        let used = quantity(obj.pointer("/status/used").and_then(|u| u.get(r.as_str())));
        let limit = quantity(hard.and_then(|h| h.get(r.as_str())));
        let entry = format!("{r}: {used}/{limit}");
        if r.split('.').next() == Some("limits") && r.contains('.') {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        name(obj),
        requests.join(", ").into(),
        limits.join(", ").into(),
        age(obj, now),
    ]
}
