//! The strategic-merge table: for each built-in kind, which lists merge, by which key, and which fields replace.
//!
//! Transcribed from the `patchStrategy`/`patchMergeKey` struct tags of `k8s.io/api` and
//! `k8s.io/apimachinery` (the same data as the OpenAPI `x-kubernetes-patch-strategy` and
//! `x-kubernetes-patch-merge-key` extensions). Types are nodes of a small static graph; a field
//! that is not listed has no tag: maps under it merge recursively and lists are replaced.

/// How a field's value combines with the live value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PatchStrategy {
    /// No tag: maps merge recursively, lists and scalars are replaced.
    Default,
    /// `patchStrategy:"merge"`: lists merge (by the merge key for lists of maps, as a set of
    /// scalars otherwise).
    Merge,
    /// `patchStrategy:"replace"`: the patch value replaces the field whole.
    Replace,
}

/// The patch metadata of one field.
#[derive(Debug, Clone, Copy)]
pub struct FieldMeta {
    name: &'static str,
    strategy: PatchStrategy,
    retain_keys: bool,
    merge_key: Option<&'static str>,
    schema: Option<&'static TypeDef>,
}

/// One API type: its fields that carry patch metadata or lead to types that do.
#[derive(Debug)]
pub struct TypeDef {
    name: &'static str,
    fields: &'static [FieldMeta],
}

/// The merge schema of one type (a kind's root, or a field's value or list item).
///
/// [`MergeSchema::unstructured`] knows no field: maps merge, lists are replaced.
#[derive(Debug, Clone, Copy)]
pub struct MergeSchema {
    ty: Option<&'static TypeDef>,
}

/// What [`MergeSchema::field`] says about a field.
#[derive(Debug, Clone, Copy)]
pub struct FieldPatchMeta {
    /// The schema of the field's value (of each item, for a list).
    pub schema: MergeSchema,
    /// The field's strategy.
    pub strategy: PatchStrategy,
    /// Whether the field also carries the `retainKeys` strategy (informational on the server:
    /// the `$retainKeys` directive is honoured wherever a patch sends it).
    pub retain_keys: bool,
    /// The merge key of a merging list of maps.
    pub merge_key: Option<&'static str>,
}

impl MergeSchema {
    /// The schema of a built-in kind, or `None` for kinds strategic merge patch does not
    /// support (custom resources and aggregated APIs, which answer 415). Built-in kinds
    /// without list metadata still get a schema (with `metadata` merging as upstream).
    /// The version is not consulted: the tags of a kind agree across its served versions.
    pub fn for_kind(group: &str, _version: &str, kind: &str) -> Option<MergeSchema> {
        if !BUILTIN_GROUPS.contains(&group) {
            return None;
        }
        let root = KINDS
            .iter()
            .find(|(g, k, _)| *g == group && *k == kind)
            .map_or(&GENERIC, |(_, _, t)| *t);
        Some(MergeSchema { ty: Some(root) })
    }

    /// A schema that knows no fields (maps merge, lists are replaced).
    pub fn unstructured() -> MergeSchema {
        MergeSchema { ty: None }
    }

    /// The type's name (for error messages).
    pub fn name(&self) -> &'static str {
        self.ty.map_or("unstructured", |t| t.name)
    }

    /// The patch metadata of field `name` of this type.
    pub fn field(&self, name: &str) -> FieldPatchMeta {
        let meta = self
            .ty
            .and_then(|t| t.fields.iter().find(|f| f.name == name));
        match meta {
            Some(f) => FieldPatchMeta {
                schema: MergeSchema { ty: f.schema },
                strategy: f.strategy,
                retain_keys: f.retain_keys,
                merge_key: f.merge_key,
            },
            None => FieldPatchMeta {
                schema: MergeSchema::unstructured(),
                strategy: PatchStrategy::Default,
                retain_keys: false,
                merge_key: None,
            },
        }
    }
}

const fn merge_by(name: &'static str, key: &'static str) -> FieldMeta {
    FieldMeta {
        name,
        strategy: PatchStrategy::Merge,
        retain_keys: false,
        merge_key: Some(key),
        schema: None,
    }
}

