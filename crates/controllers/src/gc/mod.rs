//! The garbage collector: deletes objects whose owners are gone (background propagation),
//! deletes an owner's dependents before the owner (`foregroundDeletion` finalizer), or strips
//! the owner from its dependents (`orphan` finalizer). It watches the metadata of every
//! resource discovery lists (PartialObjectMetadata), keeps the ownership [`graph`], and works
//! through a queue of UIDs to check; [`graph`] holds the decisions.

pub mod graph;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::core::PartialObjectMeta;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, api::DynamicObject};
use serde_json::json;
use tokio::sync::mpsc;

use self::graph::{DependentAction, Graph, Node, OwnerAction, OwnerState};
use crate::{Context, Result};

/// How often discovery looks for new resources (CRDs).
const REDISCOVER: Duration = Duration::from_secs(30);
/// How long a failed check waits before it is retried.
const RETRY: Duration = Duration::from_secs(2);

/// Resources the collector does not watch: events are many, short-lived and never owners.
const IGNORED: &[(&str, &str)] = &[("", "events"), ("events.k8s.io", "events")];

type Kinds = HashMap<(String, String), (ApiResource, Scope)>;

struct Gc {
    client: Client,
    graph: Mutex<Graph>,
    /// (apiVersion, kind) → how to reach it.
    kinds: Mutex<Kinds>,
    queue: mpsc::UnboundedSender<String>,
    /// Resources whose first list has not completed; the collector decides nothing about
    /// owners until every one has, or it would miss dependents.
    pending_lists: Mutex<HashSet<String>>,
}

/// Runs the garbage collector.
pub async fn run(ctx: Context) -> Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    let gc = Arc::new(Gc {
        client: ctx.client.clone(),
        graph: Mutex::new(Graph::default()),
        kinds: Mutex::new(HashMap::new()),
        queue: tx,
        pending_lists: Mutex::new(HashSet::new()),
    });
    let discover = {
        let gc = gc.clone();
        async move {
            let mut watched: HashSet<String> = HashSet::new();
            loop {
                match Discovery::new(gc.client.clone()).run().await {
                    Ok(d) => gc.watch_new(&d, &mut watched),
                    Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
                }
                tokio::time::sleep(REDISCOVER).await;
            }
        }
    };
    let work = {
        let gc = gc.clone();
        async move {
            loop {
                let Some(first) = rx.recv().await else {
                    return;
                };
                // Wait for the first lists, then take what queued up meanwhile, once each.
                while !gc.lock_pending().is_empty() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let mut batch = vec![first];
                while let Ok(u) = rx.try_recv() {
                    batch.push(u);
                }
                let mut seen = HashSet::new();
                for uid in batch {
                    if seen.insert(uid.clone())
                        && let Err(e) = gc.process(&uid).await
                    {
                        tracing::warn!(uid, error = %e, "garbage collector: retrying");
                        let tx = gc.queue.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(RETRY).await;
                            let _ = tx.send(uid);
                        });
                    }
                }
            }
        }
    };
    tracing::info!(
        controller = "garbage-collector-controller",
        "controller started"
    );
    tokio::select! {
        _ = discover => {}
        _ = work => {}
        _ = ctx.stopped() => {}
    }
    Ok(())
}

fn node_from(ar: &ApiResource, m: &PartialObjectMeta<DynamicObject>) -> Option<Node> {
    let meta = &m.metadata;
    Some(Node {
        uid: meta.uid.clone()?,
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone()?,
        owners: meta.owner_references.clone().unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        finalizers: meta.finalizers.clone().unwrap_or_default(),
    })
}

impl Gc {
    fn lock_graph(&self) -> std::sync::MutexGuard<'_, Graph> {
        self.graph.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.pending_lists.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a metadata watch for each resource not yet watched.
    fn watch_new(self: &Arc<Self>, d: &Discovery, watched: &mut HashSet<String>) {
        for group in d.groups() {
            for (ar, caps) in group.recommended_resources() {
                if !usable(&ar, &caps) {
                    continue;
                }
                let id = format!("{}/{}", ar.api_version, ar.plural);
                if !watched.insert(id.clone()) {
                    continue;
                }
                self.kinds.lock().unwrap_or_else(|p| p.into_inner()).insert(
                    (ar.api_version.clone(), ar.kind.clone()),
                    (ar.clone(), caps.scope.clone()),
                );
                self.lock_pending().insert(id.clone());
                let gc = self.clone();
                tokio::spawn(async move { gc.watch(ar, id).await });
            }
        }
    }

