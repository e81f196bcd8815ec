//! The controller manager's error type.

/// What stops a reconcile or the controller manager. Expected outcomes (a pod already gone, an
/// object changed under us) are values handled by the controllers, not errors.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A call to the API server failed (network, 5xx, or a rejection the controller cannot fix).
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// An object could not be turned into or from JSON.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// An object's spec is unusable (for example a selector that does not parse); the controller
    /// waits for the user to change it.
    #[error("invalid {kind} {name}: {message}")]
    Invalid {
        /// Kind of the object.
        kind: &'static str,
        /// `namespace/name` of the object.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A service-account token could not be signed (unusable key).
    #[error(transparent)]
    Signing(#[from] rudder_auth::service_account::KeyError),
    /// `--controllers` names a controller the registry does not know.
    #[error("unknown controller {0:?} in --controllers")]
    UnknownController(String),
    /// A watch the controllers depend on ended before its cache was filled.
    #[error("cache for {0} never became ready")]
    CacheNotReady(&'static str),
}

/// Result alias for this crate.
pub type Result<T, E = ControllerError> = std::result::Result<T, E>;
