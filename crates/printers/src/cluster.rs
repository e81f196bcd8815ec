//! Printers of the networking, RBAC, coordination, policy, scheduling, storage, certificates and
//! admission kinds.

use serde_json::Value;

use crate::columns::{AGE, Col, NAME};
use crate::duration::human_duration;
use crate::format::{
    age, arr, format_label_selector, int_or_string, load_balancer_ingress, name, opt_b, opt_i,
    opt_s, present, s,
};

pub(crate) const INGRESS: &[Col] = &[
    NAME,
    Col::string("Class", "The IngressClass that handles the ingress."),
    Col::string("Hosts", "Hosts the ingress rules match."),
    Col::string(
        "Address",
        "Addresses of the load balancer serving the ingress.",
    ),
    Col::string("Ports", "Ports the ingress is served on."),
    AGE,
];

/// Upstream's `formatHosts`: up to three hosts, `*` when no rule names one.
pub(crate) fn ingress_hosts(obj: &Value) -> String {
    const MAX: usize = 3;
    let rules = arr(obj, "/spec/rules");
    let mut list = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = s(rule, "/host");
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".into();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len().saturating_sub(MAX))
    } else {
        joined
    }
}

pub(crate) fn ingress(obj: &Value, now: i64) -> Vec<Value> {
    let ports = if arr(obj, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        opt_s(obj, "/spec/ingressClassName")
            .unwrap_or("<none>")
            .into(),
        ingress_hosts(obj).into(),
        load_balancer_ingress(obj, "/status/loadBalancer/ingress").into(),
        ports.into(),
        age(obj, now),
    ]
}

pub(crate) const INGRESS_CLASS: &[Col] = &[
    NAME,
    Col::string("Controller", "The controller that implements the class."),
    Col::string("Parameters", "The object holding the class' parameters."),
    AGE,
];

pub(crate) fn ingress_class(obj: &Value, now: i64) -> Vec<Value> {
    let parameters = match obj.pointer("/spec/parameters") {
        Some(p) if p.is_object() => {
            let group = opt_s(p, "/apiGroup")
                .map(|g| format!(".{g}"))
                .unwrap_or_default();
            format!("{}{group}/{}", s(p, "/kind"), s(p, "/name"))
        }
        _ => "<none>".into(),
    };
    vec![
        name(obj),
        s(obj, "/spec/controller").into(),
        parameters.into(),
        age(obj, now),
    ]
}

pub(crate) const NETWORK_POLICY: &[Col] = &[
    NAME,
    Col::string("Pod-Selector", "Labels of the pods the policy applies to."),
    AGE,
];

pub(crate) fn network_policy(obj: &Value, now: i64) -> Vec<Value> {
    // The pod selector is a struct, never nil: a missing one selects every pod.
    let empty = Value::Object(Default::default());
    let selector = obj
        .pointer("/spec/podSelector")
        .filter(|v| !v.is_null())
        .unwrap_or(&empty);
    vec![
        name(obj),
        format_label_selector(Some(selector)).into(),
        age(obj, now),
    ]
}

pub(crate) const ROLE_BINDING: &[Col] = &[
    NAME,
    Col::string("Role", "The role the binding grants."),
    AGE,
    Col::string("Users", "Users the binding grants the role to.").wide(),
    Col::string("Groups", "Groups the binding grants the role to.").wide(),
    Col::string(
        "ServiceAccounts",
        "Service accounts the binding grants the role to.",
    )
    .wide(),
];

pub(crate) fn role_binding(obj: &Value, now: i64) -> Vec<Value> {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in arr(obj, "/subjects") {
        let n = s(subject, "/name");
        match s(subject, "/kind") {
            "ServiceAccount" => accounts.push(format!("{}/{n}", s(subject, "/namespace"))),
            "User" => users.push(n.to_owned()),
            "Group" => groups.push(n.to_owned()),
            _ => {}
        }
    }
    vec![
        name(obj),
        format!("{}/{}", s(obj, "/roleRef/kind"), s(obj, "/roleRef/name")).into(),
        age(obj, now),
        users.join(", ").into(),
        groups.join(", ").into(),
        accounts.join(", ").into(),
    ]
}

pub(crate) const LEASE: &[Col] = &[
    NAME,
    Col::string("Holder", "Identity of the lease's holder."),
    AGE,
];

pub(crate) fn lease(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        name(obj),
        s(obj, "/spec/holderIdentity").into(),
        age(obj, now),
    ]
}

pub(crate) const POD_DISRUPTION_BUDGET: &[Col] = &[
    NAME,
    Col::string("Min Available", "Pods that must stay available."),
    Col::string("Max Unavailable", "Pods that may be unavailable."),
    Col::integer("Allowed Disruptions", "Pods that may be disrupted now."),
    AGE,
];

pub(crate) fn pod_disruption_budget(obj: &Value, now: i64) -> Vec<Value> {
    let bound = |ptr: &str| match obj.pointer(ptr) {
        Some(v) if !v.is_null() => int_or_string(v),
        _ => "N/A".to_owned(),
    };
    vec![
        name(obj),
        bound("/spec/minAvailable").into(),
        bound("/spec/maxUnavailable").into(),
        crate::format::i(obj, "/status/disruptionsAllowed").into(),
        age(obj, now),
    ]
}

