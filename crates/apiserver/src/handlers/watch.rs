//! WATCH: a chunked stream of `{"type":…,"object":…}` lines from the watch cache, with
//! bookmarks, initial events, selector transitions and upstream's 410 for expired history.
//! With `as=Table` (`kubectl get -w`) each object is a one-row Table.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use hyper::Response;
use rudder_printers::{Printer, TableOptions};
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use super::Ctx;
use super::list::{Render, now_secs, render, table_options};
use crate::cache::{CacheEvent, CachedObject, EventType, TooOld, WatchCache};
use crate::filter::Filter;
use crate::http::{Body, streaming};
use crate::params::ListParams;
use crate::status::ApiError;

/// How often an idle watch that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(10);
/// Chunks buffered per watch before the writer waits for the client.
const CHUNKS: usize = 256;

fn event_line(kind: &str, json: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(json.len() + 32);
    b.put_slice(b"{\"type\":\"");
    b.put_slice(kind.as_bytes());
    b.put_slice(b"\",\"object\":");
    b.put_slice(json);
    b.put_slice(b"}\n");
    b.freeze()
}

/// How a watch encodes the objects of its events.
struct Encoder {
    table: Option<TableEncoder>,
    metadata_only: bool,
    resource: std::sync::Arc<crate::resources::Resource>,
}

/// One-row Tables, as upstream sends them to `kubectl get -w`.
struct TableEncoder {
    printer: Printer,
    options: TableOptions,
    /// Upstream sends the column definitions with the first event only; kubectl keeps using
    /// the last ones it saw. Atomic only because the watch task, which must be `Send`, holds
    /// the encoder by reference across awaits.
    headers_sent: AtomicBool,
}

impl Encoder {
    fn for_request(ctx: &Ctx<'_>) -> Result<Self, ApiError> {
        let table = match render(ctx) {
            Ok(Render::Table) => Some(TableEncoder {
                printer: ctx.resource.printer.clone(),
                options: table_options(ctx)?,
                headers_sent: AtomicBool::new(false),
            }),
            // Watch streams JSON for any other Accept header, as it did before Tables.
            Ok(Render::Json | Render::Metadata) | Err(_) => None,
        };
        Ok(Self {
            table,
            metadata_only: matches!(render(ctx), Ok(Render::Metadata)),
            resource: ctx.resource.clone(),
        })
    }

    /// The event line of `obj`.
    fn line(&self, kind: &str, obj: &CachedObject) -> Bytes {
        if self.metadata_only
            && let Ok(partial) = super::list::partial_metadata(obj)
        {
            return event_line(kind, &partial);
        }
        let Some(t) = &self.table else {
            return event_line(kind, &self.resource.serve(&obj.json));
        };
        let Ok(mut value) = obj.value() else {
            return event_line(kind, &obj.json);
        };
        self.resource.to_served(&mut value);
        let first = !t.headers_sent.swap(true, Ordering::Relaxed);
        let options = TableOptions {
            no_headers: !first,
            ..t.options
        };
        let mut table = rudder_printers::table(&t.printer, &[value], options, now_secs());
        table["metadata"] = json!({"resourceVersion": obj.rev.to_string()});
        event_line(kind, &serde_json::to_vec(&table).unwrap_or_default())
    }

    /// The object of a BOOKMARK event: the kind's empty object with the revision, or in Table
    /// mode a Table without rows, so a client decoding Tables can read every event.
    fn bookmark_object(&self, kind: &(String, String), meta: Value) -> Value {
        match &self.table {
            None if self.metadata_only => json!({
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta,
            }),
            None => json!({"kind": kind.0, "apiVersion": kind.1, "metadata": meta}),
            Some(_) => json!({
                "kind": "Table", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"resourceVersion": meta["resourceVersion"]},
                "columnDefinitions": [], "rows": [],
            }),
        }
    }
}

/// What a watcher sees of an event, given its filter: upstream turns objects entering or leaving
/// the selection into ADDED and DELETED.
fn visible(ev: &CacheEvent, filter: &Filter) -> Option<&'static str> {
    let now = filter.matches(&ev.object);
    let before = ev.prev.as_ref().is_some_and(|p| filter.matches(p));
    match ev.kind {
        EventType::Deleted => (before || now).then_some("DELETED"),
        EventType::Added => now.then_some("ADDED"),
        EventType::Modified => match (before, now) {
            (true, true) => Some("MODIFIED"),
            (false, true) => Some("ADDED"),
            (true, false) => Some("DELETED"),
            (false, false) => None,
        },
    }
}

