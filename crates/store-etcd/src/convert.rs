//! Conversions between rudder's store types and etcd's protobuf messages, including the key
//! namespace prefix.
//!
//! Everything read from etcd is checked rather than trusted: a key outside the namespace, a key
//! that is not UTF-8 or a negative revision means the data is not what this backend wrote, and is
//! reported as [`StoreError::Corrupt`] instead of panicking.

use bytes::Bytes;
use etcd_client::proto::{PbEvent, PbKeyValue, PbResponseHeader};
use rudder_store::{Event, EventKind, KeyValue, MAX_KEY_LEN, Revision, StoreError, prefix_end};

use crate::error::malformed;

/// The part of etcd's keyspace this store uses: every key is `namespace + key`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Keyspace {
    namespace: Vec<u8>,
}

impl Keyspace {
    /// A keyspace under `namespace` (empty: the whole of etcd).
    pub(crate) fn new(namespace: &str) -> Result<Self, StoreError> {
        // NUL is reserved in keys (see `rudder_store::validate_key`); a namespace containing it
        // would make range ends ambiguous.
        if namespace.contains('\0') {
            return Err(StoreError::InvalidKey(
                "namespace contains a NUL byte".into(),
            ));
        }
        Ok(Self {
            namespace: namespace.as_bytes().to_vec(),
        })
    }

    /// The etcd key for a store key.
    pub(crate) fn key(&self, key: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.namespace.len() + key.len());
        out.extend_from_slice(&self.namespace);
        out.extend_from_slice(key.as_bytes());
        out
    }

    /// etcd's `[key, range_end)` for every store key under `prefix`, starting at `start` if it
    /// is given and after the prefix.
    ///
    /// An empty prefix means every store key, and every store key starts with `/`: using `/`
    /// keeps keys of other etcd users (or of a sibling namespace such as `/ab` next to `/a`)
    /// out of the range.
    pub(crate) fn prefix_range(&self, prefix: &str, start: Option<&str>) -> (Vec<u8>, Vec<u8>) {
        let prefix = if prefix.is_empty() { "/" } else { prefix };
        let full_prefix = self.key(prefix);
        // `prefix_end` is `None` only when every byte is 0xff (or there are none): the range is
        // then unbounded above, which etcd spells as range_end "\0".
        let end = prefix_end(&full_prefix).unwrap_or_else(|| vec![0]);
        let begin = match start {
            // A continuation key before the prefix would widen the range; clamp it.
            Some(start) if start.as_bytes() > prefix.as_bytes() => self.key(start),
            _ => full_prefix,
        };
        (begin, end)
    }

    /// The store key for an etcd key read back.
    pub(crate) fn strip(&self, raw: Vec<u8>) -> Result<String, StoreError> {
        let Some(rest) = raw.strip_prefix(self.namespace.as_slice()) else {
            return Err(StoreError::Corrupt(format!(
                "etcd returned key {:?} outside the namespace",
                String::from_utf8_lossy(&raw)
            )));
        };
        let rest = rest.to_vec();
        String::from_utf8(rest)
            .map_err(|e| StoreError::Corrupt(format!("etcd returned a key that is not UTF-8: {e}")))
    }

    /// Converts one etcd key/value.
    pub(crate) fn kv(&self, kv: PbKeyValue) -> Result<KeyValue, StoreError> {
        Ok(KeyValue {
            key: self.strip(kv.key)?,
            value: Bytes::from(kv.value),
            create_revision: revision(kv.create_revision)?,
            mod_revision: revision(kv.mod_revision)?,
            version: revision(kv.version)?,
        })
    }

    /// Converts one watch event to the trait's shape: deletes carry the deleted key with an
    /// empty value, the delete's revision as `mod_revision`, and zero create revision/version.
    pub(crate) fn event(&self, ev: PbEvent) -> Result<Event, StoreError> {
        // mvccpb.Event.EventType: PUT = 0, DELETE = 1.
        let kind = match ev.r#type {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            other => return Err(malformed(&format!("unknown watch event type {other}"))),
        };
        let kv = ev.kv.ok_or_else(|| malformed("watch event without kv"))?;
        let mut kv = self.kv(kv)?;
        if kind == EventKind::Delete {
            // etcd already sends exactly this shape for deletes; enforce it so that callers can
            // rely on the documented form whatever the server version.
            kv.value = Bytes::new();
            kv.create_revision = 0;
            kv.version = 0;
        }
        let prev = match ev.prev_kv {
            // etcd omits prev_kv when the event is a creation (or when the previous value has
            // been compacted away, which cannot happen for an event still being delivered).
            Some(prev) => Some(self.kv(prev)?),
            None => None,
        };
        Ok(Event { kind, kv, prev })
    }
}

