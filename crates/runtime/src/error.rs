//! The error type of [`crate::ContainerRuntime`].

use std::io;
use std::path::PathBuf;

use crate::images::ImageError;

/// What a runtime call can fail with. The agent maps `NotFound` to "gone" (recreate or forget),
/// `InvalidConfig` and `Image` to a pod-level error event, `Timeout` to a failed probe; the rest
/// are runtime failures it retries.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No sandbox or container with that id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `"sandbox"` or `"container"`.
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The call does not fit the object's state (starting a running container, creating a
    /// container in a stopped sandbox, exec in a container that does not run).
    #[error("{kind} {id}: {reason}")]
    InvalidState {
        /// `"sandbox"` or `"container"`.
        kind: &'static str,
        /// Its id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// A config the runtime cannot honour (empty command, relative mount path, unknown
    /// capability, ...).
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The image is not in the store or is corrupt.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The container's process could not be started: the message comes from the container's
    /// setup (mount, pivot_root, exec, ...).
    #[error("start failed: {0}")]
    StartFailed(String),
    /// The runtime's helper process (the shim) failed or could not be spawned.
    #[error("shim: {0}")]
    Shim(String),
    /// A filesystem or process operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A cgroup could not be created, configured, read or removed.
    #[error("cgroup {path}: {reason}")]
    Cgroup {
        /// The cgroup directory.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A state file on disk does not parse.
    #[error("corrupt state {path}: {reason}")]
    CorruptState {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// The operation did not finish in time (exec_sync's timeout, a process that would not die).
    #[error("timed out: {0}")]
    Timeout(String),
    /// A CRI call to an external runtime (containerd) failed, or its socket could not be dialled;
    /// the message is the runtime's own.
    #[error("CRI {op}: {message}")]
    Cri {
        /// The CRI method (`RunPodSandbox`, ...) or `connect`.
        op: &'static str,
        /// The gRPC status code and message.
        message: String,
    },
    /// Not implemented by this runtime (yet).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Results of runtime calls.
pub type Result<T> = std::result::Result<T, RuntimeError>;

/// Attaches an operation and a path to IO errors.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| RuntimeError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
