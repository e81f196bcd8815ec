//! RFC 7386 JSON merge patch (`application/merge-patch+json`).
//!
//! An object patch merges member by member: `null` removes a member, an object recurses, any
//! other value (arrays included) replaces. A patch that is not an object replaces the target.

use serde_json::{Map, Value};

/// Applies `patch` to `target` as RFC 7386 describes, returning the result.
pub fn apply_merge_patch(target: &Value, patch: &Value) -> Value {
    let mut result = target.clone();
    merge_into(&mut result, patch);
    result
}

/// Applies `patch` to `target` in place.
pub fn merge_into(target: &mut Value, patch: &Value) {
    let Value::Object(patch_members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(members) = target else {
        return;
    };
    for (name, value) in patch_members {
        if value.is_null() {
            members.remove(name);
        } else {
            merge_into(members.entry(name.clone()).or_insert(Value::Null), value);
        }
    }
}
