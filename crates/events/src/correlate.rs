//! Event correlation, pure: which events to write, which to fold into an earlier one as a `count`
//! bump, which floods to combine and which to drop, with upstream client-go's rules and limits.
//!
//! - Dedup: an event equal to an earlier one (same source, object, type, reason and message)
//!   bumps that event's `count` and `lastTimestamp` instead of adding a new object.
//! - Aggregation: when one source reports more than [`MAX_SIMILAR`] distinct messages with the
//!   same object, type and reason within [`SIMILAR_WINDOW`], further ones are combined into one
//!   event whose message starts with "(combined from similar events): ".
//! - Spam filter: per source and object, a token bucket of [`SPAM_BURST`] events refilled by one
//!   every [`SPAM_REFILL`]; events beyond it are dropped.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;

/// Distinct messages of one kind of event before they are combined (upstream's `maxEvents`).
pub const MAX_SIMILAR: usize = 10;
/// How long similar events count towards combining (upstream's `maxIntervalInSeconds`).
pub const SIMILAR_WINDOW: Duration = Duration::from_secs(600);
/// Events one source may record about one object at once.
pub const SPAM_BURST: f64 = 25.0;
/// Time for the spam filter to allow one more event about the same object.
pub const SPAM_REFILL: Duration = Duration::from_secs(300);
/// Entries each cache keeps (upstream's LRU size); the oldest entries go first.
pub const CACHE_SIZE: usize = 4096;
/// Prefix of a combined event's message.
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// An event a component wants to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Draft {
    /// The object the event is about; its namespace is the event's namespace (`default` for
    /// cluster-scoped objects, as upstream).
    pub involved: ObjectReference,
    /// `Normal` or `Warning`.
    pub type_: String,
    pub reason: String,
    pub message: String,
    /// The component (`default-scheduler`, `replicaset-controller`, `kubelet`).
    pub component: String,
    /// The component instance (its leader identity or node name).
    pub instance: String,
    /// The node, for node-local components.
    pub host: Option<String>,
}

/// What to write for one observed event.
#[derive(Clone, Debug, PartialEq)]
pub struct Write {
    /// The event's object name: new, or the one being bumped.
    pub name: String,
    pub message: String,
    /// 1 for a new event; more means an update of the event called `name`.
    pub count: i32,
    pub first: Timestamp,
    pub last: Timestamp,
}

impl Write {
    /// Whether this creates the event rather than bumping an earlier one.
    pub fn is_new(&self) -> bool {
        self.count == 1
    }
}

/// Correlation state of one recorder.
#[derive(Default)]
pub struct Correlator {
    seen: Bounded<String, Seen>,
    similar: Bounded<String, Similar>,
    spam: Bounded<String, Bucket>,
    last_name_nanos: i128,
}

#[derive(Clone)]
struct Seen {
    name: String,
    count: i32,
    first: Timestamp,
}

struct Similar {
    messages: Vec<String>,
    last: Timestamp,
}

struct Bucket {
    tokens: f64,
    at: Timestamp,
}

