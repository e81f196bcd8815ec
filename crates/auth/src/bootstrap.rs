//! Bootstrap tokens as kubeadm makes them: `ID.SECRET` (6 and 16 characters of `[a-z0-9]`),
//! stored as a `bootstrap.kubernetes.io/token` Secret named `bootstrap-token-ID` in
//! `kube-system`. A valid one authenticates `system:bootstrap:ID` in `system:bootstrappers`
//! (plus the Secret's `auth-extra-groups`), which may ask for a node client certificate.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::Rng;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{TokenError, UserInfo};

/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// The namespace bootstrap token Secrets live in.
pub const NAMESPACE: &str = "kube-system";
/// Prefix of a bootstrap token Secret's name.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The group of every bootstrap token user.
pub const GROUP: &str = "system:bootstrappers";
/// The extra group kubeadm gives node join tokens.
pub const NODE_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// Prefix of a bootstrap token's user name.
pub const USER_PREFIX: &str = "system:bootstrap:";

const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A parsed bootstrap token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapToken {
    /// The public part (6 characters), also in the Secret's name.
    pub id: String,
    /// The secret part (16 characters).
    pub secret: String,
}

impl BootstrapToken {
    /// Parses `ID.SECRET`; `None` if the text is not shaped like a bootstrap token.
    pub fn parse(token: &str) -> Option<Self> {
        let (id, secret) = token.split_once('.')?;
        let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
        (ok(id, 6) && ok(secret, 16)).then(|| Self {
            id: id.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// A new random token.
    pub fn generate() -> Self {
        let mut rng = rand::rng();
        let mut pick = |n: usize| -> String {
            (0..n)
                .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
                .collect()
        };
        Self {
            id: pick(6),
            secret: pick(16),
        }
    }

    /// The Secret's name.
    pub fn secret_name(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.id)
    }

    /// The Secret that stores this token for joining nodes, valid until `expires` (seconds
    /// since the epoch; `None` for ever), as `kubeadm token create` writes it.
    pub fn secret(&self, expires: Option<i64>, description: &str) -> Value {
        let mut data = json!({
            "token-id": self.id,
            "token-secret": self.secret,
            "usage-bootstrap-authentication": "true",
            "usage-bootstrap-signing": "true",
            "auth-extra-groups": NODE_GROUP,
            "description": description,
        });
        if let Some(t) = expires.and_then(rfc3339) {
            data["expiration"] = t.into();
        }
        let encoded: serde_json::Map<String, Value> = data
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), STANDARD.encode(v.as_str().unwrap_or("")).into()))
            .collect();
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": self.secret_name(), "namespace": NAMESPACE},
            "type": SECRET_TYPE,
            "data": encoded,
        })
    }
}

impl std::fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.id, self.secret)
    }
}

/// Seconds since the epoch as RFC 3339, UTC.
pub fn rfc3339(secs: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// Seconds since the epoch of an RFC 3339 time.
pub fn unix_time(s: &str) -> Option<i64> {
    Some(OffsetDateTime::parse(s, &Rfc3339).ok()?.unix_timestamp())
}

/// The user a token authenticates, given its Secret (`secret_type` and decoded `data`; `None`
/// when there is no such Secret) at time `now` (seconds since the epoch).
pub fn authenticate(
    token: &BootstrapToken,
    secret_type: Option<&str>,
    data: &BTreeMap<String, Vec<u8>>,
    now: i64,
) -> Result<UserInfo, TokenError> {
    if secret_type != Some(SECRET_TYPE) {
        return Err(TokenError::Invalid);
    }
    let get = |k: &str| data.get(k).and_then(|v| std::str::from_utf8(v).ok());
    if get("token-id") != Some(token.id.as_str()) {
        return Err(TokenError::Invalid);
    }
    let stored = get("token-secret").unwrap_or("");
    if !constant_time_eq(stored.as_bytes(), token.secret.as_bytes()) {
        return Err(TokenError::Invalid);
    }
    if let Some(exp) = get("expiration") {
        let exp = OffsetDateTime::parse(exp, &Rfc3339)
            .map_err(|_| TokenError::Malformed(format!("bad expiration {exp:?}")))?;
        if exp.unix_timestamp() <= now {
            return Err(TokenError::Expired);
        }
    }
    if get("usage-bootstrap-authentication") != Some("true") {
        return Err(TokenError::Revoked(
            "the token may not be used for authentication".into(),
        ));
    }
    let mut groups = vec![GROUP.to_owned()];
    for g in get("auth-extra-groups")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
    {
        if !valid_extra_group(g) {
            return Err(TokenError::Malformed(format!(
                "bad auth-extra-groups {g:?}"
            )));
        }
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_owned());
        }
    }
    Ok(UserInfo::new(format!("{USER_PREFIX}{}", token.id), groups))
}