const fn merge_items(name: &'static str, key: &'static str, item: &'static TypeDef) -> FieldMeta {
    FieldMeta {
        schema: Some(item),
        ..merge_by(name, key)
    }
}

/// A merging list of scalars (a set).
const fn merge_set(name: &'static str) -> FieldMeta {
    FieldMeta {
        merge_key: None,
        ..merge_by(name, "")
    }
}

const fn retaining(meta: FieldMeta) -> FieldMeta {
    FieldMeta {
        retain_keys: true,
        ..meta
    }
}

const fn nested(name: &'static str, ty: &'static TypeDef) -> FieldMeta {
    FieldMeta {
        name,
        strategy: PatchStrategy::Default,
        retain_keys: false,
        merge_key: None,
        schema: Some(ty),
    }
}

const fn replaced(name: &'static str) -> FieldMeta {
    FieldMeta {
        name,
        strategy: PatchStrategy::Replace,
        retain_keys: false,
        merge_key: None,
        schema: None,
    }
}

const fn ty(name: &'static str, fields: &'static [FieldMeta]) -> TypeDef {
    TypeDef { name, fields }
}

const BUILTIN_GROUPS: &[&str] = &[
    "",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "apiregistration.k8s.io",
    "apps",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "coordination.k8s.io",
    "discovery.k8s.io",
    "events.k8s.io",
    "flowcontrol.apiserver.k8s.io",
    "internal.apiserver.k8s.io",
    "networking.k8s.io",
    "node.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "resource.k8s.io",
    "scheduling.k8s.io",
    "storage.k8s.io",
    "storagemigration.k8s.io",
];

static OBJECT_META: TypeDef = ty(
    "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
    &[merge_by("ownerReferences", "uid"), merge_set("finalizers")],
);
static GENERIC: TypeDef = ty("object", &[nested("metadata", &OBJECT_META)]);
static CONDITIONS_STATUS: TypeDef = ty("status", &[merge_by("conditions", "type")]);

