//! The conformance suite every [`Store`] backend runs: one public async function per property.
//!
//! A backend's test file calls [`crate::conformance_tests!`] with a function that returns a fresh,
//! empty [`Harness`]; the macro expands to one `#[tokio::test]` per property so failures are
//! reported by name. The functions panic on violation: they are test code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use crate::{
    DeleteOutcome, Event, EventKind, KeyValue, MAX_KEY_LEN, MAX_VALUE_LEN, RangeRequest, Revision,
    Store, StoreError, WatchStream, WriteOutcome,
};

/// A fresh store for one test, plus whatever must live as long as it (temp dirs, processes).
pub struct Harness {
    /// The store under test.
    pub store: Arc<dyn Store>,
    _keep: Box<dyn std::any::Any + Send + Sync>,
}

impl Harness {
    /// Wraps a store and the guard that keeps its resources alive.
    pub fn new(store: Arc<dyn Store>, keep: impl std::any::Any + Send + Sync) -> Self {
        Self {
            store,
            _keep: Box::new(keep),
        }
    }
}

/// Expands to one `#[tokio::test]` per conformance property, each calling `$factory().await` for
/// a fresh [`Harness`]. The calling crate needs `tokio` as a (dev-)dependency.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path) => {
        $crate::conformance_tests!(@each $factory;
            revisions_increase_by_one_per_write,
            create_only_if_absent,
            update_is_compare_and_swap,
            delete_is_guarded,
            recreate_after_delete_starts_new_generation,
            get_at_past_revision,
            get_at_future_revision_fails,
            range_by_prefix_in_key_order,
            range_pages_are_consistent_at_one_revision,
            watch_from_now_sees_puts_and_deletes_with_prev,
            watch_replays_history_and_resumes,
            watch_is_limited_to_its_prefix,
            compaction_discards_history_only,
            compaction_cannot_go_backwards,
            zero_revision_guards_never_match_missing_keys,
            slow_watcher_loses_no_event,
            concurrent_writers_and_watchers_agree,
            large_values_round_trip,
            bad_keys_and_values_are_rejected_without_writing
        );
    };
    (@each $factory:path; $($name:ident),* ) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let harness = $factory().await;
                $crate::conformance::$name(&harness.store).await;
            }
        )*
    };
}

const WAIT: Duration = Duration::from_secs(20);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn put_new(store: &dyn Store, key: &str, value: &str) -> KeyValue {
    match store.create(key, b(value)).await.expect("create") {
        WriteOutcome::Written(kv) => kv,
        other => panic!("create {key}: unexpected {other:?}"),
    }
}

async fn put_over(store: &dyn Store, prev: &KeyValue, value: &str) -> KeyValue {
    match store
        .update(&prev.key, b(value), prev.mod_revision)
        .await
        .expect("update")
    {
        WriteOutcome::Written(kv) => kv,
        other => panic!("update {}: unexpected {other:?}", prev.key),
    }
}

async fn remove(store: &dyn Store, kv: &KeyValue) -> Revision {
    match store
        .delete(&kv.key, Some(kv.mod_revision))
        .await
        .expect("delete")
    {
        DeleteOutcome::Deleted { revision, .. } => revision,
        other => panic!("delete {}: unexpected {other:?}", kv.key),
    }
}

/// Reads events from `stream` until `n` have arrived (panics after [`WAIT`]).
pub async fn collect_events(stream: &mut WatchStream, n: usize) -> Vec<Event> {
    let mut out = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(batch))) => out.extend(batch),
            Ok(Some(Err(e))) => panic!("watch failed after {} events: {e}", out.len()),
            Ok(None) => panic!("watch ended after {} of {n} events", out.len()),
            Err(_) => panic!("timed out after {} of {n} events", out.len()),
        }
    }
    assert_eq!(out.len(), n, "more events than expected: {out:?}");
    out
}

/// Asserts that nothing more arrives on `stream` within a short time.
async fn expect_quiet(stream: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("expected no event, got {item:?}");
    }
}

