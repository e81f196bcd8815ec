//! CRD printer columns: JSONPath evaluation, typed cells, defaults, and whole tables with
//! `includeObject` and `noHeaders`.

mod common;

use common::{ago, now};
use rudder_printers::jsonpath::JsonPath;
use rudder_printers::{IncludeObject, PrintError, Printer, TableOptions, custom_cell, table};
use serde_json::{Value, json};

fn widget() -> Value {
    json!({
        "apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "creationTimestamp": ago(125),
                     "labels": {"app.kubernetes.io/name": "w", "tier": "front"}},
        "spec": {"size": 3, "ratio": 0.25, "enabled": true, "colors": ["red", "blue"],
                 "ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}],
                 "nested": {"a": {"b": "deep"}}, "nothing": null, "big": 1_234_567.5},
        "status": {"conditions": [{"type": "Synced", "status": "False"},
                                  {"type": "Ready", "status": "True", "lastTransitionTime": ago(3600)}],
                   "phase": "Active"},
    })
}

fn eval(path: &str, obj: &Value) -> Vec<Value> {
    JsonPath::parse(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .evaluate(obj)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .into_iter()
        .cloned()
        .collect()
}

#[test]
fn jsonpath_evaluation_table() {
    let w = widget();
    let cases: Vec<(&str, Value)> = vec![
        (".spec.size", json!([3])),
        ("{.spec.size}", json!([3])),
        ("$.spec.size", json!([3])),
        (".spec.nested.a.b", json!(["deep"])),
        (".spec.missing.key", json!([])),
        (".spec.ports[0].port", json!([80])),
        (".spec.ports[-1].name", json!(["https"])),
        (".spec.ports[*].port", json!([80, 443])),
        (".spec.ports[0:1].name", json!(["http"])),
        (".spec.colors[*]", json!(["red", "blue"])),
        (".spec.colors.*", json!(["red", "blue"])),
        (".metadata.labels['app.kubernetes.io/name']", json!(["w"])),
        (".metadata.labels[\"tier\"]", json!(["front"])),
        (".metadata.labels.app\\.kubernetes\\.io/name", json!(["w"])),
        (
            ".status.conditions[?(@.type==\"Ready\")].status",
            json!(["True"]),
        ),
        (
            ".status.conditions[?(@.type != 'Ready')].type",
            json!(["Synced"]),
        ),
        (
            ".status.conditions[?(@.lastTransitionTime)].type",
            json!(["Ready"]),
        ),
        (".spec.ports[?(@.port > 100)].name", json!(["https"])),
        (".spec.ports[?(@.port <= 80)].name", json!(["http"])),
        ("..port", json!([80, 443])),
        (".spec.nothing", json!([null])),
        (".spec.nothing.below", json!([])),
    ];
    for (path, want) in cases {
        assert_eq!(Value::Array(eval(path, &w)), want, "{path}");
    }
}

#[test]
fn jsonpath_errors() {
    let w = widget();
    for bad in [
        ".spec.ports[",
        ".spec.ports[abc]",
        ".spec[?(@.x == )]",
        ".a['unterminated]",
    ] {
        assert!(JsonPath::parse(bad).is_err(), "{bad} should not parse");
    }
    for failing in [
        ".spec.ports[5].name",
        ".spec.size[0]",
        ".spec.ports[0:1:0]",
        ".status.conditions[?(@.type == 3)]",
    ] {
        let path = JsonPath::parse(failing).unwrap_or_else(|e| panic!("{failing}: {e}"));
        assert!(
            path.evaluate(&w).is_err(),
            "{failing} should fail to evaluate"
        );
    }
}

#[test]
fn typed_cells() {
    let n = now();
    let cases: Vec<(&str, Value, Value)> = vec![
        ("string", json!("x"), json!("x")),
        ("string", json!(3), json!("3")),
        ("string", json!(0.25), json!("0.25")),
        ("string", json!(1_234_567.5), json!("1.2345675e+06")),
        ("string", json!(0.00001), json!("1e-05")),
        (
            "string",
            json!([1e21, 1e-7, 0.5, -2]),
            json!("[1e+21,1e-7,0.5,-2]"),
        ),
        ("string", json!(true), json!("true")),
        (
            "string",
            json!(["a", "<b>"]),
            json!("[\"a\",\"\\u003cb\\u003e\"]"),
        ),
        (
            "string",
            json!({"z": 1, "a": 2.5}),
            json!("{\"a\":2.5,\"z\":1}"),
        ),
        ("string", json!(null), Value::Null),
        ("integer", json!(7), json!(7)),
        ("integer", json!(7.9), json!(7)),
        ("integer", json!("7"), Value::Null),
        ("number", json!(2), json!(2.0)),
        ("number", json!(0.5), json!(0.5)),
        ("boolean", json!(false), json!(false)),
        ("boolean", json!("true"), Value::Null),
        ("date", json!(ago(3600 * 5)), json!("5h")),
        ("date", json!(""), json!("<unknown>")),
        ("date", json!("yesterday"), json!("<invalid>")),
        ("date", json!(5), Value::Null),
        ("unknown-type", json!("x"), Value::Null),
    ];
    for (ty, value, want) in cases {
        assert_eq!(custom_cell(ty, &value, n), want, "{ty} {value}");
    }
}

fn widget_columns() -> Value {
    json!([
        {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
        {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status",
         "description": "Whether the widget is ready"},
        {"name": "Ports", "type": "string", "jsonPath": ".spec.ports[*].port", "priority": 1},
        {"name": "Missing", "type": "string", "jsonPath": ".spec.notThere"},
        {"name": "Enabled", "type": "boolean", "jsonPath": ".spec.enabled"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ])
}

#[test]
fn crd_columns_and_cells() {
    let printer = Printer::for_custom_resource(Some(&widget_columns()));
    let cols = printer.columns();
    let described: Vec<(&str, &str, &str, i32)> = cols
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.type_name.as_str(),
                c.format.as_str(),
                c.priority,
            )
        })
        .collect();
    assert_eq!(
        described,
        [
            ("Name", "string", "name", 0),
            ("Size", "integer", "", 0),
            ("Ready", "string", "", 0),
            ("Ports", "string", "", 1),
            ("Missing", "string", "", 0),
            ("Enabled", "boolean", "", 0),
            ("Age", "date", "", 0),
        ]
    );
    assert_eq!(cols[2].description, "Whether the widget is ready");
    assert!(
        cols[1].description.contains(".spec.size"),
        "{}",
        cols[1].description
    );
    let row = printer.row(&widget(), now());
    // `[*]` selects every port, but upstream's convertor shows only the first match.
    assert_eq!(
        row.cells,
        [
            json!("w1"),
            json!(3),
            json!("True"),
            json!("80"),
            Value::Null,
            json!(true),
            json!("2m5s")
        ]
    );
}

