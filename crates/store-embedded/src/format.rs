//! The data format version at open: refuse what is newer, migrate what is older.
//!
//! `meta["format"]` names the layout the file is in ([`crate::schema`]). Opening a store runs,
//! in one write transaction that commits only if every step succeeds: read the version, refuse
//! a newer one without writing anything, apply the [`MIGRATIONS`] from the stored version up to
//! [`FORMAT_VERSION`] in order, record the new version. A crash mid-migration therefore leaves
//! the old version intact, and the next open starts over.
//!
//! Versions:
//! - **1**: the first layout: `history`, `latest`, `revisions`, `meta` as `schema.rs` describes.
//!   A file with data but no version record (written before the record existed) is version 1.
//!
//! The write-ahead log is replayed *after* migration, through the current record encoding, so
//! its entries (logical: key, value, revisions) must stay readable by every later binary; a
//! version that changes the log's layout must keep decoding the old one.

use redb::{Database, ReadableTable, WriteTransaction};
use rudder_store::StoreError;

use crate::schema::{
    FORMAT_VERSION, HISTORY, LATEST, META, META_FORMAT, META_REVISION, REVISIONS, backend, meta_get,
};

/// One step that turns a store of version `from` into version `from + 1`, inside the open's
/// write transaction.
pub(crate) struct Migration {
    pub(crate) from: u64,
    /// What the step changes, for the log.
    pub(crate) what: &'static str,
    pub(crate) apply: fn(&WriteTransaction) -> Result<(), StoreError>,
}

/// Every migration, oldest first. Empty while version 1 is the only one: the next layout change
/// appends `Migration { from: 1, .. }` here and raises [`FORMAT_VERSION`].
pub(crate) const MIGRATIONS: &[Migration] = &[];

/// What opening a file found and must do: the version it is in and the steps to apply.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The version the file is in now.
    pub(crate) found: u64,
    /// Indexes into the migration list, in the order to apply them.
    pub(crate) steps: Vec<usize>,
    /// The version record is missing (a new file, or one written before the record existed).
    pub(crate) unrecorded: bool,
}

/// Decides what to do with a file whose version record is `stored` (pure).
pub(crate) fn plan(
    stored: Option<u64>,
    has_data: bool,
    target: u64,
    migrations: &[Migration],
) -> Result<Plan, StoreError> {
    let found = match stored {
        // A new file is written in the current layout from the start.
        None if !has_data => target,
        None => 1,
        Some(0) => {
            return Err(StoreError::Corrupt(
                "data format version 0 is invalid".into(),
            ));
        }
        Some(v) => v,
    };
    if found > target {
        return Err(StoreError::Unsupported(format!(
            "the store's data format is version {found}, newer than this binary's {target}: it \
             was written by a newer rudder; run that release (or newer) on it. Nothing was changed."
        )));
    }
    let mut steps = Vec::new();
    for v in found..target {
        let i = migrations.iter().position(|m| m.from == v).ok_or_else(|| {
            StoreError::Unsupported(format!(
                "no migration from data format version {v} to {}; this binary cannot open \
                     the store. Nothing was changed.",
                v + 1
            ))
        })?;
        steps.push(i);
    }
    Ok(Plan {
        found,
        steps,
        unrecorded: stored.is_none(),
    })
}

/// Checks the file's format, migrates it to [`FORMAT_VERSION`] and creates missing tables.
/// Returns the version the file was in.
pub(crate) fn open(db: &Database) -> Result<u64, StoreError> {
    let txn = db.begin_write().map_err(backend)?;
    let plan = {
        let meta = txn.open_table(META).map_err(backend)?;
        let history = txn.open_table(HISTORY).map_err(backend)?;
        let has_data = meta_get(&meta, META_REVISION)?.is_some()
            || history.first().map_err(backend)?.is_some();
        // On error the transaction is dropped uncommitted: a refused file is left as it was.
        plan(
            meta_get(&meta, META_FORMAT)?,
            has_data,
            FORMAT_VERSION,
            MIGRATIONS,
        )?
    };
    for &i in &plan.steps {
        let step = &MIGRATIONS[i];
        tracing::info!(
            from = step.from,
            to = step.from + 1,
            what = step.what,
            "migrating the store's data format"
        );
        (step.apply)(&txn)?;
    }
    {
        let mut meta = txn.open_table(META).map_err(backend)?;
        if plan.unrecorded || plan.found != FORMAT_VERSION {
            meta.insert(META_FORMAT, FORMAT_VERSION).map_err(backend)?;
        }
        txn.open_table(LATEST).map_err(backend)?;
        txn.open_table(REVISIONS).map_err(backend)?;
    }
    txn.commit().map_err(backend)?;
    Ok(plan.found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(_: &WriteTransaction) -> Result<(), StoreError> {
        Ok(())
    }

    const STEPS: &[Migration] = &[
        Migration {
            from: 2,
            what: "two to three",
            apply: noop,
        },
        Migration {
            from: 1,
            what: "one to two",
            apply: noop,
        },
    ];

    #[test]
    fn plans_table() {
        // (stored version, has data, binary's version) → (found, steps, unrecorded) or refused.
        type Want = Option<(u64, Vec<usize>, bool)>;
        let cases: [(Option<u64>, bool, u64, Want); 8] = [
            // A new file is born current.
            (None, false, 3, Some((3, vec![], true))),
            // Data without a record is version 1 and walks every step, in version order.
            (None, true, 3, Some((1, vec![1, 0], true))),
            (Some(1), true, 3, Some((1, vec![1, 0], false))),
            (Some(2), true, 3, Some((2, vec![0], false))),
            (Some(3), true, 3, Some((3, vec![], false))),
            // Newer than the binary, or version 0: refused.
            (Some(4), true, 3, None),
            (Some(0), true, 3, None),
            // A gap in the migration list: refused rather than half migrated.
            (Some(1), true, 5, None),
        ];
        for (stored, has_data, target, want) in cases {
            let got = plan(stored, has_data, target, STEPS)
                .ok()
                .map(|p| (p.found, p.steps, p.unrecorded));
            assert_eq!(got, want, "{stored:?} {has_data} {target}");
        }
    }

    #[test]
    fn today_has_no_migrations_to_run() {
        let p = plan(Some(FORMAT_VERSION), true, FORMAT_VERSION, MIGRATIONS).expect("plan");
        assert!(p.steps.is_empty());
        let p = plan(None, true, FORMAT_VERSION, MIGRATIONS).expect("plan");
        assert_eq!(p.found, 1);
    }

    #[test]
    fn newer_formats_are_refused_with_advice() {
        let e = plan(Some(FORMAT_VERSION + 1), true, FORMAT_VERSION, MIGRATIONS)
            .expect_err("newer format");
        let msg = e.to_string();
        assert!(msg.contains("newer than this binary"), "{msg}");
        assert!(msg.contains("Nothing was changed"), "{msg}");
    }
}