pub async fn revisions_increase_by_one_per_write(store: &Arc<dyn Store>) {
    let r0 = store.current_revision().await.expect("revision");
    let a = put_new(store, "/t/a", "1").await;
    assert_eq!(a.mod_revision, r0 + 1);
    assert_eq!((a.create_revision, a.version), (a.mod_revision, 1));
    let b_ = put_new(store, "/t/b", "1").await;
    assert_eq!(b_.mod_revision, r0 + 2);
    let a2 = put_over(store, &a, "2").await;
    assert_eq!(a2.mod_revision, r0 + 3);
    assert_eq!((a2.create_revision, a2.version), (a.create_revision, 2));
    let d = remove(store, &b_).await;
    assert_eq!(d, r0 + 4);
    assert_eq!(store.current_revision().await.expect("revision"), r0 + 4);
    // Failed guards do not consume a revision.
    let _ = store.create("/t/a", b("x")).await.expect("create");
    let _ = store.update("/t/a", b("x"), 1).await.expect("update");
    let _ = store.delete("/t/zz", None).await.expect("delete");
    assert_eq!(store.current_revision().await.expect("revision"), r0 + 4);
}

pub async fn create_only_if_absent(store: &Arc<dyn Store>) {
    let a = put_new(store, "/t/a", "first").await;
    match store.create("/t/a", b("second")).await.expect("create") {
        WriteOutcome::AlreadyExists(cur) => assert_eq!(cur, a),
        other => panic!("unexpected {other:?}"),
    }
    let got = store.get("/t/a", None).await.expect("get");
    assert_eq!(got.kv.expect("present").value, b("first"));
}

pub async fn update_is_compare_and_swap(store: &Arc<dyn Store>) {
    let a = put_new(store, "/t/a", "1").await;
    let a2 = put_over(store, &a, "2").await;
    // A writer holding the old revision loses.
    match store
        .update("/t/a", b("stale"), a.mod_revision)
        .await
        .expect("update")
    {
        WriteOutcome::Conflict(Some(cur)) => assert_eq!(cur, a2),
        other => panic!("unexpected {other:?}"),
    }
    match store
        .update("/t/missing", b("x"), a.mod_revision)
        .await
        .expect("update")
    {
        WriteOutcome::Conflict(None) => {}
        other => panic!("unexpected {other:?}"),
    }
    let got = store
        .get("/t/a", None)
        .await
        .expect("get")
        .kv
        .expect("present");
    assert_eq!(got, a2);
    assert_eq!(store.get("/t/missing", None).await.expect("get").kv, None);
}

