//! Leader election through a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does.
//!
//! Several servers may run the same control-plane component; only the holder of the Lease works.
//! The holder renews the Lease every [`Timing::renew`]; the others look every [`Timing::retry`]
//! (or right after the Lease's expiry, when that comes sooner) and take it over once it has not
//! been renewed for `leaseDurationSeconds`: a killed holder is replaced at most that long after
//! its last renewal (15 s by default). Every write is a replace
//! guarded by the Lease's `resourceVersion`, so two candidates can never both win a round: the API
//! server's compare-and-swap is the only arbiter (no home-made consensus).
//!
//! [`decide`] is the pure rule; [`run_as_leader`] is the IO loop around it.

mod decide;
mod run;

pub use decide::{Decision, LeaseView, decide, expiry, next_look};
pub use run::{Timing, default_identity, run_as_leader};

/// What stops leader election.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The API server refused a request for a reason other than a lost race.
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}
