//! The resource table the generic API server is driven by, with no IO.
//!
//! [`RESOURCES`] has one [`ResourceInfo`] per built-in kind rudder serves: group, version, kind,
//! plural and scope straight from the k8s-openapi types, plus the short names, categories, verbs
//! and subresources upstream discovery reports. The lookups ([`by_plural`], [`by_kind`],
//! [`resolve`], [`groups`], ...) find rows by URL, kind or kubectl name and group them for
//! discovery. The typed hooks work on `serde_json::Value`: [`decode_check`] decodes an object
//! into its k8s-openapi type and reports the JSON path of the first mismatch,
//! [`schema`]/[`subschema`] give its JSON schema for OpenAPI, and [`unknown_fields`] lists the
//! members a schema does not know (`fieldValidation=Strict|Warn`).
//!
//! The crate re-exports [`k8s_openapi`] (the one place the rest of the workspace should take the
//! Kubernetes types from) and [`schemars`].

mod error;
mod info;
mod lookup;
mod table;
mod typed;
mod unknown_fields;

pub use error::ApiError;
pub use info::{ResourceInfo, Subresource, Verb};
pub use k8s_openapi;
pub use lookup::{
    ApiGroup, GroupVersion, by_api_version_kind, by_gvk, by_kind, by_plural, by_short_name,
    by_singular, group, group_version, group_versions, groups, in_category, preferred_version,
    resolve, resources, split_api_version,
};
pub use schemars;
pub use table::{CATEGORY_ALL, CATEGORY_API_EXTENSIONS, RESOURCES};
pub use typed::{decode_check, schema, subschema, unknown_fields_of};
pub use unknown_fields::unknown_fields;
