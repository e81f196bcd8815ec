//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`) applied to JSON objects.
//!
//! Follows `k8s.io/apimachinery/pkg/util/strategicpatch` as the API server applies it: maps merge
//! recursively and `null` deletes a field; lists tagged `merge` in the [`MergeSchema`] merge by
//! their merge key (lists of maps) or as sets (lists of scalars), keeping upstream's ordering
//! rules; other lists are replaced. Directives: `$patch: replace|delete` in maps, `$patch:
//! replace|delete` items in merging lists, `$deleteFromPrimitiveList/<field>`,
//! `$setElementOrder/<field>` and `$retainKeys`.
//!
//! Unlike upstream, directive keys and `null`s that would land in the result (in values added
//! whole, or in replaced lists) are dropped here, since upstream drops them when it decodes the
//! result into a typed object and rudder stores JSON as it is. Unknown fields are not an error:
//! maps under them merge and lists are replaced.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::MachineryError;
use crate::merge_schema::{FieldPatchMeta, MergeSchema, PatchStrategy};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_PREFIX: &str = "$deleteFromPrimitiveList";
const ORDER_PREFIX: &str = "$setElementOrder";

type Object = Map<String, Value>;
type Result<T> = std::result::Result<T, MachineryError>;

/// Applies the strategic merge `patch` to `original` (both JSON objects) using `schema`, the
/// schema of `original`'s kind (see [`MergeSchema::for_kind`]).
pub fn strategic_merge(original: &Value, patch: &Value, schema: &MergeSchema) -> Result<Value> {
    let (Value::Object(original), Value::Object(patch)) = (original, patch) else {
        return Err(MachineryError::MalformedPatch(
            "invalid JSON document".to_string(),
        ));
    };
    merge_map(original.clone(), patch.clone(), *schema).map(Value::Object)
}

fn fail<T>(message: String) -> Result<T> {
    Err(MachineryError::StrategicMergePatch(message))
}

fn merge_map(mut original: Object, mut patch: Object, schema: MergeSchema) -> Result<Object> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(clean_object(patch))
            }
            Some("delete") => Ok(Object::new()),
            _ => fail(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    apply_element_orders(&mut original, &mut patch, schema)?;

    // Deletion lists first, so a patch naming the same list twice gives one answer.
    let mut entries: Vec<(String, Value)> = patch.into_iter().collect();
    entries.sort_by_key(|(k, _)| !k.starts_with(DELETE_PREFIX));
    for (key, patch_value) in entries {
        let (key, is_delete_list) = match key.strip_prefix(DELETE_PREFIX) {
            Some(_) => (extract_key(&key, DELETE_PREFIX)?, true),
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(slot) = original.get_mut(&key) else {
            if !is_delete_list && let Some(v) = clean(patch_value) {
                original.insert(key, v);
            }
            continue;
        };
        if go_kind(slot) != go_kind(&patch_value) {
            if !is_delete_list {
                match clean(patch_value) {
                    Some(v) => *slot = v,
                    None => {
                        original.remove(&key);
                    }
                }
            }
            continue;
        }
        let meta = schema.field(&key);
        let merged = match (std::mem::take(slot), patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                if meta.strategy == PatchStrategy::Replace {
                    Value::Object(clean_object(p))
                } else {
                    Value::Object(merge_map(o, p, meta.schema)?)
                }
            }
            (Value::Array(o), Value::Array(p)) => {
                Value::Array(merge_list_field(o, p, &meta, is_delete_list)?)
            }
            (_, p) => p,
        };
        *slot = merged;
    }
    Ok(original)
}

/// Merges a list field according to its strategy; deletion lists always merge.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    meta: &FieldPatchMeta,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if meta.strategy == PatchStrategy::Merge || is_delete_list {
        return merge_list(
            original,
            patch,
            meta.schema,
            meta.merge_key.unwrap_or(""),
            is_delete_list,
        );
    }
    Ok(clean_array(patch))
}

