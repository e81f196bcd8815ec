//! The ConfigMaps, Secrets and PersistentVolumeClaims a pod refers to — in its environment and
//! its volumes — found, fetched once per sync period, and turned into the text values
//! environment variables take and the paths claims are bound to.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use crate::pod_spec::EnvSources;
use crate::volumes::Claim;

/// The ConfigMaps and Secrets the pod refers to (environment and volumes), fetched once, and
/// the service-account tokens of its projected volumes (kept from `previous` until they need
/// a refresh).
pub(super) async fn fetch(
    client: &kube::Client,
    pod: &Pod,
    previous: &crate::volumes::Objects,
) -> crate::volumes::Objects {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), &ns);
    let (cm_names, secret_names) = referenced_names(pod);
    let mut out = crate::volumes::Objects::default();
    for name in cm_names {
        if let Ok(Some(cm)) = cms.get_opt(&name).await {
            let mut data: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            data.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            out.config_maps.insert(name, data);
        }
    }
    for name in secret_names {
        if let Ok(Some(s)) = secrets.get_opt(&name).await {
            let data = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            out.secrets.insert(name, data);
        }
    }
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if let Some(c) = &v.persistent_volume_claim
            && let Some(claim) = claim(client, &ns, &c.claim_name).await
        {
            out.claims.insert(c.claim_name.clone(), claim);
        }
    }
    let now = now();
    for (audience, seconds) in crate::volumes::projected_tokens(pod) {
        let key = crate::volumes::token_key(&audience, seconds);
        let kept = previous
            .tokens
            .get(&key)
            .filter(|t| !crate::volumes::needs_refresh(t, now));
        let token = match kept {
            Some(t) => Some(t.clone()),
            None => request_token(client, pod, &audience, seconds, now)
                .await
                .or_else(|| {
                    previous
                        .tokens
                        .get(&key)
                        .filter(|t| t.expires > now)
                        .cloned()
                }),
        };
        if let Some(t) = token {
            out.tokens.insert(key, t);
        }
    }
    out
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A token for the pod's service account bound to the pod, through TokenRequest; `None` (and
/// a log line) when the API server refuses.
async fn request_token(
    client: &kube::Client,
    pod: &Pod,
    audience: &str,
    seconds: i64,
    now: i64,
) -> Option<crate::volumes::IssuedToken> {
    use k8s_openapi::api::authentication::v1::{
        BoundObjectReference, TokenRequest, TokenRequestSpec,
    };
    use k8s_openapi::api::core::v1::ServiceAccount;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audience.is_empty()).then(|| vec![audience.to_owned()]),
            expiration_seconds: Some(seconds),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
    match api
        .create_token_request(&sa, &Default::default(), &request)
        .await
    {
        Ok(got) => {
            let status = got.status?;
            Some(crate::volumes::IssuedToken {
                token: status.token?,
                issued: now,
                expires: status.expiration_timestamp?.0.as_second(),
            })
        }
        Err(e) => {
            tracing::warn!(namespace = %ns, serviceaccount = %sa, error = %e, "token request failed");
            None
        }
    }
}

/// What a claim is bound to, or `None` if the claim does not exist (or cannot be read now).
async fn claim(client: &kube::Client, ns: &str, name: &str) -> Option<Claim> {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc = pvcs.get_opt(name).await.ok()??;
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let Some(volume) = volume.filter(|_| bound) else {
        return Some(Claim::Unbound);
    };
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let Some(pv) = pvs.get_opt(&volume).await.ok()? else {
        return Some(Claim::Unbound);
    };
    Some(claim_of(&pv))
}

/// Where a persistent volume lives on this node.
fn claim_of(pv: &k8s_openapi::api::core::v1::PersistentVolume) -> Claim {
    let Some(spec) = pv.spec.as_ref() else {
        return Claim::Unsupported("an empty");
    };
    if let Some(h) = &spec.host_path {
        let create = matches!(
            h.type_.as_deref(),
            None | Some("") | Some("DirectoryOrCreate")
        );
        return Claim::Path {
            path: h.path.clone().into(),
            create,
        };
    }
    if let Some(l) = &spec.local {
        return Claim::Path {
            path: l.path.clone().into(),
            create: false,
        };
    }
    Claim::Unsupported("this kind of persistent")
}

/// Names of the ConfigMaps and Secrets a pod's environment and volumes refer to.
fn referenced_names(pod: &Pod) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut cms, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    let Some(spec) = pod.spec.as_ref() else {
        return (cms, secrets);
    };
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
    {
        for e in c.env.iter().flatten().filter_map(|e| e.value_from.as_ref()) {
            cms.extend(e.config_map_key_ref.iter().map(|r| r.name.clone()));
            secrets.extend(e.secret_key_ref.iter().map(|r| r.name.clone()));
        }
        for f in c.env_from.iter().flatten() {
            cms.extend(f.config_map_ref.iter().map(|r| r.name.clone()));
            secrets.extend(f.secret_ref.iter().map(|r| r.name.clone()));
        }
    }
    for v in spec.volumes.iter().flatten() {
        cms.extend(v.config_map.iter().map(|c| c.name.clone()));
        secrets.extend(v.secret.iter().filter_map(|s| s.secret_name.clone()));
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            cms.extend(src.config_map.iter().map(|c| c.name.clone()));
            secrets.extend(src.secret.iter().map(|s| s.name.clone()));
        }
    }
    (cms, secrets)
}

/// The text values environment variables take from ConfigMaps and Secrets.
pub(super) fn env_sources(objects: &crate::volumes::Objects) -> EnvSources {
    let text = |m: &BTreeMap<String, BTreeMap<String, Vec<u8>>>| {
        m.iter()
            .map(|(name, data)| {
                let data = data
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
                    .collect();
                (name.clone(), data)
            })
            .collect()
    };
    EnvSources {
        config_maps: text(&objects.config_maps),
        secrets: text(&objects.secrets),
        services: Vec::new(),
    }
}

/// The Service variables of `pod` (`crate::service_env`): the Services of its namespace unless
/// `enableServiceLinks` is false, and `default/kubernetes`. `None` when they could not be read
/// (the caller keeps what it had).
pub(super) async fn service_env(client: &kube::Client, pod: &Pod) -> Option<Vec<(String, String)>> {
    use k8s_openapi::api::core::v1::Service;
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut services = Vec::new();
    if links {
        let list = Api::<Service>::namespaced(client.clone(), &ns)
            .list(&Default::default())
            .await
            .ok()?;
        services.extend(list.items);
    }
    if let Some(k) = Api::<Service>::namespaced(client.clone(), "default")
        .get_opt("kubernetes")
        .await
        .ok()?
    {
        services.push(k);
    }
    Some(crate::service_env::variables(&ns, links, &services))
}
