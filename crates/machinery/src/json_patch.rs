//! RFC 6902 JSON patch (`application/json-patch+json`) with RFC 6901 pointers.
//!
//! Operations apply in order to a copy of the document; the first failure stops the patch and
//! is reported with its operation index ([`MachineryError::JsonPatch`]), so a failed `test`
//! leaves the caller's document untouched. Array indexes are RFC 6901's: decimal without
//! leading zeros, `-` meaning "after the last element" (only where a value is added).

use serde_json::Value;

use crate::{JsonPatchErrorKind, MachineryError};

/// One parsed operation; pointers are kept as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    /// Insert or set `value` at `path`.
    Add {
        /// Target location.
        path: String,
        /// Value to add.
        value: Value,
    },
    /// Remove the value at `path`.
    Remove {
        /// Target location.
        path: String,
    },
    /// Replace the existing value at `path`.
    Replace {
        /// Target location.
        path: String,
        /// New value.
        value: Value,
    },
    /// Remove the value at `from` and add it at `path`.
    Move {
        /// Source location.
        from: String,
        /// Target location.
        path: String,
    },
    /// Add a copy of the value at `from` at `path`.
    Copy {
        /// Source location.
        from: String,
        /// Target location.
        path: String,
    },
    /// Fail unless the value at `path` equals `value`.
    Test {
        /// Target location.
        path: String,
        /// Expected value.
        value: Value,
    },
}

/// Parses a JSON patch document (an array of operation objects).
pub fn parse_json_patch(patch: &Value) -> Result<Vec<Operation>, MachineryError> {
    let Value::Array(ops) = patch else {
        return Err(MachineryError::MalformedPatch(
            "a JSON patch must be an array of operations".to_string(),
        ));
    };
    ops.iter()
        .enumerate()
        .map(|(index, op)| {
            parse_operation(op).map_err(|kind| MachineryError::JsonPatch { index, kind })
        })
        .collect()
}

fn parse_operation(op: &Value) -> Result<Operation, JsonPatchErrorKind> {
    let Value::Object(members) = op else {
        return Err(JsonPatchErrorKind::NotAnObject);
    };
    let text = |name: &'static str| {
        members
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or(JsonPatchErrorKind::MissingMember(name))
    };
    // `value` may legitimately be null, so presence is what matters.
    let value = || {
        members
            .get("value")
            .cloned()
            .ok_or(JsonPatchErrorKind::MissingMember("value"))
    };
    let name = text("op")?;
    let path = text("path")?;
    Ok(match name.as_str() {
        "add" => Operation::Add {
            path,
            value: value()?,
        },
        "remove" => Operation::Remove { path },
        "replace" => Operation::Replace {
            path,
            value: value()?,
        },
        "move" => Operation::Move {
            from: text("from")?,
            path,
        },
        "copy" => Operation::Copy {
            from: text("from")?,
            path,
        },
        "test" => Operation::Test {
            path,
            value: value()?,
        },
        _ => return Err(JsonPatchErrorKind::UnknownOp(name)),
    })
}

/// Applies a JSON patch document to `doc`, returning the patched copy.
pub fn apply_json_patch(doc: &Value, patch: &Value) -> Result<Value, MachineryError> {
    apply_operations(doc, &parse_json_patch(patch)?)
}

/// Applies parsed operations to `doc`, returning the patched copy.
pub fn apply_operations(doc: &Value, ops: &[Operation]) -> Result<Value, MachineryError> {
    let mut doc = doc.clone();
    for (index, op) in ops.iter().enumerate() {
        apply_one(&mut doc, op).map_err(|kind| MachineryError::JsonPatch { index, kind })?;
    }
    Ok(doc)
}

