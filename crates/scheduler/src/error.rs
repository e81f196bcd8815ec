//! The scheduler's errors: what stops it, not what it cannot place (that is a `FitError` value).

/// Errors of the scheduler library.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration file is malformed or names unknown plugins or points.
    #[error("scheduler configuration: {0}")]
    Config(String),
    /// Reading the configuration file failed.
    #[error("reading {path}: {source}")]
    ReadConfig {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An API request failed (binding, events, status, deletion of victims).
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
    /// Leader election ended with an error.
    #[error(transparent)]
    Leader(#[from] rudder_leader::LeaderError),
}
