//! High availability on a real 3-member etcd cluster: losing a member (the one serving our watch)
//! in the middle of a write load loses no acknowledged write and no watch event, and writes go on.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{EventKind, RangeRequest, Store, WriteOutcome};
use rudder_store_etcd::testing::EtcdCluster;
use rudder_store_etcd::{EtcdOptions, EtcdStore};
use tokio::time::Instant;

const WRITERS: usize = 8;
const KEYS_PER_WRITER: usize = 120;
/// The member is killed once this many writes were acknowledged.
const KILL_AFTER_ACKS: usize = 200;
/// Writes acknowledged after the kill must reach at least this: the cluster kept serving.
const MIN_ACKS_AFTER_KILL: usize = 500;
/// How long one key may keep failing before its writer gives up on it (and it is not counted
/// as acknowledged). A leader election takes a second or two.
const KEY_DEADLINE: Duration = Duration::from_secs(30);
/// etcd gauge of the watchers a member serves: tells which member holds our watch.
const WATCHERS_METRIC: &str = "etcd_debugging_mvcc_watcher_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_and_watch_events_survive_losing_a_member() {
    let mut cluster = EtcdCluster::start(3)
        .await
        .unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let options = EtcdOptions::default().with_request_timeout(Duration::from_secs(3));
    let store = Arc::new(
        EtcdStore::connect(&cluster.endpoints(), options)
            .await
            .expect("connect"),
    );

    // The watch starts before any write and runs through the failure.
    let start = store.current_revision().await.expect("revision") + 1;
    let mut watch = store.watch("/ha/", start).await.expect("watch");
    let (events_tx, mut events_rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(item) = watch.next().await {
            let failed = item.is_err();
            if events_tx.send(item).is_err() || failed {
                break;
            }
        }
    });
    // Kill the member serving the watch, so the watch has to move to another member.
    let victim = (0..cluster.len())
        .find(|&i| {
            cluster
                .metric(i, WATCHERS_METRIC)
                .expect("metrics")
                .unwrap_or(0.0)
                >= 1.0
        })
        .expect("one member serves the watch");
    let leader = cluster.leader_index().await.expect("status");
    eprintln!("watch served by member {victim}; leader is {leader:?}");

    let acked: Arc<Mutex<BTreeMap<String, Bytes>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let acks_after_kill = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (store, acked, killed) = (store.clone(), acked.clone(), killed.clone());
        let (acks_after_kill, errors) = (acks_after_kill.clone(), errors.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..KEYS_PER_WRITER {
                let key = format!("/ha/{w:02}/{i:04}");
                let value = Bytes::from(format!("value-{w}-{i}"));
                let deadline = Instant::now() + KEY_DEADLINE;
                let ok = loop {
                    match store.create(&key, value.clone()).await {
                        Ok(WriteOutcome::Written(kv)) => break kv.value == value,
                        // An earlier attempt landed although its answer was lost.
                        Ok(WriteOutcome::AlreadyExists(kv)) if kv.value == value => break true,
                        Ok(other) => panic!("create {key}: unexpected {other:?}"),
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if Instant::now() > deadline {
                                eprintln!("giving up on {key}: {e}");
                                break false;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                };
                if ok {
                    // Read the flag after the acknowledgement: counted only if the kill
                    // had certainly happened before the write was acknowledged.
                    let after = killed.load(Ordering::SeqCst);
                    acked.lock().expect("lock").insert(key, value);
                    if after {
                        acks_after_kill.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }

    let kill_deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().expect("lock").len() < KILL_AFTER_ACKS {
        assert!(
            Instant::now() < kill_deadline,
            "writes too slow before the kill"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cluster.kill(victim).expect("kill");
    killed.store(true, Ordering::SeqCst);
    eprintln!(
        "killed member {victim} after {} acknowledged writes",
        acked.lock().expect("lock").len()
    );

    for w in writers {
        w.await.expect("writer");
    }
    let acked = acked.lock().expect("lock").clone();
    let after = acks_after_kill.load(Ordering::Relaxed);
    eprintln!(
        "acknowledged {} of {} writes, {after} after the kill, {} failed attempts",
        acked.len(),
        WRITERS * KEYS_PER_WRITER,
        errors.load(Ordering::Relaxed)
    );
    assert!(
        after >= MIN_ACKS_AFTER_KILL,
        "only {after} writes acknowledged after the kill"
    );

    // Every acknowledged write is there, with its value.
    let stored = store
        .range(RangeRequest::prefix("/ha/"))
        .await
        .expect("range");
    let stored: BTreeMap<String, Bytes> = stored
        .kvs
        .into_iter()
        .map(|kv| (kv.key, kv.value))
        .collect();
    for (key, value) in &acked {
        assert_eq!(
            stored.get(key),
            Some(value),
            "acknowledged write {key} lost"
        );
    }

    // The watch saw every acknowledged write exactly once, in revision order, without a gap.
    let mut seen: BTreeMap<String, Bytes> = BTreeMap::new();
    let mut last_rev = start - 1;
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.keys().any(|k| !seen.contains_key(k)) {
        let item = tokio::time::timeout_at(deadline, events_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("watch saw {} of {} keys in time", seen.len(), acked.len()))
            .expect("watch reader ended");
        for ev in item.expect("watch failed") {
            assert_eq!(ev.kind, EventKind::Put);
            assert_eq!(
                ev.revision(),
                last_rev + 1,
                "watch skipped or repeated a revision"
            );
            last_rev = ev.revision();
            assert!(
                seen.insert(ev.kv.key.clone(), ev.kv.value.clone())
                    .is_none(),
                "duplicate"
            );
        }
    }
    for (key, value) in &acked {
        assert_eq!(seen.get(key), Some(value), "watch value of {key}");
    }
    assert!(
        store.watch_reconnects() >= 1,
        "the watch never had to move to another member"
    );
    reader.abort();
}
