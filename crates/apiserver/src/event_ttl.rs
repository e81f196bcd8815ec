//! Events expire (`--event-ttl`, one hour by default), as kube-apiserver lets etcd leases
//! expire them: every sweep deletes the Events last written longer than the TTL ago. "Last
//! written" is read from the Event itself — the newest of `lastTimestamp`,
//! `series.lastObservedTime`, `eventTime` and `creationTimestamp` — because recorders bump one
//! of those on every write.

use std::sync::Arc;
use std::time::Duration;

use rudder_store::{DeleteOutcome, RangeRequest, Store, StoreError};
use serde::Deserialize;

use crate::keys;

/// Upstream's `--event-ttl` default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Events read per store page while sweeping.
const PAGE: usize = 1_000;

/// The timestamps of an Event that tell when it was last written; the rest of the Event is
/// skipped while decoding, so a sweep of many events stays cheap.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stamps {
    last_timestamp: Option<String>,
    series: Option<Series>,
    event_time: Option<String>,
    metadata: Option<Meta>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Series {
    last_observed_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Meta {
    creation_timestamp: Option<String>,
}

impl Stamps {
    /// When the event was last written, in Unix seconds: the newest of its timestamps.
    pub fn last_written(&self) -> Option<i64> {
        [
            self.last_timestamp.as_deref(),
            self.series
                .as_ref()
                .and_then(|s| s.last_observed_time.as_deref()),
            self.event_time.as_deref(),
            self.metadata
                .as_ref()
                .and_then(|m| m.creation_timestamp.as_deref()),
        ]
        .into_iter()
        .flatten()
        .filter_map(rudder_machinery::timestamp::parse_rfc3339)
        .max()
    }
}

/// Whether an event last written at `last` has outlived `ttl` at `now` (Unix seconds). An
/// event without any timestamp never expires here (it cannot be aged).
pub fn expired(last: Option<i64>, now: i64, ttl: Duration) -> bool {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    last.is_some_and(|l| now.saturating_sub(l) > ttl)
}

/// Sweeps until the store closes: every `min(ttl / 10, 1 min)`, at least every second. Events
/// are not in the watch cache (`crate::cache::uncached`), so the sweep pages through the store.
pub async fn run(store: Arc<dyn Store>, ttl: Duration) {
    let every = (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        match sweep(&*store, ttl).await {
            Ok(0) => {}
            Ok(deleted) => tracing::debug!(deleted, "expired events"),
            Err(StoreError::Closed) => return,
            Err(e) => tracing::warn!(error = %e, "sweeping expired events failed"),
        }
    }
}

/// Deletes every event older than `ttl`; returns how many.
async fn sweep(store: &dyn Store, ttl: Duration) -> Result<usize, StoreError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let prefix = keys::resource_prefix("", "events");
    let mut deleted = 0usize;
    let mut start = None;
    loop {
        // Each page at the current revision: a sweep may take a while, and an event written
        // meanwhile is judged by its newest state.
        let page = store
            .range(RangeRequest {
                prefix: prefix.clone(),
                start,
                limit: PAGE,
                revision: None,
            })
            .await?;
        for kv in &page.kvs {
            let Ok(stamps) = serde_json::from_slice::<Stamps>(&kv.value) else {
                continue;
            };
            if !expired(stamps.last_written(), now, ttl) {
                continue;
            }
            // Guarded by the revision read: an event bumped meanwhile lives on.
            match store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(DeleteOutcome::Deleted { .. }) => deleted += 1,
                Ok(_) => {}
                Err(StoreError::Closed) => return Err(StoreError::Closed),
                Err(e) => tracing::warn!(key = %kv.key, error = %e, "expiring an event failed"),
            }
        }
        match page.continue_key() {
            Some(k) => start = Some(k),
            None => return Ok(deleted),
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
            let stamps: Stamps = serde_json::from_value(event.clone()).expect("decodes");
            assert_eq!(stamps.last_written(), want, "{event}");
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
