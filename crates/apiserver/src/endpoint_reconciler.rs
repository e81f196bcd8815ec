//! The lease endpoint reconciler (upstream's `--endpoint-reconciler-type=lease`): every
//! [`PERIOD`](crate::endpoint_leases::PERIOD) each API server renews its Lease, lists the
//! others', deletes expired ones and, when the set of live addresses differs from what the
//! `kubernetes` Endpoints and EndpointSlices say, rewrites them. A server stopping cleanly
//! deletes its Lease and takes its address out at once. Decisions are in `endpoint_leases` and
//! `kubernetes_service`; this is the store I/O.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use rudder_store::{DeleteOutcome, RangeRequest, Revision, Store, StoreError, WriteOutcome};
use serde_json::{Value, json};

use crate::endpoint_leases as leases;
use crate::kubernetes_service as ks;
use crate::{bootstrap, keys, objects};

/// One server's reconciler.
pub struct EndpointReconciler {
    store: Arc<dyn Store>,
    range: ipnet::Ipv4Net,
    own: SocketAddr,
    /// This process's Lease holder identity: the Lease name and a random suffix, as upstream's
    /// identity Leases, so a restart on the same address shows as a new holder.
    holder: String,
    /// Set once the server leaves: no round may bring its Lease back afterwards. Held across a
    /// whole round, as upstream's `reconcilingLock`, so leaving waits for a round under way.
    left: tokio::sync::Mutex<bool>,
}

impl EndpointReconciler {
    /// The reconciler of the server whose Service range is `range` and whose advertised address
    /// is `own`.
    pub fn new(store: Arc<dyn Store>, range: ipnet::Ipv4Net, own: SocketAddr) -> Self {
        let holder = format!("{}_{}", leases::lease_name(own), objects::new_uid());
        EndpointReconciler {
            store,
            range,
            own,
            holder,
            left: tokio::sync::Mutex::new(false),
        }
    }

    /// One round: the Service exists, this server's Lease is renewed, the endpoints name the
    /// live servers. A failed renewal skips the rest, as upstream: the endpoints are not
    /// written from a view this server's own Lease may be missing from.
    pub async fn reconcile(&self) -> Result<(), StoreError> {
        let left = self.left.lock().await;
        if *left {
            return Ok(());
        }
        bootstrap::ensure_kubernetes_service(&*self.store, self.range, self.own.port()).await?;
        self.renew().await?;
        self.sync(false).await
    }

