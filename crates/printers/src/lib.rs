//! Server-side printing: the `meta.k8s.io/v1` Table `kubectl get` asks for, with the columns
//! upstream's kube-apiserver prints for each built-in kind (including the `-o wide` ones) and
//! the `additionalPrinterColumns` of custom resources. Pure functions over JSON objects; no IO.
//!
//! Pick a [`Printer`] for a resource once ([`Printer::for_kind`] for built-in kinds,
//! [`Printer::for_custom_resource`] for a CRD version), then build tables with [`table`].
//! Cells are always computed for every column: kubectl itself hides the priority-1 columns
//! unless asked for `-o wide`, as it does against upstream.

mod cluster;
mod columns;
mod core;
mod custom;
pub mod duration;
mod format;
mod gotext;
pub mod jsonpath;
mod kinds;
mod pod;
mod table;
mod workloads;

pub use columns::Column;
pub use custom::{CustomColumns, cell as custom_cell};
pub use kinds::Builtin;
pub use table::{IncludeObject, PrintError, TableOptions, partial_object_metadata, table};

use serde_json::Value;

/// How the objects of one resource are printed.
#[derive(Clone, Debug, PartialEq)]
pub enum Printer {
    /// One of upstream's built-in printers.
    Builtin(Builtin),
    /// Name and Created At: upstream's default for built-in kinds without a printer (Roles,
    /// LimitRanges, CRDs, …).
    CreatedAt,
    /// Name and Age, for kinds this crate knows nothing about.
    NameAge,
    /// A custom resource's printer columns.
    Custom(CustomColumns),
}

/// One row of a table.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// One cell per column definition, typed as the column says.
    pub cells: Vec<Value>,
    /// `TableRowCondition`s (a finished pod is `Completed`).
    pub conditions: Vec<Value>,
}

impl Printer {
    /// The printer of a built-in kind.
    pub fn for_kind(group: &str, kind: &str) -> Printer {
        match Builtin::lookup(group, kind) {
            Some(b) => Printer::Builtin(b),
            None if kinds::uses_default_convertor(group, kind) => Printer::CreatedAt,
            None => Printer::NameAge,
        }
    }

    /// The printer of a custom resource, from the served version's
    /// `additionalPrinterColumns` (absent or empty: Name and Age).
    pub fn for_custom_resource(additional_printer_columns: Option<&Value>) -> Printer {
        Printer::Custom(CustomColumns::from_definitions(additional_printer_columns))
    }

    /// The column definitions, wide ones included.
    pub fn columns(&self) -> Vec<Column> {
        match self {
            Printer::Builtin(b) => b.columns().iter().map(|c| c.to_column()).collect(),
            Printer::CreatedAt => vec![columns::NAME.to_column(), columns::CREATED_AT.to_column()],
            Printer::NameAge => vec![columns::NAME.to_column(), columns::AGE.to_column()],
            Printer::Custom(c) => c.columns(),
        }
    }

    /// The row of one object, `now` being the current time in Unix seconds.
    pub fn row(&self, obj: &Value, now: i64) -> Row {
        let (cells, conditions) = match self {
            Printer::Builtin(b) => b.row(obj, now),
            Printer::CreatedAt => {
                let created = format::opt_s(obj, "/metadata/creationTimestamp")
                    .and_then(duration::parse_rfc3339)
                    // Go's zero time, which is what upstream prints for an unset timestamp.
                    .unwrap_or(-62_135_596_800);
                let cells = vec![
                    format::name(obj),
                    Value::from(duration::format_rfc3339(created)),
                ];
                (cells, Vec::new())
            }
            Printer::NameAge => (vec![format::name(obj), format::age(obj, now)], Vec::new()),
            Printer::Custom(c) => (c.cells(obj, now), Vec::new()),
        };
        Row { cells, conditions }
    }
}
