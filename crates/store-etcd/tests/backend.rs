//! Behaviour specific to the etcd backend, beyond the shared conformance suite: namespaces,
//! guards etcd would get wrong by itself, the numbers in revision errors, and failures.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{
    DeleteOutcome, EventKind, RangeRequest, Store, StoreError, WriteOutcome, conformance,
};
use rudder_store_etcd::testing::EtcdProcess;
use rudder_store_etcd::{EtcdOptions, EtcdStore};

async fn etcd() -> EtcdProcess {
    EtcdProcess::start()
        .await
        .unwrap_or_else(|e| panic!("starting etcd: {e}"))
}

async fn store(etcd: &EtcdProcess, options: EtcdOptions) -> EtcdStore {
    EtcdStore::connect(&etcd.endpoints(), options)
        .await
        .expect("connect")
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_isolate_stores_sharing_one_etcd() {
    let etcd = etcd().await;
    let raw = store(&etcd, EtcdOptions::default()).await;
    let a = store(&etcd, EtcdOptions::default().with_namespace("/a")).await;
    let c = store(&etcd, EtcdOptions::default().with_namespace("/c")).await;
    let start = raw.current_revision().await.expect("revision") + 1;
    let mut watch_a = a.watch("/k/", start).await.expect("watch");
    let mut watch_all_a = a.watch("", start).await.expect("watch");
    for s in [&a, &c] {
        assert!(matches!(
            s.create("/k/x", b("v")).await,
            Ok(WriteOutcome::Written(_))
        ));
    }
    // A sibling of the namespace that shares its first bytes stays outside it.
    assert!(matches!(
        raw.create("/ab/k/x", b("v")).await,
        Ok(WriteOutcome::Written(_))
    ));
    let keys = |r: rudder_store::RangeResponse| -> Vec<String> {
        r.kvs.into_iter().map(|kv| kv.key).collect()
    };
    assert_eq!(
        keys(a.range(RangeRequest::prefix("/")).await.expect("range")),
        ["/k/x"]
    );
    assert_eq!(
        keys(a.range(RangeRequest::prefix("")).await.expect("range")),
        ["/k/x"]
    );
    assert_eq!(
        keys(raw.range(RangeRequest::prefix("/")).await.expect("range")),
        ["/a/k/x", "/ab/k/x", "/c/k/x"]
    );
    assert_eq!(
        keys(raw.range(RangeRequest::prefix("")).await.expect("range")),
        ["/a/k/x", "/ab/k/x", "/c/k/x"]
    );
    for w in [&mut watch_a, &mut watch_all_a] {
        let ev = conformance::collect_events(w, 1).await;
        assert_eq!(ev[0].kv.key, "/k/x");
        assert_eq!(ev[0].revision(), start);
    }
    let got = c.get("/k/x", None).await.expect("get").kv.expect("present");
    assert_eq!(got.mod_revision, start + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_expectation_never_creates_or_deletes_a_missing_key() {
    let etcd = etcd().await;
    let s = store(&etcd, EtcdOptions::default()).await;
    let before = s.current_revision().await.expect("revision");
    // etcd compares a missing key's mod_revision as 0; the store must not take that for a match.
    assert_eq!(
        s.update("/m", b("v"), 0).await.expect("update"),
        WriteOutcome::Conflict(None)
    );
    assert_eq!(
        s.delete("/m", Some(0)).await.expect("delete"),
        DeleteOutcome::NotFound
    );
    assert_eq!(s.get("/m", None).await.expect("get").kv, None);
    assert_eq!(s.current_revision().await.expect("revision"), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_errors_carry_the_numbers() {
    let etcd = etcd().await;
    let s = store(&etcd, EtcdOptions::default()).await;
    let mut kv = match s.create("/e", b("0")).await.expect("create") {
        WriteOutcome::Written(kv) => kv,
        other => panic!("unexpected {other:?}"),
    };
    for i in 1..5 {
        kv = match s
            .update("/e", b(&i.to_string()), kv.mod_revision)
            .await
            .expect("update")
        {
            WriteOutcome::Written(kv) => kv,
            other => panic!("unexpected {other:?}"),
        };
    }
    let compacted = kv.mod_revision - 1;
    s.compact(compacted).await.expect("compact");
    match s.get("/e", Some(compacted - 1)).await {
        Err(StoreError::Compacted {
            requested,
            compacted: c,
        }) => {
            assert_eq!((requested, c), (compacted - 1, compacted));
        }
        other => panic!("unexpected {other:?}"),
    }
    let mut w = s.watch("/e", compacted - 2).await.expect("watch");
    match w.next().await {
        Some(Err(StoreError::Compacted {
            requested,
            compacted: c,
        })) => {
            assert_eq!((requested, c), (compacted - 2, compacted));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(w.next().await.is_none(), "a watch ends after its error");
    let current = s.current_revision().await.expect("revision");
    match s.get("/e", Some(current + 5)).await {
        Err(StoreError::FutureRevision {
            requested,
            current: c,
        }) => {
            assert_eq!((requested, c), (current + 5, current));
        }
        other => panic!("unexpected {other:?}"),
    }
    match s.watch("/e", current + 2).await {
        Err(StoreError::FutureRevision {
            requested,
            current: c,
        }) => {
            assert_eq!((requested, c), (current + 2, current));
        }
        Err(e) => panic!("unexpected {e}"),
        Ok(_) => panic!("a watch from beyond current + 1 was accepted"),
    }
    // Compacting again at the same revision is refused the way reads are.
    assert!(matches!(
        s.compact(compacted).await,
        Err(StoreError::Compacted { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_watch_outlives_the_request_timeout() {
    let etcd = etcd().await;
    let options = EtcdOptions::default().with_request_timeout(Duration::from_millis(500));
    let s = store(&etcd, options).await;
    let start = s.current_revision().await.expect("revision") + 1;
    let mut w = s.watch("/idle/", start).await.expect("watch");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(matches!(
        s.create("/idle/a", b("v")).await,
        Ok(WriteOutcome::Written(_))
    ));
    let ev = conformance::collect_events(&mut w, 1).await;
    assert_eq!((ev[0].kind, ev[0].revision()), (EventKind::Put, start));
    assert_eq!(s.watch_reconnects(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_only_member_is_reported_not_hidden() {
    let mut etcd = etcd().await;
    let options = EtcdOptions::default()
        .with_request_timeout(Duration::from_secs(1))
        .with_watch_retry_timeout(Duration::from_secs(2));
    let s = store(&etcd, options).await;
    let start = s.current_revision().await.expect("revision") + 1;
    let mut w = s.watch("/gone/", start).await.expect("watch");
    etcd.kill();
    // The watch keeps retrying for a while, then says why it ends.
    match tokio::time::timeout(Duration::from_secs(20), w.next()).await {
        Ok(Some(Err(StoreError::Unavailable(_)))) => {}
        other => panic!("unexpected {other:?}"),
    }
    assert!(w.next().await.is_none());
    match s.create("/gone/a", b("v")).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
    match s.current_revision().await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("unexpected {other:?}"),
    }
}
