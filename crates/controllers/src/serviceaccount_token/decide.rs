//! What the token controller does with one `kubernetes.io/service-account-token` Secret, after
//! upstream's tokens controller: fill in `token`, `ca.crt` and `namespace` (and the service
//! account's uid annotation) while its service account exists, delete it once the account is
//! gone or was replaced. Pure.

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};

/// The Secret type the controller manages.
pub const SECRET_TYPE: &str = "kubernetes.io/service-account-token";
/// The annotation naming the Secret's service account.
pub const NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";
/// The annotation holding the service account's uid (the controller fills it in).
pub const UID_ANNOTATION: &str = "kubernetes.io/service-account.uid";
/// Data key of the token.
pub const TOKEN_KEY: &str = "token";
/// Data key of the CA bundle.
pub const CA_KEY: &str = "ca.crt";
/// Data key of the namespace.
pub const NAMESPACE_KEY: &str = "namespace";

/// What to do with a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Complete, or not ours.
    Nothing,
    /// Its service account is gone (or is another one of the same name): delete it.
    Delete,
    /// Write the missing pieces.
    Fill(Fill),
}

/// The pieces a Secret lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fill {
    /// Sign and store a token (only when there is none: a token is never replaced, so one
    /// handed out stays valid).
    pub token: bool,
    /// Store this CA bundle.
    pub ca: Option<String>,
    /// Store the namespace.
    pub namespace: bool,
    /// Set the uid annotation to this.
    pub uid: Option<String>,
}

fn annotation<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The service account a token Secret names (its annotation), if it is one.
pub fn account_name(secret: &Secret) -> Option<&str> {
    if secret.type_.as_deref() != Some(SECRET_TYPE) {
        return None;
    }
    annotation(secret, NAME_ANNOTATION)
}

/// The plan for `secret`, whose annotated service account is `account` (`None`: not found),
/// given the cluster CA `ca` (`None`: not known, left alone).
pub fn decide(secret: &Secret, account: Option<&ServiceAccount>, ca: Option<&str>) -> Plan {
    if account_name(secret).is_none() || secret.metadata.deletion_timestamp.is_some() {
        return Plan::Nothing;
    }
    let Some(sa) = account else {
        return Plan::Delete;
    };
    let sa_uid = sa.metadata.uid.as_deref().unwrap_or_default();
    let uid = annotation(secret, UID_ANNOTATION);
    if uid.is_some_and(|u| u != sa_uid) {
        return Plan::Delete;
    }
    let data = secret.data.clone().unwrap_or_default();
    let held = |k: &str| data.get(k).map(|v| v.0.as_slice());
    let ns = secret.metadata.namespace.as_deref().unwrap_or_default();
    let fill = Fill {
        token: held(TOKEN_KEY).is_none_or(<[u8]>::is_empty),
        ca: ca
            .filter(|ca| held(CA_KEY) != Some(ca.as_bytes()))
            .map(str::to_owned),
        namespace: held(NAMESPACE_KEY) != Some(ns.as_bytes()),
        uid: (uid.is_none() && !sa_uid.is_empty()).then(|| sa_uid.to_owned()),
    };
    if !fill.token && fill.ca.is_none() && !fill.namespace && fill.uid.is_none() {
        return Plan::Nothing;
    }
    Plan::Fill(fill)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn secret(ty: &str, annotations: serde_json::Value, data: &[(&str, &str)]) -> Secret {
        let mut s: Secret = serde_json::from_value(json!({
            "metadata": {"name": "t", "namespace": "ns", "annotations": annotations},
            "type": ty,
        }))
        .expect("secret");
        s.data = Some(
            data.iter()
                .map(|(k, v)| {
                    (
                        (*k).to_owned(),
                        k8s_openapi::ByteString(v.as_bytes().to_vec()),
                    )
                })
                .collect(),
        );
        s
    }

    fn account(uid: &str) -> ServiceAccount {
        serde_json::from_value(
            json!({"metadata": {"name": "builder", "namespace": "ns", "uid": uid}}),
        )
        .expect("account")
    }

    #[test]
    fn plans_per_secret() {
        let named = json!({NAME_ANNOTATION: "builder"});
        let with_uid = json!({NAME_ANNOTATION: "builder", UID_ANNOTATION: "u1"});
        let complete = [(TOKEN_KEY, "jwt"), (CA_KEY, CA), (NAMESPACE_KEY, "ns")];
        let sa = account("u1");
        let replaced = account("u2");
        let fill = |token, ca: bool, namespace, uid: bool| {
            Plan::Fill(Fill {
                token,
                ca: ca.then(|| CA.to_owned()),
                namespace,
                uid: uid.then(|| "u1".to_owned()),
            })
        };
        // (case, secret, its account, the CA, plan)
        type Case<'a> = (
            &'a str,
            Secret,
            Option<&'a ServiceAccount>,
            Option<&'a str>,
            Plan,
        );
        let cases: Vec<Case> = vec![
            (
                "other type",
                secret("Opaque", named.clone(), &[]),
                Some(&sa),
                Some(CA),
                Plan::Nothing,
            ),
            (
                "no annotation",
                secret(SECRET_TYPE, json!({}), &[]),
                Some(&sa),
                Some(CA),
                Plan::Nothing,
            ),
            (
                "new",
                secret(SECRET_TYPE, named.clone(), &[]),
                Some(&sa),
                Some(CA),
                fill(true, true, true, true),
            ),
            (
                "complete",
                secret(SECRET_TYPE, with_uid.clone(), &complete),
                Some(&sa),
                Some(CA),
                Plan::Nothing,
            ),
            (
                "no CA known",
                secret(
                    SECRET_TYPE,
                    with_uid.clone(),
                    &[(TOKEN_KEY, "jwt"), (NAMESPACE_KEY, "ns")],
                ),
                Some(&sa),
                None,
                Plan::Nothing,
            ),
            (
                "stale CA",
                secret(
                    SECRET_TYPE,
                    with_uid.clone(),
                    &[(TOKEN_KEY, "jwt"), (CA_KEY, "old"), (NAMESPACE_KEY, "ns")],
                ),
                Some(&sa),
                Some(CA),
                fill(false, true, false, false),
            ),
            (
                "wrong namespace",
                secret(
                    SECRET_TYPE,
                    with_uid.clone(),
                    &[(TOKEN_KEY, "jwt"), (CA_KEY, CA), (NAMESPACE_KEY, "x")],
                ),
                Some(&sa),
                Some(CA),
                fill(false, false, true, false),
            ),
            (
                "empty token",
                secret(
                    SECRET_TYPE,
                    with_uid.clone(),
                    &[(TOKEN_KEY, ""), (CA_KEY, CA), (NAMESPACE_KEY, "ns")],
                ),
                Some(&sa),
                Some(CA),
                fill(true, false, false, false),
            ),
            (
                "account gone",
                secret(SECRET_TYPE, with_uid.clone(), &complete),
                None,
                Some(CA),
                Plan::Delete,
            ),
            (
                "account replaced",
                secret(SECRET_TYPE, with_uid.clone(), &complete),
                Some(&replaced),
                Some(CA),
                Plan::Delete,
            ),
        ];
        for (case, s, sa, ca, want) in cases {
            assert_eq!(decide(&s, sa, ca), want, "{case}");
        }
    }

    #[test]
    fn secrets_being_deleted_are_left_alone() {
        let mut s = secret(SECRET_TYPE, json!({NAME_ANNOTATION: "builder"}), &[]);
        s.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(decide(&s, None, Some(CA)), Plan::Nothing);
    }
}