/// WATCH.
pub(crate) async fn watch(ctx: &Ctx<'_>) -> Result<Response<Body>, ApiError> {
    let params = ListParams::parse(&ctx.query)?;
    let filter = Filter::from_params(&params, &ctx.resource)?;
    let prefix = ctx.prefix();
    let cache = ctx.server.cache.clone();
    let after = match params.resource_version.as_deref() {
        None | Some("0") => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv:?}")))?,
        ),
    };
    if let Some(rev) = after
        && rev > cache.revision()
        && !cache.wait_for(rev, Duration::from_secs(3)).await
    {
        return Err(ApiError::timeout(format!(
            "Too large resource version: {rev}, current: {}",
            cache.revision()
        )));
    }
    // A watch that starts with the current objects fails like the list would.
    if after.is_none()
        && let Some(why) = cache.broken_under(&prefix)
    {
        return Err(ApiError::internal(why));
    }
    let bookmark_kind = (ctx.resource.kind.clone(), ctx.resource.api_version());
    let encoder = Encoder::for_request(ctx)?;
    if crate::cache::uncached(&prefix) {
        let from_store = FromStore {
            store: ctx.server.store.clone(),
            prefix,
            after,
        };
        return from_store
            .watch(params, filter, encoder, bookmark_kind)
            .await;
    }
    let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS);
    let start = match cache.watch(&prefix, after) {
        Ok(s) => s,
        Err(TooOld::Expired { oldest }) => return Ok(expired(after, oldest)),
    };
    let Stream {
        timeout,
        send_initial_end,
        allow_bookmarks,
    } = Stream::of(&params);
    tokio::spawn(async move {
        let run = async {
            let mut last = start.rev;
            let initial = start.initial.iter().map(AsRef::as_ref);
            let end = send_initial_end.then_some((&bookmark_kind, start.rev));
            if !send_initial(&tx, &encoder, &filter, initial, end).await {
                return;
            }
            for ev in &start.replay {
                if let Some(kind) = visible(ev, &filter)
                    && tx.send(encoder.line(kind, &ev.object)).await.is_err()
                {
                    return;
                }
            }
            let sink = Sink {
                tx: &tx,
                filter: &filter,
                prefix: &prefix,
                encoder: &encoder,
            };
            follow(
                &cache,
                start.live,
                &sink,
                &mut last,
                allow_bookmarks,
                &bookmark_kind,
            )
            .await;
        };
        let _ = tokio::time::timeout(timeout, run).await;
    });
    Ok(watch_response(rx))
}

/// How long a watch runs and which bookmarks it sends, from its request.
struct Stream {
    timeout: Duration,
    /// Send the `initial-events-end` bookmark after the initial objects.
    send_initial_end: bool,
    allow_bookmarks: bool,
}

impl Stream {
    fn of(params: &ListParams) -> Self {
        Stream {
            // Upstream spreads unbounded watches over 30–60 min so clients do not all
            // reconnect at once.
            timeout: params
                .timeout_seconds
                .map(Duration::from_secs)
                .unwrap_or_else(|| Duration::from_secs(1800 + rand::random_range(0..1800))),
            send_initial_end: params.send_initial_events && params.allow_bookmarks,
            allow_bookmarks: params.allow_bookmarks,
        }
    }
}

/// Upstream answers a watch from a revision it no longer holds with 200 and the 410 as the
/// stream's only event.
fn expired(after: Option<u64>, oldest: u64) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let status = ApiError::gone(format!(
        "too old resource version: {} ({oldest})",
        after.unwrap_or_default()
    ))
    .to_status();
    let line = event_line("ERROR", &serde_json::to_vec(&status).unwrap_or_default());
    let _ = tx.try_send(line);
    watch_response(rx)
}

/// A watch of a resource the cache does not hold, served by a store watch.
struct FromStore {
    store: Arc<dyn rudder_store::Store>,
    prefix: String,
    after: Option<u64>,
}