    /// Every [`leases::PERIOD`], until the task is dropped. The first round is the caller's.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(leases::PERIOD);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "reconciling the kubernetes Service's endpoints");
            }
        }
    }

    /// Takes this server out: deletes its Lease and rewrites the endpoints without it (unless
    /// it is the last one). Later rounds do nothing.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let mut left = self.left.lock().await;
        *left = true;
        if let DeleteOutcome::Deleted { .. } = self.store.delete(&self.lease_key(), None).await? {
            tracing::info!(address = %self.own, "removed this server's endpoint Lease");
        }
        self.sync(true).await
    }

    fn lease_key(&self) -> String {
        keys::object_key(
            "coordination.k8s.io",
            "leases",
            Some(leases::NAMESPACE),
            &leases::lease_name(self.own),
        )
    }

    /// Creates or renews this server's Lease. Losing a race to another writer of the same key
    /// (a second process advertising the same address) is fine: the Lease is fresh either way.
    async fn renew(&self) -> Result<(), StoreError> {
        let key = self.lease_key();
        let fresh = leases::lease(self.own, &self.holder, &now_micro());
        match self.store.get(&key, None).await?.kv {
            None => {
                bootstrap::create_new(&*self.store, &key, fresh).await?;
            }
            Some(kv) => {
                let stored: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
                let obj = leases::renewed(&stored, &fresh);
                let obj = with_identity(obj, &stored);
                self.store
                    .update(&key, encode(&obj)?, kv.mod_revision)
                    .await?;
            }
        }
        Ok(())
    }

    /// Brings the Endpoints and slices to the live Leases. The current objects are read before
    /// the Leases: a server that leaves after the Lease list below deletes its Lease and then
    /// writes, both after these reads, so this round's write conflicts instead of bringing its
    /// address back.
    async fn sync(&self, leaving: bool) -> Result<(), StoreError> {
        let eps_key = keys::object_key("", "endpoints", Some(ks::NAMESPACE), ks::NAME);
        let endpoints_now = match self.store.get(&eps_key, None).await?.kv {
            Some(kv) => Some((decode(&kv.value), kv.mod_revision)),
            None => None,
        };
        let slice_prefix = format!(
            "{}{}",
            keys::collection_prefix("discovery.k8s.io", "endpointslices", Some(ks::NAMESPACE)),
            ks::NAME
        );
        let mut slices_now: BTreeMap<String, (Value, Revision)> = BTreeMap::new();
        for kv in list(&*self.store, &slice_prefix).await? {
            let name = kv.key.rsplit('/').next().unwrap_or_default().to_owned();
            if name == ks::NAME || ks::is_extra_slice(&name) {
                slices_now.insert(name, (decode(&kv.value), kv.mod_revision));
            }
        }
        let lease_prefix =
            keys::collection_prefix("coordination.k8s.io", "leases", Some(leases::NAMESPACE));
        let stored_leases = list(&*self.store, &lease_prefix).await?;

        let mut observed = Vec::new();
        let mut revisions = BTreeMap::new();
        for kv in &stored_leases {
            if let Some(o) = leases::observe(&decode(&kv.value)) {
                revisions.insert(o.name.clone(), kv.mod_revision);
                observed.push(o);
            }
        }
        let sorted = leases::sort(&observed, now_secs());
        for name in &sorted.expired {
            let key = format!("{lease_prefix}{name}");
            // Only the version seen expired: a renewal since then wins.
            if let Some(rev) = revisions.get(name)
                && let DeleteOutcome::Deleted { .. } = self.store.delete(&key, Some(*rev)).await?
            {
                tracing::info!(lease = %name, "deleted an expired API server endpoint Lease");
            }
        }
        let Some(set) = leases::desired(&sorted.live, self.own, leaving) else {
            tracing::info!(
                "no other API server is live: the kubernetes endpoints stay as they are"
            );
            return Ok(());
        };
        let plan = ks::plan(
            endpoints_now.as_ref().map(|(v, _)| v),
            &slices_now
                .iter()
                .map(|(n, (v, _))| (n.clone(), v.clone()))
                .collect(),
            &set,
        );
        if plan.is_empty() {
            return Ok(());
        }
        let addresses: Vec<String> = set.iter().map(ToString::to_string).collect();
        tracing::info!(?addresses, "setting the kubernetes Service's endpoints");
        if let Some(eps) = plan.endpoints {
            write(&*self.store, &eps_key, endpoints_now.as_ref(), eps).await?;
        }
        for slice in plan.slices {
            let name = slice["metadata"]["name"]
                .as_str()
                .unwrap_or(ks::NAME)
                .to_owned();
            let key = keys::object_key(
                "discovery.k8s.io",
                "endpointslices",
                Some(ks::NAMESPACE),
                &name,
            );
            write(&*self.store, &key, slices_now.get(&name), slice).await?;
        }
        for name in plan.delete {
            let key = keys::object_key(
                "discovery.k8s.io",
                "endpointslices",
                Some(ks::NAMESPACE),
                &name,
            );
            let rev = slices_now.get(&name).map(|(_, r)| *r);
            self.store.delete(&key, rev).await?;
        }
        Ok(())
    }
}

/// Every key under `prefix`, in pages.
async fn list(store: &dyn Store, prefix: &str) -> Result<Vec<rudder_store::KeyValue>, StoreError> {
    let mut out = Vec::new();
    let mut req = RangeRequest {
        prefix: prefix.to_owned(),
        start: None,
        limit: 500,
        revision: None,
    };
    loop {
        let page = store.range(req.clone()).await?;
        out.extend(page.kvs.iter().cloned());
        match page.continue_key() {
            Some(next) => {
                req.start = Some(next);
                req.revision = Some(page.revision);
            }
            None => return Ok(out),
        }
    }
}

/// Writes `wanted` over `current` (as read, with its revision), keeping the stored uid and
/// creation time; a concurrent writer wins and the next round looks again.
async fn write(
    store: &dyn Store,
    key: &str,
    current: Option<&(Value, Revision)>,
    wanted: Value,
) -> Result<(), StoreError> {
    match current {
        None => {
            bootstrap::create_new(store, key, wanted).await?;
        }
        Some((stored, rev)) => {
            let obj = with_identity(wanted, stored);
            if let WriteOutcome::Conflict(_) = store.update(key, encode(&obj)?, *rev).await? {
                tracing::debug!(key, "another server wrote first");
            }
        }
    }
    Ok(())
}

/// `obj` with `stored`'s uid and creation time, or new ones when it had none.
fn with_identity(mut obj: Value, stored: &Value) -> Value {
    for field in ["uid", "creationTimestamp"] {
        if let Some(v) = stored.pointer(&format!("/metadata/{field}")) {
            obj["metadata"][field] = v.clone();
        }
    }
    if obj.pointer("/metadata/uid").is_none() {
        obj["metadata"]["uid"] = json!(objects::new_uid());
        obj["metadata"]["creationTimestamp"] = json!(objects::now_rfc3339());
    }
    obj
}

