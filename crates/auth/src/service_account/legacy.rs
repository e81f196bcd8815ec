//! Legacy service-account tokens, the ones the token controller writes into Secrets of type
//! `kubernetes.io/service-account-token`: upstream's claims shape (issuer
//! `kubernetes/serviceaccount`, the namespace, Secret and service account as
//! `kubernetes.io/serviceaccount/*` claims, no audience, no expiry). Such a token is valid while
//! its Secret exists and still holds it, which the API server checks.

use serde::{Deserialize, Serialize};

use super::{ALL_SERVICE_ACCOUNTS, USER_PREFIX, split_user_name};
use crate::{TokenError, UserInfo};

/// The issuer of legacy tokens.
pub const ISSUER: &str = "kubernetes/serviceaccount";

/// The claims of a legacy token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyClaims {
    /// [`ISSUER`].
    pub iss: String,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// The service account's namespace.
    #[serde(rename = "kubernetes.io/serviceaccount/namespace")]
    pub namespace: String,
    /// The Secret holding the token.
    #[serde(rename = "kubernetes.io/serviceaccount/secret.name")]
    pub secret_name: String,
    /// The service account.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.name")]
    pub service_account_name: String,
    /// The service account's uid.
    #[serde(rename = "kubernetes.io/serviceaccount/service-account.uid")]
    pub service_account_uid: String,
}

impl LegacyClaims {
    /// The claims of the token for Secret `secret_name` of service account `name` (`uid`) in
    /// `namespace`.
    pub fn new(namespace: &str, name: &str, uid: &str, secret_name: &str) -> Self {
        Self {
            iss: ISSUER.into(),
            sub: format!("{USER_PREFIX}{namespace}:{name}"),
            namespace: namespace.into(),
            secret_name: secret_name.into(),
            service_account_name: name.into(),
            service_account_uid: uid.into(),
        }
    }

    /// The user the token authenticates: the service account, in `system:serviceaccounts` and
    /// `system:serviceaccounts:NS`.
    pub fn user(&self) -> UserInfo {
        UserInfo {
            name: self.sub.clone(),
            uid: self.service_account_uid.clone(),
            groups: vec![
                ALL_SERVICE_ACCOUNTS.to_owned(),
                format!("{ALL_SERVICE_ACCOUNTS}:{}", self.namespace),
            ],
            extra: Default::default(),
        }
    }
}

/// Checks signed legacy claims: the issuer, a subject matching the named service account, and
/// the audience. Legacy tokens name none, so like upstream they count as meant for the server's
/// own audiences (`server`): a TokenReview asking for `requested` audiences accepts them only
/// if one of those is the server's.
pub fn verify(
    claims: LegacyClaims,
    server: &[String],
    requested: Option<&[String]>,
) -> Result<LegacyClaims, TokenError> {
    if claims.iss != ISSUER {
        return Err(TokenError::Issuer(claims.iss));
    }
    if split_user_name(&claims.sub) != Some((&claims.namespace, &claims.service_account_name))
        || claims.secret_name.is_empty()
    {
        return Err(TokenError::Malformed(format!(
            "subject {:?} does not match the kubernetes.io/serviceaccount claims",
            claims.sub
        )));
    }
    if let Some(req) = requested
        && !req.iter().any(|a| server.contains(a))
    {
        return Err(TokenError::Audience {
            token: server.to_vec(),
            accepted: req.to_vec(),
        });
    }
    Ok(claims)
}
