//! Tests of the watch cache: which live channel a watch follows, and that a watcher of one
//! resource is not dropped when other resources' events outrun it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rudder_store::{Store, WriteOutcome};
use rudder_store_embedded::EmbeddedStore;

use super::*;

#[test]
fn resource_of_cuts_keys_and_prefixes_at_the_resource() {
    let cases = [
        ("/registry/core/pods/ns/a", Some("/registry/core/pods/")),
        ("/registry/core/pods/ns/", Some("/registry/core/pods/")),
        ("/registry/core/pods/", Some("/registry/core/pods/")),
        (
            "/registry/apps/deployments/x/y",
            Some("/registry/apps/deployments/"),
        ),
        ("/registry/core/pods", None),
        ("/registry/core/", None),
        ("/registry/", None),
        ("/elsewhere/core/pods/", None),
    ];
    for (key, want) in cases {
        assert_eq!(resource_of(key), want, "{key}");
    }
}

fn object(kind: &str, name: &str) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "ns"},
        }))
        .unwrap_or_default(),
    )
}

async fn started() -> (tempfile::TempDir, Arc<EmbeddedStore>, Arc<WatchCache>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(EmbeddedStore::open(dir.path().join("db")).expect("open store"));
    let cache = WatchCache::start(store.clone()).await.expect("cache");
    (dir, store, cache)
}

#[tokio::test]
async fn a_watcher_hears_only_its_resource_and_a_wide_watcher_hears_all() {
    let (_dir, store, cache) = started().await;
    let mut pods = cache
        .watch("/registry/core/pods/ns/", None)
        .expect("watch")
        .live;
    let mut all = cache.watch("/registry/", None).expect("watch").live;
    store
        .create("/registry/core/configmaps/ns/c", object("ConfigMap", "c"))
        .await
        .expect("create");
    store
        .create("/registry/core/pods/ns/p", object("Pod", "p"))
        .await
        .expect("create");
    let first = tokio::time::timeout(Duration::from_secs(5), pods.recv()).await;
    let ev = first.expect("in time").expect("event");
    assert_eq!(ev.object.key, "/registry/core/pods/ns/p");
    let keys: Vec<String> = [all.recv().await, all.recv().await]
        .into_iter()
        .map(|e| e.expect("event").object.key.clone())
        .collect();
    assert_eq!(
        keys,
        ["/registry/core/configmaps/ns/c", "/registry/core/pods/ns/p"]
    );
}

#[tokio::test]
async fn other_resources_cannot_push_a_watcher_behind() {
    let (_dir, store, cache) = started().await;
    let start = cache.watch("/registry/core/pods/", None).expect("watch");
    let mut pods = start.live;
    // More events of another resource than a live channel holds, while the pod watcher reads
    // nothing: with one channel for everything it would have lagged and been ended.
    for i in 0..(LIVE_CAP + 100) / 64 + 1 {
        let writes = (0..64).map(|j| {
            let store = store.clone();
            async move {
                let name = format!("c{i}-{j}");
                store
                    .create(
                        &format!("/registry/core/configmaps/ns/{name}"),
                        object("ConfigMap", &name),
                    )
                    .await
                    .expect("create");
            }
        });
        futures::future::join_all(writes).await;
    }
    let done = store
        .create("/registry/core/pods/ns/p", object("Pod", "p"))
        .await
        .expect("create");
    let WriteOutcome::Written(kv) = done else {
        panic!("the pod was not written: {done:?}");
    };
    assert!(
        cache
            .wait_for(kv.mod_revision, Duration::from_secs(10))
            .await
    );
    let ev = pods
        .try_recv()
        .expect("the pod event, with nothing lost before it");
    assert_eq!(ev.object.key, "/registry/core/pods/ns/p");
}

fn history_of(ages: &[u64], now: Instant) -> State {
    let mut state = State::new(0, Objects::new(), BTreeMap::new());
    for (i, age) in ages.iter().enumerate() {
        let rev = i as u64 + 1;
        let object = Arc::new(CachedObject {
            key: format!("/registry/core/pods/ns/p{rev}"),
            rev,
            json: Bytes::new(),
            labels: BTreeMap::new(),
            fields: BTreeMap::new(),
        });
        let event = CacheEvent {
            rev,
            kind: EventType::Added,
            object,
            prev: None,
        };
        state
            .history
            .push_back((now - Duration::from_secs(*age), Arc::new(event)));
    }
    state
}

#[test]
fn history_keeps_fresh_events_and_a_minimum() {
    let now = Instant::now() + Duration::from_secs(1_000);
    // (ages of the events in seconds, oldest first; events kept; floor after trimming)
    let fresh = HISTORY_FRESH.as_secs();
    let cases: Vec<(Vec<u64>, usize, u64)> = vec![
        // A few old events stay: below the minimum.
        (vec![fresh + 100; 5], 5, 0),
        // Above the minimum, the stale ones go, the fresh stay.
        (
            [vec![fresh + 1; 10], vec![1; HISTORY_MIN]].concat(),
            HISTORY_MIN,
            10,
        ),
        // Stale ones go only down to the minimum.
        (vec![fresh + 1; HISTORY_MIN + 3], HISTORY_MIN, 3),
        // Fresh events are kept up to the cap.
        (vec![1; HISTORY_MIN + 3], HISTORY_MIN + 3, 0),
    ];
    for (ages, kept, floor) in cases {
        let mut state = history_of(&ages, now);
        state.trim_history(now);
        assert_eq!(state.history.len(), kept, "{} events", ages.len());
        assert_eq!(state.floor, floor, "{} events", ages.len());
    }
}
