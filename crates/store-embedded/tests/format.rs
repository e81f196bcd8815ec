//! The data format version: a store file written by format 1 (committed as a fixture, not
//! regenerated) opens with today's code and reads back every key, version and revision; a file
//! without a version record is taken for version 1 and gets one; a newer version is refused
//! without being changed.
//!
//! The fixture was written by `write_format_v1_fixture` below (run it with
//! `RUDDER_WRITE_FIXTURE=1 cargo test -p rudder-store-embedded --test format -- --ignored`);
//! it must never be rewritten once a newer format exists: it is what an old data dir looks like.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use redb::{ReadableDatabase, TableDefinition};
use rudder_store::{RangeRequest, Store, StoreError};
use rudder_store_embedded::EmbeddedStore;
use rudder_store_embedded::schema::FORMAT_VERSION;

/// The `meta` table as format 1 defines it (named here, not imported: the test pins the bytes).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const PREFIX: &str = "/registry/core/configmaps/default/";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/format-v1/state.redb")
}

/// A copy of the fixture to open (opening writes: the log file, the checkpoint).
fn fixture_copy(dir: &Path) -> PathBuf {
    let path = dir.join("state.redb");
    std::fs::copy(fixture(), &path).expect("copy the fixture");
    path
}

/// Waits until the store's writer thread has closed the file (dropping the last handle closes
/// it asynchronously), then opens it with redb directly.
fn reopen_raw(path: &Path) -> redb::Database {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match redb::Database::open(path) {
            Ok(db) => return db,
            Err(e) => {
                assert!(Instant::now() < deadline, "store not closed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn format_of(db: &redb::Database) -> Option<u64> {
    let txn = db.begin_read().expect("read");
    let meta = txn.open_table(META).expect("meta");
    meta.get("format").expect("get").map(|g| g.value())
}

fn set_format(db: &redb::Database, version: Option<u64>) {
    let txn = db.begin_write().expect("write");
    {
        let mut meta = txn.open_table(META).expect("meta");
        match version {
            Some(v) => meta.insert("format", v).expect("insert"),
            None => meta.remove("format").expect("remove"),
        };
    }
    txn.commit().expect("commit");
}

/// What the fixture holds: revisions 2–7 below, compacted at 4.
async fn write_history(store: &EmbeddedStore) {
    let k = |n: &str| format!("{PREFIX}{n}");
    store
        .create(&k("a"), Bytes::from_static(b"a1"))
        .await
        .expect("2");
    store
        .create(&k("b"), Bytes::from_static(b"b1"))
        .await
        .expect("3");
    store
        .update(&k("a"), Bytes::from_static(b"a2"), 2)
        .await
        .expect("4");
    store.delete(&k("b"), Some(3)).await.expect("5");
    store
        .create(&k("c"), Bytes::from_static(b"c1"))
        .await
        .expect("6");
    store
        .update(&k("c"), Bytes::from_static(b"c2"), 6)
        .await
        .expect("7");
    store.compact(4).await.expect("compact");
}

/// Every key, version and revision format 1 wrote, read through today's code.
async fn check_history(store: &EmbeddedStore) {
    assert_eq!(store.current_revision().await.expect("revision"), 7);
    let now = store
        .range(RangeRequest::prefix(PREFIX))
        .await
        .expect("range");
    let got: Vec<_> = now
        .kvs
        .iter()
        .map(|kv| {
            (
                kv.key.trim_start_matches(PREFIX),
                &kv.value[..],
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("a", &b"a2"[..], 2, 4, 2), ("c", &b"c2"[..], 6, 7, 2)]
    );
    // History after the compaction point, and the compaction point itself.
    let at = |n: &str, rev| {
        let key = format!("{PREFIX}{n}");
        async move { store.get(&key, Some(rev)).await }
    };
    assert_eq!(at("b", 4).await.expect("b@4").kv.expect("b").value, "b1");
    assert!(at("b", 5).await.expect("b@5").kv.is_none());
    assert_eq!(at("c", 6).await.expect("c@6").kv.expect("c").value, "c1");
    assert!(matches!(
        at("a", 3).await,
        Err(StoreError::Compacted { .. })
    ));
    // The change log replays from the compaction point.
    let mut watch = store.watch(PREFIX, 4).await.expect("watch");
    let mut revs = Vec::new();
    while revs.len() < 4 {
        let batch = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch stalled")
            .expect("open")
            .expect("batch");
        revs.extend(batch.iter().map(|e| e.kv.mod_revision));
    }
    assert_eq!(revs, [4, 5, 6, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_format_1_fixture_opens_and_reads_back_every_key() {
    let bytes = std::fs::metadata(fixture()).expect("the fixture").len();
    assert!(bytes < 100 * 1024, "the fixture is {bytes} bytes");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture_copy(dir.path());
    assert_eq!(format_of(&reopen_raw(&path)), Some(1));
    let store = EmbeddedStore::open(&path).expect("open the fixture");
    check_history(&store).await;
    drop(store);
    assert_eq!(format_of(&reopen_raw(&path)), Some(FORMAT_VERSION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_a_version_record_is_format_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture_copy(dir.path());
    set_format(&reopen_raw(&path), None);
    let store = EmbeddedStore::open(&path).expect("open");
    check_history(&store).await;
    drop(store);
    assert_eq!(format_of(&reopen_raw(&path)), Some(FORMAT_VERSION));

    // A new, empty file is born in the current format.
    let fresh = dir.path().join("fresh.redb");
    drop(EmbeddedStore::open(&fresh).expect("create"));
    assert_eq!(format_of(&reopen_raw(&fresh)), Some(FORMAT_VERSION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_format_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = fixture_copy(dir.path());
    set_format(&reopen_raw(&path), Some(FORMAT_VERSION + 1));
    let err = match EmbeddedStore::open(&path) {
        Ok(_) => panic!("a newer format opened"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Unsupported(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("newer than this binary"), "{msg}");
    // Untouched: still the newer version, and the data is still there for the newer binary.
    let db = reopen_raw(&path);
    assert_eq!(format_of(&db), Some(FORMAT_VERSION + 1));
    set_format(&db, Some(1));
    drop(db);
    let store = EmbeddedStore::open(&path).expect("open");
    check_history(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the committed fixture; run by hand only when adding a format's fixture"]
async fn write_format_v1_fixture() {
    if std::env::var_os("RUDDER_WRITE_FIXTURE").is_none() {
        return;
    }
    assert_eq!(FORMAT_VERSION, 1, "this writes the format 1 fixture");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state.redb");
    let store = EmbeddedStore::open(&path).expect("open");
    write_history(&store).await;
    check_history(&store).await;
    drop(store);
    // The writer checkpoints into redb on close, so the file alone holds everything (the
    // write-ahead log beside it is empty and not kept).
    let mut db = reopen_raw(&path);
    while db.compact().expect("compact") {}
    drop(db);
    let out = fixture();
    std::fs::create_dir_all(out.parent().expect("dir")).expect("mkdir");
    std::fs::copy(&path, &out).expect("write the fixture");
}
