//! Watches that survive the loss of the etcd member serving them.
//!
//! An etcd watch is a gRPC stream to one member. When that member dies, or the connection is
//! reset, the stream just ends; a naive wrapper would end the trait's watch too, or worse, open a
//! new one "from now" and lose the events in between. Here the stream remembers the next revision
//! it owes its reader and re-creates the etcd watch from exactly that revision on another member
//! (the client balances over all endpoints), so the reader sees every revision once, in order.
//!
//! The stream pulls from etcd only when its reader polls it: a slow reader is buffered by etcd
//! (which replays from its history when a watcher falls behind), not by unbounded memory here.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::WatchOptions;
use etcd_client::proto::PbWatchResponse;
use rudder_store::{Result, Revision, StoreError, WatchBatch, WatchStream};
use tokio::time::Instant;

use crate::convert::{Keyspace, revision, to_etcd_revision};
use crate::endpoints::{Endpoints, Retry};
use crate::error::{malformed, plain};

/// First pause between attempts to re-establish a broken watch; doubled up to
/// [`MAX_RETRY_DELAY`]. The first attempt is immediate, since other members are usually fine.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
const MAX_RETRY_DELAY: Duration = Duration::from_secs(2);

/// What a watch needs to (re-)create its etcd watch.
pub(crate) struct WatchParams {
    pub(crate) endpoints: Arc<Endpoints>,
    pub(crate) keyspace: Keyspace,
    /// etcd key and range end of the watched prefix (namespace included).
    pub(crate) key: Vec<u8>,
    pub(crate) range_end: Vec<u8>,
    /// How long to wait for etcd to confirm a new watch.
    pub(crate) open_timeout: Duration,
    /// How long to keep trying after the stream broke.
    pub(crate) retry_timeout: Duration,
    /// Shared counter of re-established watches (see `EtcdStore::watch_reconnects`).
    pub(crate) reconnects: Arc<AtomicU64>,
}

/// The state carried between items of the stream.
struct State {
    params: WatchParams,
    /// The smallest revision not yet delivered: where a re-created watch must start.
    next: Revision,
    /// The live etcd stream, or `None` after it broke.
    stream: Option<etcd_client::WatchStream>,
    /// Set after an error was yielded: the stream ends.
    finished: bool,
}

/// Creates the etcd watch and returns the trait's stream over it.
///
/// Waits for etcd to confirm the watch, so that errors in setting it up (no member reachable)
/// come back from `Store::watch` itself.
pub(crate) async fn start(params: WatchParams, start: Revision) -> Result<WatchStream> {
    let stream = open(&params, start).await?;
    let state = State {
        params,
        next: start,
        stream: Some(stream),
        finished: false,
    };
    Ok(Box::pin(futures::stream::unfold(state, next_batch)))
}

/// Produces the next item of the stream: a non-empty batch, or one final error.
async fn next_batch(mut st: State) -> Option<(Result<WatchBatch>, State)> {
    if st.finished {
        return None;
    }
    loop {
        let stream = match st.stream.as_mut() {
            Some(stream) => stream,
            None => match reopen(&st.params, st.next).await {
                Ok(stream) => st.stream.insert(stream),
                Err(e) => return Some(finish(st, e)),
            },
        };
        let resp = match stream.message().await {
            Ok(Some(resp)) => resp.0,
            Ok(None) => {
                tracing::info!(
                    next = st.next,
                    "etcd closed a watch stream; re-establishing it"
                );
                st.stream = None;
                continue;
            }
            Err(e) => {
                // Any stream error is treated as transient: re-creating the watch from `next`
                // cannot lose or repeat events, and an error that persists surfaces from `open`.
                tracing::warn!(next = st.next, error = %e, "etcd watch stream broke; re-establishing it");
                st.stream = None;
                continue;
            }
        };
        match events(&st.params.keyspace, st.next, resp) {
            Ok(batch) => {
                let Some(last) = batch.last() else { continue };
                st.next = last.revision() + 1;
                return Some((Ok(batch), st));
            }
            Err(e) => return Some(finish(st, e)),
        }
    }
}

