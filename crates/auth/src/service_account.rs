//! Service-account tokens: JWTs signed with the cluster's service-account key (ES256 for the
//! P-256 key rudder makes, RS256 for an RSA key), with upstream's claims — `iss`, `sub`
//! (`system:serviceaccount:NS:NAME`), `aud`, `exp`, `nbf`, `iat`, `jti` and the private
//! `kubernetes.io` claim naming the namespace, the service account and, for bound tokens, the
//! pod or secret the token lives and dies with.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{TokenError, UserInfo};

/// Lifetime of a TokenRequest that names none.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// Shortest lifetime a TokenRequest may ask for.
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The issuer rudder puts in its tokens unless configured otherwise (upstream's usual value).
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The group of every service account.
pub const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// Prefix of a service account's user name.
pub const USER_PREFIX: &str = "system:serviceaccount:";
/// Clock skew tolerated on `exp` and `nbf` (upstream's leeway).
pub const LEEWAY_SECONDS: i64 = 60;

/// Why a signing or verification key could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("service-account key: {0}")]
pub struct KeyError(pub String);

/// `{name, uid}` of an object a token names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// The object's uid.
    pub uid: String,
}

/// The private `kubernetes.io` claim.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod a bound token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The secret a bound token belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node of the pod a token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
}

/// The claims of a service-account token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// `system:serviceaccount:NS:NAME`.
    pub sub: String,
    /// Audiences (a string or an array on the wire; always an array when rudder signs).
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// A unique id of the token (a credential id in the user's extra).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// Namespace, service account and bound objects.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubeClaims,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// What a token is bound to besides its service account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// Lives as long as this pod (on this node, when known).
    Pod {
        /// The pod.
        pod: ObjectRef,
        /// Its node, when scheduled.
        node: Option<ObjectRef>,
    },
    /// Lives as long as this secret.
    Secret(ObjectRef),
}

/// Everything a TokenRequest decides about a new token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// The issuer.
    pub issuer: String,
    /// Audiences.
    pub audiences: Vec<String>,
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub service_account: ObjectRef,
    /// The bound object, if any.
    pub bound: Option<Bound>,
    /// Issue time, seconds since the epoch.
    pub now: i64,
    /// Lifetime in seconds.
    pub expiration_seconds: i64,
    /// The token's unique id.
    pub id: String,
}

impl Claims {
    /// The claims of a new token.
    pub fn new(spec: TokenSpec) -> Self {
        let (pod, node, secret) = match spec.bound {
            Some(Bound::Pod { pod, node }) => (Some(pod), node, None),
            Some(Bound::Secret(s)) => (None, None, Some(s)),
            None => (None, None, None),
        };
        Self {
            iss: spec.issuer,
            sub: format!(
                "{USER_PREFIX}{}:{}",
                spec.namespace, spec.service_account.name
            ),
            aud: spec.audiences,
            exp: spec.now + spec.expiration_seconds,
            nbf: spec.now,
            iat: spec.now,
            jti: Some(spec.id),
            kubernetes: KubeClaims {
                namespace: spec.namespace,
                serviceaccount: spec.service_account,
                pod,
                secret,
                node,
            },
        }
    }

    /// The user the token authenticates: `system:serviceaccount:NS:NAME` in
    /// `system:serviceaccounts` and `system:serviceaccounts:NS`, with the pod in `extra`.
    pub fn user(&self) -> UserInfo {
        let k = &self.kubernetes;
        let mut user = UserInfo {
            name: format!("{USER_PREFIX}{}:{}", k.namespace, k.serviceaccount.name),
            uid: k.serviceaccount.uid.clone(),
            groups: vec![
                ALL_SERVICE_ACCOUNTS.to_owned(),
                format!("{ALL_SERVICE_ACCOUNTS}:{}", k.namespace),
            ],
            extra: Default::default(),
        };
        let mut extra = |key: &str, value: &str| {
            user.extra.insert(
                format!("authentication.kubernetes.io/{key}"),
                vec![value.to_owned()],
            );
        };
        if let Some(p) = &k.pod {
            extra("pod-name", &p.name);
            extra("pod-uid", &p.uid);
        }
        if let Some(n) = &k.node {
            extra("node-name", &n.name);
            extra("node-uid", &n.uid);
        }
        if let Some(j) = &self.jti {
            extra("credential-id", &format!("JTI={j}"));
        }
        user
    }
}

/// `(namespace, name)` of a `system:serviceaccount:NS:NAME` user name.
pub fn split_user_name(name: &str) -> Option<(&str, &str)> {
    let rest = name.strip_prefix(USER_PREFIX)?;
    let (ns, sa) = rest.split_once(':')?;
    (!ns.is_empty() && !sa.is_empty() && !sa.contains(':')).then_some((ns, sa))
}

/// The lifetime a TokenRequest gets: its `expirationSeconds`, 3600 when unset; an error text
/// (for a 422) when shorter than 10 minutes or longer than 2^32 seconds, as upstream.
pub fn expiration(requested: Option<i64>) -> Result<i64, String> {
    match requested {
        None => Ok(DEFAULT_EXPIRATION_SECONDS),
        Some(s) if s < MIN_EXPIRATION_SECONDS => {
            Err("may not specify a duration less than 10 minutes".into())
        }
        Some(s) if s > 1 << 32 => Err("may not specify a duration larger than 2^32 seconds".into()),
        Some(s) => Ok(s),
    }
}

