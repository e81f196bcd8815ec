//! Table tests of RFC 6902 JSON patch: every operation, pointers, and failures with their index.

use rudder_machinery::json_patch::{Operation, parse_json_patch};
use rudder_machinery::{JsonPatchErrorKind, MachineryError, apply_json_patch};
use serde_json::{Value, json};

fn doc() -> Value {
    json!({"foo": "bar", "list": [1, 2, 3], "a/b": 1, "m~n": 2, "obj": {"x": {"y": 1}}})
}

#[test]
fn applies_operations() {
    let cases = [
        // patch, expected document
        (
            json!([{"op": "add", "path": "/baz", "value": "qux"}]),
            json!({"baz": "qux"}),
        ),
        (
            json!([{"op": "add", "path": "/foo", "value": "new"}]),
            json!({"foo": "new"}),
        ),
        (
            json!([{"op": "add", "path": "/list/1", "value": 9}]),
            json!({"list": [1, 9, 2, 3]}),
        ),
        (
            json!([{"op": "add", "path": "/list/3", "value": 9}]),
            json!({"list": [1, 2, 3, 9]}),
        ),
        (
            json!([{"op": "add", "path": "/list/-", "value": 4}]),
            json!({"list": [1, 2, 3, 4]}),
        ),
        (
            json!([{"op": "add", "path": "/n", "value": null}]),
            json!({"n": null}),
        ),
        (
            json!([{"op": "add", "path": "/a~1b", "value": 5}]),
            json!({"a/b": 5}),
        ),
        (
            json!([{"op": "add", "path": "/m~0n", "value": 6}]),
            json!({"m~n": 6}),
        ),
        (
            json!([{"op": "remove", "path": "/foo"}]),
            json!({"foo": null}),
        ),
        (
            json!([{"op": "remove", "path": "/list/0"}]),
            json!({"list": [2, 3]}),
        ),
        (
            json!([{"op": "remove", "path": "/a~1b"}]),
            json!({"a/b": null}),
        ),
        (
            json!([{"op": "replace", "path": "/foo", "value": [1]}]),
            json!({"foo": [1]}),
        ),
        (
            json!([{"op": "replace", "path": "/list/2", "value": 0}]),
            json!({"list": [1, 2, 0]}),
        ),
        (
            json!([{"op": "move", "from": "/foo", "path": "/moved"}]),
            json!({"foo": null, "moved": "bar"}),
        ),
        (
            json!([{"op": "move", "from": "/list/0", "path": "/list/-"}]),
            json!({"list": [2, 3, 1]}),
        ),
        (
            json!([{"op": "move", "from": "/obj/x", "path": "/obj/x"}]),
            json!({"obj": {"x": {"y": 1}}}),
        ),
        (
            json!([{"op": "copy", "from": "/obj/x", "path": "/obj/z"}]),
            json!({"obj": {"x": {"y": 1}, "z": {"y": 1}}}),
        ),
        (
            json!([{"op": "test", "path": "/list", "value": [1, 2, 3]}]),
            json!({"list": [1, 2, 3]}),
        ),
        (
            json!([{"op": "test", "path": "/list/0", "value": 1.0}]),
            json!({"list": [1, 2, 3]}),
        ),
        (
            json!([{"op": "test", "path": "/obj", "value": {"x": {"y": 1}}}]),
            json!({"foo": "bar"}),
        ),
        // As upstream's json-patch: a member missing from an existing object equals null.
        (
            json!([{"op": "test", "path": "/nope", "value": null}]),
            json!({"foo": "bar"}),
        ),
        (
            json!([{"op": "test", "path": "/obj/x/nope", "value": null}]),
            json!({"obj": {"x": {"y": 1}}}),
        ),
        (
            json!([{"op": "test", "path": "/foo", "value": "bar"}, {"op": "remove", "path": "/foo"}]),
            json!({"foo": null}),
        ),
        (json!([]), json!({"foo": "bar"})),
    ];
    for (patch, expected) in cases {
        let result = apply_json_patch(&doc(), &patch).unwrap_or_else(|e| panic!("{patch}: {e}"));
        // `expected` lists the members to check; null means "absent".
        for (k, v) in expected.as_object().into_iter().flatten() {
            assert_eq!(
                result.get(k).unwrap_or(&Value::Null),
                v,
                "{patch}: member {k}"
            );
        }
    }
}

#[test]
fn replaces_the_whole_document() {
    let cases = [
        (json!([{"op": "add", "path": "", "value": [1]}]), json!([1])),
        (
            json!([{"op": "replace", "path": "", "value": {"z": 1}}]),
            json!({"z": 1}),
        ),
        (
            json!([{"op": "move", "from": "/obj", "path": ""}]),
            json!({"x": {"y": 1}}),
        ),
    ];
    for (patch, expected) in cases {
        assert_eq!(apply_json_patch(&doc(), &patch), Ok(expected), "{patch}");
    }
}