/// `system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]`, upstream's pattern.
fn valid_extra_group(g: &str) -> bool {
    let Some(rest) = g.strip_prefix("system:bootstrappers:") else {
        return false;
    };
    !rest.is_empty()
        && rest.len() <= 256
        && rest
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_shapes() {
        let cases = [
            ("abcdef.0123456789abcdef", true),
            ("abcdef.0123456789abcde", false),
            ("ABCDEF.0123456789abcdef", false),
            ("abcdef0123456789abcdef", false),
            ("abcde.0123456789abcdefg", false),
            ("eyJhbGciOi.eyJpc3Mi.c2ln", false),
        ];
        for (t, ok) in cases {
            assert_eq!(BootstrapToken::parse(t).is_some(), ok, "{t}");
        }
        let t = BootstrapToken::generate();
        assert_eq!(BootstrapToken::parse(&t.to_string()), Some(t.clone()));
        assert_eq!(t.secret_name(), format!("bootstrap-token-{}", t.id));
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn authenticates_by_the_secret() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let now = 1_800_000_000;
        let base = [
            ("token-id", "abcdef"),
            ("token-secret", "0123456789abcdef"),
            ("usage-bootstrap-authentication", "true"),
            ("auth-extra-groups", NODE_GROUP),
            ("expiration", "2027-06-01T00:00:00Z"),
        ];
        let with = |k: &str, v: &str| {
            let mut d = data(&base);
            d.insert(k.into(), v.as_bytes().to_vec());
            d
        };
        let ok = Ok(UserInfo::new(
            "system:bootstrap:abcdef",
            vec![GROUP.into(), NODE_GROUP.into()],
        ));
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            BTreeMap<String, Vec<u8>>,
            Result<UserInfo, TokenError>,
        );
        let cases: Vec<Case> = vec![
            ("valid", Some(SECRET_TYPE), data(&base), ok.clone()),
            ("no secret", None, data(&base), Err(TokenError::Invalid)),
            (
                "other type",
                Some("Opaque"),
                data(&base),
                Err(TokenError::Invalid),
            ),
            (
                "wrong secret",
                Some(SECRET_TYPE),
                with("token-secret", "0123456789abcdee"),
                Err(TokenError::Invalid),
            ),
            (
                "wrong id",
                Some(SECRET_TYPE),
                with("token-id", "abcdeg"),
                Err(TokenError::Invalid),
            ),
            (
                "expired",
                Some(SECRET_TYPE),
                with("expiration", "2020-01-01T00:00:00Z"),
                Err(TokenError::Expired),
            ),
            (
                "no expiry",
                Some(SECRET_TYPE),
                {
                    let mut d = data(&base);
                    d.remove("expiration");
                    d
                },
                ok,
            ),
            (
                "not for authentication",
                Some(SECRET_TYPE),
                with("usage-bootstrap-authentication", "false"),
                Err(TokenError::Revoked(
                    "the token may not be used for authentication".into(),
                )),
            ),
            (
                "bad group",
                Some(SECRET_TYPE),
                with("auth-extra-groups", "system:masters"),
                Err(TokenError::Malformed(
                    "bad auth-extra-groups \"system:masters\"".into(),
                )),
            ),
        ];
        for (name, ty, d, want) in cases {
            assert_eq!(authenticate(&token, ty, &d, now), want, "{name}");
        }
    }

    #[test]
    fn secret_as_kubeadm_writes_it() {
        let t = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let s = t.secret(Some(0), "join");
        assert_eq!(s["metadata"]["name"], "bootstrap-token-abcdef");
        assert_eq!(s["type"], SECRET_TYPE);
        let field = |s: &Value, k: &str| {
            let v = s["data"][k].as_str().unwrap_or("").to_owned();
            String::from_utf8(STANDARD.decode(v).expect("base64")).expect("utf-8")
        };
        assert_eq!(field(&s, "expiration"), "1970-01-01T00:00:00Z");
        assert_eq!(field(&s, "token-secret"), "0123456789abcdef");
        assert!(t.secret(None, "").pointer("/data/expiration").is_none());
    }
}
