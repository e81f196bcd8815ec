//! A [`Store`] that encrypts values on the way in and decrypts them on the way out, so the API
//! server above it (handlers, watch cache, bootstrap, authentication lookups) only ever sees
//! plaintext — upstream's value transformer at the etcd boundary.
//!
//! Reads of a single key fail with [`StoreError::Corrupt`] (a 500 naming the key) when no
//! configured key decrypts the value. Ranges and watch events pass such a value through still
//! encrypted instead, so one unreadable object does not stop the watch cache from loading the
//! rest; the decoders recognise the `k8s:enc:` prefix ([`super::undecryptable`]) and the cache
//! answers that object, and lists and watches that would include it, with the same 500.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use rudder_store::{
    DeleteOutcome, GetResponse, KeyValue, RangeRequest, RangeResponse, Result, Revision, Store,
    StoreError, WatchStream, WriteOutcome,
};

use super::Transformer;

/// `inner` seen through `transformer`.
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    transformer: Arc<Transformer>,
}

impl EncryptedStore {
    /// Wraps a store.
    pub fn new(inner: Arc<dyn Store>, transformer: Arc<Transformer>) -> Self {
        Self { inner, transformer }
    }

    /// Whether the value of `key` at `rev` should be rewritten even if unchanged (see
    /// [`Transformer::is_stale`]). Reads the raw value: called only for no-op updates.
    pub async fn is_stale(&self, key: &str, rev: Revision) -> bool {
        match self.inner.get(key, Some(rev)).await {
            Ok(got) => got
                .kv
                .is_some_and(|kv| self.transformer.is_stale(key, &kv.value)),
            Err(_) => false,
        }
    }

    fn seal(&self, key: &str, value: Bytes) -> Result<Bytes> {
        match self.transformer.encrypt(key, &value) {
            Ok(Some(sealed)) => Ok(Bytes::from(sealed)),
            Ok(None) => Ok(value),
            Err(e) => Err(StoreError::Corrupt(e.to_string())),
        }
    }

    /// The plaintext of `kv`, or an error naming the key.
    fn open_strict(&self, mut kv: KeyValue) -> Result<KeyValue> {
        match self.transformer.decrypt(&kv.key, &kv.value) {
            Ok(Some(plain)) => kv.value = Bytes::from(plain),
            Ok(None) => {}
            Err(e) => return Err(StoreError::Corrupt(e.to_string())),
        }
        Ok(kv)
    }

    /// The plaintext of `kv`, or `kv` unchanged (still encrypted) when it cannot be decrypted:
    /// see the module comment.
    fn open_lenient(transformer: &Transformer, mut kv: KeyValue) -> KeyValue {
        match transformer.decrypt(&kv.key, &kv.value) {
            Ok(Some(plain)) => kv.value = Bytes::from(plain),
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "reading an encrypted value"),
        }
        kv
    }

    fn open_outcome(&self, out: WriteOutcome, written: Bytes) -> WriteOutcome {
        match out {
            // What was just written is what the caller gave: no need to decrypt it again.
            WriteOutcome::Written(mut kv) => {
                kv.value = written;
                WriteOutcome::Written(kv)
            }
            WriteOutcome::AlreadyExists(kv) => {
                WriteOutcome::AlreadyExists(Self::open_lenient(&self.transformer, kv))
            }
            WriteOutcome::Conflict(kv) => {
                WriteOutcome::Conflict(kv.map(|kv| Self::open_lenient(&self.transformer, kv)))
            }
        }
    }
}