#[test]
fn reports_the_failing_operation() {
    use JsonPatchErrorKind as K;
    let ok = json!({"op": "test", "path": "/foo", "value": "bar"});
    let cases = [
        (
            json!([ok, {"op": "test", "path": "/foo", "value": "baz"}]),
            1,
            K::TestFailed("/foo".into()),
        ),
        // Null matches a missing member only: not a missing parent, an array slot, or a value.
        (
            json!([{"op": "test", "path": "/nope/x", "value": null}]),
            0,
            K::TestFailed("/nope/x".into()),
        ),
        (
            json!([{"op": "test", "path": "/list/7", "value": null}]),
            0,
            K::TestFailed("/list/7".into()),
        ),
        (
            json!([{"op": "test", "path": "/foo", "value": null}]),
            0,
            K::TestFailed("/foo".into()),
        ),
        (
            json!([{"op": "test", "path": "/nope", "value": 1}]),
            0,
            K::TestFailed("/nope".into()),
        ),
        (
            json!([{"op": "remove", "path": "/nope"}]),
            0,
            K::PathNotFound("/nope".into()),
        ),
        (
            json!([{"op": "replace", "path": "/nope", "value": 1}]),
            0,
            K::PathNotFound("/nope".into()),
        ),
        (
            json!([{"op": "add", "path": "/nope/x", "value": 1}]),
            0,
            K::PathNotFound("/nope/x".into()),
        ),
        (
            json!([{"op": "add", "path": "/foo/x", "value": 1}]),
            0,
            K::NotAContainer("/foo/x".into()),
        ),
        (
            json!([ok, ok, {"op": "add", "path": "/list/5", "value": 1}]),
            2,
            K::IndexOutOfBounds {
                index: 5,
                len: 3,
                path: "/list/5".into(),
            },
        ),
        (
            json!([{"op": "remove", "path": "/list/3"}]),
            0,
            K::IndexOutOfBounds {
                index: 3,
                len: 3,
                path: "/list/3".into(),
            },
        ),
        (
            json!([{"op": "add", "path": "/list/01", "value": 1}]),
            0,
            K::InvalidIndex {
                index: "01".into(),
                path: "/list/01".into(),
            },
        ),
        (
            json!([{"op": "replace", "path": "/list/-1", "value": 1}]),
            0,
            K::InvalidIndex {
                index: "-1".into(),
                path: "/list/-1".into(),
            },
        ),
        (
            json!([{"op": "remove", "path": "/list/-"}]),
            0,
            K::PathNotFound("/list/-".into()),
        ),
        (
            json!([{"op": "add", "path": "foo", "value": 1}]),
            0,
            K::InvalidPointer("foo".into()),
        ),
        (
            json!([{"op": "add", "path": "/a~2", "value": 1}]),
            0,
            K::InvalidPointer("/a~2".into()),
        ),
        (
            json!([{"op": "add", "path": "/x"}]),
            0,
            K::MissingMember("value"),
        ),
        (json!([{"path": "/x"}]), 0, K::MissingMember("op")),
        (
            json!([{"op": "move", "path": "/x"}]),
            0,
            K::MissingMember("from"),
        ),
        (
            json!([ok, {"op": "frob", "path": "/x"}]),
            1,
            K::UnknownOp("frob".into()),
        ),
        (json!(["add"]), 0, K::NotAnObject),
        (
            json!([{"op": "move", "from": "/obj", "path": "/obj/x/z"}]),
            0,
            K::MoveIntoDescendant {
                from: "/obj".into(),
                path: "/obj/x/z".into(),
            },
        ),
    ];
    for (patch, index, kind) in cases {
        assert_eq!(
            apply_json_patch(&doc(), &patch),
            Err(MachineryError::JsonPatch { index, kind }),
            "{patch}"
        );
    }
    assert!(matches!(
        apply_json_patch(&doc(), &json!({"op": "add"})),
        Err(MachineryError::MalformedPatch(_))
    ));
}

#[test]
fn parses_operations() {
    let ops = parse_json_patch(&json!([
        {"op": "copy", "from": "/a", "path": "/b"},
        {"op": "test", "path": "/b", "value": null}
    ]))
    .expect("valid");
    assert_eq!(
        ops,
        vec![
            Operation::Copy {
                from: "/a".into(),
                path: "/b".into()
            },
            Operation::Test {
                path: "/b".into(),
                value: Value::Null
            },
        ]
    );
}
