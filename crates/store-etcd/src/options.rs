//! Connection settings of [`crate::EtcdStore`].

use std::time::Duration;

/// How [`crate::EtcdStore::connect`] talks to etcd.
///
/// The defaults suit a cluster on a LAN: requests fail after a few seconds instead of hanging on
/// a dead member, and watches keep retrying through a leader election or a member restart.
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// Prepended to every key sent to etcd and stripped from every key read back, so that several
    /// rudder clusters (or other users) can share one etcd. Empty means no prefix. Keys are
    /// concatenated as they are: a namespace `/rudder` turns `/registry/pods/a` into
    /// `/rudder/registry/pods/a`.
    pub namespace: String,
    /// Deadline of one unary request (get, range, transaction, compaction).
    pub request_timeout: Duration,
    /// Deadline for opening a TCP connection to one endpoint.
    pub connect_timeout: Duration,
    /// HTTP/2 keep-alive ping interval while requests or watches are open; detects a member that
    /// vanished without closing the connection (a dead machine rather than a dead process).
    /// Must not be below etcd's `--grpc-keepalive-min-time` (5 s by default), or etcd closes the
    /// connection for pinging too often.
    pub keep_alive_interval: Duration,
    /// How long a keep-alive ping may go unanswered before the connection is considered dead.
    pub keep_alive_timeout: Duration,
    /// Largest gRPC message accepted from etcd. Unlimited ranges over big prefixes and watch
    /// batches of large values can be far larger than gRPC's 4 MiB default, so this follows etcd's
    /// own Go client, which accepts up to `i32::MAX` bytes.
    pub max_response_bytes: usize,
    /// How long a watch keeps trying to re-establish itself after its stream broke, before it
    /// yields [`rudder_store::StoreError::Unavailable`] and ends.
    pub watch_retry_timeout: Duration,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        Self {
            namespace: String::new(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            keep_alive_interval: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            max_response_bytes: i32::MAX as usize,
            watch_retry_timeout: Duration::from_secs(60),
        }
    }
}

impl EtcdOptions {
    /// Sets [`EtcdOptions::namespace`].
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Sets [`EtcdOptions::request_timeout`].
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets [`EtcdOptions::watch_retry_timeout`].
    pub fn with_watch_retry_timeout(mut self, timeout: Duration) -> Self {
        self.watch_retry_timeout = timeout;
        self
    }
}