static CONTAINER: TypeDef = ty(
    "io.k8s.api.core.v1.Container",
    &[
        merge_by("ports", "containerPort"),
        merge_by("env", "name"),
        merge_by("volumeMounts", "mountPath"),
        merge_by("volumeDevices", "devicePath"),
    ],
);
static POD_SPEC: TypeDef = ty(
    "io.k8s.api.core.v1.PodSpec",
    &[
        retaining(merge_by("volumes", "name")),
        merge_items("initContainers", "name", &CONTAINER),
        merge_items("containers", "name", &CONTAINER),
        merge_items("ephemeralContainers", "name", &CONTAINER),
        merge_by("imagePullSecrets", "name"),
        merge_by("hostAliases", "ip"),
        merge_by("topologySpreadConstraints", "topologyKey"),
        merge_by("schedulingGates", "name"),
        retaining(merge_by("resourceClaims", "name")),
        merge_by("evictionResponders", "name"),
    ],
);
static NODE_ALLOCATABLE_CLAIM_STATUS: TypeDef = ty(
    "io.k8s.api.core.v1.NodeAllocatableResourceClaimStatus",
    &[merge_by("mapping", "name"), merge_by("overhead", "name")],
);
static POD_STATUS: TypeDef = ty(
    "io.k8s.api.core.v1.PodStatus",
    &[
        merge_by("conditions", "type"),
        merge_by("hostIPs", "ip"),
        merge_by("podIPs", "ip"),
        retaining(merge_by("resourceClaimStatuses", "name")),
        merge_items(
            "nodeAllocatableResourceClaimStatuses",
            "resourceClaimName",
            &NODE_ALLOCATABLE_CLAIM_STATUS,
        ),
    ],
);
static POD: TypeDef = ty(
    "io.k8s.api.core.v1.Pod",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &POD_SPEC),
        nested("status", &POD_STATUS),
    ],
);
static POD_TEMPLATE_SPEC: TypeDef = ty(
    "io.k8s.api.core.v1.PodTemplateSpec",
    &[nested("metadata", &OBJECT_META), nested("spec", &POD_SPEC)],
);
static POD_TEMPLATE: TypeDef = ty(
    "io.k8s.api.core.v1.PodTemplate",
    &[
        nested("metadata", &OBJECT_META),
        nested("template", &POD_TEMPLATE_SPEC),
    ],
);
/// `spec` of ReplicaSet, DaemonSet, StatefulSet, ReplicationController and Job.
static TEMPLATED_SPEC: TypeDef = ty("spec", &[nested("template", &POD_TEMPLATE_SPEC)]);
static TEMPLATED_WORKLOAD: TypeDef = ty(
    "workload",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &TEMPLATED_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
);
static DEPLOYMENT_SPEC: TypeDef = ty(
    "io.k8s.api.apps.v1.DeploymentSpec",
    &[
        nested("template", &POD_TEMPLATE_SPEC),
        retaining(nested("strategy", &GENERIC_MAP)),
    ],
);
static GENERIC_MAP: TypeDef = ty("map", &[]);
static DEPLOYMENT: TypeDef = ty(
    "io.k8s.api.apps.v1.Deployment",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &DEPLOYMENT_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
);
static JOB_TEMPLATE_SPEC: TypeDef = ty(
    "io.k8s.api.batch.v1.JobTemplateSpec",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &TEMPLATED_SPEC),
    ],
);
static CRON_JOB: TypeDef = ty(
    "io.k8s.api.batch.v1.CronJob",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &CRON_JOB_SPEC),
    ],
);
static CRON_JOB_SPEC: TypeDef = ty(
    "io.k8s.api.batch.v1.CronJobSpec",
    &[nested("jobTemplate", &JOB_TEMPLATE_SPEC)],
);
static SERVICE: TypeDef = ty(
    "io.k8s.api.core.v1.Service",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &SERVICE_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
);
static SERVICE_SPEC: TypeDef = ty(
    "io.k8s.api.core.v1.ServiceSpec",
    &[merge_by("ports", "port")],
);
static SERVICE_ACCOUNT: TypeDef = ty(
    "io.k8s.api.core.v1.ServiceAccount",
    &[
        nested("metadata", &OBJECT_META),
        merge_by("secrets", "name"),
    ],
);
static NODE: TypeDef = ty(
    "io.k8s.api.core.v1.Node",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &NODE_SPEC),
        nested("status", &NODE_STATUS),
    ],
);
static NODE_SPEC: TypeDef = ty("io.k8s.api.core.v1.NodeSpec", &[merge_set("podCIDRs")]);
static NODE_STATUS: TypeDef = ty(
    "io.k8s.api.core.v1.NodeStatus",
    &[
        merge_by("conditions", "type"),
        merge_by("addresses", "type"),
    ],
);
/// Kinds whose only list metadata is `status.conditions` merged by `type`.
static STATUS_CONDITIONS_KIND: TypeDef = ty(
    "conditioned",
    &[
        nested("metadata", &OBJECT_META),
        nested("status", &CONDITIONS_STATUS),
    ],
);
static COMPONENT_STATUS: TypeDef = ty(
    "io.k8s.api.core.v1.ComponentStatus",
    &[
        nested("metadata", &OBJECT_META),
        merge_by("conditions", "type"),
    ],
);
static PDB: TypeDef = ty(
    "io.k8s.api.policy.v1.PodDisruptionBudget",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &PDB_SPEC),
        nested("status", &CONDITIONS_STATUS),
    ],
);
static PDB_SPEC: TypeDef = ty(
    "io.k8s.api.policy.v1.PodDisruptionBudgetSpec",
    &[replaced("selector")],
);
static RESOURCE_CLAIM: TypeDef = ty(
    "io.k8s.api.resource.v1.ResourceClaim",
    &[
        nested("metadata", &OBJECT_META),
        nested("status", &RESOURCE_CLAIM_STATUS),
    ],
);
static RESOURCE_CLAIM_STATUS: TypeDef = ty(
    "io.k8s.api.resource.v1.ResourceClaimStatus",
    &[merge_by("reservedFor", "uid")],
);
static CSI_NODE: TypeDef = ty(
    "io.k8s.api.storage.v1.CSINode",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &CSI_NODE_SPEC),
        nested("status", &CSI_NODE_STATUS),
    ],
);
static CSI_NODE_SPEC: TypeDef = ty(
    "io.k8s.api.storage.v1.CSINodeSpec",
    &[merge_by("drivers", "name")],
);
static CSI_NODE_STATUS: TypeDef = ty(
    "io.k8s.api.storage.v1.CSINodeStatus",
    &[merge_by("storageHealth", "name")],
);
static WEBHOOK: TypeDef = ty(
    "io.k8s.api.admissionregistration.v1.Webhook",
    &[merge_by("matchConditions", "name")],
);
static WEBHOOK_CONFIGURATION: TypeDef = ty(
    "io.k8s.api.admissionregistration.v1.WebhookConfiguration",
    &[
        nested("metadata", &OBJECT_META),
        merge_items("webhooks", "name", &WEBHOOK),
    ],
);
static ADMISSION_POLICY_SPEC: TypeDef = ty(
    "io.k8s.api.admissionregistration.v1.AdmissionPolicySpec",
    &[
        merge_by("matchConditions", "name"),
        merge_by("variables", "name"),
    ],
);
static ADMISSION_POLICY: TypeDef = ty(
    "io.k8s.api.admissionregistration.v1.AdmissionPolicy",
    &[
        nested("metadata", &OBJECT_META),
        nested("spec", &ADMISSION_POLICY_SPEC),
    ],
);

