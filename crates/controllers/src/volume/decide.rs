//! PersistentVolume binding decisions, after upstream's `persistentvolume` binder: the smallest
//! Available volume whose class, access modes and capacity satisfy a claim (or the one already
//! reserved for it through `claimRef`). Pure.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use rudder_machinery::quantity;

/// The class a claim asks for: `None` for "the default class" (the API server does not run
/// the DefaultStorageClass admission), `Some("")` for no class.
pub fn claim_class(pvc: &PersistentVolumeClaim) -> Option<&str> {
    pvc.spec.as_ref()?.storage_class_name.as_deref()
}

fn storage(
    list: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> i128 {
    list.and_then(|m| m.get("storage"))
        .and_then(|q| quantity::to_milli(&q.0))
        .unwrap_or(0)
}

/// Bytes (in milli-units) the claim requests.
pub fn requested(pvc: &PersistentVolumeClaim) -> i128 {
    storage(
        pvc.spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

/// The volume to bind `pvc` to among `pvs`, with `class` the claim's effective class.
pub fn choose<'a>(
    pvc: &PersistentVolumeClaim,
    class: &str,
    pvs: &'a [&'a PersistentVolume],
) -> Option<&'a PersistentVolume> {
    let uid = pvc.metadata.uid.as_deref();
    let want_modes = pvc
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default();
    let need = requested(pvc);
    // A volume pre-bound to this claim wins.
    if let Some(pv) = pvs.iter().find(|pv| {
        pv.spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_some_and(|r| {
                r.name == pvc.metadata.name
                    && r.namespace == pvc.metadata.namespace
                    && (r.uid.is_none() || r.uid.as_deref() == uid)
            })
    }) {
        return Some(pv);
    }
    pvs.iter()
        .copied()
        // New volumes are Pending until the binder marks them Available.
        .filter(|pv| {
            let phase = pv.status.as_ref().and_then(|s| s.phase.as_deref());
            matches!(phase, None | Some("Pending" | "Available"))
        })
        .filter(|pv| pv.spec.as_ref().is_some_and(|s| s.claim_ref.is_none()))
        .filter(|pv| {
            pv.spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
                .unwrap_or("")
                == class
        })
        .filter(|pv| {
            let modes = pv
                .spec
                .as_ref()
                .and_then(|s| s.access_modes.clone())
                .unwrap_or_default();
            want_modes.iter().all(|m| modes.contains(m))
        })
        .filter(|pv| storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref())) >= need)
        .min_by_key(|pv| storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeSpec, VolumeResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pv(name: &str, size: &str, class: &str, modes: &[&str]) -> PersistentVolume {
        PersistentVolume {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeSpec {
                capacity: Some([("storage".to_string(), Quantity(size.into()))].into()),
                storage_class_name: Some(class.into()),
                access_modes: Some(modes.iter().map(|m| m.to_string()).collect()),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn smallest_fitting_volume() {
        let pvc = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("c".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some([("storage".to_string(), Quantity("1Gi".into()))].into()),
                    limits: None,
                }),
                ..Default::default()
            }),
            status: None,
        };
        let small = pv("small", "512Mi", "", &["ReadWriteOnce"]);
        let big = pv("big", "10Gi", "", &["ReadWriteOnce"]);
        let fit = pv("fit", "2Gi", "", &["ReadWriteOnce", "ReadOnlyMany"]);
        let other = pv("other", "2Gi", "fast", &["ReadWriteOnce"]);
        let rox = pv("rox", "1Gi", "", &["ReadOnlyMany"]);
        let all = [&small, &big, &fit, &other, &rox];
        assert_eq!(
            choose(&pvc, "", &all).and_then(|p| p.metadata.name.as_deref()),
            Some("fit")
        );
        assert_eq!(
            choose(&pvc, "fast", &all).and_then(|p| p.metadata.name.as_deref()),
            Some("other")
        );
        assert!(choose(&pvc, "slow", &all).is_none());
    }
}
