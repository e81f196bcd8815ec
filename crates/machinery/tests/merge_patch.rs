//! Table tests of RFC 7386 merge patch, including the RFC's own examples.

use rudder_machinery::apply_merge_patch;
use serde_json::json;

#[test]
fn applies_merge_patches() {
    let cases = [
        // target, patch, result
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
        (
            json!({"a": null}),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 1}}),
        ),
        (
            json!({"metadata": {"labels": {"app": "web", "tier": "db"}}}),
            json!({"metadata": {"labels": {"tier": null, "v": "2"}}}),
            json!({"metadata": {"labels": {"app": "web", "v": "2"}}}),
        ),
        (
            json!({"a": [1, null]}),
            json!({"a": [null, 2]}),
            json!({"a": [null, 2]}),
        ),
    ];
    for (target, patch, expected) in cases {
        assert_eq!(
            apply_merge_patch(&target, &patch),
            expected,
            "{target} + {patch}"
        );
    }
}
