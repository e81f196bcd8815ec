//! `apiserver.config.k8s.io/v1` `EncryptionConfiguration` into a [`Transformer`]: which
//! resources are encrypted with which provider, and every key a stored value may be read with.
//! Pure: the binary reads the file.

use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use super::EncryptionError;
use super::cipher::{Cipher, Kind, parse_prefix};

/// Which resources one `resources[]` entry covers, as upstream writes them: `secrets` (core),
/// `deployments.apps`, `*.apps` (a whole group), `*.` (the core group), `*.*` (everything).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pattern {
    Exact { group: String, resource: String },
    Group(String),
    All,
}

impl Pattern {
    fn parse(s: &str) -> Result<Self, EncryptionError> {
        let bad = |why: &str| EncryptionError::Config(format!("resource {s:?}: {why}"));
        match s {
            "" => Err(bad("must not be empty")),
            "*.*" => Ok(Pattern::All),
            "*" => Err(bad("use \"*.\" for every core resource or \"*.*\" for all")),
            _ => {
                let (resource, group) = s.split_once('.').unwrap_or((s, ""));
                if group.contains('*') || (resource.contains('*') && resource != "*") {
                    return Err(bad("only \"*.<group>\", \"*.\" and \"*.*\" may use '*'"));
                }
                if resource == "*" {
                    Ok(Pattern::Group(group.to_owned()))
                } else {
                    Ok(Pattern::Exact {
                        group: group.to_owned(),
                        resource: resource.to_owned(),
                    })
                }
            }
        }
    }

    fn matches(&self, group: &str, resource: &str) -> bool {
        match self {
            Pattern::All => true,
            Pattern::Group(g) => g == group,
            Pattern::Exact {
                group: g,
                resource: r,
            } => g == group && r == resource,
        }
    }

    /// Whether everything `other` matches, this matches too.
    fn covers(&self, other: &Pattern) -> bool {
        match (self, other) {
            (Pattern::All, _) => true,
            (Pattern::Group(g), Pattern::Group(o)) => g == o,
            (Pattern::Group(g), Pattern::Exact { group, .. }) => g == group,
            (a @ Pattern::Exact { .. }, b) => a == b,
            _ => false,
        }
    }
}

/// One `resources[]` entry: what it covers and how new values are written.
#[derive(Debug)]
struct Rule {
    patterns: Vec<Pattern>,
    /// The first provider: `None` is `identity` (plaintext).
    writer: Option<Arc<Cipher>>,
}

/// Encrypts values for the store and decrypts them back, per upstream's rules: the first
/// matching entry's first provider writes; reading tries every configured key whose prefix the
/// value carries. Values without the `k8s:enc:` prefix are plaintext and read as such whatever
/// the configuration (unlike upstream, which needs `identity` listed for that), so turning
/// encryption on can never hide existing objects.
#[derive(Debug, Default)]
pub struct Transformer {
    rules: Vec<Rule>,
    readers: Vec<Arc<Cipher>>,
}

