//! Snapshots: taken while writers keep writing, they hold exactly the store at one revision;
//! restored into a new file, that store serves every key with the same revisions (history and
//! compaction point included) and continues numbering after it. Damaged files are refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{Event, KeyValue, RangeRequest, Store, StoreError, WatchStream, WriteOutcome};
use rudder_store_embedded::EmbeddedStore;
use rudder_store_embedded::snapshot::{self, SnapshotError};

async fn take(store: &EmbeddedStore) -> Vec<u8> {
    let mut stream = store.snapshot().await.expect("snapshot");
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("snapshot chunk"));
    }
    out
}

async fn all(store: &EmbeddedStore, revision: Option<u64>) -> BTreeMap<String, KeyValue> {
    let mut req = RangeRequest::prefix("/registry/");
    req.revision = revision;
    let page = store.range(req).await.expect("range");
    assert!(!page.more);
    page.kvs
        .into_iter()
        .map(|kv| (kv.key.clone(), kv))
        .collect()
}

/// The events of `watch` up to revision `last`.
async fn events_until(watch: &mut WatchStream, last: u64) -> Vec<Event> {
    let mut out = Vec::new();
    loop {
        let batch = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
            .await
            .expect("watch stalled")
            .expect("watch open")
            .expect("watch batch");
        for e in batch {
            if e.kv.mod_revision > last {
                return out;
            }
            let done = e.kv.mod_revision == last;
            out.push(e);
            if done {
                return out;
            }
        }
    }
}

/// A store with creates, updates, deletes and a compaction behind it.
async fn populated(path: &Path) -> EmbeddedStore {
    let store = EmbeddedStore::open(path).expect("open");
    for i in 0..300 {
        let key = format!("/registry/core/configmaps/default/cm-{i:04}");
        store
            .create(&key, Bytes::from(format!("v1-{i}")))
            .await
            .expect("create");
    }
    for i in (0..300).step_by(3) {
        let key = format!("/registry/core/configmaps/default/cm-{i:04}");
        let cur = store
            .get(&key, None)
            .await
            .expect("get")
            .kv
            .expect("present");
        let out = store
            .update(&key, Bytes::from(format!("v2-{i}")), cur.mod_revision)
            .await
            .expect("update");
        assert!(matches!(out, WriteOutcome::Written(_)));
    }
    for i in (1..300).step_by(7) {
        let key = format!("/registry/core/configmaps/default/cm-{i:04}");
        store.delete(&key, None).await.expect("delete");
    }
    let rev = store.current_revision().await.expect("revision");
    store.compact(rev - 50).await.expect("compact");
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_taken_under_writes_restores_one_revision_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(populated(&dir.path().join("a/state.redb")).await);
    let compacted_at = store.current_revision().await.expect("revision") - 50;

    // Writers keep going while the snapshot is taken.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, stop) = (store.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("/registry/core/secrets/ns/w{w}-{n}");
                store
                    .create(&key, Bytes::from(vec![b'x'; 512]))
                    .await
                    .expect("create");
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let bytes = take(&store).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.expect("writer");
    }
    let info = snapshot::verify(bytes.as_slice()).expect("verify");
    let now = store.current_revision().await.expect("revision");
    assert!(
        info.revision < now,
        "writes continued after the snapshot ({written} written, snapshot at {}, now {now})",
        info.revision
    );
    assert_eq!(info.compacted, compacted_at);
    assert_eq!(info.bytes, bytes.len() as u64);

    // The restored store is the original at the snapshot's revision: every key, value and
    // revision, and its past revisions back to the compaction point.
    let restored_path = dir.path().join("b/state.redb");
    let restored_info = snapshot::restore(bytes.as_slice(), &restored_path).expect("restore");
    assert_eq!(restored_info, info);
    let restored = EmbeddedStore::open(&restored_path).expect("open restored");
    assert_eq!(
        restored.current_revision().await.expect("revision"),
        info.revision
    );
    let want = all(&store, Some(info.revision)).await;
    assert_eq!(want.len() as u64, info.keys);
    assert!(
        want.keys().any(|k| k.contains("/secrets/")),
        "no concurrent write in it"
    );
    assert_eq!(all(&restored, None).await, want);
    for past in [compacted_at, compacted_at + 10, info.revision - 1] {
        assert_eq!(
            all(&restored, Some(past)).await,
            all(&store, Some(past)).await,
            "at {past}"
        );
    }
    let below = restored
        .get(
            "/registry/core/configmaps/default/cm-0000",
            Some(compacted_at - 1),
        )
        .await;
    assert!(
        matches!(below, Err(StoreError::Compacted { .. })),
        "{below:?}"
    );

    // A watch from just after the compaction point replays the same change log.
    let mut a = store
        .watch("/registry/", compacted_at + 1)
        .await
        .expect("watch");
    let mut b = restored
        .watch("/registry/", compacted_at + 1)
        .await
        .expect("watch");
    let from_b = events_until(&mut b, info.revision).await;
    assert_eq!(from_b.len() as u64, info.revision - compacted_at);
    assert_eq!(events_until(&mut a, info.revision).await, from_b);

    // New writes continue after the snapshot's revision, never reusing one.
    let out = restored
        .create(
            "/registry/core/configmaps/default/after",
            Bytes::from_static(b"x"),
        )
        .await
        .expect("create");
    match out {
        WriteOutcome::Written(kv) => assert_eq!(kv.mod_revision, info.revision + 1),
        other => panic!("{other:?}"),
    }

    // Restoring over an existing store is refused.
    let again = snapshot::restore(bytes.as_slice(), &restored_path);
    assert!(matches!(again, Err(SnapshotError::Exists(_))), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_snapshots_are_refused_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = populated(&dir.path().join("a/state.redb")).await;
    let bytes = take(&store).await;
    snapshot::verify(bytes.as_slice()).expect("the intact file verifies");

    let mut flipped = bytes.clone();
    // A byte inside a value: only the checksum can notice.
    let at = flipped
        .windows(6)
        .position(|w| w == b"v1-100")
        .expect("a value in the file");
    flipped[at + 3] ^= 0x01;
    let mut not_ours = bytes.clone();
    not_ours[0] = b'X';
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", Vec::new(), "truncated"),
        ("header only", bytes[..20].to_vec(), "truncated"),
        ("half", bytes[..bytes.len() / 2].to_vec(), "truncated"),
        (
            "no checksum",
            bytes[..bytes.len() - 32].to_vec(),
            "truncated",
        ),
        (
            "one byte short",
            bytes[..bytes.len() - 1].to_vec(),
            "truncated",
        ),
        ("flipped byte", flipped, "checksum does not match"),
        ("not a snapshot", not_ours, "not a rudder snapshot"),
        (
            "trailing bytes",
            [bytes.as_slice(), b"x"].concat(),
            "follow the trailer",
        ),
    ];
    for (i, (what, data, want)) in cases.into_iter().enumerate() {
        let err = snapshot::verify(data.as_slice())
            .expect_err(what)
            .to_string();
        assert!(err.contains(want), "{what}: {err}");
        let target = dir.path().join(format!("r{i}/state.redb"));
        let err = snapshot::restore(data.as_slice(), &target)
            .expect_err(what)
            .to_string();
        assert!(err.contains(want), "{what}: {err}");
        let left: Vec<_> = std::fs::read_dir(target.parent().expect("dir"))
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{what}: left {left:?}");
    }
}
