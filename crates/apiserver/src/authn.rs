//! Authentication: which user a request is made by. Tried in upstream's order — a client
//! certificate verified by the TLS layer (CN = user, O = groups), then a bearer token: a static
//! token from `--token-auth-file`, a bootstrap token (`ID.SECRET`, its Secret in `kube-system`),
//! or a service-account JWT (signature, issuer, audience and times checked by `rudder-auth`;
//! here, that the service account and the pod or secret it is bound to still exist with the
//! uids the token names). The user goes into the request's extensions for what comes after
//! (authorization, TokenRequest, SelfSubjectReview). No credential at all is anonymous, which
//! only the public paths accept; a credential that is presented but wrong is always a 401.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use rudder_auth::bootstrap::{self, BootstrapToken};
use rudder_auth::service_account::legacy::LegacyClaims;
use rudder_auth::service_account::{Claims, Signer, Verified, Verifier};
use rudder_auth::static_tokens::StaticTokens;
use rudder_auth::{TokenError, UserInfo};
use serde_json::Value;

use crate::http::ApiRequest;
use crate::keys;
use crate::server::ApiServer;
use crate::status::ApiError;

/// How long a pod-bound token outlives the pod's `deletionTimestamp` (upstream's grace).
const DELETION_GRACE_SECONDS: i64 = 60;

/// The service-account token keys and names.
pub struct ServiceAccountOptions {
    /// The private key tokens are signed with (PEM; EC P-256 → ES256, RSA → RS256).
    pub signing_key_pem: String,
    /// Public keys tokens are verified with (PEM), the signing key's included.
    pub public_key_pems: Vec<String>,
    /// `iss` of issued tokens (also the only accepted issuer).
    pub issuer: String,
    /// Audiences accepted by this server, and given to TokenRequests that name none.
    pub audiences: Vec<String>,
}

/// What the server authenticates with.
#[derive(Default)]
pub struct AuthOptions {
    /// Tokens of `--token-auth-file`.
    pub static_tokens: StaticTokens,
    /// Service-account tokens; `None` turns them (and TokenRequest) off.
    pub service_account: Option<ServiceAccountOptions>,
    /// The cluster CA, to sign node client certificates for bootstrap-token users; `None`
    /// leaves CertificateSigningRequests unsigned.
    pub ca: Option<Arc<rudder_pki::Pki>>,
}

/// The server's authenticators, built from [`AuthOptions`].
#[derive(Default)]
pub(crate) struct Authenticator {
    pub static_tokens: StaticTokens,
    pub tokens: Option<ServiceAccountTokens>,
    pub ca: Option<Arc<rudder_pki::Pki>>,
}

/// Signing and verifying service-account tokens.
pub(crate) struct ServiceAccountTokens {
    pub signer: Signer,
    pub verifier: Verifier,
    pub issuer: String,
}

impl Authenticator {
    /// Builds the authenticators; fails on an unusable key.
    pub fn new(opts: AuthOptions) -> Result<Self, rudder_auth::service_account::KeyError> {
        let tokens = match opts.service_account {
            None => None,
            Some(sa) => Some(ServiceAccountTokens {
                signer: Signer::from_pem(&sa.signing_key_pem)?,
                verifier: Verifier::new(
                    &sa.public_key_pems,
                    vec![sa.issuer.clone()],
                    sa.audiences,
                )?,
                issuer: sa.issuer,
            }),
        };
        Ok(Self {
            static_tokens: opts.static_tokens,
            tokens,
            ca: opts.ca,
        })
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The bearer token of a request (`Authorization: Bearer X`), if any.
pub(crate) fn bearer_token(req: &ApiRequest) -> Option<&str> {
    let h = crate::server::header(req, "authorization").trim();
    let (scheme, token) = h.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The user of a request: `Ok(None)` when it presents no credential, a 401 when it presents
/// one that is not valid.
pub(crate) async fn authenticate(
    server: &ApiServer,
    req: &ApiRequest,
) -> Result<Option<UserInfo>, ApiError> {
    if let Some(der) = &req.peer.client_cert {
        let id = rudder_pki::client_identity(der).ok_or_else(ApiError::unauthorized)?;
        return Ok(Some(rudder_auth::with_authenticated(UserInfo::new(
            id.user, id.groups,
        ))));
    }
    let Some(token) = bearer_token(req) else {
        return Ok(None);
    };
    match authenticate_token(server, token, None).await {
        Ok(user) => Ok(Some(user)),
        Err(e) => {
            tracing::debug!(error = %e, "bearer token refused");
            Err(ApiError::unauthorized())
        }
    }
}

/// The user a bearer token authenticates (TokenReview's question too; `audiences` overrides the
/// server's for service-account tokens).
pub(crate) async fn authenticate_token(
    server: &ApiServer,
    token: &str,
    audiences: Option<&[String]>,
) -> Result<UserInfo, TokenError> {
    if let Some(user) = server.authn.static_tokens.lookup(token) {
        return Ok(rudder_auth::with_authenticated(user.clone()));
    }
    if let Some(bt) = BootstrapToken::parse(token) {
        let key = keys::object_key("", "secrets", Some(bootstrap::NAMESPACE), &bt.secret_name());
        let secret = read(server, &key).await;
        let (ty, data) = match &secret {
            Some(s) if s.pointer("/metadata/deletionTimestamp").is_none() => {
                (s.get("type").and_then(Value::as_str), secret_data(s))
            }
            _ => (None, BTreeMap::new()),
        };
        let user = bootstrap::authenticate(&bt, ty, &data, now())?;
        return Ok(rudder_auth::with_authenticated(user));
    }
    if rudder_auth::is_bearer_jwt(token)
        && let Some(sa) = &server.authn.tokens
    {
        let user = match sa.verifier.verify_any(token, now(), audiences)? {
            Verified::Bound(claims) => {
                check_bound(server, &claims).await?;
                claims.user()
            }
            Verified::Legacy(claims) => {
                check_legacy(server, &claims, token).await?;
                claims.user()
            }
        };
        return Ok(rudder_auth::with_authenticated(user));
    }
    Err(TokenError::Invalid)
}

/// A Secret's `data`, decoded.
pub(crate) fn secret_data(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    secret
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), b64.decode(v.as_str()?).ok()?)))
        .collect()
}

