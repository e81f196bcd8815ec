//! Helpers shared by the printer tests: a fixed "now", timestamps relative to it, and the cells
//! of an object under its kind's printer.

#![allow(dead_code)]

use rudder_printers::Printer;
use rudder_printers::duration::{format_rfc3339, parse_rfc3339};
use serde_json::Value;

/// The instant every test treats as "now".
pub fn now() -> i64 {
    parse_rfc3339("2026-06-01T12:00:00Z").expect("valid timestamp")
}

/// The RFC 3339 timestamp `secs` seconds before [`now`].
pub fn ago(secs: i64) -> String {
    format_rfc3339(now() - secs)
}

/// The cells of `obj` under the printer of `group`/`kind`.
pub fn cells(group: &str, kind: &str, obj: &Value) -> Vec<Value> {
    let printer = Printer::for_kind(group, kind);
    let row = printer.row(obj, now());
    assert_eq!(
        row.cells.len(),
        printer.columns().len(),
        "{kind}: one cell per column"
    );
    row.cells
}

/// The column headers of `group`/`kind`, with their priorities.
pub fn headers(group: &str, kind: &str) -> Vec<(String, i32)> {
    Printer::for_kind(group, kind)
        .columns()
        .into_iter()
        .map(|c| (c.name, c.priority))
        .collect()
}
