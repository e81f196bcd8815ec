//! What the root CA publisher does in one namespace: the `kube-root-ca.crt` ConfigMap holds
//! exactly `ca.crt` (the cluster CA) and the description annotation, as upstream's
//! root-ca-cert-publisher keeps it. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

/// The ConfigMap's name.
pub const NAME: &str = "kube-root-ca.crt";
/// The key holding the CA bundle.
pub const KEY: &str = "ca.crt";
/// The annotation telling users what the bundle is for.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
/// Its value.
pub const DESCRIPTION: &str = "The cluster's CA bundle, for verifying the API server at its \
    in-cluster endpoints (the kubernetes Service, kubernetes.default.svc). Other uses are not \
    guaranteed across Kubernetes distributions.";

/// What to do about a namespace's ConfigMap.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// It is as it should be, or the namespace is going away.
    Nothing,
    /// It is missing: create it.
    Create,
    /// Its data or annotation differ: write back this object (the cached one, corrected, with
    /// its resourceVersion so a concurrent change is not overwritten).
    Replace(Box<ConfigMap>),
}

/// The data the ConfigMap must hold.
pub fn expected_data(ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(KEY.to_owned(), ca.to_owned())])
}

/// The plan for a namespace (`deleting`: it has a deletionTimestamp or phase Terminating) whose
/// ConfigMap is `existing`, given the CA `ca`.
pub fn decide(deleting: bool, existing: Option<&ConfigMap>, ca: &str) -> Plan {
    if deleting {
        return Plan::Nothing;
    }
    let Some(cm) = existing else {
        return Plan::Create;
    };
    let want = expected_data(ca);
    let annotated = cm
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DESCRIPTION_ANNOTATION))
        .is_some_and(|v| v == DESCRIPTION);
    let data_ok =
        cm.data.as_ref() == Some(&want) && cm.binary_data.as_ref().is_none_or(BTreeMap::is_empty);
    if data_ok && annotated {
        return Plan::Nothing;
    }
    let mut fixed = cm.clone();
    fixed.data = Some(want);
    fixed.binary_data = None;
    fixed
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
    Plan::Replace(Box::new(fixed))
}

/// A new ConfigMap for namespace `ns`.
pub fn new_config_map(ns: &str, ca: &str) -> ConfigMap {
    ConfigMap {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(ns.into()),
            annotations: Some(BTreeMap::from([(
                DESCRIPTION_ANNOTATION.into(),
                DESCRIPTION.into(),
            )])),
            ..Default::default()
        },
        data: Some(expected_data(ca)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn cm(data: &[(&str, &str)], annotated: bool, binary: bool) -> ConfigMap {
        let mut c = new_config_map("ns", CA);
        c.data = Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        if !annotated {
            c.metadata.annotations = Some(BTreeMap::from([("other".into(), "x".into())]));
        }
        if binary {
            c.binary_data = Some(BTreeMap::from([(
                "blob".into(),
                k8s_openapi::ByteString(vec![1]),
            )]));
        }
        c
    }

    #[test]
    fn plans_per_state() {
        let good = cm(&[(KEY, CA)], true, false);
        let cases: Vec<(&str, bool, Option<ConfigMap>, bool)> = vec![
            // (case, namespace deleting, existing, expect a replace)
            ("correct", false, Some(good.clone()), false),
            (
                "wrong CA",
                false,
                Some(cm(&[(KEY, "old")], true, false)),
                true,
            ),
            (
                "extra key",
                false,
                Some(cm(&[(KEY, CA), ("x", "y")], true, false)),
                true,
            ),
            ("no data", false, Some(cm(&[], true, false)), true),
            (
                "binary data",
                false,
                Some(cm(&[(KEY, CA)], true, true)),
                true,
            ),
            (
                "annotation removed",
                false,
                Some(cm(&[(KEY, CA)], false, false)),
                true,
            ),
        ];
        for (case, deleting, existing, replace) in cases {
            let plan = decide(deleting, existing.as_ref(), CA);
            match plan {
                Plan::Replace(fixed) => {
                    assert!(replace, "{case}: unexpected replace");
                    assert_eq!(fixed.data, Some(expected_data(CA)), "{case}");
                    assert_eq!(fixed.binary_data, None, "{case}");
                    let ann = fixed.metadata.annotations.unwrap_or_default();
                    assert_eq!(
                        ann.get(DESCRIPTION_ANNOTATION).map(String::as_str),
                        Some(DESCRIPTION),
                        "{case}"
                    );
                    // Other annotations survive.
                    if case == "annotation removed" {
                        assert_eq!(ann.get("other").map(String::as_str), Some("x"));
                    }
                }
                Plan::Nothing => assert!(!replace, "{case}: expected a replace"),
                Plan::Create => panic!("{case}: unexpected create"),
            }
        }
    }

    #[test]
    fn missing_is_created_unless_the_namespace_is_going() {
        assert_eq!(decide(false, None, CA), Plan::Create);
        assert_eq!(decide(true, None, CA), Plan::Nothing);
        let stale = cm(&[(KEY, "old")], true, false);
        assert_eq!(decide(true, Some(&stale), CA), Plan::Nothing);
    }

    #[test]
    fn new_config_map_holds_the_ca() {
        let c = new_config_map("team", CA);
        assert_eq!(c.metadata.name.as_deref(), Some(NAME));
        assert_eq!(c.metadata.namespace.as_deref(), Some("team"));
        assert_eq!(decide(false, Some(&c), CA), Plan::Nothing);
    }
}
