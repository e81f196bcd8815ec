//! VolumeBinding for local and hostPath PersistentVolumes: a pod whose claim is bound must go
//! where the volume's node affinity allows; a pod with an unbound claim needs a node where some
//! available volume of the right class, size and access modes could bind to it.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use rudder_machinery::quantity::to_units;

use crate::framework::{CycleState, Plugin, Point, Status};
use crate::plugins::node_affinity::selector_matches;
use crate::snapshot::{NodeInfo, PodInfo, Snapshot};

pub const NAME: &str = "VolumeBinding";
pub const CONFLICT: &str = "node(s) had volume node affinity conflict";
pub const NO_PV: &str = "node(s) didn't find available persistent volumes to bind";

pub struct VolumeBinding;

#[derive(Clone)]
struct State {
    /// Volumes of the pod's bound claims.
    bound: Vec<Arc<PersistentVolume>>,
    /// Per unbound claim, the volumes that could bind to it (node affinity aside).
    unbound: Vec<Vec<Arc<PersistentVolume>>>,
}

fn storage(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i128 {
    q.and_then(|q| to_units(&q.0)).unwrap_or(0)
}

/// Whether `pv` could satisfy `pvc` (ignoring where it is).
fn pv_fits_claim(
    pv: &PersistentVolume,
    pvc: &PersistentVolumeClaim,
    pvc_key: (&str, &str),
) -> bool {
    let (Some(pv_spec), Some(claim)) = (pv.spec.as_ref(), pvc.spec.as_ref()) else {
        return false;
    };
    if let Some(r) = pv_spec.claim_ref.as_ref()
        && (r.namespace.as_deref() != Some(pvc_key.0) || r.name.as_deref() != Some(pvc_key.1))
    {
        return false;
    }
    let phase = pv
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Available");
    if phase != "Available" && phase != "Pending" {
        return false;
    }
    if pv_spec.storage_class_name.as_deref().unwrap_or("")
        != claim.storage_class_name.as_deref().unwrap_or("")
    {
        return false;
    }
    let pv_modes = pv_spec.access_modes.as_deref().unwrap_or_default();
    if !claim
        .access_modes
        .iter()
        .flatten()
        .all(|m| pv_modes.contains(m))
    {
        return false;
    }
    let want = storage(
        claim
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage")),
    );
    let have = storage(pv_spec.capacity.as_ref().and_then(|c| c.get("storage")));
    have >= want
}

fn pv_allows(pv: &PersistentVolume, node: &NodeInfo) -> bool {
    pv.spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .is_none_or(|r| selector_matches(r, node))
}

impl Plugin for VolumeBinding {
    fn name(&self) -> &'static str {
        NAME
    }

    fn points(&self) -> &'static [Point] {
        &[Point::PreFilter, Point::Filter]
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snap: &Snapshot) -> Status {
        let volumes = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        let claims: Vec<&str> = volumes
            .iter()
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.as_str())
            .collect();
        if claims.is_empty() {
            return Status::skip();
        }
        let mut st = State {
            bound: Vec::new(),
            unbound: Vec::new(),
        };
        for name in claims {
            let Some(pvc) = snap
                .volumes
                .pvcs
                .get(&format!("{}/{}", pod.namespace, name))
            else {
                return Status::unresolvable(format!("persistentvolumeclaim \"{name}\" not found"));
            };
            if pvc.metadata.deletion_timestamp.is_some() {
                return Status::unresolvable(format!(
                    "persistentvolumeclaim \"{name}\" is being deleted"
                ));
            }
            match pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .filter(|v| !v.is_empty())
            {
                Some(pv_name) => match snap.volumes.pvs.get(pv_name) {
                    Some(pv) => st.bound.push(pv.clone()),
                    None => {
                        return Status::unresolvable(format!(
                            "pvc({name}): persistentvolume \"{pv_name}\" not found"
                        ));
                    }
                },
                None => st.unbound.push(
                    snap.volumes
                        .pvs
                        .values()
                        .filter(|pv| pv_fits_claim(pv, pvc, (&pod.namespace, name)))
                        .cloned()
                        .collect(),
                ),
            }
        }
        state.write(NAME, st);
        Status::success()
    }

    fn filter(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<State>(NAME) else {
            return Status::success();
        };
        if !st.bound.iter().all(|pv| pv_allows(pv, node)) {
            return Status::unresolvable(CONFLICT);
        }
        // Each unbound claim needs its own volume here (greedy, in claim order).
        let mut taken: Vec<&str> = Vec::new();
        for candidates in &st.unbound {
            let pick = candidates.iter().find(|pv| {
                let name = pv.metadata.name.as_deref().unwrap_or("");
                !taken.contains(&name) && pv_allows(pv, node)
            });
            match pick {
                Some(pv) => taken.push(pv.metadata.name.as_deref().unwrap_or("")),
                None => return Status::unresolvable(NO_PV),
            }
        }
        Status::success()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn pv(name: &str, node: &str, size: &str) -> Arc<PersistentVolume> {
        Arc::new(serde_json::from_value(json!({"metadata": {"name": name}, "spec": {
            "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local",
            "local": {"path": "/mnt"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})).expect("pv"))
    }

    fn pvc(name: &str, volume: Option<&str>, size: &str) -> Arc<PersistentVolumeClaim> {
        Arc::new(
            serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "default"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "storageClassName": "local", "volumeName": volume,
            "resources": {"requests": {"storage": size}}}}),
            )
            .expect("pvc"),
        )
    }

    #[test]
    fn table() {
        let mut snap = snapshot(
            vec![
                node("n1", json!({"kubernetes.io/hostname": "n1"}), json!({})),
                node("n2", json!({"kubernetes.io/hostname": "n2"}), json!({})),
            ],
            vec![],
        );
        snap.volumes
            .pvs
            .insert("pv1".into(), pv("pv1", "n1", "10Gi"));
        snap.volumes
            .pvs
            .insert("pv2".into(), pv("pv2", "n2", "1Gi"));
        snap.volumes
            .pvcs
            .insert("default/bound".into(), pvc("bound", Some("pv2"), "1Gi"));
        snap.volumes
            .pvcs
            .insert("default/small".into(), pvc("small", None, "1Gi"));
        snap.volumes
            .pvcs
            .insert("default/big".into(), pvc("big", None, "5Gi"));
        snap.volumes
            .pvcs
            .insert("default/huge".into(), pvc("huge", None, "50Gi"));
        let with = |claims: &[&str]| {
            let vols: Vec<_> = claims
                .iter()
                .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
                .collect();
            pod("p", json!({}), json!({"volumes": vols}))
        };
        let cases: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
            ("no claims", vec![], vec!["n1", "n2"]),
            ("bound to n2's volume", vec!["bound"], vec!["n2"]),
            (
                "unbound, either volume fits",
                vec!["small"],
                vec!["n1", "n2"],
            ),
            ("unbound, only pv1 is big enough", vec!["big"], vec!["n1"]),
            ("unbound, nothing big enough", vec!["huge"], vec![]),
            (
                "two claims need two volumes on one node",
                vec!["small", "big"],
                vec![],
            ),
        ];
        for (name, claims, want) in cases {
            assert_eq!(
                passing(&VolumeBinding, &with(&claims), &snap),
                want,
                "{name}"
            );
        }
        let missing = filter_all(&VolumeBinding, &with(&["nope"]), &snap);
        assert_eq!(
            missing[0].1,
            Status::unresolvable("persistentvolumeclaim \"nope\" not found")
        );
        assert_eq!(
            filter_all(&VolumeBinding, &with(&["bound"]), &snap)[0]
                .1
                .reasons,
            vec![CONFLICT]
        );
    }
}
