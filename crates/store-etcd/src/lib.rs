//! The etcd v3 backend of rudder's [`rudder_store::Store`] trait, for clusters of several machines.
//!
//! [`EtcdStore`] maps each trait operation onto one etcd request (a transaction where a guard is
//! involved), so the guarantees are etcd's own: linearizable reads and writes, one global revision,
//! and history until compaction. Watches are etcd watches that re-establish themselves from the
//! next expected revision when the member serving them goes away, so a member failure never loses
//! an event.
//!
//! [`testing`] starts real `etcd` processes (one member or a cluster) for tests.

mod convert;
mod endpoints;
mod error;
mod options;
mod store;
pub mod testing;
mod watch;

pub use options::EtcdOptions;
pub use store::EtcdStore;
