//! Assembling the `meta.k8s.io/v1` Table: column definitions, rows, and the object each row
//! carries as `?includeObject=` asks.

use serde_json::{Value, json};

use crate::Printer;

/// Why a table cannot be built as requested.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrintError {
    /// `?includeObject=` has a value other than None, Metadata and Object.
    #[error("includeObject: Invalid value: {0:?}: must be 'Metadata', 'Object', 'None', or empty")]
    IncludeObject(String),
}

/// What each row carries besides its cells (`?includeObject=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` with the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the parameter; missing or empty means Metadata.
    pub fn parse(value: Option<&str>) -> Result<IncludeObject, PrintError> {
        match value {
            None | Some("") | Some("Metadata") => Ok(IncludeObject::Metadata),
            Some("None") => Ok(IncludeObject::None),
            Some("Object") => Ok(IncludeObject::Object),
            Some(other) => Err(PrintError::IncludeObject(other.to_owned())),
        }
    }
}

/// How to build a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// What each row carries.
    pub include_object: IncludeObject,
    /// Leave out the column definitions: upstream sends them only with a watch's first event,
    /// and kubectl reuses the last ones it saw.
    pub no_headers: bool,
}

/// The `PartialObjectMetadata` of an object.
pub fn partial_object_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The Table of `objects` with empty `metadata`, which the caller fills in (resourceVersion,
/// continue).
pub fn table(printer: &Printer, objects: &[Value], options: TableOptions, now: i64) -> Value {
    let columns: Vec<Value> = if options.no_headers {
        Vec::new()
    } else {
        printer.columns().iter().map(|c| c.to_json()).collect()
    };
    let rows: Vec<Value> = objects
        .iter()
        .map(|obj| {
            let row = printer.row(obj, now);
            let mut out = json!({"cells": row.cells});
            if !row.conditions.is_empty() {
                out["conditions"] = Value::Array(row.conditions);
            }
            match options.include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => out["object"] = partial_object_metadata(obj),
                IncludeObject::Object => out["object"] = obj.clone(),
            }
            out
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": columns,
        "rows": rows,
    })
}