fn apply_one(doc: &mut Value, op: &Operation) -> Result<(), JsonPatchErrorKind> {
    match op {
        Operation::Add { path, value } => add(doc, path, value.clone()),
        Operation::Remove { path } => remove(doc, path).map(drop),
        Operation::Replace { path, value } => {
            let target = get_mut(doc, path, &tokens(path)?)?;
            *target = value.clone();
            Ok(())
        }
        Operation::Move { from, path } => {
            let from_tokens = tokens(from)?;
            let path_tokens = tokens(path)?;
            if path_tokens.len() > from_tokens.len() && path_tokens.starts_with(&from_tokens) {
                return Err(JsonPatchErrorKind::MoveIntoDescendant {
                    from: from.clone(),
                    path: path.clone(),
                });
            }
            if from_tokens == path_tokens {
                return get_mut(doc, from, &from_tokens).map(drop);
            }
            let value = remove(doc, from)?;
            add(doc, path, value)
        }
        Operation::Copy { from, path } => {
            let value = get_mut(doc, from, &tokens(from)?)?.clone();
            add(doc, path, value)
        }
        Operation::Test { path, value } => {
            let all = tokens(path)?;
            let passed = match get_mut(doc, path, &all) {
                Ok(found) => json_equal(found, value),
                // As upstream's json-patch: a member missing from an object that exists tests
                // equal to null.
                Err(JsonPatchErrorKind::PathNotFound(_)) => {
                    value.is_null()
                        && all.split_last().is_some_and(|(_, parent)| {
                            matches!(get_mut(doc, path, parent), Ok(Value::Object(_)))
                        })
                }
                Err(_) => false,
            };
            if passed {
                Ok(())
            } else {
                Err(JsonPatchErrorKind::TestFailed(path.clone()))
            }
        }
    }
}

/// Splits an RFC 6901 pointer into unescaped reference tokens.
fn tokens(pointer: &str) -> Result<Vec<String>, JsonPatchErrorKind> {
    if pointer.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(JsonPatchErrorKind::InvalidPointer(pointer.to_string()));
    };
    rest.split('/')
        .map(|raw| {
            let mut out = String::with_capacity(raw.len());
            let mut chars = raw.chars();
            while let Some(c) = chars.next() {
                if c != '~' {
                    out.push(c);
                    continue;
                }
                match chars.next() {
                    Some('0') => out.push('~'),
                    Some('1') => out.push('/'),
                    _ => return Err(JsonPatchErrorKind::InvalidPointer(pointer.to_string())),
                }
            }
            Ok(out)
        })
        .collect()
}

/// An array index token: `0` or a decimal without leading zeros.
fn array_index(token: &str, path: &str) -> Result<usize, JsonPatchErrorKind> {
    let well_formed = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    let parsed = if well_formed {
        token.parse().ok()
    } else {
        None
    };
    parsed.ok_or_else(|| JsonPatchErrorKind::InvalidIndex {
        index: token.to_string(),
        path: path.to_string(),
    })
}

fn get_mut<'a>(
    doc: &'a mut Value,
    path: &str,
    tokens: &[String],
) -> Result<&'a mut Value, JsonPatchErrorKind> {
    let mut current = doc;
    for token in tokens {
        current = match current {
            Value::Object(members) => members.get_mut(token),
            Value::Array(items) if token != "-" => {
                let i = array_index(token, path)?;
                items.get_mut(i)
            }
            _ => None,
        }
        .ok_or_else(|| JsonPatchErrorKind::PathNotFound(path.to_string()))?;
    }
    Ok(current)
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), JsonPatchErrorKind> {
    let all = tokens(path)?;
    let Some((last, parent_tokens)) = all.split_last() else {
        *doc = value;
        return Ok(());
    };
    match get_mut(doc, path, parent_tokens)? {
        Value::Object(members) => {
            members.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(items) => {
            let len = items.len();
            let i = if last == "-" {
                len
            } else {
                array_index(last, path)?
            };
            if i > len {
                return Err(JsonPatchErrorKind::IndexOutOfBounds {
                    index: i,
                    len,
                    path: path.to_string(),
                });
            }
            items.insert(i, value);
            Ok(())
        }
        _ => Err(JsonPatchErrorKind::NotAContainer(path.to_string())),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, JsonPatchErrorKind> {
    let all = tokens(path)?;
    let Some((last, parent_tokens)) = all.split_last() else {
        return Err(JsonPatchErrorKind::NotAContainer(path.to_string()));
    };
    match get_mut(doc, path, parent_tokens)? {
        Value::Object(members) => members
            .remove(last)
            .ok_or_else(|| JsonPatchErrorKind::PathNotFound(path.to_string())),
        Value::Array(items) => {
            if last == "-" {
                return Err(JsonPatchErrorKind::PathNotFound(path.to_string()));
            }
            let i = array_index(last, path)?;
            if i >= items.len() {
                return Err(JsonPatchErrorKind::IndexOutOfBounds {
                    index: i,
                    len: items.len(),
                    path: path.to_string(),
                });
            }
            Ok(items.remove(i))
        }
        _ => Err(JsonPatchErrorKind::NotAContainer(path.to_string())),
    }
}

/// JSON equality with numbers compared by value (`1` equals `1.0`), as RFC 6902 `test` needs.
fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return x == y;
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return x == y;
            }
            x.as_f64() == y.as_f64()
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_equal(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}
