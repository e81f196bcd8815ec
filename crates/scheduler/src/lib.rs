//! rudder's scheduler: places pods on nodes the way kube-scheduler does.
//!
//! Layers, bottom up: `resources`, `snapshot` and `domains` (the cluster as the scheduler sees
//! it, with pods counted per topology domain), `framework` (extension points,
//! [`framework::Status`]), `plugins` (one file per plugin, pure, table-tested), `config`
//! (KubeSchedulerConfiguration profiles), `schedule` (one decision) and
//! `preemption` (victims, pure); then IO: `queue` (active / back-off / unschedulable), `cache`
//! (watches into the snapshot, each pod first cut to what scheduling reads by `slim`) and
//! `scheduler` (the loop: bind, events, status).

pub mod cache;
pub mod config;
pub mod domains;
mod error;
pub mod framework;
pub mod metrics;
pub mod plugins;
pub mod preemption;
pub mod priority;
pub mod queue;
pub mod resources;
pub mod schedule;
mod scheduler;
pub mod slim;
pub mod snapshot;

pub use error::SchedulerError;
pub use rudder_leader::default_identity;
pub use scheduler::{LEASE_NAME, LEASE_NAMESPACE, run};
