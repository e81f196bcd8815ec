//! A clean shutdown's checkpoint: after `checkpoint()` the redb file alone (copied away without
//! its write-ahead log) holds every acknowledged write, which is what offline tools and backups
//! of a stopped server's data directory rely on.

use bytes::Bytes;
use rudder_store::{RangeRequest, Store};
use rudder_store_embedded::EmbeddedStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_checkpoint_the_file_alone_holds_every_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a/state.redb");
    let store = EmbeddedStore::open(&path).expect("open");
    for i in 0..200 {
        store
            .create(&format!("/c/{i:03}"), Bytes::from(format!("value-{i}")))
            .await
            .expect("create");
    }
    store.checkpoint().await.expect("checkpoint");

    // The file copied without its log, as a backup of the file would be.
    let copy = dir.path().join("b/state.redb");
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
    std::fs::copy(&path, &copy).expect("copy the redb file");
    drop(store);
    let reopened = EmbeddedStore::open(&copy).expect("open the copy");
    let all = reopened
        .range(RangeRequest::prefix("/c/"))
        .await
        .expect("range");
    assert_eq!(all.kvs.len(), 200, "every write is in the file");
    for (i, kv) in all.kvs.iter().enumerate() {
        assert_eq!(kv.value, format!("value-{i}").into_bytes());
    }
}