#[test]
fn crd_without_columns_prints_name_and_age() {
    for defs in [None, Some(json!([])), Some(json!(null))] {
        let printer = Printer::for_custom_resource(defs.as_ref());
        let cols: Vec<(String, String)> = printer
            .columns()
            .into_iter()
            .map(|c| (c.name, c.type_name))
            .collect();
        assert_eq!(
            cols,
            [
                ("Name".to_owned(), "string".to_owned()),
                ("Age".to_owned(), "date".to_owned())
            ]
        );
        assert_eq!(
            printer.row(&widget(), now()).cells,
            [json!("w1"), json!("2m5s")]
        );
    }
}

#[test]
fn crd_columns_stop_at_an_unparsable_path() {
    let defs = json!([
    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
    {"name": "Bad", "type": "string", "jsonPath": ".spec.ports["},
    {"name": "Later", "type": "string", "jsonPath": ".status.phase"},
    ]);
    let printer = Printer::for_custom_resource(Some(&defs));
    assert_eq!(printer.columns().len(), 2);
    assert_eq!(printer.row(&widget(), now()).cells, [json!("w1"), json!(3)]);
    let legacy = json!([{"name": "Phase", "type": "string", "JSONPath": ".status.phase"}]);
    let printer = Printer::for_custom_resource(Some(&legacy));
    assert_eq!(printer.row(&widget(), now()).cells[1], json!("Active"));
}

#[test]
fn table_with_include_object_and_no_headers() {
    let printer = Printer::for_custom_resource(Some(&widget_columns()));
    let objects = [widget()];
    let t = table(&printer, &objects, TableOptions::default(), now());
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(7));
    assert_eq!(t["columnDefinitions"][0]["format"], "name");
    assert_eq!(t["columnDefinitions"][3]["priority"], 1);
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(t["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "w1");
    assert!(t["rows"][0]["object"].get("spec").is_none());

    let whole = TableOptions {
        include_object: IncludeObject::Object,
        no_headers: true,
    };
    let t = table(&printer, &objects, whole, now());
    assert_eq!(t["columnDefinitions"], json!([]));
    assert_eq!(t["rows"][0]["object"]["spec"]["size"], 3);
    assert_eq!(t["rows"][0]["cells"][1], 3);

    let none = TableOptions {
        include_object: IncludeObject::None,
        no_headers: false,
    };
    let t = table(&printer, &objects, none, now());
    assert!(t["rows"][0].get("object").is_none());
    assert!(t["rows"][0].get("conditions").is_none());

    let pods = [
        json!({"metadata": {"name": "p"}, "spec": {"containers": []}, "status": {"phase": "Succeeded"}}),
    ];
    let t = table(
        &Printer::for_kind("", "Pod"),
        &pods,
        TableOptions::default(),
        now(),
    );
    assert_eq!(t["rows"][0]["conditions"][0]["type"], "Completed");
}

#[test]
fn include_object_parsing() {
    assert_eq!(IncludeObject::parse(None), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse(Some("")), Ok(IncludeObject::Metadata));
    assert_eq!(
        IncludeObject::parse(Some("Metadata")),
        Ok(IncludeObject::Metadata)
    );
    assert_eq!(IncludeObject::parse(Some("None")), Ok(IncludeObject::None));
    assert_eq!(
        IncludeObject::parse(Some("Object")),
        Ok(IncludeObject::Object)
    );
    let err = IncludeObject::parse(Some("All")).expect_err("All is not a value");
    assert_eq!(err, PrintError::IncludeObject("All".into()));
    assert_eq!(
        err.to_string(),
        "includeObject: Invalid value: \"All\": must be 'Metadata', 'Object', 'None', or empty"
    );
}
