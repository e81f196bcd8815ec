//! Table tests of which resourceVersion an update is conditional on.

use super::*;

#[test]
fn patch_sets_resource_version_table() {
    let cases = [
        (json!({"spec": {"replicas": 3}}), false),
        (json!({"metadata": {"labels": {"a": "b"}}}), false),
        (json!({"metadata": {"resourceVersion": "7"}}), true),
        // A null deletes the field from the patched object: nothing is pinned.
        (json!({"metadata": {"resourceVersion": null}}), false),
        (
            json!([{"op": "replace", "path": "/spec/replicas", "value": 2}]),
            false,
        ),
        (
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "7"}]),
            true,
        ),
        (
            json!([{"op": "replace", "path": "/metadata/resourceVersion", "value": "7"}]),
            true,
        ),
    ];
    for (patch, want) in cases {
        assert_eq!(patch_sets_resource_version(&patch), want, "{patch}");
    }
}

fn deployment(rv: &str, replicas: i64) -> Value {
    json!({
        "metadata": {"name": "web", "resourceVersion": rv},
        "spec": {"replicas": replicas},
        "status": {"replicas": 1},
    })
}

/// The precondition a scale write ends up with, for the stored revision 10: only a
/// resourceVersion the request named is checked; the one the Scale view carried is not.
#[test]
fn scale_precondition_table() {
    let current = deployment("10", 1);
    let view = crate::handlers::read::scale_of(&current);
    let with_rv = |rv: &str, replicas: i64| {
        let mut s = view.clone();
        s["metadata"]["resourceVersion"] = json!(rv);
        s["spec"]["replicas"] = json!(replicas);
        s
    };
    let without_rv = |replicas: i64| {
        let mut s = view.clone();
        if let Some(m) = s["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        s["spec"]["replicas"] = json!(replicas);
        s
    };
    let cases = [
        // A PATCH naming no resourceVersion: the view's (current) one is not a precondition.
        (
            "patch without rv",
            with_rv("10", 3),
            false,
            Precondition::Unconditional,
        ),
        // The same PATCH re-applied after losing a race to revision 11 still is not.
        (
            "retried patch",
            with_rv("11", 3),
            false,
            Precondition::Unconditional,
        ),
        (
            "PUT without rv",
            without_rv(4),
            false,
            Precondition::Unconditional,
        ),
        (
            "PUT at the current rv",
            with_rv("10", 4),
            true,
            Precondition::Matches,
        ),
        (
            "PUT at a stale rv",
            with_rv("9", 4),
            true,
            Precondition::Stale,
        ),
        (
            "patch naming a stale rv",
            with_rv("9", 2),
            true,
            Precondition::Stale,
        ),
        // A JSON patch removing the resourceVersion names it, but leaves nothing to check.
        (
            "patch removing rv",
            without_rv(2),
            true,
            Precondition::Unconditional,
        ),
    ];
    for (what, wanted, names_rv, want) in cases {
        let new = scaled(&current, &wanted, names_rv).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(objects::precondition(&new, 10).ok(), Some(want), "{what}");
        assert_eq!(
            new["spec"]["replicas"], wanted["spec"]["replicas"],
            "{what}"
        );
        assert_eq!(new["status"], current["status"], "{what}: status is kept");
    }
}

#[test]
fn scale_rejects_negative_or_missing_replicas() {
    let current = deployment("10", 1);
    for wanted in [
        json!({"spec": {"replicas": -1}}),
        json!({"spec": {}}),
        json!({}),
    ] {
        assert!(scaled(&current, &wanted, false).is_err(), "{wanted}");
    }
}

#[test]
fn conditional_on_table() {
    let cases = [
        (deployment("10", 1), None, None),
        (deployment("10", 1), Some(""), None),
        (deployment("10", 1), Some("7"), Some("7")),
        (json!({"metadata": {"name": "web"}}), Some("7"), Some("7")),
        (json!({"metadata": {"name": "web"}}), None, None),
    ];
    for (obj, requested, want) in cases {
        let got = conditional_on(obj.clone(), requested);
        assert_eq!(
            got.pointer("/metadata/resourceVersion")
                .and_then(Value::as_str),
            want,
            "{obj} {requested:?}"
        );
        assert_eq!(got["metadata"]["name"], "web");
    }
}
