//! Column definitions: the owned form a Table carries, and the static form the built-in printers
//! declare theirs in.

use serde_json::{Value, json};

/// One `meta.k8s.io/v1` `TableColumnDefinition`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// The header (kubectl upper-cases it).
    pub name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`: the type of the cells.
    pub type_name: String,
    /// `name` for the column that holds the object's name, else usually empty.
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0: always shown; higher: only with `kubectl get -o wide`.
    pub priority: i32,
}

impl Column {
    /// The JSON form (every field present, as upstream serializes it).
    pub fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.type_name,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }
}

/// A column of a built-in printer, declared in a `const` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Col {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub desc: &'static str,
    pub priority: i32,
}

impl Col {
    const fn new(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
        Col {
            name,
            ty,
            format: "",
            desc,
            priority: 0,
        }
    }

    /// A string column.
    pub const fn string(name: &'static str, desc: &'static str) -> Col {
        Col::new(name, "string", desc)
    }

    /// An integer column.
    pub const fn integer(name: &'static str, desc: &'static str) -> Col {
        Col::new(name, "integer", desc)
    }

    /// A boolean column.
    pub const fn boolean(name: &'static str, desc: &'static str) -> Col {
        Col::new(name, "boolean", desc)
    }

    /// A date column (cells are timestamps or ages).
    pub const fn date(name: &'static str, desc: &'static str) -> Col {
        Col::new(name, "date", desc)
    }

    /// Marks the column as holding object names.
    pub const fn named(self) -> Col {
        Col {
            format: "name",
            ..self
        }
    }

    /// Marks the column as `-o wide` only.
    pub const fn wide(self) -> Col {
        Col {
            priority: 1,
            ..self
        }
    }

    /// The owned form.
    pub fn to_column(self) -> Column {
        Column {
            name: self.name.into(),
            type_name: self.ty.into(),
            format: self.format.into(),
            description: self.desc.into(),
            priority: self.priority,
        }
    }
}

/// The object's name: first in nearly every table.
pub(crate) const NAME: Col = Col::string(
    "Name",
    "Name of the object, unique within its namespace (or the cluster for cluster-scoped kinds).",
)
.named();
/// The object's age.
pub(crate) const AGE: Col = Col::string(
    "Age",
    "Time since the server created the object (metadata.creationTimestamp).",
);
/// Container names of a pod template, `-o wide`.
pub(crate) const CONTAINERS: Col =
    Col::string("Containers", "Names of the containers in the pod template.").wide();
/// Container images of a pod template, `-o wide`.
pub(crate) const IMAGES: Col =
    Col::string("Images", "Images of the containers in the pod template.").wide();
/// A workload's label selector, `-o wide`.
pub(crate) const SELECTOR: Col =
    Col::string("Selector", "Label query over the pods the object manages.").wide();
/// Creation time as a timestamp: upstream's default table for kinds without a printer.
pub(crate) const CREATED_AT: Col = Col::date(
    "Created At",
    "Time the server created the object (metadata.creationTimestamp).",
);
