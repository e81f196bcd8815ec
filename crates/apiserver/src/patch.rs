//! The patch formats, applied to JSON objects (wrappers turning machinery errors into Statuses).

use rudder_machinery::{MachineryError, MergeSchema};
use serde_json::Value;

use crate::status::ApiError;

fn to_api(e: MachineryError) -> ApiError {
    match e {
        MachineryError::JsonPatch { .. } => ApiError::invalid_patch(e.to_string()),
        MachineryError::MalformedPatch(m) => ApiError::bad_request(m),
        other => ApiError::invalid_patch(other.to_string()),
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    rudder_machinery::apply_json_patch(doc, patch).map_err(to_api)
}

/// RFC 7386 merge patch.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    rudder_machinery::apply_merge_patch(doc, patch)
}

/// Strategic merge patch with the kind's merge keys.
pub fn strategic(
    doc: &Value,
    patch: &Value,
    group: &str,
    version: &str,
    kind: &str,
) -> Result<Value, ApiError> {
    // Kinds without merge metadata merge lists atomically, as for unstructured objects.
    let schema =
        MergeSchema::for_kind(group, version, kind).unwrap_or_else(MergeSchema::unstructured);
    rudder_machinery::strategic_merge(doc, patch, &schema).map_err(to_api)
}
