//! Request-limit flags of `rudder server` (upstream's `--max-requests-inflight` and
//! `--max-mutating-requests-inflight`, and rudder's per-user and watch limits; see
//! `docs/robustness.md`).

use clap::Args;
use rudder_apiserver::limits::Limits;

/// How much one client, and all of them, may hold at once; 0 turns a limit off.
#[derive(Args, Debug, Clone)]
pub struct LimitArgs {
    /// Non-mutating requests in flight at once before 429 (system:masters is exempt).
    #[arg(long, default_value_t = Limits::default().max_requests_inflight)]
    pub max_requests_inflight: usize,
    /// Mutating requests in flight at once before 429 (system:masters is exempt).
    #[arg(long, default_value_t = Limits::default().max_mutating_requests_inflight)]
    pub max_mutating_requests_inflight: usize,
    /// Requests one user may have in flight before 429 (system:masters is exempt).
    #[arg(long, default_value_t = Limits::default().max_requests_inflight_per_user)]
    pub max_requests_inflight_per_user: usize,
    /// Watches open at once before 429.
    #[arg(long, default_value_t = Limits::default().max_watches)]
    pub max_watches: usize,
    /// Watches one user may have open before 429.
    #[arg(long, default_value_t = Limits::default().max_watches_per_user)]
    pub max_watches_per_user: usize,
}

impl LimitArgs {
    /// The API server's limits.
    pub fn limits(&self) -> Limits {
        Limits {
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            max_requests_inflight_per_user: self.max_requests_inflight_per_user,
            max_watches: self.max_watches,
            max_watches_per_user: self.max_watches_per_user,
        }
    }
}
