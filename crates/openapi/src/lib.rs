//! OpenAPI v2 for clients that still ask for it: kubectl 1.27 and 1.28 fetch `/openapi/v2` as
//! gnostic's `openapi_v2.Document` protobuf for client-side validation, `apply` and `explain`.
//!
//! Two pure steps, both table-tested:
//! - [`swagger_from_v3`] merges the per-group-version OpenAPI v3 documents the API server
//!   already builds into one Swagger 2.0 JSON document, in the shape upstream's v2 has;
//! - [`encode`] turns that JSON into the protobuf bytes, with the hand-written [`gnostic`]
//!   messages (field numbers as in gnostic's `OpenAPIv2.proto`).
//!
//! No IO: the API server decides when to build and caches the result.

pub mod encode;
pub mod gnostic;
pub mod schema;
pub mod swagger;

pub use encode::{decode, document, encode};
pub use schema::rewrite_ref;
pub use swagger::swagger_from_v3;

/// Why a Swagger document could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The document is not a JSON object.
    #[error("a Swagger document must be a JSON object")]
    NotAnObject,
    /// A free-form value (`default`, `enum`, a vendor extension) could not be written as the
    /// YAML text gnostic's `Any` carries.
    #[error("writing a value as YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    /// Bytes given to [`decode`] are not a gnostic `Document`.
    #[error("decoding an openapi_v2 Document: {0}")]
    Decode(#[from] prost::DecodeError),
}