/// (group, kind) → root type. Kinds of built-in groups not listed use [`GENERIC`].
static KINDS: &[(&str, &str, &TypeDef)] = &[
    ("", "Pod", &POD),
    ("", "PodTemplate", &POD_TEMPLATE),
    ("", "ReplicationController", &TEMPLATED_WORKLOAD),
    ("", "Service", &SERVICE),
    ("", "ServiceAccount", &SERVICE_ACCOUNT),
    ("", "Node", &NODE),
    ("", "Namespace", &STATUS_CONDITIONS_KIND),
    ("", "PersistentVolumeClaim", &STATUS_CONDITIONS_KIND),
    ("", "ComponentStatus", &COMPONENT_STATUS),
    ("apps", "Deployment", &DEPLOYMENT),
    ("apps", "ReplicaSet", &TEMPLATED_WORKLOAD),
    ("apps", "DaemonSet", &TEMPLATED_WORKLOAD),
    ("apps", "StatefulSet", &TEMPLATED_WORKLOAD),
    ("batch", "Job", &TEMPLATED_WORKLOAD),
    ("batch", "CronJob", &CRON_JOB),
    (
        "autoscaling",
        "HorizontalPodAutoscaler",
        &STATUS_CONDITIONS_KIND,
    ),
    ("policy", "PodDisruptionBudget", &PDB),
    (
        "certificates.k8s.io",
        "PodCertificateRequest",
        &STATUS_CONDITIONS_KIND,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        &STATUS_CONDITIONS_KIND,
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        &STATUS_CONDITIONS_KIND,
    ),
    ("networking.k8s.io", "ServiceCIDR", &STATUS_CONDITIONS_KIND),
    (
        "resource.k8s.io",
        "DeviceTaintRule",
        &STATUS_CONDITIONS_KIND,
    ),
    ("resource.k8s.io", "ResourceClaim", &RESOURCE_CLAIM),
    ("storage.k8s.io", "CSINode", &CSI_NODE),
    (
        "storagemigration.k8s.io",
        "StorageVersionMigration",
        &STATUS_CONDITIONS_KIND,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        &WEBHOOK_CONFIGURATION,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        &WEBHOOK_CONFIGURATION,
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        &ADMISSION_POLICY,
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        &ADMISSION_POLICY,
    ),
];
