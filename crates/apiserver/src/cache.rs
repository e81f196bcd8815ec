//! The watch cache: every object under `/registry/` held in memory, kept current by one store
//! watch, plus a window of recent events. LIST, GET and WATCH are served from here, so they do
//! not each hit the store.
//!
//! Objects are kept serialized (with `resourceVersion` already set) together with their labels
//! and selectable fields: a LIST concatenates bytes instead of re-encoding objects, and memory
//! stays close to the size of the data.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rudder_store::{EventKind, RangeRequest, Revision, Store, StoreError};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::keys::REGISTRY_PREFIX;

/// Most events kept for watches that resume from an older resourceVersion...
const HISTORY_CAP: usize = 100_000;
/// ...but only while they are this fresh (upstream's `eventFreshDuration`): a watcher is sent a
/// bookmark every 10 s, so one that reconnects is rarely further behind, and under a burst of
/// writes a history of 100,000 old object versions is a large part of the server's memory.
const HISTORY_FRESH: Duration = Duration::from_secs(75);
/// Events always kept, however old.
const HISTORY_MIN: usize = 1_000;
/// Live events of one resource buffered per watcher before it is dropped as too slow.
const LIVE_CAP: usize = 16_384;
/// Page size of the initial list.
const LIST_PAGE: usize = 5_000;

/// Resources the cache does not hold; reads and watches of them go to the store. Events, as
/// upstream's default watch-cache sizes leave them out: every pod start writes about five, so
/// at scale they would outnumber every other object in memory, and nothing but `kubectl
/// describe` and event consumers reads them. (`events.k8s.io` Events share this storage.)
const UNCACHED: &[&str] = &["/registry/core/events/"];

/// Whether objects at `key` (or under a prefix at least a resource deep) are read from the
/// store rather than the cache.
pub fn uncached(key: &str) -> bool {
    UNCACHED.iter().any(|p| key.starts_with(p))
}

/// One object version as the cache holds it.
#[derive(Debug)]
pub struct CachedObject {
    /// Store key.
    pub key: String,
    /// `metadata.resourceVersion`.
    pub rev: Revision,
    /// The object's JSON, `resourceVersion` included.
    pub json: Bytes,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// Values of the selectable fields present in the object.
    pub fields: BTreeMap<&'static str, String>,
}

impl CachedObject {
    /// Decodes stored bytes (an object without `resourceVersion`) at revision `rev`.
    pub fn decode(key: &str, stored: &[u8], rev: Revision) -> Result<Self, String> {
        // Still encrypted here means no configured key could decrypt it: say so, by key.
        if let Some(why) = crate::encryption::undecryptable(key, stored) {
            return Err(why);
        }
        let mut value: Value = serde_json::from_slice(stored)
            .map_err(|e| format!("stored object {key} is not JSON: {e}"))?;
        Ok(Self::from_value(key, &mut value, rev))
    }

    /// Builds the cache form of `value`, setting its resourceVersion to `rev`.
    pub fn from_value(key: &str, value: &mut Value, rev: Revision) -> Self {
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
        }
        let labels = value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        let (group, kind) = group_kind(value);
        let fields = rudder_machinery::field_selector::supported_fields(group, kind)
            .iter()
            .map(|label| {
                let v = rudder_machinery::field_selector::field_value(group, kind, value, label);
                (*label, v)
            })
            .collect();
        let json = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
        Self {
            key: key.to_owned(),
            rev,
            json,
            labels,
            fields,
        }
    }

    /// The object's JSON as a value.
    pub fn value(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.json)
            .map_err(|e| format!("cached object {} is not JSON: {e}", self.key))
    }

    /// A selectable field's value, or `""` when the object lacks it (as upstream compares).
    pub fn field(&self, path: &str) -> &str {
        self.fields.get(path).map(String::as_str).unwrap_or("")
    }
}

