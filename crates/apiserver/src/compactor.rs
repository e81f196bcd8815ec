//! Periodic compaction of store history, as kube-apiserver does: every interval, compact to the
//! revision observed one interval earlier, so watchers always have at least that much history.

use std::sync::Arc;
use std::time::Duration;

use rudder_store::{Store, StoreError};

/// Runs until the store is closed.
pub async fn run(store: Arc<dyn Store>, interval: Duration) {
    let mut previous: Option<u64> = None;
    loop {
        tokio::time::sleep(interval).await;
        let current = match store.current_revision().await {
            Ok(r) => r,
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "compactor: reading the revision failed");
                continue;
            }
        };
        if let Some(target) = previous.filter(|p| *p > 1) {
            match store.compact(target).await {
                Ok(()) => tracing::debug!(revision = target, "compacted store history"),
                // Another server (on etcd) compacted first.
                Err(StoreError::Compacted { .. }) => {}
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(error = %e, "compaction failed"),
            }
        }
        previous = Some(current);
    }
}
