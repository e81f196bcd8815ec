//! Custom resources: the columns a CRD version declares in `additionalPrinterColumns`, and
//! their cells, evaluated like upstream's apiextensions table convertor.

use serde_json::Value;

use crate::columns::{Column, NAME};
use crate::duration::{human_duration, parse_rfc3339};
use crate::format::{name, s};
use crate::gotext::print_value;
use crate::jsonpath::JsonPath;

/// The printer columns of one served CRD version.
#[derive(Clone, Debug, PartialEq)]
pub struct CustomColumns {
    columns: Vec<(Column, JsonPath)>,
}

impl CustomColumns {
    /// Builds the columns from a version's `additionalPrinterColumns` (or the `v1beta1`
    /// top-level list). With none declared, the table has an Age column, like upstream's.
    /// Upstream stops at the first column whose path does not parse; so does this.
    pub fn from_definitions(definitions: Option<&Value>) -> CustomColumns {
        let definitions = definitions
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if definitions.is_empty() {
            let age = Column {
                name: "Age".into(),
                type_name: "date".into(),
                format: String::new(),
                description: crate::columns::AGE.desc.into(),
                priority: 0,
            };
            let path = JsonPath::parse(".metadata.creationTimestamp");
            return CustomColumns {
                columns: path.map(|p| vec![(age, p)]).unwrap_or_default(),
            };
        }
        let mut columns = Vec::new();
        for def in definitions {
            // `v1` spells it jsonPath, `v1beta1` JSONPath.
            let path_text = match s(def, "/jsonPath") {
                "" => s(def, "/JSONPath"),
                p => p,
            };
            let Ok(path) = JsonPath::parse(path_text) else {
                break;
            };
            let description = match s(def, "/description") {
                "" => format!("Custom resource column, JSONPath {path_text}"),
                d => d.to_owned(),
            };
            let priority = crate::format::i(def, "/priority");
            let column = Column {
                name: s(def, "/name").into(),
                type_name: s(def, "/type").into(),
                format: s(def, "/format").into(),
                description,
                priority: i32::try_from(priority).unwrap_or(0),
            };
            columns.push((column, path));
        }
        CustomColumns { columns }
    }

    /// Name, then the declared columns.
    pub fn columns(&self) -> Vec<Column> {
        std::iter::once(NAME.to_column())
            .chain(self.columns.iter().map(|(c, _)| c.clone()))
            .collect()
    }

    /// The object's name, then one cell per column; a path that finds nothing, or a value of the
    /// wrong type, gives a null (empty) cell.
    pub fn cells(&self, obj: &Value, now: i64) -> Vec<Value> {
        let mut cells = vec![name(obj)];
        for (column, path) in &self.columns {
            let cell = match path.evaluate(obj) {
                // Upstream shows the first match only, even for paths that select several.
                Ok(found) => found
                    .first()
                    .map_or(Value::Null, |v| cell(&column.type_name, v, now)),
                Err(_) => Value::Null,
            };
            cells.push(cell);
        }
        cells
    }
}

/// The cell for `value` in a column of type `type_name`.
pub fn cell(type_name: &str, value: &Value, now: i64) -> Value {
    match (type_name, value) {
        (_, Value::Null) => Value::Null,
        ("string", v) => print_value(v).map_or(Value::Null, Value::from),
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(t)) => Value::from(date_cell(t, now)),
        _ => Value::Null,
    }
}

/// A date column's text: the age of the timestamp, `<unknown>` for an empty one and
/// `<invalid>` for one that is not RFC 3339.
fn date_cell(timestamp: &str, now: i64) -> String {
    if timestamp.is_empty() || timestamp == "null" {
        return "<unknown>".into();
    }
    match parse_rfc3339(timestamp) {
        Some(then) => human_duration(now - then),
        None => "<invalid>".into(),
    }
}