/// The API group and kind an object names in its `apiVersion` and `kind`.
fn group_kind(value: &Value) -> (&str, &str) {
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    (
        group,
        value.get("kind").and_then(Value::as_str).unwrap_or(""),
    )
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The watch event type string.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, with the object after it (for deletes: the last state, at the delete revision)
/// and the object before it.
#[derive(Debug)]
pub struct CacheEvent {
    pub rev: Revision,
    pub kind: EventType,
    pub object: Arc<CachedObject>,
    pub prev: Option<Arc<CachedObject>>,
}

impl CacheEvent {
    /// The event a store watch reports, for resources read from the store ([`uncached`]).
    /// `None` when the object cannot be decoded (logged: the watcher skips it).
    pub fn from_store(ev: &rudder_store::Event) -> Option<Self> {
        let rev = ev.revision();
        let key = &ev.kv.key;
        let decoded = |value: &[u8], at: Revision| match CachedObject::decode(key, value, at) {
            Ok(o) => Some(Arc::new(o)),
            Err(e) => {
                tracing::error!(error = %e, "skipping undecodable object");
                None
            }
        };
        let prev = ev
            .prev
            .as_ref()
            .and_then(|p| decoded(&p.value, p.mod_revision));
        let (kind, object) = match ev.kind {
            EventKind::Put if prev.is_some() => (EventType::Modified, decoded(&ev.kv.value, rev)?),
            EventKind::Put => (EventType::Added, decoded(&ev.kv.value, rev)?),
            // The last state, at the revision of the delete (as the cache reports deletes).
            EventKind::Delete => (EventType::Deleted, decoded(&ev.prev.as_ref()?.value, rev)?),
        };
        Some(CacheEvent {
            rev,
            kind,
            object,
            prev,
        })
    }
}

struct State {
    rev: Revision,
    /// Every event with revision > `floor` is in `history`.
    floor: Revision,
    objects: BTreeMap<String, Arc<CachedObject>>,
    /// Keys whose stored value cannot be decoded (e.g. encrypted with a key the server does
    /// not have), with why: reads that would include them fail with that reason instead of
    /// acting as if the object did not exist.
    broken: BTreeMap<String, String>,
    /// Recent events, with when the cache applied each.
    history: VecDeque<(Instant, Arc<CacheEvent>)>,
    /// Live channels by resource prefix (`/registry/<group>/<resource>/`), made when first
    /// watched; `""` carries every event, for watches wider than one resource. Per resource,
    /// so that a pod watcher falls behind only when pod events outrun it, not when leases,
    /// nodes and events do (one cluster-wide channel dropped busy informers during scale-ups).
    /// Under the state lock: `apply` (writer) sends while no watch can subscribe.
    live: Mutex<HashMap<String, broadcast::Sender<Arc<CacheEvent>>>>,
}

impl State {
    fn new(rev: Revision, objects: Objects, broken: BTreeMap<String, String>) -> Self {
        State {
            rev,
            floor: rev,
            objects,
            broken,
            history: VecDeque::new(),
            live: Mutex::default(),
        }
    }

    /// Drops the events beyond [`HISTORY_CAP`] and those older than [`HISTORY_FRESH`] beyond
    /// [`HISTORY_MIN`], raising `floor` past them.
    fn trim_history(&mut self, now: Instant) {
        while let Some((at, old)) = self.history.front() {
            let len = self.history.len();
            let stale = len > HISTORY_MIN && now.duration_since(*at) > HISTORY_FRESH;
            if len <= HISTORY_CAP && !stale {
                break;
            }
            self.floor = old.rev;
            self.history.pop_front();
        }
    }

    /// A receiver of the live events under `prefix`'s resource.
    fn subscribe(&self, prefix: &str) -> broadcast::Receiver<Arc<CacheEvent>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.entry(resource_of(prefix).unwrap_or("").to_owned())
            .or_insert_with(|| broadcast::channel(LIVE_CAP).0)
            .subscribe()
    }

    /// Hands `event` to the watchers of its resource and of everything.
    fn publish(&mut self, event: &Arc<CacheEvent>) {
        let live = self.live.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = resource_of(&event.object.key).and_then(|r| live.get(r)) {
            let _ = tx.send(event.clone());
        }
        if let Some(tx) = live.get("") {
            let _ = tx.send(event.clone());
        }
    }
}

/// The resource prefix (`/registry/<group>/<resource>/`) that a key or a prefix at least that
/// deep starts with.
fn resource_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(REGISTRY_PREFIX)?;
    let group = rest.find('/')?;
    let resource = rest[group + 1..].find('/')?;
    Some(&key[..REGISTRY_PREFIX.len() + group + 1 + resource + 1])
}

/// Why a watch cannot start from the requested revision.
#[derive(Debug, PartialEq, Eq)]
pub enum TooOld {
    /// Events after this revision are no longer held.
    Expired { oldest: Revision },
}

/// How a watch starts.
pub struct WatchStart {
    /// Events to send first (history replay), in order.
    pub replay: Vec<Arc<CacheEvent>>,
    /// Current objects to send as ADDED first (when no resourceVersion was given).
    pub initial: Vec<Arc<CachedObject>>,
    /// Live events after `rev`.
    pub live: broadcast::Receiver<Arc<CacheEvent>>,
    /// The cache revision at the start.
    pub rev: Revision,
}

/// The watch cache. Create with [`WatchCache::start`].
pub struct WatchCache {
    state: RwLock<State>,
    rev_tx: watch::Sender<Revision>,
    store: Arc<dyn Store>,
}