/// The current object at `key`: from the watch cache, else from the store (an object created
/// a moment ago may not have reached the cache yet).
pub(crate) async fn read(server: &ApiServer, key: &str) -> Option<Value> {
    if let Some(o) = server.cache.get(key) {
        return serde_json::from_slice(&o.json).ok();
    }
    let kv = server.store.get(key, None).await.ok()?.kv?;
    serde_json::from_slice(&kv.value).ok()
}

/// Fails unless the token's service account, and the pod or secret it is bound to, exist with
/// the uids the token names (a pod being deleted keeps its tokens for 60 s, as upstream).
async fn check_bound(server: &ApiServer, claims: &Claims) -> Result<(), TokenError> {
    let k = &claims.kubernetes;
    let ns = Some(k.namespace.as_str());
    let sa_key = keys::object_key("", "serviceaccounts", ns, &k.serviceaccount.name);
    let sa = read(server, &sa_key).await;
    check_object(
        "serviceaccount",
        &k.namespace,
        &k.serviceaccount,
        sa.as_ref(),
        false,
    )?;
    if let Some(pod) = &k.pod {
        let got = read(server, &keys::object_key("", "pods", ns, &pod.name)).await;
        check_object("pod", &k.namespace, pod, got.as_ref(), true)?;
    }
    if let Some(secret) = &k.secret {
        let got = read(server, &keys::object_key("", "secrets", ns, &secret.name)).await;
        check_object("secret", &k.namespace, secret, got.as_ref(), false)?;
    }
    Ok(())
}

/// Fails unless a legacy token's service account exists with the uid it names and its Secret
/// exists, is not being deleted, and still holds this very token (as upstream's legacy
/// validator: deleting or rewriting the Secret revokes the token).
async fn check_legacy(
    server: &ApiServer,
    claims: &LegacyClaims,
    token: &str,
) -> Result<(), TokenError> {
    let ns = Some(claims.namespace.as_str());
    let secret = rudder_auth::service_account::ObjectRef {
        name: claims.secret_name.clone(),
        uid: String::new(),
    };
    let got = read(server, &keys::object_key("", "secrets", ns, &secret.name)).await;
    check_object("secret", &claims.namespace, &secret, got.as_ref(), false)?;
    let holds = got.as_ref().is_some_and(|s| {
        secret_data(s)
            .get("token")
            .is_some_and(|t| t == token.as_bytes())
    });
    if !holds {
        return Err(TokenError::Revoked(format!(
            "secret \"{}/{}\" no longer holds the token",
            claims.namespace, secret.name
        )));
    }
    let sa = rudder_auth::service_account::ObjectRef {
        name: claims.service_account_name.clone(),
        uid: claims.service_account_uid.clone(),
    };
    let got = read(
        server,
        &keys::object_key("", "serviceaccounts", ns, &sa.name),
    )
    .await;
    check_object(
        "serviceaccount",
        &claims.namespace,
        &sa,
        got.as_ref(),
        false,
    )
}

fn check_object(
    kind: &str,
    ns: &str,
    want: &rudder_auth::service_account::ObjectRef,
    got: Option<&Value>,
    grace: bool,
) -> Result<(), TokenError> {
    let name = &want.name;
    let Some(obj) = got else {
        return Err(TokenError::Revoked(format!(
            "{kind} \"{ns}/{name}\" is not found"
        )));
    };
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !want.uid.is_empty() && uid != want.uid {
        return Err(TokenError::Revoked(format!(
            "{kind} \"{ns}/{name}\" uid {uid} does not match the token's {}",
            want.uid
        )));
    }
    if let Some(ts) = obj
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
    {
        let deleted = bootstrap::unix_time(ts).unwrap_or(0);
        if !grace || deleted + DELETION_GRACE_SECONDS < now() {
            return Err(TokenError::Revoked(format!(
                "{kind} \"{ns}/{name}\" is being deleted"
            )));
        }
    }
    Ok(())
}
