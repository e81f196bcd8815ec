//! The error type of the image store.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the image store.
///
/// IO errors carry the path they happened on, because "No such file or directory" alone does not
/// tell an operator which of the store's thousands of files is missing.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("create", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An image reference does not parse (`Busybox`, `foo:bar:baz`, a bad digest, ...).
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference {
        /// The reference as given.
        reference: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A digest string is not `sha256:` followed by 64 lowercase hex digits.
    #[error("invalid digest {0:?} (only sha256 is supported)")]
    InvalidDigest(String),
    /// Content did not hash to the digest it was announced with.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the content was announced with.
        expected: String,
        /// The digest of the bytes actually received.
        actual: String,
    },
    /// Content did not have the size it was announced with.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob's digest.
        digest: String,
        /// The announced size.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// A manifest, config, index or archive is malformed or of an unsupported kind.
    #[error("invalid {what}: {reason}")]
    InvalidFormat {
        /// What was being read ("image manifest", "docker-archive manifest.json", ...).
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON document did not decode.
    #[error("invalid {what}: {source}")]
    Json {
        /// What was being decoded.
        what: &'static str,
        /// The decoder's error.
        #[source]
        source: serde_json::Error,
    },
    /// A layer entry tried to write outside its layer directory.
    #[error("layer entry {entry:?} escapes the layer root")]
    PathEscape {
        /// The entry's path as written in the tar.
        entry: String,
    },
    /// A layer needs root to be unpacked faithfully (overlayfs whiteouts, opaque directories).
    #[error(
        "unpacking {what} needs root (CAP_MKNOD / trusted.* xattrs); run the node agent as root"
    )]
    NeedsRoot {
        /// What could not be created.
        what: String,
    },
    /// No image is stored under this reference.
    #[error("image {0} not found")]
    NotFound(String),
    /// The pull policy is `Never` and the image is not present.
    #[error("image {0} is not present and the pull policy is Never")]
    NeverPull(String),
    /// A blob the image needs is missing from the store (the store was tampered with).
    #[error("blob {0} is missing from the store")]
    MissingBlob(String),
    /// The registry refused or failed a request.
    #[error("registry error pulling {reference}: {source}")]
    Registry {
        /// The image being pulled.
        reference: String,
        /// The client's error.
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// A registry index lists no manifest for linux/amd64.
    #[error("image {0} has no linux/amd64 manifest")]
    NoMatchingPlatform(String),
    /// A pull secret does not decode.
    #[error("invalid pull secret: {0}")]
    InvalidPullSecret(String),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

/// The store's result type.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;

/// Attaches an operation and a path to an IO error.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| ImageError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}

pub(crate) fn json_err(what: &'static str) -> impl FnOnce(serde_json::Error) -> ImageError {
    move |source| ImageError::Json { what, source }
}
