//! The life of a table owned by one component: cleared at start ([`prepare`]), kept in step
//! with what the component computes from its watches ([`keep_in_step`]: a diff against what was
//! applied last, a whole rewrite after a failure), and deleted on a clean stop ([`remove`]).

use std::time::Duration;

use tokio::sync::Notify;

use super::{NftError, Ruleset, Table, ruleset};

/// Shortest time between two syncs: a burst of changes (a Deployment scaling) becomes one
/// transaction, as upstream's `minSyncPeriod`.
const MIN_SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// Wait before retrying after `nft` failed.
const RETRY_INTERVAL: Duration = Duration::from_secs(2);

/// Checks the table's name and deletes what a previous run left of the table. Fails early, with
/// a clear message, when `nft` is missing.
pub async fn prepare(table: &Table<'_>) -> Result<(), NftError> {
    if !super::valid_table(table.name) {
        return Err(NftError::TableName(table.name.to_owned()));
    }
    let script = super::delete_script(table);
    tokio::task::spawn_blocking(move || super::apply(&script))
        .await
        .map_err(|e| NftError::Nft(e.to_string()))?
}

/// Deletes the table (a clean stop), logging the outcome as `what`.
pub async fn remove(table: &Table<'_>, what: &'static str) {
    let script = super::delete_script(table);
    match tokio::task::spawn_blocking(move || super::apply(&script)).await {
        Ok(Ok(())) => tracing::info!(%table, "{what} stopped, table removed"),
        Ok(Err(e)) => tracing::warn!(error = %e, %table, "removing the {what}'s table"),
        Err(e) => tracing::warn!(error = %e, %table, "removing the {what}'s table"),
    }
}

/// Forever: computes the wanted table with `desired` (an `Err` names what it still waits
/// for), writes the difference to what the kernel holds, and waits for `changed`.
pub async fn keep_in_step(
    table: &Table<'_>,
    what: &'static str,
    changed: &Notify,
    mut desired: impl FnMut() -> Result<Ruleset, &'static str>,
) {
    // What the kernel holds, as far as this component knows; `None` after a failure, so the
    // next sync rewrites the whole table.
    let mut applied: Option<Ruleset> = None;
    let mut waiting_logged = false;
    loop {
        let want = match desired() {
            Ok(want) => want,
            Err(waiting_for) => {
                if !waiting_logged {
                    tracing::info!("{what} waiting for {waiting_for}");
                    waiting_logged = true;
                }
                changed.notified().await;
                continue;
            }
        };
        let script = match &applied {
            Some(old) => ruleset::diff(table, old, &want),
            None => ruleset::full(table, &want),
        };
        let first = applied.is_none();
        if script.is_empty() {
            changed.notified().await;
            tokio::time::sleep(MIN_SYNC_INTERVAL).await;
            continue;
        }
        let result = tokio::task::spawn_blocking(move || super::apply(&script)).await;
        match result {
            Ok(Ok(())) => {
                let chains = want.chains.len();
                if first {
                    tracing::info!(%table, chains, "{what} table written");
                } else {
                    tracing::debug!(%table, chains, "{what} table updated");
                }
                applied = Some(want);
                changed.notified().await;
                tokio::time::sleep(MIN_SYNC_INTERVAL).await;
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "{what} sync failed; rewriting the table next");
                applied = None;
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "{what} sync task");
                applied = None;
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
        }
    }
}
