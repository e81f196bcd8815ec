//! A kube-rs reflector whose every event wakes one `Notify`: how the proxy, the routes, cluster
//! DNS and the Ingress controller each keep local copies of the objects they turn into state.

use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store, reflector};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::Notify;

/// Reflects `api` (with `config`) into a store and wakes `changed` after every event; `what`
/// names the watch in the debug log of its errors. Returns the store and the task feeding it.
pub fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
    changed: &Arc<Notify>,
    what: &'static str,
) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let changed = changed.clone();
    let task = tokio::spawn(async move {
        // Nothing here reads managedFields; the cache keeps objects without them.
        let events = watcher(api, config).modify(|o| o.meta_mut().managed_fields = None);
        let events = reflector(writer, events).default_backoff();
        futures::pin_mut!(events);
        while let Some(ev) = events.next().await {
            match ev {
                Ok(_) => changed.notify_one(),
                Err(e) => tracing::debug!(error = %e, what),
            }
        }
    });
    (store, task)
}
