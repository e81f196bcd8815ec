//! Shared informers: one watch per kind feeding a reflector cache that every controller reads,
//! plus a broadcast of what changed (deletions included) that controllers turn into reconcile
//! requests. kube's `Controller` opens one watch per relation and per controller and its shared
//! streams do not forward deletions; this keeps one watch per kind and hands the events to
//! `kube::runtime::applier`, the same scheduler `Controller` runs on.
//!
//! A change is broadcast only after the cache holds it, so a controller woken by a change
//! always reads a cache at least that new (no lost wake-ups).

use std::sync::Arc;

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use tokio::sync::broadcast;

use crate::informer_index::Index;

/// What a subscriber hears.
#[derive(Clone, Debug)]
pub enum Change<K> {
    /// An object was created or changed (now in the cache).
    Applied(Arc<K>),
    /// An object was deleted (gone from the cache).
    Deleted(Arc<K>),
    /// The cache was rebuilt from a fresh list, or the subscriber fell behind: anything may have
    /// changed.
    Relisted,
}

/// A cluster-wide cache of `K` and its change feed.
pub struct Informer<K: Resource<DynamicType = ()> + 'static> {
    /// The cache.
    pub store: Store<K>,
    /// The cache grouped by a key, if asked for ([`Informer::start_indexed`]).
    pub index: Option<Arc<Index<K>>>,
    tx: broadcast::Sender<Change<K>>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Informer {
            store: self.store.clone(),
            index: self.index.clone(),
            tx: self.tx.clone(),
        }
    }
}

/// Changes a subscriber may fall behind by before it is told to relist.
const BUFFER: usize = 8192;

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    /// Starts watching every `K` until `stop`.
    pub fn start(
        client: &Client,
        what: &'static str,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self::start_with(client, what, watcher::Config::default(), stop)
    }

    /// Starts watching the `K` that `config` selects (a field or label selector) until `stop`.
    pub fn start_with(
        client: &Client,
        what: &'static str,
        config: watcher::Config,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        Self::start_inner(client, what, config, None, |_| {}, stop)
    }

    /// Starts watching every `K` until `stop`, cutting each object with `trim` before it is
    /// cached (what no controller reads) and grouping the cache by `key`.
    pub fn start_indexed(
        client: &Client,
        what: &'static str,
        key: fn(&K) -> String,
        trim: fn(&mut K),
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let index = Arc::new(Index::new(key));
        Self::start_inner(
            client,
            what,
            watcher::Config::default(),
            Some(index),
            trim,
            stop,
        )
    }

    fn start_inner(
        client: &Client,
        what: &'static str,
        config: watcher::Config,
        index: Option<Arc<Index<K>>>,
        trim: fn(&mut K),
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> Self {
        let mut writer: Writer<K> = Writer::default();
        let store = writer.as_reader();
        let (tx, _) = broadcast::channel(BUFFER);
        let sender = tx.clone();
        let api: Api<K> = Api::all(client.clone());
        // No controller reads managedFields; at scale they are a good part of each cached
        // object (upstream's informers drop them too).
        let events = watcher(api, config)
            .modify(move |o| {
                o.meta_mut().managed_fields = None;
                trim(o);
            })
            .default_backoff();
        let reader = store.clone();
        let indexed = index.clone();
        let driver = events.for_each(move |ev| {
            match ev {
                Ok(ev) => {
                    let old = match (&indexed, &ev) {
                        (Some(_), watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                            Index::cached(&reader, o)
                        }
                        _ => None,
                    };
                    writer.apply_watcher_event(&ev);
                    let change = match ev {
                        watcher::Event::Apply(o) => {
                            // The cache's own copy: a second one per queued change would double
                            // the memory of a busy kind.
                            let cached = reader.get(&ObjectRef::from_obj(&o));
                            if let Some(ix) = &indexed {
                                ix.replace(old.as_ref(), cached.clone());
                            }
                            Some(Change::Applied(cached.unwrap_or_else(|| Arc::new(o))))
                        }
                        watcher::Event::Delete(o) => {
                            if let Some(ix) = &indexed {
                                ix.replace(old.as_ref(), None);
                            }
                            Some(Change::Deleted(Arc::new(o)))
                        }
                        watcher::Event::InitDone => {
                            if let Some(ix) = &indexed {
                                ix.rebuild(&reader);
                            }
                            Some(Change::Relisted)
                        }
                        watcher::Event::Init | watcher::Event::InitApply(_) => None,
                    };
                    if let Some(c) = change {
                        // No subscriber is not an error: controllers may all be disabled.
                        let _ = sender.send(c);
                    }
                }
                Err(e) => tracing::warn!(cache = what, error = %e, "watch failed; retrying"),
            }
            std::future::ready(())
        });
        tokio::spawn(async move {
            tokio::select! {
                _ = driver => {}
                _ = stop => {}
            }
        });
        Informer { store, index, tx }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static> Informer<K> {
    /// The changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change<K>> {
        self.tx.subscribe()
    }

    /// Reconcile requests for objects of kind `M` (cached in `main`) derived from changes of
    /// `K` by `map`; a relist (or falling behind) requests every `M`. Starts with a request for
    /// every `M`, so a controller reconciles everything once when it starts.
    pub fn triggers<M>(
        &self,
        main: Store<M>,
        map: impl Fn(&K) -> Vec<ObjectRef<M>> + Send + 'static,
    ) -> BoxStream<'static, ObjectRef<M>>
    where
        M: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let rx = self.subscribe();
        let changes = futures::stream::unfold(rx, |mut rx| async move {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(broadcast::error::RecvError::Lagged(_)) => Change::Relisted,
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((change, rx))
        });
        futures::stream::once(std::future::ready(Change::Relisted))
            .chain(changes)
            .flat_map(move |c| {
                let refs = match c {
                    Change::Applied(o) | Change::Deleted(o) => map(&o),
                    Change::Relisted => main
                        .state()
                        .iter()
                        .map(|m| ObjectRef::from_obj(m.as_ref()))
                        .collect(),
                };
                futures::stream::iter(refs)
            })
            .boxed()
    }
}

/// Requests for the object itself on each change of it.
pub fn own_triggers<K>(informer: &Informer<K>) -> BoxStream<'static, ObjectRef<K>>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    informer.triggers(informer.store.clone(), |o| vec![ObjectRef::from_obj(o)])
}

/// Merges trigger streams into the queue `applier` takes.
pub fn queue<K>(
    streams: Vec<BoxStream<'static, ObjectRef<K>>>,
) -> impl Stream<Item = Result<ObjectRef<K>, std::convert::Infallible>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + 'static,
{
    futures::stream::select_all(streams).map(Ok)
}