impl FromStore {
    async fn watch(
        self,
        params: ListParams,
        filter: Filter,
        encoder: Encoder,
        kind: (String, String),
    ) -> Result<Response<Body>, ApiError> {
        let (initial, rev) = match self.after {
            Some(rev) => (Vec::new(), rev),
            None => {
                let rev = self.store.current_revision().await?;
                (self.objects_at(rev).await?, rev)
            }
        };
        let mut stream = match self.store.watch(&self.prefix, rev + 1).await {
            Ok(s) => s,
            Err(rudder_store::StoreError::Compacted { compacted, .. }) => {
                return Ok(expired(self.after, compacted));
            }
            Err(e) => return Err(e.into()),
        };
        let (tx, rx) = mpsc::channel::<Bytes>(CHUNKS);
        let Stream {
            timeout,
            send_initial_end,
            allow_bookmarks,
        } = Stream::of(&params);
        tokio::spawn(async move {
            let run = async {
                let end = send_initial_end.then_some((&kind, rev));
                if !send_initial(&tx, &encoder, &filter, initial.iter(), end).await {
                    return;
                }
                let sink = Sink {
                    tx: &tx,
                    filter: &filter,
                    prefix: &self.prefix,
                    encoder: &encoder,
                };
                // Bookmarks only name revisions whose events were all sent: the store's
                // current revision may be ahead of what this stream delivered.
                let mut last = rev;
                loop {
                    let batch = tokio::select! {
                        b = stream.next() => b,
                        () = tokio::time::sleep(BOOKMARK_EVERY), if allow_bookmarks => {
                            if tx.send(bookmark(&encoder, &kind, last, false)).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        () = tx.closed() => return,
                    };
                    // Ended or failed (compacted, cancelled): the client resumes or relists.
                    let Some(Ok(batch)) = batch else { return };
                    for ev in batch.iter().filter_map(CacheEvent::from_store) {
                        last = last.max(ev.rev);
                        if !sink.offer(&ev).await {
                            return;
                        }
                    }
                }
            };
            let _ = tokio::time::timeout(timeout, run).await;
        });
        Ok(watch_response(rx))
    }

    /// Every object under the prefix at `rev`.
    async fn objects_at(&self, rev: u64) -> Result<Vec<CachedObject>, ApiError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .store
                .range(rudder_store::RangeRequest {
                    prefix: self.prefix.clone(),
                    start,
                    limit: 500,
                    revision: Some(rev),
                })
                .await?;
            for kv in &page.kvs {
                match CachedObject::decode(&kv.key, &kv.value, kv.mod_revision) {
                    Ok(o) => out.push(o),
                    Err(e) => return Err(ApiError::internal(e)),
                }
            }
            match page.continue_key() {
                Some(k) => start = Some(k),
                None => return Ok(out),
            }
        }
    }
}

/// Sends the current objects a watch starts with as ADDED (those `filter` selects), then the
/// `initial-events-end` bookmark at the given revision if asked. False when the client is gone.
async fn send_initial<'a>(
    tx: &mpsc::Sender<Bytes>,
    encoder: &Encoder,
    filter: &Filter,
    objects: impl Iterator<Item = &'a CachedObject>,
    end: Option<(&(String, String), u64)>,
) -> bool {
    for obj in objects {
        if filter.matches(obj) && tx.send(encoder.line("ADDED", obj)).await.is_err() {
            return false;
        }
    }
    match end {
        Some((kind, rev)) => tx.send(bookmark(encoder, kind, rev, true)).await.is_ok(),
        None => true,
    }
}

fn bookmark(encoder: &Encoder, kind: &(String, String), rev: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let obj = encoder.bookmark_object(kind, meta);
    event_line("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
}

/// Where a watch's events go, and which of them.
struct Sink<'a> {
    tx: &'a mpsc::Sender<Bytes>,
    filter: &'a Filter,
    prefix: &'a str,
    encoder: &'a Encoder,
}

impl Sink<'_> {
    /// Sends the event if this watch sees it. Returns false when the client is gone.
    async fn offer(&self, ev: &CacheEvent) -> bool {
        if !ev.object.key.starts_with(self.prefix) {
            return true;
        }
        match visible(ev, self.filter) {
            Some(kind) => self
                .tx
                .send(self.encoder.line(kind, &ev.object))
                .await
                .is_ok(),
            None => true,
        }
    }
}

async fn follow(
    cache: &Arc<WatchCache>,
    mut live: broadcast::Receiver<Arc<CacheEvent>>,
    sink: &Sink<'_>,
    last: &mut u64,
    allow_bookmarks: bool,
    kind: &(String, String),
) {
    loop {
        let received = tokio::select! {
            r = live.recv() => Some(r),
            () = tokio::time::sleep(BOOKMARK_EVERY), if allow_bookmarks => None,
            () = sink.tx.closed() => return,
        };
        match received {
            Some(Ok(ev)) => {
                *last = (*last).max(ev.rev);
                if !sink.offer(&ev).await {
                    return;
                }
            }
            // Too slow, or the cache was rebuilt: end the watch; the client resumes from the
            // last resourceVersion it saw.
            Some(Err(_)) => return,
            None => {
                // Every event up to the cache's revision is either queued in `live` or sent.
                let rev = cache.revision();
                loop {
                    match live.try_recv() {
                        Ok(ev) => {
                            *last = (*last).max(ev.rev);
                            if !sink.offer(&ev).await {
                                return;
                            }
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(_) => return,
                    }
                }
                *last = (*last).max(rev);
                if sink
                    .tx
                    .send(bookmark(sink.encoder, kind, *last, false))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

fn watch_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(streaming(rx))
        .unwrap_or_else(|_| Response::new(crate::http::full(Bytes::new())))
}
