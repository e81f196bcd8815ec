//! The shared Store conformance suite, run against the embedded backend.

use std::sync::Arc;

use rudder_store::conformance::Harness;
use rudder_store_embedded::EmbeddedStore;

async fn fresh() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = EmbeddedStore::open(dir.path().join("store.redb")).expect("open");
    Harness::new(Arc::new(store), dir)
}

rudder_store::conformance_tests!(fresh);