fn decode(value: &[u8]) -> Value {
    serde_json::from_slice(value).unwrap_or_default()
}

fn encode(v: &Value) -> Result<Bytes, StoreError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| StoreError::Backend(e.to_string()))
}

fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

fn now_secs() -> i64 {
    i64::try_from(since_epoch().as_secs()).unwrap_or(i64::MAX)
}

/// Now as `metav1.MicroTime`.
fn now_micro() -> String {
    let d = since_epoch();
    rudder_machinery::timestamp::format_rfc3339_micros(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Some(i64::from(d.subsec_micros())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store =
            rudder_store_embedded::EmbeddedStore::open(dir.path().join("db")).expect("open");
        (dir, Arc::new(store))
    }

    async fn get(store: &dyn Store, key: &str) -> Option<Value> {
        let kv = store.get(key, None).await.expect("get").kv?;
        Some(decode(&kv.value))
    }

    fn eps_key() -> String {
        keys::object_key("", "endpoints", Some(ks::NAMESPACE), ks::NAME)
    }

    fn ports(eps: &Value) -> Vec<u64> {
        eps["subsets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["ports"][0]["port"].as_u64())
            .collect()
    }

    #[tokio::test]
    async fn servers_join_and_leave() {
        let (_dir, store) = store();
        let range: ipnet::Ipv4Net = "10.96.0.0/24".parse().expect("range");
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let a = EndpointReconciler::new(store.clone(), range, addr(6443));
        let b = EndpointReconciler::new(store.clone(), range, addr(6444));
        a.reconcile().await.expect("a");
        let eps = get(&*store, &eps_key()).await.expect("endpoints");
        assert_eq!(ports(&eps), [6443]);
        b.reconcile().await.expect("b");
        let eps = get(&*store, &eps_key()).await.expect("endpoints");
        assert_eq!(ports(&eps), [6443, 6444]);
        let slice = keys::object_key(
            "discovery.k8s.io",
            "endpointslices",
            Some(ks::NAMESPACE),
            "kubernetes-6444",
        );
        assert!(get(&*store, &slice).await.is_some());
        // Rounds in agreement write nothing.
        let rev = store.current_revision().await.expect("rev");
        let lease_rev = |r: Revision| r + 2; // the two renewals
        a.reconcile().await.expect("a");
        b.reconcile().await.expect("b");
        assert_eq!(store.current_revision().await.expect("rev"), lease_rev(rev));
        // A clean stop takes the address out at once, with its slice.
        b.leave().await.expect("leave");
        let eps = get(&*store, &eps_key()).await.expect("endpoints");
        assert_eq!(ports(&eps), [6443]);
        assert!(get(&*store, &slice).await.is_none());
        assert!(get(&*store, &b.lease_key()).await.is_none());
        b.reconcile().await.expect("after leaving");
        assert!(get(&*store, &b.lease_key()).await.is_none(), "no comeback");
        // The last server leaving keeps its address.
        a.leave().await.expect("leave");
        let eps = get(&*store, &eps_key()).await.expect("endpoints");
        assert_eq!(ports(&eps), [6443]);
        // The Service exists, made by the first round.
        let svc = keys::object_key("", "services", Some(ks::NAMESPACE), ks::NAME);
        assert!(get(&*store, &svc).await.is_some());
    }

    #[tokio::test]
    async fn an_expired_lease_is_deleted_and_its_address_dropped() {
        let (_dir, store) = store();
        let range: ipnet::Ipv4Net = "10.96.0.0/24".parse().expect("range");
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let crashed = EndpointReconciler::new(store.clone(), range, addr(6444));
        crashed.reconcile().await.expect("crashed");
        // Its last renewal was long ago.
        let key = crashed.lease_key();
        let mut l = get(&*store, &key).await.expect("lease");
        l["spec"]["renewTime"] = json!("2020-01-01T00:00:00.000000Z");
        let kv = store.get(&key, None).await.expect("get").kv.expect("kv");
        store
            .update(&key, encode(&l).expect("encode"), kv.mod_revision)
            .await
            .expect("update");
        let live = EndpointReconciler::new(store.clone(), range, addr(6443));
        live.reconcile().await.expect("live");
        let eps = get(&*store, &eps_key()).await.expect("endpoints");
        assert_eq!(ports(&eps), [6443]);
        assert!(get(&*store, &key).await.is_none(), "expired Lease deleted");
    }
}