impl WatchCache {
    /// Loads every object and starts following the store. Returns once the cache is current.
    pub async fn start(store: Arc<dyn Store>) -> Result<Arc<Self>, StoreError> {
        let (objects, broken, rev) = load(&*store).await?;
        let cache = Arc::new(Self {
            state: RwLock::new(State::new(rev, objects, broken)),
            rev_tx: watch::Sender::new(rev),
            store,
        });
        let weak = Arc::downgrade(&cache);
        tokio::spawn(async move { follow(weak, rev).await });
        Ok(cache)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The revision of the last event applied.
    pub fn revision(&self) -> Revision {
        self.read().rev
    }

    /// Waits until the cache has applied revision `rev`. Returns false on timeout.
    pub async fn wait_for(&self, rev: Revision, timeout: Duration) -> bool {
        let mut rx = self.rev_tx.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|r| *r >= rev))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Waits until the cache reflects every write acknowledged before this call (a consistent
    /// read, as from etcd with a quorum read). Returns the revision to serve at.
    pub async fn sync(&self) -> Result<Revision, StoreError> {
        let current = self.store.current_revision().await?;
        if self.wait_for(current, Duration::from_secs(5)).await {
            Ok(self.revision())
        } else {
            Err(StoreError::Unavailable(format!(
                "watch cache is at revision {}, behind the store at {current}",
                self.revision()
            )))
        }
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.read().objects.get(key).cloned()
    }

    /// Why the object at `key` cannot be read, if it is stored but undecodable.
    pub fn broken(&self, key: &str) -> Option<String> {
        self.read().broken.get(key).cloned()
    }

    /// Why some object under `prefix` cannot be read, if one is stored but undecodable: a list
    /// or watch of the prefix fails with it, as upstream's does.
    pub fn broken_under(&self, prefix: &str) -> Option<String> {
        let state = self.read();
        let (key, why) = state.broken.range(prefix.to_owned()..).next()?;
        key.starts_with(prefix).then(|| why.clone())
    }

    /// Objects under `prefix` starting at `start` (inclusive) that pass `filter`, at most `limit`
    /// (0 = all). Returns them, the revision they were read at, and whether more remain.
    pub fn list(
        &self,
        prefix: &str,
        start: Option<&str>,
        limit: usize,
        filter: impl Fn(&CachedObject) -> bool,
    ) -> (Vec<Arc<CachedObject>>, Revision, bool) {
        let state = self.read();
        let from = start.filter(|s| *s > prefix).unwrap_or(prefix).to_owned();
        let mut out = Vec::new();
        let mut more = false;
        for (key, obj) in state.objects.range(from..) {
            if !key.starts_with(prefix) {
                break;
            }
            if !filter(obj) {
                continue;
            }
            if limit != 0 && out.len() == limit {
                more = true;
                break;
            }
            out.push(obj.clone());
        }
        (out, state.rev, more)
    }

    /// How many objects each group-resource holds (`pods`, `deployments.apps`), for
    /// `apiserver_storage_objects`. One pass over the keys, at scrape time only.
    pub fn count_by_resource(&self) -> Vec<(String, i64)> {
        let state = self.read();
        let mut out: Vec<(String, i64)> = Vec::new();
        let mut last: Option<(&str, &str)> = None;
        for key in state.objects.keys() {
            let Some((group, resource, _)) = crate::keys::split_key(key) else {
                continue;
            };
            // Keys are sorted, so one resource's keys are adjacent.
            if last == Some((group, resource)) {
                if let Some((_, n)) = out.last_mut() {
                    *n += 1;
                }
                continue;
            }
            last = Some((group, resource));
            let name = if group.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource}.{group}")
            };
            out.push((name, 1));
        }
        out
    }

    /// Starts a watch on `prefix`: from `after` (events with a greater revision), or with the
    /// current objects as ADDED events when `after` is `None`.
    pub fn watch(&self, prefix: &str, after: Option<Revision>) -> Result<WatchStart, TooOld> {
        let state = self.read();
        let live = state.subscribe(prefix);
        match after {
            None => {
                let initial = state
                    .objects
                    .range(prefix.to_owned()..)
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .map(|(_, o)| o.clone())
                    .collect();
                Ok(WatchStart {
                    replay: Vec::new(),
                    initial,
                    live,
                    rev: state.rev,
                })
            }
            Some(after) if after < state.floor => Err(TooOld::Expired {
                oldest: state.floor,
            }),
            Some(after) => {
                let skip = state.history.partition_point(|(_, e)| e.rev <= after);
                let replay = state
                    .history
                    .iter()
                    .skip(skip)
                    .filter(|(_, e)| e.object.key.starts_with(prefix))
                    .map(|(_, e)| e.clone())
                    .collect();
                Ok(WatchStart {
                    replay,
                    initial: Vec::new(),
                    live,
                    rev: state.rev,
                })
            }
        }
    }

    fn apply(&self, batch: rudder_store::WatchBatch) {
        let now = Instant::now();
        let mut state = self.write();
        let mut last = state.rev;
        for ev in batch {
            let rev = ev.revision();
            last = rev;
            if uncached(&ev.kv.key) {
                continue;
            }
            let key = ev.kv.key.clone();
            let event = match ev.kind {
                EventKind::Put => match CachedObject::decode(&key, &ev.kv.value, rev) {
                    Ok(obj) => {
                        state.broken.remove(&key);
                        let obj = Arc::new(obj);
                        let prev = state.objects.insert(key, obj.clone());
                        let kind = if prev.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        };
                        Some(CacheEvent {
                            rev,
                            kind,
                            object: obj,
                            prev,
                        })
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "skipping undecodable object");
                        state.objects.remove(&key);
                        state.broken.insert(key, e);
                        None
                    }
                },
                EventKind::Delete => {
                    state.broken.remove(&key);
                    let prev = state.objects.remove(&key);
                    let last_state = ev
                        .prev
                        .as_ref()
                        .and_then(|p| CachedObject::decode(&key, &p.value, rev).ok());
                    last_state.map(|obj| CacheEvent {
                        rev,
                        kind: EventType::Deleted,
                        object: Arc::new(obj),
                        prev,
                    })
                }
            };
            if let Some(event) = event {
                let event = Arc::new(event);
                state.publish(&event);
                state.history.push_back((now, event));
            }
        }
        state.trim_history(now);
        state.rev = last;
        drop(state);
        self.rev_tx.send_replace(last);
    }

    /// Replaces the whole content after the store watch broke; live watchers are ended (they
    /// resume from their last resourceVersion or relist).
    fn reset(&self, (objects, broken, rev): Loaded) {
        // Dropping the old channels ends every live watch.
        let mut state = self.write();
        *state = State::new(rev, objects, broken);
        drop(state);
        self.rev_tx.send_replace(rev);
    }
}

