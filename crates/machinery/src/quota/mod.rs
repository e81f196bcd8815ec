//! ResourceQuota accounting shared by the quota controller (which recomputes `status.used`)
//! and the API server's quota admission (which charges a new object's usage): [`usage`]
//! evaluates what objects use, [`scopes`] which pods a scoped quota tracks. Pure.

pub mod scopes;
pub mod usage;