#[async_trait]
impl Store for EncryptedStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        let got = self.inner.get(key, revision).await?;
        Ok(GetResponse {
            kv: got.kv.map(|kv| self.open_strict(kv)).transpose()?,
            revision: got.revision,
        })
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let mut page = self.inner.range(req).await?;
        page.kvs = page
            .kvs
            .into_iter()
            .map(|kv| Self::open_lenient(&self.transformer, kv))
            .collect();
        Ok(page)
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<WriteOutcome> {
        let sealed = self.seal(key, value.clone())?;
        let out = self.inner.create(key, sealed).await?;
        Ok(self.open_outcome(out, value))
    }

    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<WriteOutcome> {
        let sealed = self.seal(key, value.clone())?;
        let out = self.inner.update(key, sealed, expected).await?;
        Ok(self.open_outcome(out, value))
    }

    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<DeleteOutcome> {
        let t = &self.transformer;
        Ok(match self.inner.delete(key, expected).await? {
            DeleteOutcome::Deleted { revision, prev } => DeleteOutcome::Deleted {
                revision,
                prev: Self::open_lenient(t, prev),
            },
            DeleteOutcome::Conflict(kv) => DeleteOutcome::Conflict(Self::open_lenient(t, kv)),
            DeleteOutcome::NotFound => DeleteOutcome::NotFound,
        })
    }

    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        let stream = self.inner.watch(prefix, start).await?;
        let t = self.transformer.clone();
        Ok(Box::pin(stream.map(move |batch| {
            batch.map(|events| {
                events
                    .into_iter()
                    .map(|mut ev| {
                        ev.kv = Self::open_lenient(&t, ev.kv);
                        ev.prev = ev.prev.map(|p| Self::open_lenient(&t, p));
                        ev
                    })
                    .collect()
            })
        })))
    }

    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }

    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }

    // A backup keeps the values sealed, as they are at rest: restoring it needs the same
    // encryption configuration, and a snapshot file leaks nothing the data dir would not.
    async fn snapshot(&self) -> Result<rudder_store::SnapshotStream> {
        self.inner.snapshot().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"apiVersion":"apiserver.config.k8s.io/v1","kind":"EncryptionConfiguration",
      "resources":[{"resources":["secrets"],"providers":[
        {"aesgcm":{"keys":[{"name":"k1","secret":"MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="}]}},
        {"identity":{}}]}]}"#;
    const SECRET: &str = "/registry/core/secrets/default/s";
    const OTHER: &str = "/registry/core/configmaps/default/c";

    async fn stores() -> (tempfile::TempDir, Arc<dyn Store>, EncryptedStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw: Arc<dyn Store> = Arc::new(
            rudder_store_embedded::EmbeddedStore::open(dir.path().join("s.redb")).expect("open"),
        );
        let t = Arc::new(Transformer::parse(CONFIG).expect("config"));
        let enc = EncryptedStore::new(raw.clone(), t);
        (dir, raw, enc)
    }

    #[tokio::test]
    async fn every_read_path_sees_plaintext_and_the_disk_does_not() {
        let (_dir, raw, enc) = stores().await;
        let plain = Bytes::from_static(b"{\"data\":{\"p\":\"c2VjcmV0\"}}");
        let start = enc.current_revision().await.expect("rev") + 1;
        let mut watch = enc.watch("/registry/", start).await.expect("watch");
        enc.create(SECRET, plain.clone()).await.expect("create");
        enc.create(OTHER, plain.clone()).await.expect("create");
        let stored = raw
            .get(SECRET, None)
            .await
            .expect("get")
            .kv
            .expect("kv")
            .value;
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
        let other = raw
            .get(OTHER, None)
            .await
            .expect("get")
            .kv
            .expect("kv")
            .value;
        assert_eq!(other, plain, "configmaps are not configured");
        let got = enc.get(SECRET, None).await.expect("get").kv.expect("kv");
        assert_eq!(got.value, plain);
        let page = enc
            .range(RangeRequest::prefix("/registry/"))
            .await
            .expect("range");
        assert!(page.kvs.iter().all(|kv| kv.value == plain));
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let batch = watch.next().await.expect("event").expect("ok");
            seen.extend(batch);
        }
        assert!(seen.iter().all(|e| e.kv.value == plain));
        // An update's conflict and a delete's previous value come back decrypted too.
        let WriteOutcome::Conflict(Some(kv)) =
            enc.update(SECRET, plain.clone(), 1).await.expect("update")
        else {
            panic!("expected a conflict");
        };
        assert_eq!(kv.value, plain);
        let DeleteOutcome::Deleted { prev, .. } = enc.delete(SECRET, None).await.expect("delete")
        else {
            panic!("expected a delete");
        };
        assert_eq!(prev.value, plain);
    }

    #[tokio::test]
    async fn unknown_key_is_an_error_on_get_and_passed_through_on_range() {
        let (_dir, raw, enc) = stores().await;
        raw.create(
            SECRET,
            Bytes::from_static(b"k8s:enc:aesgcm:v1:gone:0123456789abcdef0123456789abcdef"),
        )
        .await
        .expect("create");
        let err = enc.get(SECRET, None).await.expect_err("undecryptable");
        let msg = err.to_string();
        assert!(matches!(err, StoreError::Corrupt(_)), "{msg}");
        assert!(msg.contains(SECRET) && msg.contains("\"gone\""), "{msg}");
        let page = enc
            .range(RangeRequest::prefix("/registry/"))
            .await
            .expect("range");
        assert!(page.kvs[0].value.starts_with(b"k8s:enc:"));
        // The value is still there, untouched: nothing was lost.
        assert!(raw.get(SECRET, None).await.expect("get").kv.is_some());
    }
}
