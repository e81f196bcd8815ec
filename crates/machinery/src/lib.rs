//! Pure Kubernetes API machinery for rudder: everything the API server computes on objects without IO.
//!
//! Objects are `serde_json::Value`s in their wire (JSON) form. The modules follow upstream
//! `k8s.io/apimachinery` semantics and, where clients depend on them, its exact error texts:
//!
//! - [`label_selector`]: `?labelSelector=` strings and `metav1.LabelSelector`, matching label maps;
//! - [`field_selector`]: `?fieldSelector=` strings, the per-kind field whitelist, matching objects;
//! - [`merge_patch`]: RFC 7386 JSON merge patch (`application/merge-patch+json`);
//! - [`json_patch`]: RFC 6902 JSON patch (`application/json-patch+json`);
//! - [`strategic_merge_patch`] with [`merge_schema`]: `application/strategic-merge-patch+json`;
//! - [`managed_fields`]: field ownership (`managedFields`) and server-side apply with conflicts;
//! - [`quantity`]: resource quantities (`500m`, `1.5Gi`) as exact integers;
//! - [`query`]: URL query strings, decoded and re-encoded;
//! - [`timestamp`]: RFC 3339 timestamps to and from Unix seconds;
//! - [`name_validation`]: DNS-1123 names, label keys and values, path segments, `generateName`;
//! - [`pod_trim`]: what in-process pod caches drop (container details, non-claim volumes).
//!
//! Failures a caller cannot proceed from are [`MachineryError`] values; validators that upstream
//! expresses as "list of problems" return `Vec<String>` (empty means valid).

pub mod conversion;
pub mod duration;
mod error;
pub mod field_selector;
pub mod json_patch;
pub mod label_selector;
pub mod managed_fields;
pub mod merge_patch;
pub mod merge_schema;
pub mod name_validation;
pub mod pod_trim;
pub mod quantity;
pub mod query;
pub mod quota;
mod selectable_fields;
pub mod strategic_merge_patch;
pub mod timestamp;

pub use error::{JsonPatchErrorKind, MachineryError};
pub use field_selector::{FieldSelector, supported_fields};
pub use json_patch::apply_json_patch;
pub use label_selector::{LabelSelector, Operator, Requirement};
pub use merge_patch::apply_merge_patch;
pub use merge_schema::MergeSchema;
pub use strategic_merge_patch::strategic_merge;

/// Result alias for this crate.
pub type Result<T, E = MachineryError> = std::result::Result<T, E>;