/// Every object, the undecodable keys with why, and the revision they were read at.
type Loaded = (Objects, BTreeMap<String, String>, Revision);

/// The current objects by key.
type Objects = BTreeMap<String, Arc<CachedObject>>;

async fn load(store: &dyn Store) -> Result<Loaded, StoreError> {
    let mut objects = BTreeMap::new();
    let mut broken = BTreeMap::new();
    let first = store
        .range(RangeRequest::prefix(REGISTRY_PREFIX).with_limit(LIST_PAGE))
        .await?;
    let rev = first.revision;
    let mut page = first;
    loop {
        for kv in page.kvs.iter().filter(|kv| !uncached(&kv.key)) {
            match CachedObject::decode(&kv.key, &kv.value, kv.mod_revision) {
                Ok(obj) => {
                    objects.insert(kv.key.clone(), Arc::new(obj));
                }
                Err(e) => {
                    tracing::error!(error = %e, "skipping undecodable object");
                    broken.insert(kv.key.clone(), e);
                }
            }
        }
        let Some(next) = page.continue_key() else {
            break;
        };
        page = store
            .range(RangeRequest {
                prefix: REGISTRY_PREFIX.into(),
                start: Some(next),
                limit: LIST_PAGE,
                revision: Some(rev),
            })
            .await?;
    }
    Ok((objects, broken, rev))
}

/// Follows the store until the cache is dropped, relisting whenever the watch breaks.
async fn follow(cache: std::sync::Weak<WatchCache>, mut rev: Revision) {
    use futures::StreamExt;
    loop {
        let Some(c) = cache.upgrade() else { return };
        let store = c.store.clone();
        drop(c);
        let mut stream = match store.watch(REGISTRY_PREFIX, rev + 1).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: store watch failed; relisting");
                rev = relist(&cache, &*store).await;
                continue;
            }
        };
        loop {
            let next = tokio::time::timeout(Duration::from_secs(5), stream.next()).await;
            let Some(c) = cache.upgrade() else { return };
            match next {
                Err(_) => continue,
                Ok(Some(Ok(batch))) => c.apply(batch),
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "watch cache: store watch ended; relisting");
                    drop(c);
                    rev = relist(&cache, &*store).await;
                    break;
                }
                Ok(None) => {
                    drop(c);
                    rev = relist(&cache, &*store).await;
                    break;
                }
            }
        }
    }
}

async fn relist(cache: &std::sync::Weak<WatchCache>, store: &dyn Store) -> Revision {
    let mut backoff = Duration::from_millis(100);
    loop {
        match load(store).await {
            Ok(loaded) => {
                let rev = loaded.2;
                if let Some(c) = cache.upgrade() {
                    c.reset(loaded);
                }
                return rev;
            }
            Err(e) => {
                tracing::warn!(error = %e, "watch cache: relist failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests;
