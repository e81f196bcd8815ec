//! ControllerRevisions for DaemonSets and StatefulSets, as upstream's `history` package keeps
//! them: one revision `<owner>-<hash>` per template, holding `{"spec":{"template":…,
//! "$patch":"replace"}}` (what `kubectl rollout undo` patches back), numbered in order of use:
//! returning to an older template renumbers its revision as the newest. Revisions no live pod
//! uses are deleted beyond `revisionHistoryLimit`, oldest first. [`ensure`] and [`prune`] decide;
//! [`sync`] applies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::{Result, pods};

/// Label on revisions and pods: the template hash.
pub const REVISION_HASH: &str = "controller-revision-hash";
/// Upstream's default `revisionHistoryLimit` for DaemonSets and StatefulSets.
pub const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// What the current template's revision needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ensure {
    /// It exists and is the newest.
    Current,
    /// It does not exist: create it with this number.
    Create(i64),
    /// It exists but an other one is newer (a rollback): give it this number.
    Renumber(i64),
}

/// The plan for revision `wanted` among the owner's revisions `(name, number)`.
pub fn ensure(owned: &[(String, i64)], wanted: &str) -> Ensure {
    let max = owned.iter().map(|(_, n)| *n).max().unwrap_or(0);
    match owned.iter().find(|(name, _)| name == wanted) {
        None => Ensure::Create(max + 1),
        Some((_, n)) if *n == max && owned.iter().filter(|(_, m)| *m == max).count() == 1 => {
            Ensure::Current
        }
        Some(_) => Ensure::Renumber(max + 1),
    }
}

/// The revisions to delete: those not in `in_use` (the current and update revisions and any a
/// live pod runs), oldest first, until at most `limit` unused ones remain.
pub fn prune(owned: &[(String, i64)], in_use: &BTreeSet<String>, limit: usize) -> Vec<String> {
    let mut unused: Vec<&(String, i64)> =
        owned.iter().filter(|(n, _)| !in_use.contains(n)).collect();
    unused.sort_by_key(|(n, number)| (*number, n.clone()));
    let surplus = unused.len().saturating_sub(limit);
    unused
        .into_iter()
        .take(surplus)
        .map(|(n, _)| n.clone())
        .collect()
}

/// The template a revision holds.
pub fn template(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.0.pointer("/spec/template")?.clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// The owner a revision is written for.
pub struct Owner<'a> {
    /// `apps/v1` kind: `DaemonSet` or `StatefulSet`.
    pub kind: &'static str,
    /// Namespace.
    pub namespace: &'a str,
    /// Name.
    pub name: &'a str,
    /// Uid.
    pub uid: &'a str,
    /// Labels for the revision (the owner's selector matches them, so kubectl finds them).
    pub labels: BTreeMap<String, String>,
    /// Annotations copied onto a new revision (`kubernetes.io/change-cause` for
    /// `rollout history`).
    pub annotations: BTreeMap<String, String>,
    /// The current template.
    pub template: &'a PodTemplateSpec,
    /// Its hash.
    pub hash: &'a str,
    /// `revisionHistoryLimit`.
    pub history_limit: i32,
}

/// Makes the current template's revision exist and be the newest, then prunes unused ones
/// (`in_use`: revision names pods or the status still refer to). Returns the revision's name.
pub async fn sync(
    client: &Client,
    owner: &Owner<'_>,
    owned: &[Arc<ControllerRevision>],
    in_use: &BTreeSet<String>,
) -> Result<String> {
    let wanted = format!("{}-{}", owner.name, owner.hash);
    let numbered: Vec<(String, i64)> = owned
        .iter()
        .map(|r| (r.name_any(), r.revision.unwrap_or(0)))
        .collect();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), owner.namespace);
    match ensure(&numbered, &wanted) {
        Ensure::Current => {}
        Ensure::Create(number) => {
            let mut template = serde_json::to_value(owner.template)?;
            template["$patch"] = json!("replace");
            let mut labels = owner.labels.clone();
            labels.insert(REVISION_HASH.into(), owner.hash.into());
            let rev = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(wanted.clone()),
                    namespace: Some(owner.namespace.into()),
                    labels: Some(labels),
                    annotations: (!owner.annotations.is_empty()).then(|| owner.annotations.clone()),
                    owner_references: Some(vec![pods::new_controller_ref(
                        "apps/v1", owner.kind, owner.name, owner.uid,
                    )]),
                    ..Default::default()
                },
                data: RawExtension(json!({"spec": {"template": template}})),
                revision: Some(number),
            };
            match api.create(&PostParams::default(), &rev).await {
                Ok(_) => {}
                // Created by an earlier pass the cache does not show yet.
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ensure::Renumber(number) => {
            let patch = json!({"revision": number});
            match api
                .patch(&wanted, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut keep = in_use.clone();
    keep.insert(wanted.clone());
    let limit = usize::try_from(owner.history_limit).unwrap_or(0);
    for name in prune(&numbered, &keep, limit) {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(wanted)
}

/// The revisions in namespace `ns` controlled by the object with `uid`.
pub fn owned_by(
    all: &[Arc<ControllerRevision>],
    ns: &str,
    uid: &str,
) -> Vec<Arc<ControllerRevision>> {
    all.iter()
        .filter(|r| r.namespace().as_deref() == Some(ns))
        .filter(|r| pods::controller_ref(&r.metadata).is_some_and(|o| o.uid == uid))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
        v.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect()
    }

    #[test]
    fn ensure_creates_keeps_or_renumbers() {
        // (owned revisions, the wanted one, plan)
        type Case<'a> = (Vec<(String, i64)>, &'a str, Ensure);
        let cases: Vec<Case> = vec![
            (revs(&[]), "s-a", Ensure::Create(1)),
            (revs(&[("s-a", 1)]), "s-a", Ensure::Current),
            (revs(&[("s-a", 1)]), "s-b", Ensure::Create(2)),
            (revs(&[("s-a", 1), ("s-b", 2)]), "s-b", Ensure::Current),
            // Rolled back to a: it becomes revision 3.
            (revs(&[("s-a", 1), ("s-b", 2)]), "s-a", Ensure::Renumber(3)),
            // Two revisions sharing the top number (a race): make ours strictly newest.
            (revs(&[("s-a", 2), ("s-b", 2)]), "s-a", Ensure::Renumber(3)),
        ];
        for (owned, wanted, want) in cases {
            assert_eq!(ensure(&owned, wanted), want, "{owned:?} {wanted}");
        }
    }

    #[test]
    fn prune_keeps_the_newest_unused_and_those_in_use() {
        let owned = revs(&[("r1", 1), ("r2", 2), ("r3", 3), ("r4", 4), ("r5", 5)]);
        let in_use: BTreeSet<String> = ["r1".to_owned(), "r5".to_owned()].into();
        assert_eq!(prune(&owned, &in_use, 10), Vec::<String>::new());
        assert_eq!(prune(&owned, &in_use, 2), ["r2"]);
        assert_eq!(prune(&owned, &in_use, 0), ["r2", "r3", "r4"]);
        assert_eq!(prune(&owned, &BTreeSet::new(), 1), ["r1", "r2", "r3", "r4"]);
    }
}