/// `$retainKeys`: drop live keys not listed; every key the patch sets must be listed.
fn apply_retain_keys(original: &mut Object, patch: &mut Object) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let bad = || fail("invalid patch format of retainKeys".to_string());
    let Value::Array(retain) = retain else {
        return bad();
    };
    let listed = |k: &str| retain.iter().any(|v| v.as_str() == Some(k));
    for (k, v) in patch.iter() {
        let exempt = v.is_null() || k.starts_with(DELETE_PREFIX) || k.starts_with(ORDER_PREFIX);
        if !exempt && !listed(k) {
            return bad();
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// `$setElementOrder/<field>`: merges `<field>` now and orders the result as the directive says
/// (directive order first, then patch order, then live order for items only the server has).
fn apply_element_orders(
    original: &mut Object,
    patch: &mut Object,
    schema: MergeSchema,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(ORDER_PREFIX))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return fail(bad_arg_type("slice", &order));
        };
        let field = extract_key(&key, ORDER_PREFIX)?;
        let original_list = list_at(original, &field)?;
        let patch_list = list_at(patch, &field)?;
        let meta = schema.field(&field);
        let merge_key = meta.merge_key.unwrap_or("");
        validate_patch_with_order(patch_list.as_deref().unwrap_or_default(), &order, merge_key)?;
        if original_list.is_none() && patch_list.is_none() {
            continue;
        }
        let server_order = original_list.clone().unwrap_or_default();
        let kind = slice_element_kind(&server_order, patch_list.as_deref().unwrap_or_default())?;
        let merged = match (original_list, patch_list) {
            (Some(o), Some(p)) => merge_list_field(o, p, &meta, false)?,
            (Some(o), None) => o,
            (None, p) => strip_directives_array(p.unwrap_or_default()),
        };
        let (in_order, server_only) = partition(merged, &order, merge_key, kind)?;
        let ordered = normalize_element_order(
            in_order,
            server_only,
            &order,
            &server_order,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(ordered));
        patch.remove(&field);
    }
    Ok(())
}

fn list_at(object: &Object, field: &str) -> Result<Option<Vec<Value>>> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items.clone())),
        Some(other) => fail(bad_arg_type("slice", other)),
    }
}

/// Checks that the patch list's items appear in the `$setElementOrder` list, in its order.
fn validate_patch_with_order(patch_list: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let items = if merge_key.is_empty() {
        patch_list.to_vec()
    } else {
        split_deletions(patch_list.to_vec())?.0
    };
    let (mut p, mut s) = (0, 0);
    while p < items.len() && s < order.len() {
        if items[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_values_equal(&items[p], &order[s], merge_key)? {
            p += 1;
        }
        s += 1;
    }
    if p < items.len() && s >= order.len() {
        return fail(format!(
            "The order in patch list:\n{}\n doesn't match {ORDER_PREFIX} list:\n{}\n",
            go_fmt(&Value::Array(patch_list.to_vec())),
            go_fmt(&Value::Array(order.to_vec()))
        ));
    }
    Ok(())
}

fn merge_key_values_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(values_equal(left, right));
    }
    Ok(values_equal(
        merge_key_value(left, merge_key)?,
        merge_key_value(right, merge_key)?,
    ))
}

fn merge_key_value<'a>(item: &'a Value, merge_key: &str) -> Result<&'a Value> {
    let Value::Object(map) = item else {
        return fail(bad_arg_type("map", item));
    };
    match map.get(merge_key) {
        Some(v) => Ok(v),
        None => fail(no_merge_key(map, merge_key)),
    }
}

/// Merges two lists of a merging field: scalars as an ordered set (or minus the deletion list),
/// maps by `merge_key` with `$patch` items applied first.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: MergeSchema,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = slice_element_kind(&original, &patch)?;
    if kind != GoKind::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| values_equal(d, v)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(&patch) {
            if !merged.iter().any(|m| values_equal(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(merged, &patch, "", kind)?;
        return normalize_element_order(in_patch, server_only, &patch, &original, "", kind);
    }
    if merge_key.is_empty() {
        return fail(format!(
            "cannot merge lists without merge key for {}",
            schema.name()
        ));
    }
    let (original, patch) = apply_list_directives(original, patch, merge_key)?;
    let mut merged = original.clone();
    for item in &patch {
        let key_value = merge_key_value(item, merge_key)?;
        match find_by_key(&merged, merge_key, key_value)? {
            Some(i) => {
                let (Value::Object(live), Value::Object(change)) =
                    (std::mem::take(&mut merged[i]), item)
                else {
                    return fail(bad_arg_type("map", item));
                };
                merged[i] = Value::Object(merge_map(live, change.clone(), schema)?);
            }
            None => merged.extend(clean(item.clone())),
        }
    }
    let (in_patch, server_only) = partition(merged, &patch, merge_key, kind)?;
    normalize_element_order(in_patch, server_only, &patch, &original, merge_key, kind)
}

/// Applies `$patch: delete` items (remove every live item with that key) and `$patch: replace`
/// (the rest of the patch becomes the list); returns the live list and the remaining patch.
fn apply_list_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut rest = Vec::with_capacity(patch.len());
    let mut replace = false;
    for item in patch {
        let Value::Object(map) = &item else {
            return fail(bad_arg_type("map", &item));
        };
        let Some(directive) = map.get(DIRECTIVE) else {
            rest.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => {
                let Some(key_value) = map.get(merge_key) else {
                    return fail(no_merge_key(map, merge_key));
                };
                while let Some(i) = find_by_key(&original, merge_key, key_value)? {
                    original.remove(i);
                }
            }
            Some("replace") => replace = true,
            Some("merge") => {
                return fail("merging lists cannot yet be specified in the patch".to_string());
            }
            _ => return fail(bad_patch_type(directive, map)),
        }
    }
    if replace {
        return Ok((rest, Vec::new()));
    }
    Ok((original, rest))
}

