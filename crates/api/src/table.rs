//! The static resource table: one row per built-in kind, generated from the k8s-openapi types.
//!
//! Each row names a k8s-openapi type; the macro takes group, version, kind, plural,
//! `apiVersion`, scope and list kind from the type's `Resource`/`ListableResource` constants and
//! pairs the row with its typed hooks (decode check, JSON schema). Only what upstream knows and the
//! types do not — short names, categories, verbs, subresources — is written here, checked against
//! `kubectl api-resources -o wide` and the aggregated discovery of Kubernetes 1.3x.
//!
//! Rows are ordered like upstream's `/apis`: the core group first, then the named groups by
//! their discovery priority, and within a group the preferred version first. Lookups by kind or
//! short name return the first match, which is therefore the preferred one (`ev` is the core
//! `Event`, `hpa` is `autoscaling/v2`).

use k8s_openapi::api::admissionregistration::v1 as admissionregistration_v1;
use k8s_openapi::api::apps::v1 as apps_v1;
use k8s_openapi::api::authentication::v1 as authentication_v1;
use k8s_openapi::api::authorization::v1 as authorization_v1;
use k8s_openapi::api::autoscaling::v1 as autoscaling_v1;
use k8s_openapi::api::autoscaling::v2 as autoscaling_v2;
use k8s_openapi::api::batch::v1 as batch_v1;
use k8s_openapi::api::certificates::v1 as certificates_v1;
use k8s_openapi::api::coordination::v1 as coordination_v1;
use k8s_openapi::api::core::v1 as core_v1;
use k8s_openapi::api::discovery::v1 as discovery_v1;
use k8s_openapi::api::events::v1 as events_v1;
use k8s_openapi::api::networking::v1 as networking_v1;
use k8s_openapi::api::policy::v1 as policy_v1;
use k8s_openapi::api::rbac::v1 as rbac_v1;
use k8s_openapi::api::scheduling::v1 as scheduling_v1;
use k8s_openapi::api::storage::v1 as storage_v1;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions_v1;
use k8s_openapi::{ListableResource, Resource};

use crate::info::{ResourceInfo, ScopeFlag, Subresource, Verb, ascii_lowercase};
use crate::typed::Hooks;

/// The category `kubectl get all` expands.
pub const CATEGORY_ALL: &str = "all";

/// The category of the kinds that extend the API (CRDs, webhooks, API services).
pub const CATEGORY_API_EXTENSIONS: &str = "api-extensions";

/// The lower-case kind, computed at compile time.
macro_rules! singular {
    ($ty:ty) => {{
        const KIND: &str = <$ty as Resource>::KIND;
        const BYTES: [u8; KIND.len()] = ascii_lowercase::<{ KIND.len() }>(KIND);
        const SINGULAR: &str = match std::str::from_utf8(&BYTES) {
            Ok(singular) => singular,
            Err(_) => panic!("a kind is ASCII"),
        };
        SINGULAR
    }};
}

macro_rules! list_kind {
    ($ty:ty, yes) => {
        Some(<$ty as ListableResource>::LIST_KIND)
    };
    ($ty:ty, no) => {
        None
    };
}

macro_rules! subresource {
    ($ty:ty, status) => {
        Subresource::typed::<$ty>("status", Verb::GET_PATCH_UPDATE)
    };
    ($ty:ty, scale) => {
        Subresource::typed::<autoscaling_v1::Scale>("scale", Verb::GET_PATCH_UPDATE)
    };
    ($ty:ty, ($sub:expr)) => {
        $sub
    };
}

macro_rules! resource_table {
    ($(
        $ty:ty {
            short: [$($short:literal),*],
            categories: [$($category:expr),*],
            verbs: $verbs:expr,
            list: $list:ident,
            subresources: [$($sub:tt),*] $(,)?
        }
    ),* $(,)?) => {
        /// Every built-in resource rudder serves, in upstream discovery order (see the module
        /// documentation). See [`crate::by_plural`] and its siblings for lookups.
        pub static RESOURCES: &[ResourceInfo] = &[$(
            ResourceInfo {
                group: <$ty as Resource>::GROUP,
                version: <$ty as Resource>::VERSION,
                api_version: <$ty as Resource>::API_VERSION,
                kind: <$ty as Resource>::KIND,
                plural: <$ty as Resource>::URL_PATH_SEGMENT,
                singular: singular!($ty),
                namespaced: <<$ty as Resource>::Scope as ScopeFlag>::NAMESPACED,
                short_names: &[$($short),*],
                categories: &[$($category),*],
                verbs: $verbs,
                subresources: &[$(subresource!($ty, $sub)),*],
                list_kind: list_kind!($ty, $list),
            }
        ),*];

        /// The typed hooks of each row of [`RESOURCES`], at the same index.
        pub(crate) static HOOKS: &[Hooks] = &[$(Hooks::of::<$ty>()),*];
    };
}

