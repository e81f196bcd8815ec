//! Per-kind typed hooks on JSON values: decode checks against the k8s-openapi type, and the
//! type's JSON schema (from k8s-openapi's `schemars` feature) for OpenAPI and unknown fields.

use std::sync::{LazyLock, OnceLock};

use k8s_openapi::Resource;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use crate::info::ResourceInfo;
use crate::lookup::index_of;
use crate::table::{HOOKS, RESOURCES};
use crate::{ApiError, unknown_fields};

/// The typed operations of one table row, as plain function pointers into the generic helpers
/// below instantiated with the row's k8s-openapi type.
#[derive(Clone, Copy)]
pub(crate) struct Hooks {
    decode: fn(&Value) -> Result<(), ApiError>,
    root_schema: fn() -> Schema,
    subschema: fn(&mut SchemaGenerator) -> Schema,
}

impl Hooks {
    pub(crate) const fn of<T: Resource + DeserializeOwned + JsonSchema>() -> Hooks {
        Hooks {
            decode: decode_as::<T>,
            root_schema: root_schema_of::<T>,
            subschema: subschema_of::<T>,
        }
    }
}

/// Root schemas, built on first use, one slot per table row.
static SCHEMAS: LazyLock<Box<[OnceLock<Schema>]>> =
    LazyLock::new(|| RESOURCES.iter().map(|_| OnceLock::new()).collect());

fn hooks(info: &ResourceInfo) -> Result<(usize, &'static Hooks), ApiError> {
    index_of(info.group, info.version, info.kind)
        .and_then(|index| HOOKS.get(index).map(|hooks| (index, hooks)))
        .ok_or_else(|| unknown_kind(info))
}

fn unknown_kind(info: &ResourceInfo) -> ApiError {
    ApiError::UnknownKind {
        group: info.group.to_owned(),
        version: info.version.to_owned(),
        kind: info.kind.to_owned(),
    }
}

/// Checks that `value` decodes into the k8s-openapi type of `info`'s kind.
///
/// Unknown fields are ignored here (see [`unknown_fields_of`]); `apiVersion` and `kind` may be
/// absent but must match the type when present. Like Go's decoder, a `null` member counts as
/// absent. The error carries the JSON path of the first value that does not fit, like
/// `.spec.containers[0].ports[0].containerPort`.
pub fn decode_check(info: &ResourceInfo, value: &Value) -> Result<(), ApiError> {
    let (_, hooks) = hooks(info)?;
    (hooks.decode)(value)
}

/// The JSON schema (draft 2020-12, definitions under `$defs`) of `info`'s kind, built once.
pub fn schema(info: &ResourceInfo) -> Result<&'static Schema, ApiError> {
    let (index, hooks) = hooks(info)?;
    let slot = SCHEMAS.get(index).ok_or_else(|| unknown_kind(info))?;
    Ok(slot.get_or_init(hooks.root_schema))
}

/// Adds the schema of `info`'s kind (and everything it references) to `generator`'s
/// definitions and returns the `$ref` to it: how the OpenAPI v2/v3 documents are assembled,
/// with the generator's settings choosing the definitions path.
pub fn subschema(info: &ResourceInfo, generator: &mut SchemaGenerator) -> Result<Schema, ApiError> {
    let (_, hooks) = hooks(info)?;
    Ok((hooks.subschema)(generator))
}

/// The unknown fields of `value` against the schema of `info`'s kind, as dotted paths (see
/// [`crate::unknown_fields`]).
pub fn unknown_fields_of(info: &ResourceInfo, value: &Value) -> Result<Vec<String>, ApiError> {
    Ok(unknown_fields::unknown_fields(schema(info)?, value))
}

fn decode_as<T: Resource + DeserializeOwned>(value: &Value) -> Result<(), ApiError> {
    check_type_meta(value, T::API_VERSION, T::KIND)?;
    let first = match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    if !has_null_member(value) {
        return Err(decode_error(&first));
    }
    // Go's decoder leaves a field at its zero value for `null`; k8s-openapi only accepts `null`
    // for optional fields. Retry without the `null` members before reporting the error.
    let mut stripped = value.clone();
    strip_null_members(&mut stripped);
    match serde_path_to_error::deserialize::<_, T>(&stripped) {
        Ok(_) => Ok(()),
        Err(error) => Err(decode_error(&error)),
    }
}

/// Checks `apiVersion` and `kind` up front, so a mismatch is reported at its own path (the
/// k8s-openapi decoders report it against the whole object).
fn check_type_meta(value: &Value, api_version: &str, kind: &str) -> Result<(), ApiError> {
    let Value::Object(members) = value else {
        return Ok(());
    };
    for (field, expected) in [("apiVersion", api_version), ("kind", kind)] {
        match members.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(actual)) if actual == expected => {}
            Some(actual) => {
                return Err(ApiError::Decode {
                    path: format!(".{field}"),
                    message: format!("invalid value: {actual}, expected {expected:?}"),
                });
            }
        }
    }
    Ok(())
}

fn root_schema_of<T: JsonSchema>() -> Schema {
    SchemaGenerator::default().into_root_schema_for::<T>()
}

fn subschema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

fn decode_error(error: &serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    ApiError::Decode {
        path: json_path(error.path()),
        message: error.inner().to_string(),
    }
}

/// Formats a decoder path like the unknown-field paths: `.spec.containers[0].image`.
fn json_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                out.push('.');
                out.push_str(key);
            }
            Segment::Enum { variant } => {
                out.push('.');
                out.push_str(variant);
            }
            Segment::Unknown => out.push_str(".?"),
        }
    }
    if out.is_empty() {
        out.push('.');
    }
    out
}

fn has_null_member(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().any(|v| v.is_null() || has_null_member(v)),
        Value::Array(items) => items.iter().any(has_null_member),
        _ => false,
    }
}

fn strip_null_members(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_null_members);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null_members),
        _ => {}
    }
}