pub async fn delete_is_guarded(store: &Arc<dyn Store>) {
    let a = put_new(store, "/t/a", "1").await;
    let a2 = put_over(store, &a, "2").await;
    match store
        .delete("/t/a", Some(a.mod_revision))
        .await
        .expect("delete")
    {
        DeleteOutcome::Conflict(cur) => assert_eq!(cur, a2),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        store.delete("/t/none", None).await.expect("delete"),
        DeleteOutcome::NotFound
    );
    assert_eq!(
        store.delete("/t/none", Some(3)).await.expect("delete"),
        DeleteOutcome::NotFound
    );
    match store
        .delete("/t/a", Some(a2.mod_revision))
        .await
        .expect("delete")
    {
        DeleteOutcome::Deleted { revision, prev } => {
            assert_eq!(prev, a2);
            assert_eq!(revision, a2.mod_revision + 1);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.get("/t/a", None).await.expect("get").kv, None);
    let c = put_new(store, "/t/c", "1").await;
    match store.delete("/t/c", None).await.expect("delete") {
        DeleteOutcome::Deleted { prev, .. } => assert_eq!(prev, c),
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn recreate_after_delete_starts_new_generation(store: &Arc<dyn Store>) {
    let a = put_new(store, "/t/a", "1").await;
    let a = put_over(store, &a, "2").await;
    remove(store, &a).await;
    let again = put_new(store, "/t/a", "3").await;
    assert_eq!(again.version, 1);
    assert_eq!(again.create_revision, again.mod_revision);
    assert!(again.create_revision > a.create_revision);
}

pub async fn get_at_past_revision(store: &Arc<dyn Store>) {
    let before = store.current_revision().await.expect("revision");
    let a1 = put_new(store, "/t/a", "1").await;
    let a2 = put_over(store, &a1, "2").await;
    let del = remove(store, &a2).await;
    let a3 = put_new(store, "/t/a", "3").await;
    let at = |rev| async move { store.get("/t/a", Some(rev)).await.expect("get").kv };
    assert_eq!(at(before).await, None);
    assert_eq!(at(a1.mod_revision).await, Some(a1.clone()));
    assert_eq!(at(a2.mod_revision).await, Some(a2.clone()));
    assert_eq!(at(del).await, None);
    assert_eq!(at(a3.mod_revision).await, Some(a3.clone()));
    let now = store.get("/t/a", None).await.expect("get");
    assert_eq!(now.kv, Some(a3.clone()));
    assert_eq!(now.revision, a3.mod_revision);
    let past = store.get("/t/a", Some(a1.mod_revision)).await.expect("get");
    assert_eq!(past.revision, a1.mod_revision);
}

pub async fn get_at_future_revision_fails(store: &Arc<dyn Store>) {
    put_new(store, "/t/a", "1").await;
    let cur = store.current_revision().await.expect("revision");
    match store.get("/t/a", Some(cur + 10)).await {
        Err(StoreError::FutureRevision { requested, .. }) => assert_eq!(requested, cur + 10),
        other => panic!("unexpected {other:?}"),
    }
    match store
        .range(RangeRequest::prefix("/t/").at_revision(cur + 10))
        .await
    {
        Err(StoreError::FutureRevision { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

pub async fn range_by_prefix_in_key_order(store: &Arc<dyn Store>) {
    for key in [
        "/r/pods/b",
        "/r/pods/a",
        "/r/pods/c/x",
        "/r/podsx",
        "/r/pod",
        "/r/services/a",
    ] {
        put_new(store, key, key).await;
    }
    let got = store
        .range(RangeRequest::prefix("/r/pods/"))
        .await
        .expect("range");
    let keys: Vec<_> = got.kvs.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(keys, ["/r/pods/a", "/r/pods/b", "/r/pods/c/x"]);
    assert!(!got.more);
    assert_eq!(
        got.revision,
        store.current_revision().await.expect("revision")
    );
    for kv in &got.kvs {
        assert_eq!(kv.value, b(&kv.key));
    }
    let empty = store
        .range(RangeRequest::prefix("/nothing/"))
        .await
        .expect("range");
    assert!(empty.kvs.is_empty() && !empty.more);
    let all = store
        .range(RangeRequest::prefix("/r/"))
        .await
        .expect("range");
    assert_eq!(all.kvs.len(), 6);
}

pub async fn range_pages_are_consistent_at_one_revision(store: &Arc<dyn Store>) {
    let mut kvs = BTreeMap::new();
    for i in 0..10 {
        let key = format!("/p/k{i:02}");
        kvs.insert(key.clone(), put_new(store, &key, "v0").await);
    }
    let first = store
        .range(RangeRequest::prefix("/p/").with_limit(3))
        .await
        .expect("range");
    assert_eq!(first.kvs.len(), 3);
    assert!(first.more);
    let snapshot_rev = first.revision;
    // Change the world between pages: update, delete and insert on both sides of the cursor.
    let k05 = kvs["/p/k05"].clone();
    put_over(store, &k05, "changed").await;
    let k07 = kvs["/p/k07"].clone();
    remove(store, &k07).await;
    put_new(store, "/p/k055", "new").await;
    put_new(store, "/p/k00a", "new").await;
    let mut seen: Vec<KeyValue> = first.kvs.clone();
    let mut next = first.continue_key();
    while let Some(start) = next {
        let page = store
            .range(RangeRequest {
                prefix: "/p/".into(),
                start: Some(start),
                limit: 3,
                revision: Some(snapshot_rev),
            })
            .await
            .expect("page");
        assert_eq!(page.revision, snapshot_rev);
        assert!(page.kvs.len() <= 3);
        seen.extend(page.kvs.iter().cloned());
        next = page.continue_key();
    }
    let want: Vec<KeyValue> = kvs.into_values().collect();
    assert_eq!(
        seen, want,
        "pages must show the state at the first page's revision"
    );
    let now = store
        .range(RangeRequest::prefix("/p/"))
        .await
        .expect("range");
    assert_eq!(now.kvs.len(), 11);
    let unlimited_old = store
        .range(RangeRequest::prefix("/p/").at_revision(snapshot_rev))
        .await
        .expect("range");
    assert_eq!(unlimited_old.kvs, want);
}

pub async fn watch_from_now_sees_puts_and_deletes_with_prev(store: &Arc<dyn Store>) {
    let start = store.current_revision().await.expect("revision") + 1;
    let mut w = store.watch("/w/", start).await.expect("watch");
    let a1 = put_new(store, "/w/a", "1").await;
    let a2 = put_over(store, &a1, "2").await;
    let del = remove(store, &a2).await;
    let ev = collect_events(&mut w, 3).await;
    assert_eq!(ev[0].kind, EventKind::Put);
    assert_eq!(ev[0].kv, a1);
    assert_eq!(ev[0].prev, None);
    assert_eq!(ev[1].kind, EventKind::Put);
    assert_eq!(ev[1].kv, a2);
    assert_eq!(ev[1].prev.as_ref(), Some(&a1));
    assert_eq!(ev[2].kind, EventKind::Delete);
    assert_eq!(ev[2].kv.key, "/w/a");
    assert_eq!(ev[2].revision(), del);
    assert!(ev[2].kv.value.is_empty());
    assert_eq!(ev[2].prev.as_ref(), Some(&a2));
    expect_quiet(&mut w).await;
}

pub async fn watch_replays_history_and_resumes(store: &Arc<dyn Store>) {
    let mut written = Vec::new();
    let mut kv = put_new(store, "/h/a", "0").await;
    written.push(kv.mod_revision);
    for i in 1..20 {
        kv = put_over(store, &kv, &i.to_string()).await;
        written.push(kv.mod_revision);
    }
    let mut w = store.watch("/h/", written[0]).await.expect("watch");
    let ev = collect_events(&mut w, 20).await;
    let revs: Vec<_> = ev.iter().map(Event::revision).collect();
    assert_eq!(revs, written);
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(e.kv.value, b(&i.to_string()));
    }
    // A watcher that reconnects from the revision after the last one it saw misses nothing.
    let resume_from = written[12];
    let mut resumed = store.watch("/h/", resume_from + 1).await.expect("watch");
    let later = put_over(store, &kv, "live").await;
    let ev = collect_events(&mut resumed, 8).await;
    let revs: Vec<_> = ev.iter().map(Event::revision).collect();
    let mut want = written[13..].to_vec();
    want.push(later.mod_revision);
    assert_eq!(revs, want);
    // The first watcher sees the live event too.
    let ev = collect_events(&mut w, 1).await;
    assert_eq!(ev[0].kv, later);
}

pub async fn watch_is_limited_to_its_prefix(store: &Arc<dyn Store>) {
    let start = store.current_revision().await.expect("revision") + 1;
    let mut w = store.watch("/x/pods/", start).await.expect("watch");
    put_new(store, "/x/podsx", "no").await;
    put_new(store, "/x/pod", "no").await;
    put_new(store, "/x/services/a", "no").await;
    let yes = put_new(store, "/x/pods/a", "yes").await;
    let ev = collect_events(&mut w, 1).await;
    assert_eq!(ev[0].kv, yes);
    expect_quiet(&mut w).await;
}

pub async fn compaction_discards_history_only(store: &Arc<dyn Store>) {
    let a1 = put_new(store, "/c/a", "1").await;
    let b1 = put_new(store, "/c/b", "1").await;
    let a2 = put_over(store, &a1, "2").await;
    let gone = put_new(store, "/c/gone", "1").await;
    remove(store, &gone).await;
    let a3 = put_over(store, &a2, "3").await;
    let compact_at = a3.mod_revision;
    store.compact(compact_at).await.expect("compact");
    let old = a2.mod_revision;
    match store.get("/c/a", Some(old)).await {
        Err(StoreError::Compacted { requested, .. }) => assert_eq!(requested, old),
        other => panic!("get at compacted revision: {other:?}"),
    }
    match store
        .range(RangeRequest::prefix("/c/").at_revision(old))
        .await
    {
        Err(StoreError::Compacted { .. }) => {}
        other => panic!("range at compacted revision: {other:?}"),
    }
    match store.watch("/c/", old).await {
        Err(StoreError::Compacted { .. }) => {}
        Ok(mut w) => match w.next().await {
            Some(Err(StoreError::Compacted { .. })) => {}
            other => panic!("watch from compacted revision: {other:?}"),
        },
        Err(e) => panic!("watch from compacted revision: {e}"),
    }
    // Current state and the compaction revision itself stay readable.
    let now = store
        .range(RangeRequest::prefix("/c/"))
        .await
        .expect("range");
    assert_eq!(now.kvs, vec![a3.clone(), b1.clone()]);
    let at = store
        .range(RangeRequest::prefix("/c/").at_revision(compact_at))
        .await
        .expect("range");
    assert_eq!(at.kvs, vec![a3.clone(), b1.clone()]);
    assert_eq!(store.get("/c/gone", None).await.expect("get").kv, None);
    let mut w = store
        .watch("/c/", compact_at)
        .await
        .expect("watch at compaction revision");
    let ev = collect_events(&mut w, 1).await;
    assert_eq!(ev[0].kv, a3);
    // Writes keep working after compaction, and so does a second compaction.
    let a4 = put_over(store, &a3, "4").await;
    assert_eq!(collect_events(&mut w, 1).await[0].kv, a4);
    store.compact(a4.mod_revision).await.expect("compact again");
    assert_eq!(store.get("/c/a", None).await.expect("get").kv, Some(a4));
}

pub async fn slow_watcher_loses_no_event(store: &Arc<dyn Store>) {
    const N: usize = 20_000;
    let start = store.current_revision().await.expect("revision") + 1;
    let mut w = store.watch("/slow/", start).await.expect("watch");
    // Write far more than any in-memory buffer holds while the watcher does not read.
    let writers = 16;
    let mut tasks = Vec::new();
    for t in 0..writers {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..N / writers {
                let key = format!("/slow/{t}/{i}");
                match s
                    .create(&key, Bytes::from(vec![b'x'; 100]))
                    .await
                    .expect("create")
                {
                    WriteOutcome::Written(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let ev = collect_events(&mut w, N).await;
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(
            e.revision(),
            start + i as u64,
            "events must be gapless and ordered"
        );
    }
}

pub async fn concurrent_writers_and_watchers_agree(store: &Arc<dyn Store>) {
    const WRITERS: usize = 16;
    const INCREMENTS: usize = 40;
    const WATCHERS: usize = 8;
    let start = store.current_revision().await.expect("revision") + 1;
    let mut watchers = Vec::new();
    for _ in 0..WATCHERS {
        watchers.push(store.watch("/cc/", start).await.expect("watch"));
    }
    put_new(store, "/cc/counter", "0").await;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0usize;
            for i in 0..INCREMENTS {
                // Optimistic concurrency, exactly as the API server's GuaranteedUpdate does it.
                loop {
                    let cur = s
                        .get("/cc/counter", None)
                        .await
                        .expect("get")
                        .kv
                        .expect("counter");
                    let n: usize = std::str::from_utf8(&cur.value)
                        .expect("utf8")
                        .parse()
                        .expect("number");
                    let next = Bytes::from((n + 1).to_string());
                    match s
                        .update("/cc/counter", next, cur.mod_revision)
                        .await
                        .expect("update")
                    {
                        WriteOutcome::Written(_) => break,
                        WriteOutcome::Conflict(_) => conflicts += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
                let key = format!("/cc/own/{w}/{i}");
                put_new(&s, &key, "x").await;
            }
            conflicts
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
    let total = WRITERS * INCREMENTS;
    let counter = store
        .get("/cc/counter", None)
        .await
        .expect("get")
        .kv
        .expect("counter");
    assert_eq!(
        counter.value,
        Bytes::from(total.to_string()),
        "no lost update"
    );
    assert_eq!(counter.version as usize, total + 1);
    let end = store.current_revision().await.expect("revision");
    let n_events = (end - start + 1) as usize;
    assert_eq!(n_events, 1 + 2 * total);
    for w in &mut watchers {
        let ev = collect_events(w, n_events).await;
        for (i, e) in ev.iter().enumerate() {
            assert_eq!(e.revision(), start + i as u64);
        }
        let last_counter = ev
            .iter()
            .rev()
            .find(|e| e.kv.key == "/cc/counter")
            .expect("counter");
        assert_eq!(last_counter.kv, counter);
    }
}

pub async fn large_values_round_trip(store: &Arc<dyn Store>) {
    let big: Bytes = (0..3 * 512 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let start = store.current_revision().await.expect("revision") + 1;
    let mut w = store.watch("/big/", start).await.expect("watch");
    let kv = match store.create("/big/a", big.clone()).await.expect("create") {
        WriteOutcome::Written(kv) => kv,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(kv.value, big);
    let kv2 = match store
        .update("/big/a", big.slice(1..), kv.mod_revision)
        .await
        .expect("update")
    {
        WriteOutcome::Written(kv) => kv,
        other => panic!("unexpected {other:?}"),
    };
    let got = store
        .get("/big/a", None)
        .await
        .expect("get")
        .kv
        .expect("present");
    assert_eq!(got.value, big.slice(1..));
    let old = store
        .get("/big/a", Some(kv.mod_revision))
        .await
        .expect("get")
        .kv
        .expect("present");
    assert_eq!(old.value, big);
    let ev = collect_events(&mut w, 2).await;
    assert_eq!(ev[0].kv.value, big);
    assert_eq!(ev[1].kv, kv2);
    assert_eq!(ev[1].prev.as_ref().map(|p| &p.value), Some(&big));
    let ranged = store
        .range(RangeRequest::prefix("/big/"))
        .await
        .expect("range");
    assert_eq!(ranged.kvs, vec![kv2]);
}

pub async fn bad_keys_and_values_are_rejected_without_writing(store: &Arc<dyn Store>) {
    put_new(store, "/ok", "1").await;
    let before = store.current_revision().await.expect("revision");
    let long = format!("/{}", "k".repeat(MAX_KEY_LEN));
    for key in ["", "relative", "/nul\0", long.as_str()] {
        assert!(
            matches!(
                store.create(key, b("v")).await,
                Err(StoreError::InvalidKey(_))
            ),
            "create {key:?}"
        );
        assert!(
            matches!(
                store.update(key, b("v"), 1).await,
                Err(StoreError::InvalidKey(_))
            ),
            "update {key:?}"
        );
        assert!(
            matches!(
                store.delete(key, None).await,
                Err(StoreError::InvalidKey(_))
            ),
            "delete {key:?}"
        );
        assert!(
            matches!(store.get(key, None).await, Err(StoreError::InvalidKey(_))),
            "get {key:?}"
        );
    }
    let huge = Bytes::from(vec![0u8; MAX_VALUE_LEN + 1]);
    assert!(matches!(
        store.create("/huge", huge.clone()).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    let ok = store
        .get("/ok", None)
        .await
        .expect("get")
        .kv
        .expect("present");
    assert!(matches!(
        store.update("/ok", huge, ok.mod_revision).await,
        Err(StoreError::ValueTooLarge { .. })
    ));
    assert_eq!(
        store.current_revision().await.expect("revision"),
        before,
        "nothing was written"
    );
    assert_eq!(store.get("/huge", None).await.expect("get").kv, None);
    assert_eq!(store.get("/ok", None).await.expect("get").kv, Some(ok));
}

pub async fn compaction_cannot_go_backwards(store: &Arc<dyn Store>) {
    let a = put_new(store, "/cb/a", "1").await;
    let a = put_over(store, &a, "2").await;
    let a = put_over(store, &a, "3").await;
    store.compact(a.mod_revision - 1).await.expect("compact");
    for rev in [a.mod_revision - 2, a.mod_revision - 1] {
        match store.compact(rev).await {
            Err(StoreError::Compacted { .. }) => {}
            other => panic!(
                "compact({rev}) after compact({}): {other:?}",
                a.mod_revision - 1
            ),
        }
    }
    let future = store.current_revision().await.expect("revision") + 5;
    match store.compact(future).await {
        Err(StoreError::FutureRevision { .. }) => {}
        other => panic!("compact into the future: {other:?}"),
    }
    assert_eq!(store.get("/cb/a", None).await.expect("get").kv, Some(a));
}

pub async fn zero_revision_guards_never_match_missing_keys(store: &Arc<dyn Store>) {
    // etcd reports mod_revision 0 for a missing key; a guard of 0 must still not create it.
    match store.update("/z/missing", b("x"), 0).await.expect("update") {
        WriteOutcome::Conflict(None) => {}
        other => panic!("update of a missing key with expected 0: {other:?}"),
    }
    assert_eq!(
        store.delete("/z/missing", Some(0)).await.expect("delete"),
        DeleteOutcome::NotFound
    );
    assert_eq!(store.get("/z/missing", None).await.expect("get").kv, None);
    let a = put_new(store, "/z/a", "1").await;
    match store.update("/z/a", b("x"), 0).await.expect("update") {
        WriteOutcome::Conflict(Some(cur)) => assert_eq!(cur, a),
        other => panic!("update with expected 0: {other:?}"),
    }
}