/// Signs tokens with the cluster's private key.
pub struct Signer {
    key: EncodingKey,
    algorithm: Algorithm,
}

impl Signer {
    /// A signer from a PEM private key: EC (PKCS#8 or SEC1) signs ES256, RSA signs RS256.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        if let Ok(key) = EncodingKey::from_ec_pem(pem.as_bytes()) {
            return Ok(Self {
                key,
                algorithm: Algorithm::ES256,
            });
        }
        EncodingKey::from_rsa_pem(pem.as_bytes())
            .map(|key| Self {
                key,
                algorithm: Algorithm::RS256,
            })
            .map_err(|e| KeyError(format!("not an EC or RSA private key: {e}")))
    }

    /// The signed token.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key)
            .map_err(|e| KeyError(format!("signing: {e}")))
    }
}

/// Verifies tokens against the cluster's public keys, issuers and audiences.
pub struct Verifier {
    keys: Vec<(DecodingKey, Algorithm)>,
    issuers: Vec<String>,
    audiences: Vec<String>,
}

impl Verifier {
    /// A verifier from PEM public keys (`PUBLIC KEY`; EC for ES256, RSA for RS256), the issuers
    /// accepted and the audiences accepted (a token must name at least one).
    pub fn new(
        public_pems: &[String],
        issuers: Vec<String>,
        audiences: Vec<String>,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::new();
        for pem in public_pems {
            if let Ok(k) = DecodingKey::from_ec_pem(pem.as_bytes()) {
                keys.push((k, Algorithm::ES256));
            } else {
                let k = DecodingKey::from_rsa_pem(pem.as_bytes())
                    .map_err(|e| KeyError(format!("not an EC or RSA public key: {e}")))?;
                keys.push((k, Algorithm::RS256));
            }
        }
        if keys.is_empty() {
            return Err(KeyError("no public key to verify tokens with".into()));
        }
        Ok(Self {
            keys,
            issuers,
            audiences,
        })
    }

    /// The audiences the server accepts (the default audiences of TokenRequests).
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The claims of a valid token at time `now` (seconds since the epoch): signed by one of the
    /// keys, from an accepted issuer, for one of `audiences` (the server's when `None`),
    /// within its validity. Whether the bound objects still exist is left to the caller.
    pub fn verify(
        &self,
        token: &str,
        now: i64,
        audiences: Option<&[String]>,
    ) -> Result<Claims, TokenError> {
        let claims: Claims = self.decode_signed(token)?;
        if !self.issuers.contains(&claims.iss) {
            return Err(TokenError::Issuer(claims.iss));
        }
        let accepted = audiences.unwrap_or(&self.audiences);
        if !claims.aud.iter().any(|a| accepted.contains(a)) {
            return Err(TokenError::Audience {
                token: claims.aud,
                accepted: accepted.to_vec(),
            });
        }
        if now > claims.exp + LEEWAY_SECONDS {
            return Err(TokenError::Expired);
        }
        if now + LEEWAY_SECONDS < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        let k = &claims.kubernetes;
        if split_user_name(&claims.sub) != Some((&k.namespace, &k.serviceaccount.name)) {
            return Err(TokenError::Malformed(format!(
                "subject {:?} does not match the kubernetes.io claim",
                claims.sub
            )));
        }
        Ok(claims)
    }

    /// The claims of a token signed by one of the keys (nothing else checked).
    fn decode_signed<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        let mut last = TokenError::Malformed(format!("unsupported algorithm {:?}", header.alg));
        for (key, alg) in self.keys.iter().filter(|(_, a)| *a == header.alg) {
            let mut v = Validation::new(*alg);
            v.validate_exp = false;
            v.validate_nbf = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            match jsonwebtoken::decode::<T>(token, key, &v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => last = TokenError::Malformed(e.to_string()),
            }
        }
        Err(last)
    }

    /// A bound token's claims ([`Verifier::verify`]) or a legacy Secret token's
    /// ([`legacy::verify`]), told apart by the issuer: upstream always accepts
    /// [`legacy::ISSUER`] besides the configured issuers.
    pub fn verify_any(
        &self,
        token: &str,
        now: i64,
        audiences: Option<&[String]>,
    ) -> Result<Verified, TokenError> {
        #[derive(Deserialize)]
        struct Issuer {
            #[serde(default)]
            iss: String,
        }
        let Issuer { iss } = self.decode_signed(token)?;
        if iss == legacy::ISSUER && !self.issuers.contains(&iss) {
            let claims = legacy::verify(self.decode_signed(token)?, &self.audiences, audiences)?;
            return Ok(Verified::Legacy(claims));
        }
        self.verify(token, now, audiences).map(Verified::Bound)
    }
}

/// What [`Verifier::verify_any`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verified {
    /// A TokenRequest token (bound, expiring).
    Bound(Claims),
    /// A legacy token from a `kubernetes.io/service-account-token` Secret (no expiry; valid as
    /// long as the Secret holds it).
    Legacy(legacy::LegacyClaims),
}

impl Signer {
    /// The signed legacy token.
    pub fn sign_legacy(&self, claims: &legacy::LegacyClaims) -> Result<String, KeyError> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key)
            .map_err(|e| KeyError(format!("signing: {e}")))
    }
}

pub mod legacy;

#[cfg(test)]
mod tests;