/// Converts a revision-like number from etcd (int64 on the wire) to [`Revision`].
pub(crate) fn revision(raw: i64) -> Result<Revision, StoreError> {
    Revision::try_from(raw).map_err(|_| malformed(&format!("negative revision {raw}")))
}

/// Converts a revision to etcd's int64, rejecting ones etcd could never have produced.
pub(crate) fn to_etcd_revision(rev: Revision) -> Result<i64, StoreError> {
    i64::try_from(rev).map_err(|_| StoreError::FutureRevision {
        requested: rev,
        current: 0,
    })
}

/// The store revision a response was served at.
pub(crate) fn header_revision(header: Option<&PbResponseHeader>) -> Result<Revision, StoreError> {
    revision(
        header
            .ok_or_else(|| malformed("response without header"))?
            .revision,
    )
}

/// Checks a range or watch prefix: empty (everything) or a well-formed key prefix.
pub(crate) fn validate_prefix(prefix: &str) -> Result<(), StoreError> {
    if prefix.is_empty() {
        Ok(())
    } else {
        rudder_store::validate_key(prefix)
    }
}

/// Checks a continuation key. It cannot go through `validate_key`: continuation keys end in the
/// NUL that [`rudder_store::RangeResponse::continue_key`] appends.
pub(crate) fn validate_start(start: &str) -> Result<(), StoreError> {
    if start.len() > MAX_KEY_LEN + 1 {
        return Err(StoreError::InvalidKey(format!(
            "start key is {} bytes",
            start.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(key: &[u8], value: &[u8], create: i64, modr: i64, version: i64) -> PbKeyValue {
        PbKeyValue {
            key: key.to_vec(),
            value: value.to_vec(),
            create_revision: create,
            mod_revision: modr,
            version,
            lease: 0,
        }
    }

    #[test]
    fn namespace_is_added_and_stripped() {
        let ks = Keyspace::new("/ns").expect("namespace");
        assert_eq!(ks.key("/a"), b"/ns/a");
        let kv = ks.kv(pb(b"/ns/a", b"v", 2, 3, 2)).expect("kv");
        assert_eq!(kv.key, "/a");
        assert_eq!((kv.create_revision, kv.mod_revision, kv.version), (2, 3, 2));
        assert!(matches!(
            ks.kv(pb(b"/other/a", b"v", 2, 3, 2)),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            ks.kv(pb(b"/ns/\xff", b"v", 2, 3, 2)),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            ks.kv(pb(b"/ns/a", b"v", -1, 3, 2)),
            Err(StoreError::Backend(_))
        ));
        assert!(Keyspace::new("/n\0s").is_err());
    }

    #[test]
    fn prefix_ranges() {
        let ks = Keyspace::default();
        assert_eq!(
            ks.prefix_range("/r/", None),
            (b"/r/".to_vec(), b"/r0".to_vec())
        );
        assert_eq!(
            ks.prefix_range("/r/", Some("/r/b\0")),
            (b"/r/b\0".to_vec(), b"/r0".to_vec())
        );
        // A start before the prefix does not widen the range.
        assert_eq!(
            ks.prefix_range("/r/", Some("/a")),
            (b"/r/".to_vec(), b"/r0".to_vec())
        );
        assert_eq!(ks.prefix_range("", None), (b"/".to_vec(), b"0".to_vec()));
        let ns = Keyspace::new("/ns").expect("namespace");
        assert_eq!(
            ns.prefix_range("", None),
            (b"/ns/".to_vec(), b"/ns0".to_vec())
        );
    }

    #[test]
    fn delete_events_have_the_documented_shape() {
        let ks = Keyspace::default();
        let ev = PbEvent {
            r#type: 1,
            kv: Some(pb(b"/a", b"", 0, 9, 0)),
            prev_kv: Some(pb(b"/a", b"old", 4, 5, 2)),
        };
        let ev = ks.event(ev).expect("event");
        assert_eq!(ev.kind, EventKind::Delete);
        assert_eq!(ev.revision(), 9);
        assert_eq!(ev.prev.expect("prev").value, Bytes::from_static(b"old"));
        let bad = PbEvent {
            r#type: 7,
            kv: Some(pb(b"/a", b"", 0, 9, 0)),
            prev_kv: None,
        };
        assert!(ks.event(bad).is_err());
    }
}
