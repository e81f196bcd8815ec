//! `meta.k8s.io/v1` Tables (what `kubectl get` prints): the generic Name/Age form every kind
//! without its own printer gets, including custom resources.

use serde_json::{Value, json};

use crate::status::ApiError;

/// The `?includeObject=` parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    /// Parses the parameter (default: Metadata).
    pub fn parse(v: Option<&str>) -> Result<Self, ApiError> {
        match v {
            None | Some("") | Some("Metadata") => Ok(Self::Metadata),
            Some("None") => Ok(Self::None),
            Some("Object") => Ok(Self::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: \"{other}\": supported values: \"None\", \"Metadata\", \"Object\""
            ))),
        }
    }
}

/// Upstream's short human duration: `45s`, `3m12s` under 10 minutes, `5h` … `3d`, `2y`.
pub fn age(timestamp: &str, now: i64) -> String {
    let Some(then) = parse_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (now - then).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => {
            let (m, r) = (s / 60, s % 60);
            if r == 0 {
                format!("{m}m")
            } else {
                format!("{m}m{r}s")
            }
        }
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => {
            let (h, m) = (s / 3600, s % 3600 / 60);
            if m == 0 {
                format!("{h}h")
            } else {
                format!("{h}h{m}m")
            }
        }
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s if s < 8 * 86_400 => {
            let (d, h) = (s / 86_400, s % 86_400 / 3600);
            if h == 0 {
                format!("{d}d")
            } else {
                format!("{d}d{h}h")
            }
        }
        s if s < 2 * 365 * 86_400 => format!("{}d", s / 86_400),
        s if s < 8 * 365 * 86_400 => {
            let (y, d) = (s / (365 * 86_400), s % (365 * 86_400) / 86_400);
            if d == 0 {
                format!("{y}y")
            } else {
                format!("{y}y{d}d")
            }
        }
        s => format!("{}y", s / (365 * 86_400)),
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS(.frac)?Z` into Unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

fn row_object(obj: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(obj.clone()),
        IncludeObject::Metadata => Some(json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        })),
    }
}

/// The Name/Age table of `objects`.
pub fn generic(objects: &[Value], include: IncludeObject, now: i64) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let name = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            let created = o
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("");
            let mut row = json!({"cells": [name, age(created, now)]});
            if let Some(obj) = row_object(o, include) {
                row["object"] = obj;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0},
        ],
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_table() {
        let base = parse_rfc3339("2026-01-01T00:00:00Z").expect("parse");
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 5, "3h"),
            (5 * 3600 + 120, "5h2m"),
            (3 * 86_400, "3d"),
            (400 * 86_400, "400d"),
            (3 * 365 * 86_400, "3y"),
        ];
        for (delta, want) in cases {
            assert_eq!(age("2026-01-01T00:00:00Z", base + delta), want, "{delta}");
        }
        assert_eq!(age("garbage", base), "<unknown>");
    }

    #[test]
    fn rfc3339_round_trip() {
        for secs in [0i64, 951_782_400, 1_795_392_000] {
            assert_eq!(parse_rfc3339(&crate::objects::rfc3339(secs)), Some(secs));
        }
    }

    #[test]
    fn generic_rows() {
        let t = generic(
            &[json!({"metadata": {"name": "a", "creationTimestamp": "1970-01-01T00:00:00Z"}})],
            IncludeObject::Metadata,
            30,
        );
        assert_eq!(t["rows"][0]["cells"], json!(["a", "30s"]));
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        let t = generic(
            &[json!({"metadata": {"name": "a"}})],
            IncludeObject::None,
            0,
        );
        assert!(t["rows"][0].get("object").is_none());
    }
}