impl Transformer {
    /// Parses an `EncryptionConfiguration` (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, EncryptionError> {
        let doc: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| EncryptionError::Config(format!("not YAML: {e}")))?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if kind != "EncryptionConfiguration" || api_version != "apiserver.config.k8s.io/v1" {
            return Err(EncryptionError::Config(format!(
                "expected apiVersion apiserver.config.k8s.io/v1, kind EncryptionConfiguration; got {api_version:?}, {kind:?}"
            )));
        }
        let entries = doc
            .get("resources")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                EncryptionError::Config("resources: at least one entry is required".into())
            })?;
        let mut out = Transformer::default();
        for (i, entry) in entries.iter().enumerate() {
            let rule = parse_entry(entry, i, &mut out.readers)?;
            for p in &rule.patterns {
                if let Some(earlier) = out
                    .rules
                    .iter()
                    .flat_map(|r| &r.patterns)
                    .chain(rule.patterns.iter().take_while(|q| !std::ptr::eq(*q, p)))
                    .find(|e| e.covers(p))
                {
                    return Err(EncryptionError::Config(format!(
                        "resources[{i}]: {p:?} is already covered by {earlier:?}, listed before it"
                    )));
                }
            }
            out.rules.push(rule);
        }
        Ok(out)
    }

    /// The provider that writes values of `group`/`resource`: its name, or `identity`.
    pub fn writer_for(&self, group: &str, resource: &str) -> Option<String> {
        let rule = self.rule(group, resource)?;
        Some(match &rule.writer {
            Some(c) => format!("{}:{}", c.kind().as_str(), c.name()),
            None => "identity".to_owned(),
        })
    }

    fn rule(&self, group: &str, resource: &str) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.patterns.iter().any(|p| p.matches(group, resource)))
    }

    /// What to store for `plain` under the store key `key`: `None` means store it as it is
    /// (the key's resource is not configured, or its first provider is `identity`).
    pub fn encrypt(&self, key: &str, plain: &[u8]) -> Result<Option<Vec<u8>>, EncryptionError> {
        let Some((group, resource, _)) = crate::keys::split_key(key) else {
            return Ok(None);
        };
        let Some(cipher) = self.rule(group, resource).and_then(|r| r.writer.as_ref()) else {
            return Ok(None);
        };
        cipher
            .seal(key.as_bytes(), plain)
            .map(Some)
            .ok_or_else(|| EncryptionError::Encrypt {
                key: key.to_owned(),
            })
    }

    /// Whether a stored value was written otherwise than a write now would be (another key or
    /// provider, or plaintext where encryption is configured): then even an unchanged update
    /// must be written, which is how `kubectl replace` of every Secret rotates keys.
    pub fn is_stale(&self, key: &str, stored: &[u8]) -> bool {
        let writer = crate::keys::split_key(key)
            .and_then(|(group, resource, _)| self.rule(group, resource))
            .and_then(|r| r.writer.as_ref());
        match writer {
            Some(c) => !stored.starts_with(c.prefix()),
            None => stored.starts_with(super::ENCRYPTED_PREFIX),
        }
    }

    /// The plaintext of a stored value: `None` when it is not encrypted (use it as it is).
    pub fn decrypt(&self, key: &str, stored: &[u8]) -> Result<Option<Vec<u8>>, EncryptionError> {
        let Some(rest) = stored.strip_prefix(super::ENCRYPTED_PREFIX) else {
            return Ok(None);
        };
        let (provider, name, _) = parse_prefix(rest).unwrap_or(("unknown", "", b""));
        let mut named = false;
        // The same name may appear under several entries (with the same or another secret):
        // try each; AEADs reject a wrong one.
        for c in &self.readers {
            if let Some(body) = stored.strip_prefix(c.prefix()) {
                named = true;
                if let Some(plain) = c.open(key.as_bytes(), body) {
                    return Ok(Some(plain));
                }
            }
        }
        let (key, provider, name) = (key.to_owned(), provider.to_owned(), name.to_owned());
        Err(if named {
            EncryptionError::Decrypt {
                key,
                provider,
                name,
            }
        } else {
            EncryptionError::UnknownKey {
                key,
                provider,
                name,
            }
        })
    }
}

fn parse_entry(
    entry: &Value,
    i: usize,
    readers: &mut Vec<Arc<Cipher>>,
) -> Result<Rule, EncryptionError> {
    let err = |m: String| EncryptionError::Config(format!("resources[{i}]: {m}"));
    let patterns = entry
        .get("resources")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| err("resources: at least one resource is required".into()))?
        .iter()
        .map(|r| {
            r.as_str()
                .ok_or_else(|| err("resources: must be strings".into()))
                .and_then(Pattern::parse)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let providers = entry
        .get("providers")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| err("providers: at least one provider is required".into()))?;
    let mut writer = None;
    for (j, provider) in providers.iter().enumerate() {
        let map = provider
            .as_object()
            .filter(|m| m.len() == 1)
            .ok_or_else(|| {
                err(format!(
                    "providers[{j}]: exactly one provider type per item"
                ))
            })?;
        let Some((ty, body)) = map.iter().next() else {
            continue;
        };
        let kind = match ty.as_str() {
            "identity" => None,
            "aesgcm" => Some(Kind::AesGcm),
            "aescbc" => Some(Kind::AesCbc),
            "secretbox" => Some(Kind::Secretbox),
            "kms" => {
                return Err(err(format!(
                    "providers[{j}]: kms is not supported by rudder"
                )));
            }
            other => return Err(err(format!("providers[{j}]: unknown provider {other:?}"))),
        };
        let Some(kind) = kind else {
            continue;
        };
        let ciphers =
            parse_keys(kind, body).map_err(|m| err(format!("providers[{j}].{ty}: {m}")))?;
        if j == 0 {
            writer = ciphers.first().cloned();
        }
        readers.extend(ciphers);
    }
    Ok(Rule { patterns, writer })
}

fn parse_keys(kind: Kind, body: &Value) -> Result<Vec<Arc<Cipher>>, String> {
    let keys = body
        .get("keys")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
        .ok_or("keys: at least one key is required")?;
    let mut out: Vec<Arc<Cipher>> = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let name = key.get("name").and_then(Value::as_str).unwrap_or("");
        if name.is_empty() || name.contains(':') {
            return Err(format!("keys[{k}].name: required, without ':'"));
        }
        if out.iter().any(|c| c.name() == name) {
            return Err(format!("keys[{k}].name: {name:?} is listed twice"));
        }
        let secret = key.get("secret").and_then(Value::as_str).unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .map_err(|e| format!("keys[{k}].secret: not base64: {e}"))?;
        let cipher = Cipher::new(kind, name, &bytes).ok_or_else(|| {
            format!(
                "keys[{k}].secret: {} bytes; {} takes {:?}",
                bytes.len(),
                kind.as_str(),
                kind.key_sizes()
            )
        })?;
        out.push(Arc::new(cipher));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
