//! Routing requests over the etcd members, around the ones that are down.
//!
//! etcd-client can balance over several endpoints itself, but its balancer (tonic's power-of-two
//! choices over lazily connecting channels) keeps a dead member in rotation, and even prefers it,
//! since it has no requests in flight: after a member dies, a large share of requests fails until
//! it comes back. So each member gets its own client here, and the store picks members itself:
//! round-robin over the members believed up, members that just failed set aside for a growing
//! back-off, and a failed request retried on the next member when that is safe.
//!
//! "Safe" follows etcd's Go client: a request that never left this process (the connection
//! could not be made) can always be retried; a read can be retried after any transient failure;
//! a write that may have reached a member is not retried, because it may have been applied, and
//! the caller gets [`rudder_store::StoreError::Unavailable`].

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, KvClient, WatchClient};
use rudder_store::StoreError;
use tokio::time::Instant;

use crate::EtcdOptions;
use crate::error::{ErrorClass, classify, plain};

/// How long a member that just failed is set aside; doubled on each further failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Whether a request may be repeated on another member after an ambiguous failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads and watches: repeating them has no effect on the data.
    Read,
    /// Writes: repeated only if they certainly were not sent.
    Write,
}

/// The members of one etcd cluster, with what this process believes about their health.
pub(crate) struct Endpoints {
    members: Vec<Member>,
    /// Round-robin position, so that load spreads over the healthy members.
    next: AtomicUsize,
}

struct Member {
    url: String,
    kv: KvClient,
    watch: WatchClient,
    health: Mutex<Health>,
    // Holds the sender that feeds the client's channel its endpoint; kept for the store's life.
    _client: Client,
}

#[derive(Default)]
struct Health {
    /// Set aside until then; `None` while the member is believed up.
    down_until: Option<Instant>,
    /// Length of the next set-aside period.
    backoff: Duration,
}

impl Endpoints {
    /// One client per endpoint; connections are made lazily, on first use.
    pub(crate) async fn connect(
        urls: &[String],
        options: &EtcdOptions,
    ) -> Result<Self, StoreError> {
        if urls.is_empty() {
            return Err(StoreError::Backend("no etcd endpoints given".into()));
        }
        let connect = ConnectOptions::new()
            .with_timeout(options.request_timeout)
            .with_connect_timeout(options.connect_timeout)
            .with_keep_alive(options.keep_alive_interval, options.keep_alive_timeout)
            // etcd's gRPC server (min ping interval 5 s, pings without streams not permitted)
            // closes connections that ping while idle ("too_many_pings"); ping only while a
            // request or watch is open, which is when a dead member must be noticed.
            .with_keep_alive_while_idle(false)
            // A member cut off from the quorum then refuses requests ("no leader") instead of
            // holding a watch open that never delivers anything.
            .with_require_leader(true);
        let mut members = Vec::with_capacity(urls.len());
        for url in urls {
            let client = Client::connect([url], Some(connect.clone()))
                .await
                .map_err(plain)?;
            members.push(Member {
                url: url.clone(),
                kv: client
                    .kv_client()
                    .max_decoding_message_size(options.max_response_bytes),
                watch: client
                    .watch_client()
                    .max_decoding_message_size(options.max_response_bytes),
                health: Mutex::new(Health::default()),
                _client: client,
            });
        }
        Ok(Self {
            members,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs a KV request, on another member if one fails and repeating is safe.
    pub(crate) async fn kv<T, F, Fut>(&self, retry: Retry, op: F) -> Result<T, etcd_client::Error>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call(retry, |m| m.kv.clone(), op).await
    }

    /// Like [`Endpoints::kv`], for the watch service.
    pub(crate) async fn watch<T, F, Fut>(
        &self,
        retry: Retry,
        op: F,
    ) -> Result<T, etcd_client::Error>
    where
        F: FnMut(WatchClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        self.call(retry, |m| m.watch.clone(), op).await
    }

    async fn call<C, T, F, Fut>(
        &self,
        retry: Retry,
        client: fn(&Member) -> C,
        mut op: F,
    ) -> Result<T, etcd_client::Error>
    where
        F: FnMut(C) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last_error = None;
        // Each member at most once per call: the caller's own retry policy decides what happens
        // when the whole cluster is failing.
        for index in self.order() {
            let member = &self.members[index];
            match op(client(member)).await {
                Ok(value) => {
                    self.mark_up(index);
                    return Ok(value);
                }
                Err(err) => {
                    let unsent = never_sent(&err);
                    let transient = unsent || classify(&err) == ErrorClass::Unavailable;
                    if transient {
                        self.mark_down(index);
                        tracing::debug!(member = %member.url, error = %err, "etcd member failed");
                    }
                    if !(unsent || (transient && retry == Retry::Read)) {
                        return Err(err);
                    }
                    last_error = Some(err);
                }
            }
        }
        Err(last_error
            .unwrap_or_else(|| etcd_client::Error::InvalidArgs("no etcd endpoints".into())))
    }

    /// The members to try, in order: those believed up (round-robin), then those set aside,
    /// soonest back first, as a last resort (they may have recovered, and when the whole
    /// cluster is failing there is nothing better to try).
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let n = self.members.len();
        let first = self.next.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut up = Vec::with_capacity(n);
        let mut down = Vec::new();
        for i in (0..n).map(|k| (first + k) % n) {
            match self.health(i).down_until {
                Some(until) if until > now => down.push((until, i)),
                _ => up.push(i),
            }
        }
        down.sort();
        up.extend(down.into_iter().map(|(_, i)| i));
        up
    }

    fn health(&self, index: usize) -> std::sync::MutexGuard<'_, Health> {
        // The lock guards two plain values; a panic elsewhere cannot leave them inconsistent.
        self.members[index]
            .health
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn mark_down(&self, index: usize) {
        let mut health = self.health(index);
        let backoff = health.backoff.max(FIRST_BACKOFF);
        health.down_until = Some(Instant::now() + backoff);
        health.backoff = (backoff * 2).min(MAX_BACKOFF);
    }

    fn mark_up(&self, index: usize) {
        let mut health = self.health(index);
        if health.down_until.is_some() {
            tracing::info!(member = %self.members[index].url, "etcd member answers again");
        }
        *health = Health::default();
    }
}

/// Whether the request certainly never reached a server: the connection could not be made.
fn never_sent(err: &etcd_client::Error) -> bool {
    match err {
        // Raised while building or connecting a channel, before any request is written.
        etcd_client::Error::TransportError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            // tonic wraps connection failures (refused, unreachable, connect timeout) in
            // `ConnectError` and keeps it as the status's source.
            let mut source = std::error::Error::source(status);
            while let Some(err) = source {
                if err.is::<tonic::ConnectError>() {
                    return true;
                }
                source = err.source();
            }
            false
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_errors_are_recognised_as_unsent() {
        let connect = tonic::ConnectError("tcp connect error".into());
        let status = tonic::Status::from_error(Box::new(connect));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(never_sent(&etcd_client::Error::GRpcStatus(status)));
        let status = tonic::Status::unavailable("etcdserver: request timed out");
        assert!(!never_sent(&etcd_client::Error::GRpcStatus(status)));
    }
}
