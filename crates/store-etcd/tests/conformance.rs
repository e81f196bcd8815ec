//! The shared store conformance suite, run against a real single-member etcd per test.

use std::sync::Arc;

use rudder_store::conformance::Harness;
use rudder_store_etcd::testing::EtcdProcess;
use rudder_store_etcd::{EtcdOptions, EtcdStore};

/// A fresh etcd and a store on it; the harness keeps the process alive until the test ends.
async fn fresh() -> Harness {
    let etcd = EtcdProcess::start()
        .await
        .unwrap_or_else(|e| panic!("starting etcd: {e}"));
    let store = EtcdStore::connect(&etcd.endpoints(), EtcdOptions::default())
        .await
        .expect("connecting to etcd");
    Harness::new(Arc::new(store), etcd)
}

rudder_store::conformance_tests!(fresh);