fn finish(mut st: State, err: StoreError) -> (Result<WatchBatch>, State) {
    st.finished = true;
    // Dropping the etcd stream cancels the watch on the server.
    st.stream = None;
    (Err(err), st)
}

/// Converts one etcd watch response into the events the reader has not seen yet.
fn events(keyspace: &Keyspace, next: Revision, resp: PbWatchResponse) -> Result<WatchBatch> {
    if resp.compact_revision != 0 {
        // etcd could not replay from `next`: the reader has to start over from a fresh read.
        return Err(StoreError::Compacted {
            requested: next,
            compacted: revision(resp.compact_revision)?,
        });
    }
    if resp.canceled {
        let reason = if resp.cancel_reason.is_empty() {
            "cancelled by etcd".to_string()
        } else {
            resp.cancel_reason
        };
        return Err(StoreError::WatchCancelled(reason));
    }
    let mut batch = Vec::with_capacity(resp.events.len());
    for ev in resp.events {
        let ev = keyspace.event(ev)?;
        // A re-created watch starts at `next`, so nothing older should arrive; dropping it if it
        // does keeps the "each revision once, in order" promise regardless.
        if ev.revision() >= next {
            batch.push(ev);
        }
    }
    Ok(batch)
}

/// Re-creates a broken watch from `from`, retrying transient failures with backoff for up to
/// `retry_timeout`.
async fn reopen(params: &WatchParams, from: Revision) -> Result<etcd_client::WatchStream> {
    let deadline = Instant::now() + params.retry_timeout;
    let mut delay = FIRST_RETRY_DELAY;
    loop {
        match open(params, from).await {
            Ok(stream) => {
                params.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!(from, "etcd watch re-established");
                return Ok(stream);
            }
            Err(StoreError::Unavailable(msg)) => {
                if Instant::now() + delay > deadline {
                    return Err(StoreError::Unavailable(format!(
                        "watch could not be re-established within {:?}: {msg}",
                        params.retry_timeout
                    )));
                }
                tracing::debug!(from, error = %msg, "etcd watch not re-established yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_RETRY_DELAY);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Creates an etcd watch from revision `from` and waits for etcd to confirm it, trying the
/// members in turn.
async fn open(params: &WatchParams, from: Revision) -> Result<etcd_client::WatchStream> {
    let opts = WatchOptions::new()
        .with_range(params.range_end.clone())
        .with_start_revision(to_etcd_revision(from)?)
        .with_prev_key();
    let open_timeout = params.open_timeout;
    let opened = params
        .endpoints
        .watch(Retry::Read, |mut client| {
            let (key, opts) = (params.key.clone(), opts.clone());
            async move {
                let mut stream = client.watch(key, Some(opts)).await?;
                // Failures up to the confirmation count against this member: the next one is
                // tried (they classify as transient).
                let first = match tokio::time::timeout(open_timeout, stream.message()).await {
                    Err(_) => {
                        return Err(etcd_client::Error::WatchError(format!(
                            "etcd did not confirm the watch within {open_timeout:?}"
                        )));
                    }
                    Ok(Err(e)) => return Err(e),
                    Ok(Ok(None)) => {
                        return Err(etcd_client::Error::WatchError(
                            "watch stream closed before it started".into(),
                        ));
                    }
                    Ok(Ok(Some(first))) => first.0,
                };
                Ok((stream, first))
            }
        })
        .await;
    let (stream, first) = opened.map_err(plain)?;
    if first.compact_revision != 0 || first.canceled {
        // Report compaction/cancellation the same way a live stream does.
        return Err(match events(&params.keyspace, from, first) {
            Err(e) => e,
            Ok(_) => malformed("cancelled watch response"),
        });
    }
    if !first.created {
        return Err(malformed("first watch response does not confirm the watch"));
    }
    Ok(stream)
}