/// The index of the first map in `list` whose `merge_key` equals `value`.
fn find_by_key(list: &[Value], merge_key: &str, value: &Value) -> Result<Option<usize>> {
    for (i, item) in list.iter().enumerate() {
        let Value::Object(map) = item else {
            return fail(format!("value for key {i} is not a map"));
        };
        if map.get(merge_key).is_some_and(|v| values_equal(v, value)) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// Splits `items` into those present in `by` (by merge key, or by value for scalars) and the rest.
fn partition(
    items: Vec<Value>,
    by: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for item in items {
        let found = if kind == GoKind::Map && !merge_key.is_empty() {
            find_by_key(by, merge_key, merge_key_value(&item, merge_key)?)?.is_some()
        } else {
            by.iter().any(|b| values_equal(b, &item))
        };
        if found {
            present.push(item);
        } else {
            absent.push(item);
        }
    }
    Ok((present, absent))
}

/// Orders the patch's items by `patch_order` and the server-only items by `server_order`,
/// then interleaves them, keeping a server item ahead of a patch item only when the live list
/// had it first (so new items come before the server-only items that follow them).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>> {
    let patch_items = normalize_slice_order(patch_items, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    let position = |v: &Value| index_of(server_order, v, merge_key, kind);
    let mut out = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = patch_items.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => {
                matches!((position(l), position(r)), (Some(li), Some(ri)) if li < ri)
            }
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => return Ok(out),
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
}

/// Sorts `items` by their position in `order` (stable); `$patch: delete` items go last.
fn normalize_slice_order(
    items: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: GoKind,
) -> Result<Vec<Value>> {
    let (mut items, deletions) = if kind == GoKind::Map {
        for v in items.iter().chain(order) {
            merge_key_value(v, merge_key)?;
        }
        split_deletions(items)?
    } else {
        (items, Vec::new())
    };
    let positions: Vec<Option<usize>> = items
        .iter()
        .map(|v| index_of(order, v, merge_key, kind))
        .collect();
    if positions.iter().all(Option::is_some) {
        let mut keyed: Vec<(Option<usize>, Value)> = positions.into_iter().zip(items).collect();
        keyed.sort_by_key(|(p, _)| *p);
        items = keyed.into_iter().map(|(_, v)| v).collect();
    } else {
        // Upstream's comparator treats unknown items as "less"; replay its insertion sort.
        let mut keyed: Vec<(Option<usize>, Value)> = positions.into_iter().zip(items).collect();
        let less = |a: Option<usize>, b: Option<usize>| match (a, b) {
            (Some(a), Some(b)) => a.cmp(&b) == Ordering::Less,
            _ => true,
        };
        for i in 1..keyed.len() {
            let mut j = i;
            while j > 0 && less(keyed[j].0, keyed[j - 1].0) {
                keyed.swap(j, j - 1);
                j -= 1;
            }
        }
        items = keyed.into_iter().map(|(_, v)| v).collect();
    }
    items.extend(deletions);
    Ok(items)
}

fn split_deletions(items: Vec<Value>) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for item in items {
        let Value::Object(map) = &item else {
            return fail(bad_arg_type("map", &item));
        };
        if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
            delete.push(item);
        } else {
            keep.push(item);
        }
    }
    Ok((keep, delete))
}

