//! Expectations: what a controller just asked the API server to create or delete and has not
//! yet seen in its cache. A controller whose expectations are pending does not act on the cache
//! (it would count the same pods twice); upstream's `ControllerExpectations`, keyed by names and
//! UIDs instead of counters so they are checked against the cache rather than fed by events.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long an expectation holds at most: a create whose pod was deleted before the cache saw
/// it would otherwise block the controller for ever (upstream's 5-minute TTL).
const TTL: Duration = Duration::from_secs(300);

#[derive(Default)]
struct Pending {
    /// Names of objects created but not yet seen.
    creates: HashSet<String>,
    /// UIDs of objects deleted but still seen as live.
    deletes: HashSet<String>,
    since: Option<Instant>,
}

/// Expectations of every controller object, by key (`kind/namespace/name`).
#[derive(Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    /// Records what a sync asked for.
    pub fn expect(&self, key: &str, created: Vec<String>, deleted: Vec<String>) {
        if created.is_empty() && deleted.is_empty() {
            return;
        }
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let p = map.entry(key.to_owned()).or_default();
        p.creates.extend(created);
        p.deletes.extend(deleted);
        p.since = Some(Instant::now());
    }

    /// Whether the cache has caught up with what `key` asked for: every created name is seen
    /// (`seen_name`) and every deleted UID is gone or terminating (`live_uid`).
    pub fn satisfied(
        &self,
        key: &str,
        seen_name: impl Fn(&str) -> bool,
        live_uid: impl Fn(&str) -> bool,
    ) -> bool {
        let mut map = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(p) = map.get_mut(key) else {
            return true;
        };
        p.creates.retain(|n| !seen_name(n));
        p.deletes.retain(|u| live_uid(u));
        let expired = p.since.is_some_and(|s| s.elapsed() > TTL);
        if expired || (p.creates.is_empty() && p.deletes.is_empty()) {
            map.remove(key);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_until_cache_catches_up() {
        let e = Expectations::default();
        assert!(e.satisfied("rs/a", |_| false, |_| true));
        e.expect("rs/a", vec!["a-1".into(), "a-2".into()], vec!["u1".into()]);
        assert!(!e.satisfied("rs/a", |n| n == "a-1", |_| true));
        assert!(!e.satisfied("rs/a", |n| n == "a-2", |_| true));
        // Both creates seen; the delete is still live.
        assert!(!e.satisfied("rs/a", |_| false, |_| true));
        assert!(e.satisfied("rs/a", |_| false, |_| false));
        assert!(e.satisfied("rs/a", |_| false, |_| true));
    }
}
