//! Query parameters of list, watch, write and delete requests, parsed and validated.

use std::collections::HashMap;

use base64::Engine;
use serde_json::{Value, json};

use crate::status::ApiError;

/// `?resourceVersion=` semantics for reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadAt {
    /// Unset: the most recent state, consistently.
    Latest,
    /// `"0"`: any state is fine (served from the cache as is).
    Any,
    /// Not older than this revision.
    NotOlderThan(u64),
    /// Exactly this revision (`resourceVersionMatch=Exact`).
    Exact(u64),
}

/// A list continuation token: where the next page starts, and at which revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continue {
    pub rev: u64,
    pub start: String,
}

impl Continue {
    /// Encodes the token as upstream does: base64 of a small JSON document.
    pub fn encode(&self) -> String {
        let doc = json!({"v": "meta.k8s.io/v1", "rv": self.rev, "start": self.start});
        base64::engine::general_purpose::URL_SAFE.encode(doc.to_string())
    }

    /// Decodes a token from `?continue=`.
    pub fn decode(s: &str) -> Result<Self, ApiError> {
        let bad = || ApiError::bad_request(format!("continue key is not valid: {s}"));
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(s)
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(s))
            .map_err(|_| bad())?;
        let doc: Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let rev = doc.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
        let start = doc
            .get("start")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_owned();
        Ok(Self { rev, start })
    }
}

/// Parameters of LIST and WATCH.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: String,
    pub field_selector: String,
    pub limit: usize,
    pub continue_token: Option<Continue>,
    pub resource_version: Option<String>,
    pub resource_version_match: Option<String>,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub timeout_seconds: Option<u64>,
}

fn parse_u64(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    match q.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid {name} {v:?}"))),
    }
}

fn parse_bool(q: &HashMap<String, String>, name: &str) -> bool {
    q.get(name).is_some_and(|v| is_true(v))
}

/// A query flag that is true, spelled as Go's `strconv.ParseBool` accepts it (the Python client
/// sends `watch=True`).
pub(crate) fn is_true(v: &str) -> bool {
    matches!(v, "1" | "t" | "T" | "true" | "True" | "TRUE")
}

impl ListParams {
    /// Reads the parameters from a query map.
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        let continue_token = match q.get("continue").map(String::as_str) {
            None | Some("") => None,
            Some(c) => Some(Continue::decode(c)?),
        };
        Ok(Self {
            label_selector: q.get("labelSelector").cloned().unwrap_or_default(),
            field_selector: q.get("fieldSelector").cloned().unwrap_or_default(),
            limit: parse_u64(q, "limit")?.unwrap_or(0) as usize,
            continue_token,
            resource_version: q.get("resourceVersion").filter(|s| !s.is_empty()).cloned(),
            resource_version_match: q
                .get("resourceVersionMatch")
                .filter(|s| !s.is_empty())
                .cloned(),
            allow_bookmarks: parse_bool(q, "allowWatchBookmarks"),
            send_initial_events: parse_bool(q, "sendInitialEvents"),
            timeout_seconds: parse_u64(q, "timeoutSeconds")?,
        })
    }

    /// What revision a LIST should be served at, following upstream's rules.
    pub fn read_at(&self) -> Result<ReadAt, ApiError> {
        let rv = match &self.resource_version {
            None => None,
            Some(s) => Some(
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
            ),
        };
        match (self.resource_version_match.as_deref(), rv) {
            (None, None) => Ok(ReadAt::Latest),
            (None, Some(0)) => Ok(ReadAt::Any),
            (None, Some(r)) => Ok(ReadAt::NotOlderThan(r)),
            (Some("NotOlderThan"), Some(0)) => Ok(ReadAt::Any),
            (Some("NotOlderThan"), Some(r)) => Ok(ReadAt::NotOlderThan(r)),
            (Some("Exact"), Some(r)) if r > 0 => Ok(ReadAt::Exact(r)),
            (Some(m @ ("NotOlderThan" | "Exact")), _) => Err(ApiError::bad_request(format!(
                "resourceVersionMatch={m} requires a resourceVersion{}",
                if m == "Exact" { " greater than 0" } else { "" }
            ))),
            (Some(m), _) => Err(ApiError::bad_request(format!(
                "unsupported resourceVersionMatch {m:?}: use NotOlderThan or Exact"
            ))),
        }
    }
}

/// `?dryRun=All`.
pub fn dry_run(q: &HashMap<String, String>) -> Result<bool, ApiError> {
    match q.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(false),
        Some("All") => Ok(true),
        Some(v) => Err(ApiError::bad_request(format!(
            "unsupported dryRun value {v:?}: only All is supported"
        ))),
    }
}

/// `?fieldValidation=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    /// Reads the parameter; upstream's default for a server is Warn.
    pub fn parse(q: &HashMap<String, String>) -> Result<Self, ApiError> {
        match q.get("fieldValidation").map(String::as_str) {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(v) => Err(ApiError::bad_request(format!(
                "fieldValidation must be one of Ignore, Warn or Strict, got {v:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn read_at_table() {
        type Query<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(Query, Result<ReadAt, u16>)> = vec![
            (vec![], Ok(ReadAt::Latest)),
            (vec![("resourceVersion", "0")], Ok(ReadAt::Any)),
            (
                vec![("resourceVersion", "42")],
                Ok(ReadAt::NotOlderThan(42)),
            ),
            (
                vec![("resourceVersion", "42"), ("resourceVersionMatch", "Exact")],
                Ok(ReadAt::Exact(42)),
            ),
            (
                vec![
                    ("resourceVersion", "0"),
                    ("resourceVersionMatch", "NotOlderThan"),
                ],
                Ok(ReadAt::Any),
            ),
            (vec![("resourceVersionMatch", "Exact")], Err(400)),
            (vec![("resourceVersion", "x")], Err(400)),
            (
                vec![("resourceVersion", "1"), ("resourceVersionMatch", "Newest")],
                Err(400),
            ),
        ];
        for (query, want) in cases {
            let got = ListParams::parse(&q(&query))
                .and_then(|p| p.read_at())
                .map_err(|e| e.code);
            assert_eq!(got, want, "{query:?}");
        }
    }

    #[test]
    fn continue_round_trip() {
        let c = Continue {
            rev: 17,
            start: "/registry/core/pods/default/b\0".into(),
        };
        assert_eq!(Continue::decode(&c.encode()).expect("decode"), c);
        assert_eq!(Continue::decode("!!!").expect_err("bad").code, 400);
    }

    #[test]
    fn small_params_table() {
        assert!(dry_run(&q(&[("dryRun", "All")])).expect("ok"));
        assert!(!dry_run(&q(&[])).expect("ok"));
        assert!(dry_run(&q(&[("dryRun", "Some")])).is_err());
        assert_eq!(
            FieldValidation::parse(&q(&[("fieldValidation", "Strict")])).expect("ok"),
            FieldValidation::Strict
        );
        assert_eq!(
            FieldValidation::parse(&q(&[])).expect("ok"),
            FieldValidation::Warn
        );
        assert!(FieldValidation::parse(&q(&[("fieldValidation", "x")])).is_err());
        assert_eq!(
            ListParams::parse(&q(&[("limit", "abc")]))
                .expect_err("bad")
                .code,
            400
        );
    }
}