const ALL: &str = CATEGORY_ALL;

resource_table! {
    // ---- core/v1 -------------------------------------------------------------------------
    core_v1::Binding { short: [], categories: [], verbs: Verb::CREATE_ONLY, list: no, subresources: [] },
    core_v1::ComponentStatus { short: ["cs"], categories: [], verbs: Verb::GET_LIST, list: yes, subresources: [] },
    core_v1::ConfigMap { short: ["cm"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    core_v1::Endpoints { short: ["ep"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    core_v1::Event { short: ["ev"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    core_v1::LimitRange { short: ["limits"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    core_v1::Namespace {
        short: ["ns"], categories: [], verbs: Verb::NO_DELETE_COLLECTION, list: yes,
        subresources: [
            (Subresource::typed::<core_v1::Namespace>("finalize", &[Verb::Update])),
            status
        ],
    },
    core_v1::Node {
        short: ["no"], categories: [], verbs: Verb::STANDARD, list: yes,
        subresources: [
            (Subresource::untyped("proxy", "", "v1", "NodeProxyOptions", Verb::PROXY)),
            status
        ],
    },
    core_v1::PersistentVolumeClaim { short: ["pvc"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    core_v1::PersistentVolume { short: ["pv"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    core_v1::Pod {
        short: ["po"], categories: [ALL], verbs: Verb::STANDARD, list: yes,
        subresources: [
            (Subresource::untyped("attach", "", "v1", "PodAttachOptions", Verb::CREATE_GET)),
            (Subresource::typed::<core_v1::Binding>("binding", Verb::CREATE_ONLY)),
            (Subresource::typed::<core_v1::Pod>("ephemeralcontainers", Verb::GET_PATCH_UPDATE)),
            (Subresource::typed::<policy_v1::Eviction>("eviction", Verb::CREATE_ONLY)),
            (Subresource::untyped("exec", "", "v1", "PodExecOptions", Verb::CREATE_GET)),
            (Subresource::typed::<core_v1::Pod>("log", &[Verb::Get])),
            (Subresource::untyped("portforward", "", "v1", "PodPortForwardOptions", Verb::CREATE_GET)),
            (Subresource::untyped("proxy", "", "v1", "PodProxyOptions", Verb::PROXY)),
            (Subresource::typed::<core_v1::Pod>("resize", Verb::GET_PATCH_UPDATE)),
            status
        ],
    },
    core_v1::PodTemplate { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    core_v1::ReplicationController { short: ["rc"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [scale, status] },
    core_v1::ResourceQuota { short: ["quota"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    core_v1::Secret { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    core_v1::ServiceAccount {
        short: ["sa"], categories: [], verbs: Verb::STANDARD, list: yes,
        subresources: [(Subresource::typed::<authentication_v1::TokenRequest>("token", Verb::CREATE_ONLY))],
    },
    core_v1::Service {
        short: ["svc"], categories: [ALL], verbs: Verb::STANDARD, list: yes,
        subresources: [
            (Subresource::untyped("proxy", "", "v1", "ServiceProxyOptions", Verb::PROXY)),
            status
        ],
    },
    // ---- apps/v1 -------------------------------------------------------------------------
    apps_v1::ControllerRevision { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    apps_v1::DaemonSet { short: ["ds"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    apps_v1::Deployment { short: ["deploy"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [scale, status] },
    apps_v1::ReplicaSet { short: ["rs"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [scale, status] },
    apps_v1::StatefulSet { short: ["sts"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [scale, status] },
    // ---- events.k8s.io/v1 ----------------------------------------------------------------
    events_v1::Event { short: ["ev"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    // ---- authentication.k8s.io/v1 --------------------------------------------------------
    authentication_v1::SelfSubjectReview { short: [], categories: [], verbs: Verb::CREATE_ONLY, list: no, subresources: [] },
    authentication_v1::TokenReview { short: [], categories: [], verbs: Verb::CREATE_ONLY, list: no, subresources: [] },
    // ---- authorization.k8s.io/v1 ---------------------------------------------------------
    authorization_v1::LocalSubjectAccessReview { short: [], categories: [], verbs: Verb::CREATE_ONLY, list: no, subresources: [] },
    authorization_v1::SelfSubjectAccessReview { short: [], categories: [], verbs: Verb::CREATE_ONLY, list: no, subresources: [] },
    authorization_v1::SelfSubjectRulesReview { short: [], categories: [], verbs: Verb::CREATE_ONLY, list: no, subresources: [] },
    authorization_v1::SubjectAccessReview { short: [], categories: [], verbs: Verb::CREATE_ONLY, list: no, subresources: [] },
    // ---- autoscaling/v2 (preferred), autoscaling/v1 --------------------------------------
    autoscaling_v2::HorizontalPodAutoscaler { short: ["hpa"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    autoscaling_v1::HorizontalPodAutoscaler { short: ["hpa"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    // ---- batch/v1 ------------------------------------------------------------------------
    batch_v1::CronJob { short: ["cj"], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    batch_v1::Job { short: [], categories: [ALL], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    // ---- certificates.k8s.io/v1 ----------------------------------------------------------
    certificates_v1::CertificateSigningRequest {
        short: ["csr"], categories: [], verbs: Verb::STANDARD, list: yes,
        subresources: [
            (Subresource::typed::<certificates_v1::CertificateSigningRequest>("approval", Verb::GET_PATCH_UPDATE)),
            status
        ],
    },
    // ---- networking.k8s.io/v1 ------------------------------------------------------------
    networking_v1::IngressClass { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    networking_v1::Ingress { short: ["ing"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    networking_v1::NetworkPolicy { short: ["netpol"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    // ---- policy/v1 -----------------------------------------------------------------------
    policy_v1::PodDisruptionBudget { short: ["pdb"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    // ---- rbac.authorization.k8s.io/v1 ----------------------------------------------------
    rbac_v1::ClusterRoleBinding { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    rbac_v1::ClusterRole { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    rbac_v1::RoleBinding { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    rbac_v1::Role { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    // ---- storage.k8s.io/v1 ---------------------------------------------------------------
    storage_v1::CSIDriver { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    storage_v1::CSINode { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    storage_v1::CSIStorageCapacity { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    storage_v1::StorageClass { short: ["sc"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    storage_v1::VolumeAttachment { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [status] },
    // ---- admissionregistration.k8s.io/v1 -------------------------------------------------
    admissionregistration_v1::MutatingWebhookConfiguration {
        short: [], categories: [CATEGORY_API_EXTENSIONS], verbs: Verb::STANDARD, list: yes, subresources: [],
    },
    admissionregistration_v1::ValidatingAdmissionPolicy {
        short: [], categories: [CATEGORY_API_EXTENSIONS], verbs: Verb::STANDARD, list: yes, subresources: [status],
    },
    admissionregistration_v1::ValidatingAdmissionPolicyBinding {
        short: [], categories: [CATEGORY_API_EXTENSIONS], verbs: Verb::STANDARD, list: yes, subresources: [],
    },
    admissionregistration_v1::ValidatingWebhookConfiguration {
        short: [], categories: [CATEGORY_API_EXTENSIONS], verbs: Verb::STANDARD, list: yes, subresources: [],
    },
    // ---- apiextensions.k8s.io/v1 ---------------------------------------------------------
    apiextensions_v1::CustomResourceDefinition {
        short: ["crd", "crds"], categories: [CATEGORY_API_EXTENSIONS], verbs: Verb::STANDARD, list: yes,
        subresources: [status],
    },
    // ---- scheduling.k8s.io/v1 ------------------------------------------------------------
    scheduling_v1::PriorityClass { short: ["pc"], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    // ---- coordination.k8s.io/v1 ----------------------------------------------------------
    coordination_v1::Lease { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
    // ---- discovery.k8s.io/v1 -------------------------------------------------------------
    discovery_v1::EndpointSlice { short: [], categories: [], verbs: Verb::STANDARD, list: yes, subresources: [] },
}
