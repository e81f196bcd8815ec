//! Which built-in kinds have a printer of their own, and the dispatch from a kind to its columns
//! and cells.

use serde_json::Value;

use crate::columns::Col;
use crate::{cluster, core, pod, workloads};

/// A built-in kind with an upstream printer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    Pod,
    PodTemplate,
    Node,
    Namespace,
    Service,
    Endpoints,
    EndpointSlice,
    ConfigMap,
    Secret,
    ServiceAccount,
    ComponentStatus,
    Event,
    ReplicationController,
    PersistentVolume,
    PersistentVolumeClaim,
    ResourceQuota,
    Deployment,
    ReplicaSet,
    StatefulSet,
    DaemonSet,
    ControllerRevision,
    Job,
    CronJob,
    HorizontalPodAutoscaler,
    Ingress,
    IngressClass,
    NetworkPolicy,
    RoleBinding,
    ClusterRoleBinding,
    Lease,
    PodDisruptionBudget,
    PriorityClass,
    RuntimeClass,
    StorageClass,
    CsiDriver,
    CsiNode,
    CsiStorageCapacity,
    VolumeAttachment,
    CertificateSigningRequest,
    MutatingWebhookConfiguration,
    ValidatingWebhookConfiguration,
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
}

/// Built-in kinds that upstream serves through its default table convertor (Name, Created At).
const DEFAULT_CONVERTOR: &[(&str, &str)] = &[
    ("", "LimitRange"),
    ("rbac.authorization.k8s.io", "Role"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
];

/// Whether `(group, kind)` is printed by upstream's default table convertor.
pub(crate) fn uses_default_convertor(group: &str, kind: &str) -> bool {
    DEFAULT_CONVERTOR.contains(&(group, kind))
}

type Cells = fn(&Value, i64) -> Vec<Value>;

impl Builtin {
    /// The printer of `kind` in `group`, if upstream has one.
    pub fn lookup(group: &str, kind: &str) -> Option<Builtin> {
        use Builtin as B;
        let found = match (group, kind) {
            ("", "Pod") => B::Pod,
            ("", "PodTemplate") => B::PodTemplate,
            ("", "Node") => B::Node,
            ("", "Namespace") => B::Namespace,
            ("", "Service") => B::Service,
            ("", "Endpoints") => B::Endpoints,
            ("discovery.k8s.io", "EndpointSlice") => B::EndpointSlice,
            ("", "ConfigMap") => B::ConfigMap,
            ("", "Secret") => B::Secret,
            ("", "ServiceAccount") => B::ServiceAccount,
            ("", "ComponentStatus") => B::ComponentStatus,
            ("" | "events.k8s.io", "Event") => B::Event,
            ("", "ReplicationController") => B::ReplicationController,
            ("", "PersistentVolume") => B::PersistentVolume,
            ("", "PersistentVolumeClaim") => B::PersistentVolumeClaim,
            ("", "ResourceQuota") => B::ResourceQuota,
            ("apps", "Deployment") => B::Deployment,
            ("apps", "ReplicaSet") => B::ReplicaSet,
            ("apps", "StatefulSet") => B::StatefulSet,
            ("apps", "DaemonSet") => B::DaemonSet,
            ("apps", "ControllerRevision") => B::ControllerRevision,
            ("batch", "Job") => B::Job,
            ("batch", "CronJob") => B::CronJob,
            ("autoscaling", "HorizontalPodAutoscaler") => B::HorizontalPodAutoscaler,
            ("networking.k8s.io", "Ingress") => B::Ingress,
            ("networking.k8s.io", "IngressClass") => B::IngressClass,
            ("networking.k8s.io", "NetworkPolicy") => B::NetworkPolicy,
            ("rbac.authorization.k8s.io", "RoleBinding") => B::RoleBinding,
            ("rbac.authorization.k8s.io", "ClusterRoleBinding") => B::ClusterRoleBinding,
            ("coordination.k8s.io", "Lease") => B::Lease,
            ("policy", "PodDisruptionBudget") => B::PodDisruptionBudget,
            ("scheduling.k8s.io", "PriorityClass") => B::PriorityClass,
            ("node.k8s.io", "RuntimeClass") => B::RuntimeClass,
            ("storage.k8s.io", "StorageClass") => B::StorageClass,
            ("storage.k8s.io", "CSIDriver") => B::CsiDriver,
            ("storage.k8s.io", "CSINode") => B::CsiNode,
            ("storage.k8s.io", "CSIStorageCapacity") => B::CsiStorageCapacity,
            ("storage.k8s.io", "VolumeAttachment") => B::VolumeAttachment,
            ("certificates.k8s.io", "CertificateSigningRequest") => B::CertificateSigningRequest,
            ("admissionregistration.k8s.io", "MutatingWebhookConfiguration") => {
                B::MutatingWebhookConfiguration
            }
            ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration") => {
                B::ValidatingWebhookConfiguration
            }
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
                B::ValidatingAdmissionPolicy
            }
            ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
                B::ValidatingAdmissionPolicyBinding
            }
            _ => return None,
        };
        Some(found)
    }

    /// The column table and the cell function.
    fn parts(self) -> (&'static [Col], Cells) {
        use Builtin as B;
        match self {
            B::Pod => (pod::COLUMNS, |o, n| pod::row(o, n).0),
            B::PodTemplate => (core::POD_TEMPLATE, core::pod_template),
            B::Node => (core::NODE, core::node),
            B::Namespace => (core::NAMESPACE, core::namespace),
            B::Service => (core::SERVICE, core::service),
            B::Endpoints => (core::ENDPOINTS, core::endpoints),
            B::EndpointSlice => (core::ENDPOINT_SLICE, core::endpoint_slice),
            B::ConfigMap => (core::CONFIG_MAP, core::config_map),
            B::Secret => (core::SECRET, core::secret),
            B::ServiceAccount => (core::SERVICE_ACCOUNT, core::service_account),
            B::ComponentStatus => (core::COMPONENT_STATUS, core::component_status),
            B::Event => (core::EVENT, core::event),
            B::ReplicationController => {
                (core::REPLICATION_CONTROLLER, core::replication_controller)
            }
            B::PersistentVolume => (core::PERSISTENT_VOLUME, core::persistent_volume),
            B::PersistentVolumeClaim => {
                (core::PERSISTENT_VOLUME_CLAIM, core::persistent_volume_claim)
            }
            B::ResourceQuota => (core::RESOURCE_QUOTA, core::resource_quota),
            B::Deployment => (workloads::DEPLOYMENT, workloads::deployment),
            B::ReplicaSet => (workloads::REPLICA_SET, workloads::replica_set),
            B::StatefulSet => (workloads::STATEFUL_SET, workloads::stateful_set),
            B::DaemonSet => (workloads::DAEMON_SET, workloads::daemon_set),
            B::ControllerRevision => (
                workloads::CONTROLLER_REVISION,
                workloads::controller_revision,
            ),
            B::Job => (workloads::JOB, workloads::job),
            B::CronJob => (workloads::CRON_JOB, workloads::cron_job),
            B::HorizontalPodAutoscaler => (workloads::HPA, workloads::hpa),
            B::Ingress => (cluster::INGRESS, cluster::ingress),
            B::IngressClass => (cluster::INGRESS_CLASS, cluster::ingress_class),
            B::NetworkPolicy => (cluster::NETWORK_POLICY, cluster::network_policy),
            B::RoleBinding | B::ClusterRoleBinding => {
                (cluster::ROLE_BINDING, cluster::role_binding)
            }
            B::Lease => (cluster::LEASE, cluster::lease),
            B::PodDisruptionBudget => (
                cluster::POD_DISRUPTION_BUDGET,
                cluster::pod_disruption_budget,
            ),
            B::PriorityClass => (cluster::PRIORITY_CLASS, cluster::priority_class),
            B::RuntimeClass => (cluster::RUNTIME_CLASS, cluster::runtime_class),
            B::StorageClass => (cluster::STORAGE_CLASS, cluster::storage_class),
            B::CsiDriver => (cluster::CSI_DRIVER, cluster::csi_driver),
            B::CsiNode => (cluster::CSI_NODE, cluster::csi_node),
            B::CsiStorageCapacity => (cluster::CSI_STORAGE_CAPACITY, cluster::csi_storage_capacity),
            B::VolumeAttachment => (cluster::VOLUME_ATTACHMENT, cluster::volume_attachment),
            B::CertificateSigningRequest => (
                cluster::CERTIFICATE_SIGNING_REQUEST,
                cluster::certificate_signing_request,
            ),
            B::MutatingWebhookConfiguration | B::ValidatingWebhookConfiguration => (
                cluster::WEBHOOK_CONFIGURATION,
                cluster::webhook_configuration,
            ),
            B::ValidatingAdmissionPolicy => (
                cluster::VALIDATING_ADMISSION_POLICY,
                cluster::validating_admission_policy,
            ),
            B::ValidatingAdmissionPolicyBinding => (
                cluster::VALIDATING_ADMISSION_POLICY_BINDING,
                cluster::validating_admission_policy_binding,
            ),
        }
    }

    /// The column definitions, wide ones included.
    pub(crate) fn columns(self) -> &'static [Col] {
        self.parts().0
    }

    /// The cells of one object (always the wide set: kubectl hides priority columns itself)
    /// and its row conditions (only finished pods have any).
    pub(crate) fn row(self, obj: &Value, now: i64) -> (Vec<Value>, Vec<Value>) {
        match self {
            Builtin::Pod => pod::row(obj, now),
            other => ((other.parts().1)(obj, now), Vec::new()),
        }
    }
}
