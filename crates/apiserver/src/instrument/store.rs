//! `etcd_request_duration_seconds{operation,type}`: the latency of every store call the API
//! server makes, by operation and by the group-resource the key belongs to (`pods`,
//! `deployments.apps`), as upstream's storage layer reports it — whichever backend, embedded
//! or etcd, is underneath.
//!
//! The store boundary is hot (every write and every cache-miss read): each group-resource's
//! histograms are resolved once and then found by a borrowed slice of the key, without
//! allocating.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::metrics::histogram::Histogram;
use rudder_metrics::{HistogramFamily, buckets, prometheus_client};
use rudder_store::{
    DeleteOutcome, GetResponse, RangeRequest, RangeResponse, Result, Revision, Store, WatchStream,
    WriteOutcome,
};

use crate::keys::REGISTRY_PREFIX;

/// The operations recorded, in the order of [`Handles`].
const OPERATIONS: [&str; 5] = ["get", "list", "create", "update", "delete"];
const GET: usize = 0;
const LIST: usize = 1;
const CREATE: usize = 2;
const UPDATE: usize = 3;
const DELETE: usize = 4;

type Labels = [(&'static str, String); 2];
type Handles = Arc<[Histogram; 5]>;

static FAMILY: LazyLock<HistogramFamily<Labels>> = LazyLock::new(|| {
    let f = rudder_metrics::histogram_family(buckets::API_REQUEST);
    rudder_metrics::register(
        "etcd_request_duration_seconds",
        "Etcd request latency in seconds for each operation and object type",
        f.clone(),
    );
    f
});

pub(super) fn init() {
    LazyLock::force(&FAMILY);
}

/// The `{group}/{resource}` part of a key or prefix (`core/pods`), the cache key of its
/// histograms; `""` for keys outside the registry or prefixes above one resource.
fn resource_part(key: &str) -> &str {
    let Some(rest) = key.strip_prefix(REGISTRY_PREFIX) else {
        return "";
    };
    let mut slashes = rest.match_indices('/').map(|(i, _)| i);
    match (slashes.next(), slashes.next()) {
        (Some(_), Some(end)) => &rest[..end],
        (Some(end), None) if end + 1 < rest.len() => rest,
        _ => "",
    }
}

/// Upstream's `type` label: the group-resource (`pods`, `deployments.apps`).
fn type_label(part: &str) -> String {
    match part.split_once('/') {
        Some(("core", resource)) => resource.to_owned(),
        Some((group, resource)) => format!("{resource}.{group}"),
        None => String::new(),
    }
}

/// A [`Store`] that times every call of the store underneath.
pub struct MeteredStore {
    inner: Arc<dyn Store>,
    handles: RwLock<HashMap<String, Handles>>,
}

impl MeteredStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>) -> Self {
        init();
        Self {
            inner,
            handles: RwLock::default(),
        }
    }

    fn handles(&self, key: &str) -> Handles {
        let part = resource_part(key);
        if let Some(h) = self
            .handles
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(part)
        {
            return h.clone();
        }
        let ty = type_label(part);
        let handles: Handles = Arc::new(OPERATIONS.map(|op| {
            FAMILY.get_or_create_owned(&[("operation", op.to_owned()), ("type", ty.clone())])
        }));
        self.handles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(part.to_owned(), handles.clone());
        handles
    }

    fn observe(&self, key: &str, op: usize, started: Instant) {
        self.handles(key)[op].observe(started.elapsed().as_secs_f64());
    }
}

#[async_trait]
impl Store for MeteredStore {
    async fn get(&self, key: &str, revision: Option<Revision>) -> Result<GetResponse> {
        let started = Instant::now();
        let r = self.inner.get(key, revision).await;
        self.observe(key, GET, started);
        r
    }
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        let started = Instant::now();
        let handles = self.handles(&req.prefix);
        let r = self.inner.range(req).await;
        handles[LIST].observe(started.elapsed().as_secs_f64());
        r
    }
    async fn create(&self, key: &str, value: Bytes) -> Result<WriteOutcome> {
        let started = Instant::now();
        let r = self.inner.create(key, value).await;
        self.observe(key, CREATE, started);
        r
    }
    async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<WriteOutcome> {
        let started = Instant::now();
        let r = self.inner.update(key, value, expected).await;
        self.observe(key, UPDATE, started);
        r
    }
    async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<DeleteOutcome> {
        let started = Instant::now();
        let r = self.inner.delete(key, expected).await;
        self.observe(key, DELETE, started);
        r
    }
    // Watches live as long as the cache; upstream does not time them either.
    async fn watch(&self, prefix: &str, start: Revision) -> Result<WatchStream> {
        self.inner.watch(prefix, start).await
    }
    async fn compact(&self, revision: Revision) -> Result<()> {
        self.inner.compact(revision).await
    }
    async fn current_revision(&self) -> Result<Revision> {
        self.inner.current_revision().await
    }
    async fn snapshot(&self) -> Result<rudder_store::SnapshotStream> {
        self.inner.snapshot().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_label_table() {
        let cases = [
            ("/registry/core/pods/default/web", "pods"),
            ("/registry/core/pods/", "pods"),
            ("/registry/core/pods", "pods"),
            ("/registry/apps/deployments/ns/d", "deployments.apps"),
            ("/registry/example.com/widgets/a/b", "widgets.example.com"),
            ("/registry/core/nodes/n1", "nodes"),
            ("/registry/", ""),
            ("/registry/core/", ""),
            ("/other/x/y", ""),
        ];
        for (key, want) in cases {
            assert_eq!(type_label(resource_part(key)), want, "{key}");
        }
    }

    #[tokio::test]
    async fn every_operation_is_timed_by_resource() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = rudder_store_embedded::EmbeddedStore::open(dir.path().join("db"))
            .expect("open the store");
        let store = MeteredStore::new(Arc::new(inner));
        let key = "/registry/metricstest.example/gizmos/ns/a";
        let count = |op: &str| {
            let line = format!(
                "etcd_request_duration_seconds_count{{operation=\"{op}\",type=\"gizmos.metricstest.example\"}} "
            );
            let text = rudder_metrics::encode();
            text.lines()
                .find_map(|l| l.strip_prefix(line.as_str()).map(str::to_owned))
                .unwrap_or_default()
        };
        store
            .create(key, Bytes::from_static(b"{}"))
            .await
            .expect("create");
        let rev = store
            .get(key, None)
            .await
            .expect("get")
            .kv
            .expect("kv")
            .mod_revision;
        store
            .update(key, Bytes::from_static(b"{}"), rev)
            .await
            .expect("update");
        store
            .range(RangeRequest::prefix(
                "/registry/metricstest.example/gizmos/",
            ))
            .await
            .expect("range");
        store.delete(key, None).await.expect("delete");
        for op in OPERATIONS {
            assert_eq!(count(op), "1", "{op}");
        }
    }
}