    async fn watch(self: Arc<Self>, ar: ApiResource, id: String) {
        // Metadata only: the collector needs no spec or status.
        let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(self.client.clone(), &ar);
        let mut listed: Option<HashSet<String>> = None;
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(ev) = events.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::debug!(resource = %id, error = %e, "garbage collector: watch failed; retrying");
                    continue;
                }
            };
            match ev {
                watcher::Event::Init => listed = Some(HashSet::new()),
                watcher::Event::InitApply(m) | watcher::Event::Apply(m) => {
                    if let Some(n) = node_from(&ar, &m) {
                        if let Some(l) = listed.as_mut() {
                            l.insert(n.uid.clone());
                        }
                        self.applied(n);
                    }
                }
                watcher::Event::Delete(m) => {
                    if let Some(uid) = m.metadata.uid.clone() {
                        self.deleted(&uid);
                    }
                }
                watcher::Event::InitDone => {
                    // Objects of this kind missing from a fresh list were deleted meanwhile.
                    if let Some(l) = listed.take() {
                        let stale: Vec<String> = {
                            let g = self.lock_graph();
                            g.uids()
                                .into_iter()
                                .filter(|u| {
                                    g.get(u).is_some_and(|n| {
                                        n.api_version == ar.api_version && n.kind == ar.kind
                                    }) && !l.contains(u)
                                })
                                .collect()
                        };
                        for u in stale {
                            self.deleted(&u);
                        }
                    }
                    // Dependents of this kind's objects were judged while the kind was unknown
                    // (a CRD discovered late, its objects maybe gone already): judge them again.
                    let dependents: Vec<String> = {
                        let g = self.lock_graph();
                        g.uids()
                            .into_iter()
                            .filter(|u| {
                                g.get(u).is_some_and(|n| {
                                    n.owners.iter().any(|o| {
                                        o.api_version == ar.api_version && o.kind == ar.kind
                                    })
                                })
                            })
                            .collect()
                    };
                    for u in dependents {
                        self.enqueue(&u);
                    }
                    self.lock_pending().remove(&id);
                }
            }
        }
    }

    fn enqueue(&self, uid: &str) {
        let _ = self.queue.send(uid.to_owned());
    }

    fn applied(&self, n: Node) {
        let uid = n.uid.clone();
        let owners: Vec<String> = n.owners.iter().map(|o| o.uid.clone()).collect();
        let check = !n.owners.is_empty() || n.deleting;
        // An owner being deleted waits for changes of its dependents; one that is not has
        // nothing to do about them. (Waking every owner on every change of a dependent made the
        // collector walk a 1,000-pod ReplicaSet's dependents on each pod status write.)
        let deleting_owners: Vec<String> = {
            let mut g = self.lock_graph();
            g.upsert(n);
            owners
                .into_iter()
                .filter(|o| g.get(o).is_some_and(|owner| owner.deleting))
                .collect()
        };
        if check {
            self.enqueue(&uid);
        }
        for o in deleting_owners {
            self.enqueue(&o);
        }
    }

    fn deleted(&self, uid: &str) {
        let (owners, dependents) = {
            let mut g = self.lock_graph();
            let owners: Vec<String> = g
                .remove(uid)
                .map(|n| n.owners.into_iter().map(|o| o.uid).collect())
                .unwrap_or_default();
            let dependents: Vec<String> =
                g.dependents_of(uid).iter().map(|d| d.uid.clone()).collect();
            (owners, dependents)
        };
        for u in owners.iter().chain(dependents.iter()) {
            self.enqueue(u);
        }
    }

    fn api_for(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Option<Api<DynamicObject>> {
        let kinds = self.kinds.lock().unwrap_or_else(|p| p.into_inner());
        let (ar, scope) = kinds.get(&(api_version.to_owned(), kind.to_owned()))?;
        Some(match (scope, namespace) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, ar),
            _ => Api::all_with(self.client.clone(), ar),
        })
    }

    /// Checks one object, as an owner being deleted and as a dependent.
    async fn process(&self, uid: &str) -> Result<()> {
        let (node, action, dependents) = {
            let g = self.lock_graph();
            let Some(node) = g.get(uid).cloned() else {
                return Ok(());
            };
            // Only an owner being deleted acts on its dependents: do not copy them otherwise.
            let deps: Vec<Node> = if node.deleting {
                g.dependents_of(uid).into_iter().cloned().collect()
            } else {
                Vec::new()
            };
            let refs: Vec<&Node> = deps.iter().collect();
            let action = graph::owner_action(&node, &refs);
            (node, action, deps)
        };
        match action {
            OwnerAction::Nothing => {}
            OwnerAction::DeleteDependents(uids) => {
                for d in dependents.iter().filter(|d| uids.contains(&d.uid)) {
                    let has_deps = !self.lock_graph().dependents_of(&d.uid).is_empty();
                    self.delete(d, has_deps).await?;
                }
            }
            OwnerAction::OrphanDependents(uids) => {
                for d in dependents.iter().filter(|d| uids.contains(&d.uid)) {
                    self.remove_owners(d, std::slice::from_ref(&node.uid))
                        .await?;
                }
            }
            OwnerAction::RemoveFinalizer(f) => {
                let Some(api) =
                    self.api_for(&node.api_version, &node.kind, node.namespace.as_deref())
                else {
                    return Ok(());
                };
                let rest: Vec<&String> = node.finalizers.iter().filter(|x| *x != f).collect();
                let patch = json!({"metadata": {"finalizers": rest, "uid": node.uid}});
                tracing::info!(kind = %node.kind, name = %node.name, finalizer = f, "garbage collector: removing finalizer");
                ignore_gone(
                    api.patch(&node.name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| ()),
                )?;
            }
        }
        if node.owners.is_empty() {
            return Ok(());
        }
        let mut states = Vec::new();
        for r in &node.owners {
            let known = graph::owner_state(&self.lock_graph(), r);
            let state = match known {
                Some(s) => s,
                None => self.verify_owner(&node, r).await?,
            };
            states.push((r.uid.clone(), state));
        }
        let has_deps = !dependents.is_empty();
        match graph::dependent_action(&node, &states, has_deps) {
            DependentAction::Nothing => Ok(()),
            DependentAction::RemoveOwners(uids) => self.remove_owners(&node, &uids).await,
            DependentAction::Delete { foreground } => self.delete(&node, foreground).await,
        }
    }

    /// An owner absent from the graph: asks the API server (the graph may lag behind).
    async fn verify_owner(
        &self,
        dependent: &Node,
        r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    ) -> Result<OwnerState> {
        let Some(api) = self.api_for(&r.api_version, &r.kind, dependent.namespace.as_deref())
        else {
            // A kind discovery does not list (yet): never delete on a guess.
            return Ok(OwnerState::Solid);
        };
        match api.get_metadata_opt(&r.name).await? {
            Some(o) if o.metadata.uid.as_deref() == Some(r.uid.as_str()) => Ok(OwnerState::Solid),
            _ => Ok(OwnerState::Dangling),
        }
    }

    async fn delete(&self, n: &Node, foreground: bool) -> Result<()> {
        let Some(api) = self.api_for(&n.api_version, &n.kind, n.namespace.as_deref()) else {
            return Ok(());
        };
        let dp = DeleteParams {
            propagation_policy: Some(if foreground {
                PropagationPolicy::Foreground
            } else {
                PropagationPolicy::Background
            }),
            preconditions: Some(kube::api::Preconditions {
                uid: Some(n.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        tracing::info!(kind = %n.kind, namespace = ?n.namespace, name = %n.name, foreground, "garbage collector: deleting");
        ignore_gone(api.delete(&n.name, &dp).await.map(|_| ()))
    }

    async fn remove_owners(&self, n: &Node, owner_uids: &[String]) -> Result<()> {
        let Some(api) = self.api_for(&n.api_version, &n.kind, n.namespace.as_deref()) else {
            return Ok(());
        };
        let rest: Vec<_> = n
            .owners
            .iter()
            .filter(|o| !owner_uids.contains(&o.uid))
            .collect();
        let patch = json!({"metadata": {"ownerReferences": rest, "uid": n.uid}});
        ignore_gone(
            api.patch(&n.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(|_| ()),
        )
    }
}

/// Whether the collector can and should watch a resource.
fn usable(ar: &ApiResource, caps: &ApiCapabilities) -> bool {
    let ignored = IGNORED
        .iter()
        .any(|(g, p)| *g == ar.group && *p == ar.plural);
    !ignored
        && caps.supports_operation(verbs::LIST)
        && caps.supports_operation(verbs::WATCH)
        && caps.supports_operation(verbs::DELETE)
}

/// Gone or replaced (404, UID precondition 409): nothing left to do.
fn ignore_gone<T: Default>(r: std::result::Result<T, kube::Error>) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(T::default()),
        Err(e) => Err(e.into()),
    }
}
