//! A secondary index over an informer's cache: its objects grouped by a key (for pods, their
//! controller), sharing the cache's `Arc`s, so a controller reads the few objects it owns
//! instead of scanning every cached one (150,000 pods, each sync of each ReplicaSet).
//!
//! The informer updates the index right after its cache, before broadcasting the change: a
//! reader sees the index move forward only, like the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use kube::Resource;
use kube::runtime::reflector::{ObjectRef, Store};

/// Objects grouped by `key`, then by name.
pub struct Index<K: Resource<DynamicType = ()> + 'static> {
    key: fn(&K) -> String,
    groups: RwLock<HashMap<String, HashMap<String, Arc<K>>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Index<K> {
    /// An empty index grouping by `key`.
    pub fn new(key: fn(&K) -> String) -> Self {
        Index {
            key,
            groups: RwLock::new(HashMap::new()),
        }
    }

    /// The objects whose key is `key`.
    pub fn get(&self, key: &str) -> Vec<Arc<K>> {
        self.read(|g| {
            g.get(key)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        })
    }

    /// Whether the object of key `key` named `name` is indexed.
    pub fn contains(&self, key: &str, name: &str) -> bool {
        self.read(|g| g.get(key).is_some_and(|m| m.contains_key(name)))
    }

    /// Replaces `old` (the cached version before a change, if any) by `new` (after it, if any).
    pub(crate) fn replace(&self, old: Option<&Arc<K>>, new: Option<Arc<K>>) {
        let mut groups = self.groups.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = old {
            let key = (self.key)(old);
            if let Some(m) = groups.get_mut(&key) {
                m.remove(old.meta().name.as_deref().unwrap_or_default());
                if m.is_empty() {
                    groups.remove(&key);
                }
            }
        }
        if let Some(new) = new {
            let name = new.meta().name.clone().unwrap_or_default();
            groups
                .entry((self.key)(&new))
                .or_default()
                .insert(name, new);
        }
    }

    /// Rebuilds the index from the whole cache (after a relist).
    pub(crate) fn rebuild(&self, store: &Store<K>) {
        let mut fresh: HashMap<String, HashMap<String, Arc<K>>> = HashMap::new();
        for o in store.state() {
            let name = o.meta().name.clone().unwrap_or_default();
            fresh.entry((self.key)(&o)).or_default().insert(name, o);
        }
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }

    /// The cached version of `o` (what the index holds for it), for [`Index::replace`].
    pub(crate) fn cached(store: &Store<K>, o: &K) -> Option<Arc<K>> {
        store.get(&ObjectRef::from_obj(o))
    }

    fn read<T>(&self, f: impl FnOnce(&HashMap<String, HashMap<String, Arc<K>>>) -> T) -> T {
        // A panic while writing leaves whole maps behind (every write is one insert or one
        // swap): the data is still usable.
        f(&self.groups.read().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher::Event;

    use super::*;

    fn pod(name: &str, group: &str) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.namespace = Some("ns".into());
        p.metadata.labels = Some([("g".to_owned(), group.to_owned())].into());
        p
    }

    fn group(p: &Pod) -> String {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("g").cloned())
            .unwrap_or_default()
    }

    /// Applies events as the informer does: old version from the cache, cache, then index.
    fn apply(writer: &mut Writer<Pod>, store: &Store<Pod>, index: &Index<Pod>, ev: Event<Pod>) {
        let old = match &ev {
            Event::Apply(o) | Event::Delete(o) => Index::cached(store, o),
            _ => None,
        };
        writer.apply_watcher_event(&ev);
        match ev {
            Event::Apply(o) => index.replace(old.as_ref(), Index::cached(store, &o)),
            Event::Delete(_) => index.replace(old.as_ref(), None),
            Event::InitDone => index.rebuild(store),
            Event::Init | Event::InitApply(_) => {}
        }
    }

    fn names(index: &Index<Pod>, key: &str) -> Vec<String> {
        let mut n: Vec<String> = index
            .get(key)
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn follows_creates_moves_deletes_and_relists() {
        let mut writer = Writer::<Pod>::default();
        let store = writer.as_reader();
        let index = Index::new(group);
        // An event, then two keys with the names each should hold.
        type Step = (
            Event<Pod>,
            &'static str,
            Vec<&'static str>,
            &'static str,
            Vec<&'static str>,
        );
        let steps: Vec<Step> = vec![
            (Event::Apply(pod("a", "x")), "x", vec!["a"], "y", vec![]),
            (
                Event::Apply(pod("b", "x")),
                "x",
                vec!["a", "b"],
                "y",
                vec![],
            ),
            // A changed key moves the object.
            (Event::Apply(pod("a", "y")), "x", vec!["b"], "y", vec!["a"]),
            (Event::Delete(pod("b", "x")), "x", vec![], "y", vec!["a"]),
            // A relist replaces everything, and only once it is done.
            (Event::Init, "x", vec![], "y", vec!["a"]),
            (Event::InitApply(pod("c", "x")), "x", vec![], "y", vec!["a"]),
            (Event::InitDone, "x", vec!["c"], "y", vec![]),
        ];
        for (i, (ev, k1, want1, k2, want2)) in steps.into_iter().enumerate() {
            apply(&mut writer, &store, &index, ev);
            assert_eq!(names(&index, k1), want1, "step {i}, key {k1}");
            assert_eq!(names(&index, k2), want2, "step {i}, key {k2}");
        }
        assert!(index.contains("x", "c") && !index.contains("y", "c"));
        // The index shares the cache's objects rather than copying them.
        let cached = store
            .get(&ObjectRef::new("c").within("ns"))
            .expect("cached");
        assert!(Arc::ptr_eq(&cached, &index.get("x")[0]));
    }
}