fn index_of(list: &[Value], item: &Value, merge_key: &str, kind: GoKind) -> Option<usize> {
    let key_of = |v: &'_ Value| -> Option<Value> {
        if kind == GoKind::Map {
            v.as_object().and_then(|m| m.get(merge_key)).cloned()
        } else {
            Some(v.clone())
        }
    };
    let wanted = key_of(item);
    list.iter().position(|v| match (key_of(v), &wanted) {
        (Some(a), Some(b)) => values_equal(&a, b),
        (None, None) => true,
        _ => false,
    })
}

/// Go's dynamic type of a decoded JSON value, as upstream compares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GoKind {
    Nil,
    Bool,
    Float,
    String,
    Slice,
    Map,
}

fn go_kind(v: &Value) -> GoKind {
    match v {
        Value::Null => GoKind::Nil,
        Value::Bool(_) => GoKind::Bool,
        Value::Number(_) => GoKind::Float,
        Value::String(_) => GoKind::String,
        Value::Array(_) => GoKind::Slice,
        Value::Object(_) => GoKind::Map,
    }
}

fn go_kind_name(v: &Value) -> &'static str {
    match go_kind(v) {
        GoKind::Nil => "invalid",
        GoKind::Bool => "bool",
        GoKind::Float => "float64",
        GoKind::String => "string",
        GoKind::Slice => "slice",
        GoKind::Map => "map",
    }
}

/// The one element type of both lists; lists of lists and mixed lists are errors.
fn slice_element_kind(a: &[Value], b: &[Value]) -> Result<GoKind> {
    let mut kind = None;
    for v in a.iter().chain(b) {
        let k = go_kind(v);
        match kind {
            None if k == GoKind::Slice => {
                return fail("lists of lists are not supported".to_string());
            }
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return fail(format!(
                    "list element types are not identical: [{} {}]",
                    go_fmt(&Value::Array(a.to_vec())),
                    go_fmt(&Value::Array(b.to_vec()))
                ));
            }
            Some(_) => {}
        }
    }
    kind.map_or_else(
        || fail("no elements in any of the given slices".to_string()),
        Ok,
    )
}

/// Equality of decoded JSON as Go compares it: numbers by value.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn extract_key(key: &str, prefix: &str) -> Result<String> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_string()),
        _ if prefix == DELETE_PREFIX => fail("invalid patch format of primitive list".to_string()),
        _ => fail("invalid patch format of setElementOrder list".to_string()),
    }
}

/// A value about to be stored whole: `null` members dropped, directives removed; `None` if the
/// value itself is a directive map.
fn clean(mut v: Value) -> Option<Value> {
    discard_nulls(&mut v);
    strip_directives(v)
}

fn clean_object(object: Object) -> Object {
    match clean(Value::Object(object)) {
        Some(Value::Object(o)) => o,
        _ => Object::new(),
    }
}

fn clean_array(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(clean).collect()
}

fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE
        || k == RETAIN_KEYS
        || k.starts_with(DELETE_PREFIX)
        || k.starts_with(ORDER_PREFIX)
}

fn strip_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            let kept = map
                .into_iter()
                .filter(|(k, _)| !is_directive_key(k))
                .filter_map(|(k, v)| strip_directives(v).map(|v| (k, v)))
                .collect();
            Some(Value::Object(kept))
        }
        Value::Array(items) => Some(Value::Array(strip_directives_array(items))),
        other => Some(other),
    }
}

fn strip_directives_array(items: Vec<Value>) -> Vec<Value> {
    items.into_iter().filter_map(strip_directives).collect()
}

fn no_merge_key(map: &Object, merge_key: &str) -> String {
    format!(
        "map: {} does not contain declared merge key: {merge_key}",
        go_fmt_object(map)
    )
}

fn bad_patch_type(directive: &Value, map: &Object) -> String {
    format!(
        "unknown patch type: {} in map: {}",
        go_fmt(directive),
        go_fmt_object(map)
    )
}

fn bad_arg_type(expected: &str, actual: &Value) -> String {
    format!(
        "expected a {expected}, but received a {}",
        go_kind_name(actual)
    )
}

/// Go's `%v` of a decoded JSON value (`map[k:v]`, `[a b]`), for upstream's error texts.
fn go_fmt(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(go_fmt).collect();
            format!("[{}]", parts.join(" "))
        }
        Value::Object(map) => go_fmt_object(map),
    }
}

fn go_fmt_object(map: &Object) -> String {
    let mut parts: Vec<(&String, String)> = map.iter().map(|(k, v)| (k, go_fmt(v))).collect();
    parts.sort_by(|a, b| a.0.cmp(b.0));
    let parts: Vec<String> = parts.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("map[{}]", parts.join(" "))
}
