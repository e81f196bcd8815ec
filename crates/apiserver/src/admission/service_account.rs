//! ServiceAccount admission: a pod runs as `default` unless it names an account, the account
//! must exist, and unless automounting is turned off (on the pod, else on the account) every
//! container gets the projected `kube-api-access-*` volume (a bound token, the cluster CA from
//! `kube-root-ca.crt`, the namespace) at upstream's path.

use serde_json::{Map, Value, json};

/// Where the credentials are mounted in every container.
pub(crate) const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const VOLUME_PREFIX: &str = "kube-api-access-";
/// Upstream's token lifetime for the projected volume (an hour plus seven seconds, so a token
/// in a volume is told apart from one asked for through TokenRequest).
const TOKEN_SECONDS: i64 = 3607;
const MIRROR: &str = "kubernetes.io/config.mirror";

/// The account the pod names, `default` when it names none.
pub(crate) fn name_of(pod: &Value) -> String {
    ["/spec/serviceAccountName", "/spec/serviceAccount"]
        .iter()
        .filter_map(|p| pod.pointer(p).and_then(Value::as_str))
        .find(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned()
}

/// Whether the plugin looks at this pod at all (mirror pods of static pods are left alone).
pub(crate) fn needs_account(pod: &Value) -> bool {
    pod.pointer(&format!(
        "/metadata/annotations/{}",
        MIRROR.replace('/', "~1")
    ))
    .is_none()
}

/// Admits a pod being created: `account` is `None` for a mirror pod, `Some(None)` when the
/// named account does not exist. `suffix` names a new volume.
pub(crate) fn admit(
    pod: &mut Value,
    account: Option<Option<&Value>>,
    suffix: &str,
) -> Result<(), String> {
    let Some(account) = account else {
        return Ok(());
    };
    let name = name_of(pod);
    let ns = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(account) = account else {
        return Err(format!(
            "error looking up service account {ns}/{name}: serviceaccount {name:?} not found"
        ));
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    spec.insert("serviceAccountName".into(), json!(name));
    spec.insert("serviceAccount".into(), json!(name));
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_token(spec, suffix);
    }
    Ok(())
}

fn mount_token(spec: &mut Map<String, Value>, suffix: &str) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str))
        .find(|n| n.starts_with(VOLUME_PREFIX))
        .map(str::to_owned);
    let volume = existing
        .clone()
        .unwrap_or(format!("{VOLUME_PREFIX}{suffix}"));
    let mut mounted = false;
    for field in ["initContainers", "containers"] {
        let Some(cs) = spec.get_mut(field).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
            let Some(mounts) = mounts.as_array_mut() else {
                continue;
            };
            // A container that mounts something of its own there keeps it.
            if mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(MOUNT_PATH))
            {
                continue;
            }
            mounts.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
            mounted = true;
        }
    }
    if mounted && existing.is_none() {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(vs) = volumes.as_array_mut() {
            vs.push(token_volume(&volume));
        }
    }
}

fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 420,
            "sources": [
                {"serviceAccountToken": {"expirationSeconds": TOKEN_SECONDS, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ]
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn admit_table() {
        let sa = json!({"metadata": {"name": "default"}});
        let no_mount =
            json!({"metadata": {"name": "quiet"}, "automountServiceAccountToken": false});
        let c = json!([{"name": "c"}, {"name": "d", "volumeMounts": [{"name": "own", "mountPath": MOUNT_PATH}]}]);
        // (spec, account, expected volumes, mounts of container "c", error)
        type Case<'a> = (
            Value,
            Option<Option<&'a Value>>,
            usize,
            usize,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (json!({"containers": c}), Some(Some(&sa)), 1, 1, None),
            (
                json!({"containers": c, "automountServiceAccountToken": false}),
                Some(Some(&sa)),
                0,
                0,
                None,
            ),
            (
                json!({"containers": c, "serviceAccountName": "quiet"}),
                Some(Some(&no_mount)),
                0,
                0,
                None,
            ),
            (
                json!({"containers": c, "serviceAccountName": "quiet", "automountServiceAccountToken": true}),
                Some(Some(&no_mount)),
                1,
                1,
                None,
            ),
            (json!({"containers": c}), None, 0, 0, None),
            (
                json!({"containers": c, "serviceAccountName": "x"}),
                Some(None),
                0,
                0,
                Some("error looking up service account ns/x: serviceaccount \"x\" not found"),
            ),
        ];
        for (spec, account, volumes, mounts, err) in cases {
            let mut p = pod(spec.clone());
            let got = admit(&mut p, account, "abcde");
            assert_eq!(got.err().as_deref(), err, "{spec}");
            let vols = p["spec"]["volumes"].as_array().map_or(0, Vec::len);
            assert_eq!(vols, volumes, "{spec}");
            let m = p["spec"]["containers"][0]["volumeMounts"]
                .as_array()
                .map_or(0, Vec::len);
            assert_eq!(m, mounts, "{spec}");
            // The container with its own mount at the path is never given the token.
            assert_eq!(
                p["spec"]["containers"][1]["volumeMounts"]
                    .as_array()
                    .map_or(0, Vec::len),
                1
            );
            if account.is_some_and(|a| a.is_some()) {
                assert!(p["spec"]["serviceAccountName"].is_string());
            }
        }
        let mut p = pod(json!({"containers": [{"name": "c"}]}));
        admit(&mut p, Some(Some(&sa)), "abcde").unwrap();
        assert_eq!(p["spec"]["serviceAccountName"], "default");
        assert_eq!(p["spec"]["volumes"][0]["name"], "kube-api-access-abcde");
        assert_eq!(
            p["spec"]["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
            3607
        );
        assert_eq!(
            p["spec"]["containers"][0]["volumeMounts"][0],
            json!({"name": "kube-api-access-abcde", "readOnly": true, "mountPath": MOUNT_PATH})
        );
    }

    #[test]
    fn mirror_pods_are_left_alone() {
        let p = json!({"metadata": {"annotations": {"kubernetes.io/config.mirror": "x"}}});
        assert!(!needs_account(&p));
        assert!(needs_account(&json!({"metadata": {}})));
    }
}
