//! core/v1 Event recording shared by rudder's components, as upstream's client-go recorder does it:
//! a [`Recorder`] hands events to a bounded queue (full means dropped: events are best effort and
//! must never slow the work they describe), and one writer task correlates them — repeats become a
//! `count` bump on the first event, floods of similar events are combined, and per-object spam is
//! rate limited ([`correlate`]) — before writing them through the API.

pub mod correlate;
mod writer;

pub use correlate::{Correlator, Draft};
pub use writer::Recorder;

/// Event type `Normal`.
pub const NORMAL: &str = "Normal";
/// Event type `Warning`.
pub const WARNING: &str = "Warning";