pub(crate) const PRIORITY_CLASS: &[Col] = &[
    NAME,
    Col::integer("Value", "The priority pods of this class get."),
    Col::boolean(
        "Global-Default",
        "Whether pods without a class get this one.",
    ),
    AGE,
    Col::string(
        "PreemptionPolicy",
        "Whether pods of this class preempt others.",
    )
    .wide(),
];

pub(crate) fn priority_class(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        name(obj),
        crate::format::i(obj, "/value").into(),
        opt_b(obj, "/globalDefault").unwrap_or(false).into(),
        age(obj, now),
        s(obj, "/preemptionPolicy").into(),
    ]
}

pub(crate) const RUNTIME_CLASS: &[Col] = &[
    NAME,
    Col::string(
        "Handler",
        "The runtime handler pods of this class run with.",
    ),
    AGE,
];

pub(crate) fn runtime_class(obj: &Value, now: i64) -> Vec<Value> {
    vec![name(obj), s(obj, "/handler").into(), age(obj, now)]
}

pub(crate) const STORAGE_CLASS: &[Col] = &[
    NAME,
    Col::string("Provisioner", "The volume plugin that provisions volumes."),
    Col::string(
        "ReclaimPolicy",
        "What happens to provisioned volumes when released.",
    ),
    Col::string(
        "VolumeBindingMode",
        "When volumes are bound and provisioned.",
    ),
    Col::string("AllowVolumeExpansion", "Whether volumes can be expanded."),
    AGE,
];

/// Whether a StorageClass carries the (beta or GA) default-class annotation.
fn default_class(obj: &Value) -> bool {
    let annotations = obj.pointer("/metadata/annotations");
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|k| annotations.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"))
}

pub(crate) fn storage_class(obj: &Value, now: i64) -> Vec<Value> {
    let mut n = s(obj, "/metadata/name").to_owned();
    if default_class(obj) {
        n.push_str(" (default)");
    }
    vec![
        n.into(),
        s(obj, "/provisioner").into(),
        opt_s(obj, "/reclaimPolicy").unwrap_or("Delete").into(),
        opt_s(obj, "/volumeBindingMode")
            .unwrap_or("Immediate")
            .into(),
        opt_b(obj, "/allowVolumeExpansion").unwrap_or(false).into(),
        age(obj, now),
    ]
}

pub(crate) const CSI_DRIVER: &[Col] = &[
    NAME,
    Col::boolean("AttachRequired", "Whether volumes need an attach step."),
    Col::boolean("PodInfoOnMount", "Whether mounts get pod information."),
    Col::boolean(
        "StorageCapacity",
        "Whether the driver reports storage capacity.",
    ),
    Col::string("TokenRequests", "Audiences of the tokens the driver gets."),
    Col::boolean(
        "RequiresRepublish",
        "Whether volumes are mounted again periodically.",
    ),
    Col::string("Modes", "Volume lifecycle modes the driver supports."),
    AGE,
];

pub(crate) fn csi_driver(obj: &Value, now: i64) -> Vec<Value> {
    let modes: Vec<&str> = arr(obj, "/spec/volumeLifecycleModes")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let modes = if modes.is_empty() {
        "<none>".to_owned()
    } else {
        modes.join(",")
    };
    let tokens = if present(obj, "/spec/tokenRequests") {
        arr(obj, "/spec/tokenRequests")
            .iter()
            .map(|t| s(t, "/audience"))
            .collect::<Vec<_>>()
            .join(",")
    } else {
        "<unset>".to_owned()
    };
    vec![
        name(obj),
        opt_b(obj, "/spec/attachRequired").unwrap_or(true).into(),
        opt_b(obj, "/spec/podInfoOnMount").unwrap_or(false).into(),
        opt_b(obj, "/spec/storageCapacity").unwrap_or(false).into(),
        tokens.into(),
        opt_b(obj, "/spec/requiresRepublish")
            .unwrap_or(false)
            .into(),
        modes.into(),
        age(obj, now),
    ]
}

pub(crate) const CSI_NODE: &[Col] = &[
    NAME,
    Col::integer("Drivers", "Number of CSI drivers registered on the node."),
    AGE,
];

pub(crate) fn csi_node(obj: &Value, now: i64) -> Vec<Value> {
    let n = arr(obj, "/spec/drivers").len() as i64;
    vec![name(obj), n.into(), age(obj, now)]
}

pub(crate) const CSI_STORAGE_CAPACITY: &[Col] = &[
    NAME,
    Col::string("StorageClassName", "The storage class the capacity is for."),
    Col::string("Capacity", "The capacity available."),
];

pub(crate) fn csi_storage_capacity(obj: &Value, _now: i64) -> Vec<Value> {
    let capacity = match obj.get("capacity") {
        Some(v) if !v.is_null() => crate::format::quantity(Some(v)),
        _ => "<unset>".into(),
    };
    vec![
        name(obj),
        s(obj, "/storageClassName").into(),
        capacity.into(),
    ]
}

