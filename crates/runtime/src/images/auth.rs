//! Registry credentials: the `kubernetes.io/dockerconfigjson` (and legacy `dockercfg`) pull
//! secret formats, and picking the entry that applies to an image.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use super::error::ImageError;
use super::reference::{DOCKER_HUB, Reference};

/// A user name and password for HTTP basic auth (or a token exchange) against a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The entries of one or more pull secrets, keyed by the registry (and optional path) they
/// apply to.
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    entries: Vec<(String, Credentials)>,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
}

impl DockerConfig {
    /// Parses the `.dockerconfigjson` key of a `kubernetes.io/dockerconfigjson` secret
    /// (`{"auths": {"host": {...}}}`) or the `.dockercfg` key of the legacy
    /// `kubernetes.io/dockercfg` secret (the same map without the `auths` wrapper).
    pub fn parse(json: &[u8]) -> Result<DockerConfig, ImageError> {
        let value: serde_json::Value = serde_json::from_slice(json)
            .map_err(|e| ImageError::InvalidPullSecret(e.to_string()))?;
        let auths: BTreeMap<String, AuthEntry> = if value.get("auths").is_some() {
            serde_json::from_value::<ConfigJson>(value)
                .map_err(|e| ImageError::InvalidPullSecret(e.to_string()))?
                .auths
        } else {
            serde_json::from_value(value)
                .map_err(|e| ImageError::InvalidPullSecret(e.to_string()))?
        };
        let mut entries = Vec::new();
        for (key, entry) in auths {
            entries.push((normalise_key(&key), entry.credentials(&key)?));
        }
        Ok(DockerConfig { entries })
    }

    /// Adds another secret's entries; earlier entries win on equal keys, as the kubelet tries
    /// a pod's `imagePullSecrets` in order.
    pub fn merge(&mut self, other: DockerConfig) {
        self.entries.extend(other.entries);
    }

    /// The credentials for `image`: the entry whose key matches its registry and the longest
    /// path prefix of its repository.
    pub fn credentials_for(&self, image: &Reference) -> Option<&Credentials> {
        let full = image.name();
        let mut best: Option<(usize, &Credentials)> = None;
        for (key, creds) in &self.entries {
            let matches = full == *key
                || (full.starts_with(key.as_str())
                    && full.as_bytes().get(key.len()) == Some(&b'/'));
            if matches && best.is_none_or(|(len, _)| key.len() > len) {
                best = Some((key.len(), creds));
            }
        }
        best.map(|(_, c)| c)
    }
}

impl AuthEntry {
    fn credentials(self, key: &str) -> Result<Credentials, ImageError> {
        if let (Some(username), Some(password)) = (&self.username, &self.password)
            && !username.is_empty()
        {
            return Ok(Credentials {
                username: username.clone(),
                password: password.clone(),
            });
        }
        let auth = self.auth.ok_or_else(|| {
            ImageError::InvalidPullSecret(format!("{key}: no username/password or auth"))
        })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| {
                ImageError::InvalidPullSecret(format!("{key}: auth is not base64: {e}"))
            })?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| ImageError::InvalidPullSecret(format!("{key}: auth is not UTF-8")))?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            ImageError::InvalidPullSecret(format!("{key}: auth is not user:password"))
        })?;
        Ok(Credentials {
            username: username.to_string(),
            password: password.to_string(),
        })
    }
}

/// Reduces a secret's key (`https://index.docker.io/v1/`, `quay.io/org`, `http://h:5000`) to
/// `registry[/path]` in the same spelling as [`Reference::name`].
fn normalise_key(key: &str) -> String {
    let key = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let (host, path) = match key.split_once('/') {
        Some((h, p)) => (h, p),
        None => (key, ""),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => DOCKER_HUB,
        h => h,
    };
    // Docker Hub's historical key carries an API version, not a repository path.
    let path = if host == DOCKER_HUB && (path == "v1" || path == "v2") {
        ""
    } else {
        path
    };
    if path.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn parses_both_secret_formats() {
        let modern = format!(
            r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{}"}},"https://index.docker.io/v1/":{{"username":"u","password":"p"}}}}}}"#,
            b64("alice:s3:cret")
        );
        let legacy = format!(
            r#"{{"127.0.0.1:5000":{{"auth":"{}","email":"x@y"}}}}"#,
            b64("alice:s3:cret")
        );
        for json in [modern, legacy] {
            let cfg = DockerConfig::parse(json.as_bytes()).unwrap();
            let r: Reference = "127.0.0.1:5000/foo:1".parse().unwrap();
            let c = cfg.credentials_for(&r).unwrap();
            assert_eq!(
                (c.username.as_str(), c.password.as_str()),
                ("alice", "s3:cret")
            );
        }
    }

    #[test]
    fn matching_rules() {
        let json = format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{}"}},
                "quay.io":{{"auth":"{}"}},
                "quay.io/team":{{"auth":"{}"}},
                "http://localhost:5000/":{{"auth":"{}"}}
            }}}}"#,
            b64("hub:1"),
            b64("quay:1"),
            b64("team:1"),
            b64("local:1")
        );
        let cfg = DockerConfig::parse(json.as_bytes()).unwrap();
        let cases = [
            ("busybox", Some("hub")),
            ("docker.io/foo/bar", Some("hub")),
            ("quay.io/other/x", Some("quay")),
            ("quay.io/team/x", Some("team")),
            ("quay.io/teamster/x", Some("quay")),
            ("localhost:5000/x", Some("local")),
            ("localhost:5001/x", None),
            ("gcr.io/x/y", None),
        ];
        for (image, want) in cases {
            let r: Reference = image.parse().unwrap();
            let got = cfg.credentials_for(&r).map(|c| c.username.as_str());
            assert_eq!(got, want, "{image}");
        }
    }

    #[test]
    fn rejects_bad_secrets() {
        for json in [
            "not json",
            r#"{"auths":{"h":{}}}"#,
            r#"{"auths":{"h":{"auth":"!!!"}}}"#,
            &format!(r#"{{"auths":{{"h":{{"auth":"{}"}}}}}}"#, b64("nocolon")),
        ] {
            assert!(DockerConfig::parse(json.as_bytes()).is_err(), "{json}");
        }
    }

    #[test]
    fn debug_hides_password() {
        let c = Credentials {
            username: "u".into(),
            password: "secret".into(),
        };
        assert!(!format!("{c:?}").contains("secret"));
    }
}
