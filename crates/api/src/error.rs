//! The error type of the crate.

use thiserror::Error;

/// What can go wrong when the resource table is asked about, or checks, an object.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ApiError {
    /// The group/version/kind is not in the resource table (the API server answers 404, or
    /// 400 "no kind is registered" for a body of that kind).
    #[error(
        "no kind {kind:?} is registered for version {}",
        group_version(group, version)
    )]
    UnknownKind {
        /// The group asked for (`""` for core).
        group: String,
        /// The version asked for.
        version: String,
        /// The kind asked for.
        kind: String,
    },

    /// The object does not decode into its typed form: a field has the wrong JSON type, an
    /// enum-like value is malformed, `apiVersion`/`kind` do not match the type, ... (400
    /// BadRequest upstream).
    #[error("error decoding {path}: {message}")]
    Decode {
        /// JSON path of the first offending value, like `.spec.containers[0].ports[0].containerPort`
        /// (`.` for the object itself).
        path: String,
        /// What the decoder found wrong there.
        message: String,
    },

    /// A verb string that is not one of the eight API verbs.
    #[error("unknown verb {0:?}")]
    UnknownVerb(String),
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("{version:?}")
    } else {
        format!("\"{group}/{version}\"")
    }
}