impl Correlator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides what recording `draft` at `now` writes; `None` when the spam filter drops it.
    pub fn observe(&mut self, draft: &Draft, now: Timestamp) -> Option<Write> {
        if !self.allow(draft, now) {
            return None;
        }
        let (key, message) = self.aggregate(draft, now);
        if let Some(seen) = self.seen.get_mut(&key) {
            seen.count = seen.count.saturating_add(1);
            return Some(Write {
                name: seen.name.clone(),
                message,
                count: seen.count,
                first: seen.first,
                last: now,
            });
        }
        let name = self.name_for(draft, now);
        self.seen.insert(
            key,
            Seen {
                name: name.clone(),
                count: 1,
                first: now,
            },
        );
        Some(Write {
            name,
            message,
            count: 1,
            first: now,
            last: now,
        })
    }

    fn allow(&mut self, draft: &Draft, now: Timestamp) -> bool {
        let key = object_key(draft);
        let bucket = self.spam.get_or_insert_with(key, || Bucket {
            tokens: SPAM_BURST,
            at: now,
        });
        let elapsed = seconds_between(bucket.at, now);
        bucket.tokens = (bucket.tokens + elapsed / SPAM_REFILL.as_secs_f64()).min(SPAM_BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// The dedup key and message: the event's own, or the combined event's once there are too
    /// many similar ones.
    fn aggregate(&mut self, draft: &Draft, now: Timestamp) -> (String, String) {
        let similar_key = format!(
            "{}\u{0}{}\u{0}{}",
            object_key(draft),
            draft.type_,
            draft.reason
        );
        let own = (
            format!("{similar_key}\u{0}{}", draft.message),
            draft.message.clone(),
        );
        let entry = self
            .similar
            .get_or_insert_with(similar_key.clone(), || Similar {
                messages: Vec::new(),
                last: now,
            });
        if seconds_between(entry.last, now) > SIMILAR_WINDOW.as_secs_f64() {
            entry.messages.clear();
        }
        entry.last = now;
        if !entry.messages.contains(&draft.message) {
            entry.messages.push(draft.message.clone());
        }
        if entry.messages.len() <= MAX_SIMILAR {
            own
        } else {
            (similar_key, format!("{COMBINED_PREFIX}{}", draft.message))
        }
    }

    /// `<object>.<nanoseconds in hex>`, as upstream names events; strictly increasing so that two
    /// events of one object in the same nanosecond don't collide.
    fn name_for(&mut self, draft: &Draft, now: Timestamp) -> String {
        let nanos = now.as_nanosecond().max(self.last_name_nanos + 1);
        self.last_name_nanos = nanos;
        let object = draft.involved.name.as_deref().unwrap_or("");
        format!("{object}.{:x}", nanos.unsigned_abs())
    }
}

/// The Event object for `draft` as correlated into `write`.
pub fn event(draft: &Draft, write: &Write) -> Event {
    Event {
        metadata: ObjectMeta {
            name: Some(write.name.clone()),
            namespace: Some(namespace(draft).to_owned()),
            ..ObjectMeta::default()
        },
        involved_object: draft.involved.clone(),
        reason: Some(draft.reason.clone()),
        message: Some(write.message.clone()),
        type_: Some(draft.type_.clone()),
        count: Some(write.count),
        first_timestamp: Some(Time(write.first)),
        last_timestamp: Some(Time(write.last)),
        source: Some(EventSource {
            component: Some(draft.component.clone()),
            host: draft.host.clone(),
        }),
        reporting_component: Some(draft.component.clone()),
        reporting_instance: Some(draft.instance.clone()),
        ..Event::default()
    }
}

/// Where the event lives: the object's namespace, or `default` for cluster-scoped objects.
pub fn namespace(draft: &Draft) -> &str {
    match draft.involved.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => ns,
        _ => "default",
    }
}

fn object_key(draft: &Draft) -> String {
    let o = &draft.involved;
    [
        draft.component.as_str(),
        draft.host.as_deref().unwrap_or(""),
        o.kind.as_deref().unwrap_or(""),
        o.namespace.as_deref().unwrap_or(""),
        o.name.as_deref().unwrap_or(""),
        o.uid.as_deref().unwrap_or(""),
        o.api_version.as_deref().unwrap_or(""),
    ]
    .join("\u{0}")
}

#[allow(clippy::cast_precision_loss)]
fn seconds_between(earlier: Timestamp, later: Timestamp) -> f64 {
    (later.as_nanosecond() - earlier.as_nanosecond()).max(0) as f64 / 1e9
}

/// A map that forgets its oldest-inserted entry beyond [`CACHE_SIZE`].
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<K>,
}

impl<K, V> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: Eq + Hash + Clone, V> Bounded<K, V> {
    fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    fn insert(&mut self, key: K, value: V) {
        if !self.map.contains_key(&key) {
            self.remember(key.clone());
        }
        self.map.insert(key, value);
    }

    fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        if !self.map.contains_key(&key) {
            self.remember(key.clone());
        }
        self.map.entry(key).or_insert_with(make)
    }

    /// Records a new key's arrival, forgetting the oldest beyond the bound (the new key is the
    /// newest, so it stays).
    fn remember(&mut self, key: K) {
        self.order.push_back(key);
        while self.order.len() > CACHE_SIZE {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests;