pub(crate) const VOLUME_ATTACHMENT: &[Col] = &[
    NAME,
    // Upstream marks this column as holding names too.
    Col::string("Attacher", "The volume plugin that attaches the volume.").named(),
    Col::string("PV", "The persistent volume being attached."),
    Col::string("Node", "The node the volume is attached to."),
    Col::boolean("Attached", "Whether the volume is attached."),
    AGE,
];

pub(crate) fn volume_attachment(obj: &Value, now: i64) -> Vec<Value> {
    vec![
        name(obj),
        s(obj, "/spec/attacher").into(),
        s(obj, "/spec/source/persistentVolumeName").into(),
        s(obj, "/spec/nodeName").into(),
        opt_b(obj, "/status/attached").unwrap_or(false).into(),
        age(obj, now),
    ]
}

pub(crate) const CERTIFICATE_SIGNING_REQUEST: &[Col] = &[
    NAME,
    AGE,
    Col::string("SignerName", "The signer asked to sign the request."),
    Col::string("Requestor", "The user who made the request."),
    Col::string("RequestedDuration", "The certificate lifetime asked for."),
    Col::string(
        "Condition",
        "Whether the request is approved, denied, failed or issued.",
    ),
];

/// The CONDITION cell of a CertificateSigningRequest.
pub(crate) fn csr_condition(obj: &Value) -> String {
    let types: Vec<&str> = arr(obj, "/status/conditions")
        .iter()
        .map(|c| s(c, "/type"))
        .collect();
    let mut status = if types.contains(&"Denied") {
        "Denied".to_owned()
    } else if types.contains(&"Approved") {
        "Approved".to_owned()
    } else {
        "Pending".to_owned()
    };
    if types.contains(&"Failed") {
        status.push_str(",Failed");
    }
    if !s(obj, "/status/certificate").is_empty() {
        status.push_str(",Issued");
    }
    status
}

pub(crate) fn certificate_signing_request(obj: &Value, now: i64) -> Vec<Value> {
    let signer = crate::format::or_none(s(obj, "/spec/signerName"));
    let duration =
        opt_i(obj, "/spec/expirationSeconds").map_or_else(|| "<none>".to_owned(), human_duration);
    vec![
        name(obj),
        age(obj, now),
        signer.into(),
        s(obj, "/spec/username").into(),
        duration.into(),
        csr_condition(obj).into(),
    ]
}

pub(crate) const WEBHOOK_CONFIGURATION: &[Col] = &[
    NAME,
    Col::integer("Webhooks", "Number of webhooks in the configuration."),
    AGE,
];

pub(crate) fn webhook_configuration(obj: &Value, now: i64) -> Vec<Value> {
    let n = arr(obj, "/webhooks").len() as i64;
    vec![name(obj), n.into(), age(obj, now)]
}

pub(crate) const VALIDATING_ADMISSION_POLICY: &[Col] = &[
    NAME,
    Col::integer(
        "Validations",
        "Validations indicates the number of validation rules defined in this configuration",
    ),
    Col::string(
        "ParamKind",
        "ParamKind specifies the kind of resources used to parameterize this policy",
    ),
    AGE,
];

pub(crate) fn validating_admission_policy(obj: &Value, now: i64) -> Vec<Value> {
    let n = arr(obj, "/spec/validations").len() as i64;
    let kind = match obj.pointer("/spec/paramKind").filter(|k| !k.is_null()) {
        Some(k) => format!("{}/{}", s(k, "/apiVersion"), s(k, "/kind")),
        None => "<unset>".to_owned(),
    };
    vec![name(obj), n.into(), kind.into(), age(obj, now)]
}

pub(crate) const VALIDATING_ADMISSION_POLICY_BINDING: &[Col] = &[
    NAME,
    Col::string(
        "PolicyName",
        "PolicyName indicates the policy definition which the policy binding binded to",
    ),
    Col::string(
        "ParamRef",
        "ParamRef indicates the param resource which sets the configration param",
    ),
    AGE,
];

/// Upstream's ParamRef column: `ns/name`, `*/name` when the namespace is the request's, the
/// selector, or `<unset>`.
pub(crate) fn validating_admission_policy_binding(obj: &Value, now: i64) -> Vec<Value> {
    let param = match obj.pointer("/spec/paramRef").filter(|p| !p.is_null()) {
        Some(p) if !s(p, "/name").is_empty() => match s(p, "/namespace") {
            "" => format!("*/{}", s(p, "/name")),
            ns => format!("{ns}/{}", s(p, "/name")),
        },
        Some(p) if p.get("selector").is_some_and(|x| !x.is_null()) => {
            format_label_selector(p.get("selector"))
        }
        _ => "<unset>".to_owned(),
    };
    vec![
        name(obj),
        s(obj, "/spec/policyName").into(),
        param.into(),
        age(obj, now),
    ]
}
