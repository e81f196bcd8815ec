//! Field selectors: the `?fieldSelector=` syntax, the per-kind field whitelist, and matching objects.
//!
//! Syntax as upstream (`k8s.io/apimachinery/pkg/fields`): comma-separated terms that must all
//! hold, each `field=value`, `field==value` or `field!=value`; in values, `\,` `\=` and `\\`
//! escape the special characters. A field missing from an object compares as its zero value.

use std::fmt;

use serde_json::Value;

use crate::{MachineryError, selectable_fields};

/// How a term compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One `field<op>value` term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// The field label, a dotted path such as `spec.nodeName`.
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value, unescaped.
    pub value: String,
}

/// A parsed field selector: terms that must all hold. Empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

/// The field labels a field selector may use for `group`/`kind` (upstream's conversion lists).
///
/// Every kind accepts `metadata.name`; namespaced kinds also `metadata.namespace`. Kinds
/// upstream gives more: pods, nodes, replication controllers, events (core and
/// `events.k8s.io`), namespaces, secrets, services, jobs, certificate signing requests,
/// cluster trust bundles, resource slices.
pub fn supported_fields(group: &str, kind: &str) -> &'static [&'static str] {
    selectable_fields::labels(group, kind)
}

/// The text a field selector compares for `label` of `object` (of `group`/`kind`): strings as
/// they are, booleans and numbers printed, and a missing field as its zero value.
pub fn field_value(group: &str, kind: &str, object: &Value, label: &str) -> String {
    selectable_fields::value(group, kind, object, label)
}

impl FieldSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the `?fieldSelector=` syntax, with upstream's error messages. Terms come out
    /// sorted by their text, as upstream sorts them.
    pub fn parse(selector: &str) -> Result<Self, MachineryError> {
        let mut parts = split_terms(selector);
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let Some((field, operator, raw)) = split_term(part) else {
                return Err(MachineryError::InvalidFieldSelector(format!(
                    "invalid selector: '{selector}'; can't understand '{part}'"
                )));
            };
            terms.push(FieldTerm {
                field: field.to_string(),
                operator,
                value: unescape_value(raw)?,
            });
        }
        Ok(FieldSelector { terms })
    }

    /// The terms.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// Whether the selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Checks every field against what `group`/`version`/`kind` supports, rewriting deprecated
    /// spellings (`spec.host` → `spec.nodeName` for pods) and the fields of kinds stored in
    /// another version's shape (`regarding.name` of an `events.k8s.io` Event is the stored
    /// core Event's `involvedObject.name`). The error carries upstream's text,
    /// e.g. `field label not supported: spec.foo`.
    pub fn convert_for(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<FieldSelector, MachineryError> {
        let supported = supported_fields(group, kind);
        let mut terms = Vec::with_capacity(self.terms.len());
        for term in &self.terms {
            if !supported.contains(&term.field.as_str()) {
                return Err(MachineryError::UnsupportedFieldLabel {
                    field: term.field.clone(),
                    message: selectable_fields::unsupported_message(
                        group,
                        version,
                        kind,
                        &term.field,
                    ),
                });
            }
            terms.push(FieldTerm {
                field: selectable_fields::stored_label(group, kind, &term.field).to_string(),
                ..term.clone()
            });
        }
        Ok(FieldSelector { terms })
    }

    /// Whether `object` (of `group`/`kind`) satisfies every term, reading fields with
    /// [`field_value`]. Does not check the whitelist: call [`FieldSelector::convert_for`] first.
    pub fn matches_object(&self, group: &str, kind: &str, object: &Value) -> bool {
        self.matches(|label| field_value(group, kind, object, label))
    }

    /// Whether the fields `get` returns satisfy every term.
    pub fn matches(&self, mut get: impl FnMut(&str) -> String) -> bool {
        self.terms.iter().all(|t| {
            let have = get(&t.field);
            match t.operator {
                FieldOperator::Equals => have == t.value,
                FieldOperator::NotEquals => have != t.value,
            }
        })
    }

    /// The value `field` must equal for any object to match, if a term pins it (useful to
    /// narrow a list by an index, e.g. pods by `spec.nodeName`).
    pub fn requires_exact_match(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.field == field && t.operator == FieldOperator::Equals)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldSelector {
    /// Upstream's canonical text: `f=v` / `f!=v` with values escaped, joined by commas.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .terms
            .iter()
            .map(|t| {
                let op = match t.operator {
                    FieldOperator::Equals => "=",
                    FieldOperator::NotEquals => "!=",
                };
                format!("{}{op}{}", t.field, escape_value(&t.value))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Escapes `\`, `,` and `=` so a literal can be used as a field selector value.
pub fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace(',', "\\,")
        .replace('=', "\\=")
}

/// Splits on commas not preceded by a backslash (the backslash stays in the term).
fn split_terms(selector: &str) -> Vec<&str> {
    if selector.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in selector.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&selector[start..i]);
            start = i + 1;
        }
    }
    terms.push(&selector[start..]);
    terms
}

/// Splits a term at its first operator (`!=`, `==`, `=`, tried in that order at each position).
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, operator) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(value) = rest.strip_prefix(op) {
                return Some((&term[..i], operator, value));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, MachineryError> {
    if !s.contains(['\\', ',', '=']) {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(MachineryError::InvalidFieldSelector(format!(
                    "invalid field selector: invalid escape sequence: \\{c}"
                )));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(MachineryError::InvalidFieldSelector(format!(
                    "invalid field selector: unescaped character in value: {}",
                    u32::from(c)
                )));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err(MachineryError::InvalidFieldSelector(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}
