//! Events expire (`--event-ttl`, one hour by default), as kube-apiserver lets etcd leases
//! expire them: every sweep deletes the Events last written longer than the TTL ago. "Last
//! written" is read from the Event itself — the newest of `lastTimestamp`,
//! `series.lastObservedTime`, `eventTime` and `creationTimestamp` — because recorders bump one
//! of those on every write.

use std::sync::Arc;
use std::time::Duration;

use rudder_store::{DeleteOutcome, Store, StoreError};
use serde_json::Value;

use crate::cache::WatchCache;
use crate::keys;

/// Upstream's `--event-ttl` default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// When the event was last written, in Unix seconds, from its own timestamps.
pub fn last_written(event: &Value) -> Option<i64> {
    [
        "/lastTimestamp",
        "/series/lastObservedTime",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|p| event.pointer(p).and_then(Value::as_str))
    .filter_map(rudder_machinery::timestamp::parse_rfc3339)
    .max()
}

/// Whether an event last written at `last` has outlived `ttl` at `now` (Unix seconds). An
/// event without any timestamp never expires here (it cannot be aged).
pub fn expired(last: Option<i64>, now: i64, ttl: Duration) -> bool {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    last.is_some_and(|l| now.saturating_sub(l) > ttl)
}

/// Sweeps until the store closes: every `min(ttl / 10, 1 min)`, at least every second.
pub async fn run(store: Arc<dyn Store>, cache: Arc<WatchCache>, ttl: Duration) {
    let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    let prefix = keys::resource_prefix("", "events");
    loop {
        tokio::time::sleep(every).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let (events, _, _) = cache.list(&prefix, None, 0, |_| true);
        let mut deleted = 0usize;
        for event in events {
            let Ok(value) = event.value() else { continue };
            if !expired(last_written(&value), now, ttl) {
                continue;
            }
            // Guarded by the revision read: an event bumped meanwhile lives on.
            match store.delete(&event.key, Some(event.rev)).await {
                Ok(DeleteOutcome::Deleted { .. }) => deleted += 1,
                Ok(_) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(key = %event.key, error = %e, "expiring an event failed"),
            }
        }
        if deleted > 0 {
            tracing::debug!(deleted, "expired events");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn last_written_takes_the_newest_timestamp() {
        let cases = [
            (
                json!({"metadata": {"creationTimestamp": "2026-12-07T10:00:00Z"}}),
                Some(1_796_637_600),
            ),
            (
                json!({"metadata": {"creationTimestamp": "2026-12-07T10:00:00Z"},
                       "lastTimestamp": "2026-12-07T10:30:00Z"}),
                Some(1_796_639_400),
            ),
            (
                json!({"eventTime": "2026-12-07T10:00:00.000000Z",
                       "series": {"count": 4, "lastObservedTime": "2026-12-07T11:00:00.500000Z"}}),
                Some(1_796_641_200),
            ),
            (json!({"lastTimestamp": null}), None),
        ];
        for (event, want) in cases {
            assert_eq!(last_written(&event), want, "{event}");
        }
    }

    #[test]
    fn expiry_table() {
        let hour = Duration::from_secs(3600);
        assert!(!expired(Some(1_000), 1_000 + 3600, hour));
        assert!(expired(Some(1_000), 1_000 + 3601, hour));
        assert!(!expired(None, i64::MAX, hour));
        assert!(expired(Some(0), 2, Duration::from_secs(1)));
    }
}
