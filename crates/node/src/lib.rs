//! rudder's node agent (the kubelet's role): registers this machine as a Node with its real
//! capacity, keeps its heartbeat Lease and status current, and (with a container runtime) runs the
//! pods bound to it.
//!
//! Everything goes through the API with kube-rs, as any other client: the agent never touches the
//! store, so it runs the same inside `rudder server` and on another machine.

mod heartbeat;
pub mod kubelet_metrics;
pub mod kubelet_server;
pub mod logs;
pub mod machine;
mod netns;
pub mod node_object;
pub mod pod_dns;
pub mod pod_logs;
pub mod pod_network;
pub mod pod_spec;
pub mod pod_status;
pub mod pod_worker;
pub mod pods;
pub mod prober;
pub mod resource_metrics;
pub mod service_env;
pub mod simulated;
pub mod streaming;
pub mod volumes;

pub use heartbeat::{Agent, AgentConfig};

/// Why the agent could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// An API request failed.
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    /// Reading this machine's facts (memory, disk, kernel) failed.
    #[error("reading {what}: {source}")]
    Machine {
        /// What was being read.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An object did not (de)serialize.
    #[error("encoding {0}")]
    Encode(#[from] serde_json::Error),
}
