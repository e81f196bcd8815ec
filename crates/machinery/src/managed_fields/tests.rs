//! Table tests of field ownership and server-side apply.

use serde_json::{Value, json};

use super::*;

fn schema() -> MergeSchema {
    MergeSchema::for_kind("apps", "v1", "Deployment").expect("built-in")
}

fn writer(manager: &str) -> Writer<'_> {
    Writer {
        manager,
        api_version: "apps/v1",
        subresource: None,
        now: "2026-11-23T00:00:00Z",
    }
}

fn deploy(replicas: i64, containers: Value, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"replicas": replicas, "template": {"spec": {"containers": containers}}},
    })
}

fn merge(live: &Value, config: &Value) -> Value {
    crate::strategic_merge(live, config, &schema()).expect("merge")
}

fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_owned(),
                        e["operation"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn create_owns_everything_set_but_identity() {
    let mut obj = deploy(
        2,
        json!([{"name": "main", "image": "a"}]),
        json!({"app": "web"}),
    );
    obj["metadata"]["uid"] = json!("u");
    obj["status"] = json!({"replicas": 0});
    on_create(&mut obj, &schema(), &writer("kubectl-create"));
    let f = &obj["metadata"]["managedFields"][0];
    assert_eq!(f["manager"], "kubectl-create");
    assert_eq!(f["operation"], "Update");
    assert_eq!(f["fieldsType"], "FieldsV1");
    assert_eq!(
        f["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"main\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}},
        })
    );
}

#[test]
fn apply_scenarios() {
    struct Case {
        name: &'static str,
        live: Option<Value>,
        config: Value,
        force: bool,
        want: Result<Value, &'static str>,
    }
    // A live object first applied by "kubectl" and then scaled by "autoscaler" (an update).
    let applied = {
        let config = deploy(
            2,
            json!([{"name": "main", "image": "a"}, {"name": "side", "image": "s"}]),
            json!({"app": "web", "tier": "x"}),
        );
        let mut obj = apply(
            None,
            config.clone(),
            &config,
            &schema(),
            &writer("kubectl"),
            false,
        )
        .expect("create");
        let old = obj.clone();
        obj["spec"]["replicas"] = json!(5);
        on_update(&old, &mut obj, &schema(), &writer("autoscaler"));
        obj
    };
    let cases = vec![
        Case {
            name: "same values from a second manager share ownership",
            live: Some(applied.clone()),
            config: deploy(
                5,
                json!([{"name": "main", "image": "a"}]),
                json!({"app": "web"}),
            ),
            force: false,
            want: Ok(json!(5)),
        },
        Case {
            name: "changing a field another manager owns conflicts",
            live: Some(applied.clone()),
            config: deploy(
                3,
                json!([{"name": "main", "image": "a"}, {"name": "side", "image": "s"}]),
                json!({"app": "web", "tier": "x"}),
            ),
            force: false,
            want: Err(
                "Apply failed with 1 conflict: conflict with \"autoscaler\" using apps/v1: .spec.replicas",
            ),
        },
        Case {
            name: "force takes the field over",
            live: Some(applied.clone()),
            config: deploy(
                3,
                json!([{"name": "main", "image": "a"}, {"name": "side", "image": "s"}]),
                json!({"app": "web", "tier": "x"}),
            ),
            force: true,
            want: Ok(json!(3)),
        },
    ];
    for c in cases {
        let who = if c.name.starts_with("same") {
            "other"
        } else {
            "kubectl"
        };
        let got = apply(
            c.live.as_ref(),
            c.live
                .as_ref()
                .map_or_else(|| c.config.clone(), |l| merge(l, &c.config)),
            &c.config,
            &schema(),
            &writer(who),
            c.force,
        );
        match (got, c.want) {
            (Ok(obj), Ok(replicas)) => assert_eq!(obj["spec"]["replicas"], replicas, "{}", c.name),
            (Err(conflicts), Err(msg)) => assert_eq!(conflicts.message(), msg, "{}", c.name),
            (got, want) => panic!("{}: got {got:?}, want {want:?}", c.name),
        }
    }
}

#[test]
fn apply_prunes_what_the_manager_no_longer_applies() {
    let first = deploy(
        2,
        json!([{"name": "main", "image": "a"}, {"name": "side", "image": "s"}]),
        json!({"app": "web", "tier": "x"}),
    );
    let live = apply(
        None,
        first.clone(),
        &first,
        &schema(),
        &writer("kubectl"),
        false,
    )
    .expect("create");
    // Another manager adds a label of its own.
    let mut labelled = live.clone();
    labelled["metadata"]["labels"]["team"] = json!("core");
    on_update(&live, &mut labelled, &schema(), &writer("kubectl-label"));
    // The second apply drops the sidecar and the tier label.
    let second = deploy(
        2,
        json!([{"name": "main", "image": "b"}]),
        json!({"app": "web"}),
    );
    let out = apply(
        Some(&labelled),
        merge(&labelled, &second),
        &second,
        &schema(),
        &writer("kubectl"),
        false,
    )
    .expect("apply");
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "main", "image": "b"}])
    );
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "web", "team": "core"})
    );
    assert_eq!(
        managers(&out),
        vec![
            ("kubectl".into(), "Apply".into()),
            ("kubectl-label".into(), "Update".into())
        ]
    );
}

#[test]
fn updates_move_ownership_and_forget_removed_fields() {
    let mut obj = deploy(
        2,
        json!([{"name": "main", "image": "a"}]),
        json!({"app": "web", "tier": "x"}),
    );
    on_create(&mut obj, &schema(), &writer("creator"));
    let old = obj.clone();
    obj["spec"]["replicas"] = json!(4);
    obj["metadata"]["labels"]
        .as_object_mut()
        .expect("labels")
        .remove("tier");
    on_update(&old, &mut obj, &schema(), &writer("editor"));
    let entries = obj["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .clone();
    assert_eq!(entries.len(), 2);
    assert_eq!(
        entries[0]["fieldsV1"]["f:spec"].get("f:replicas"),
        None,
        "creator lost replicas"
    );
    assert_eq!(
        entries[0]["fieldsV1"]["f:metadata"]["f:labels"],
        json!({"f:app": {}})
    );
    assert_eq!(entries[1]["manager"], "editor");
    assert_eq!(
        entries[1]["fieldsV1"],
        json!({"f:spec": {"f:replicas": {}}})
    );
    // A no-op update changes nothing, not even times.
    let before = obj.clone();
    let mut again = obj.clone();
    on_update(
        &before,
        &mut again,
        &schema(),
        &Writer {
            now: "2030-01-01T00:00:00Z",
            ..writer("editor")
        },
    );
    assert_eq!(again, before);
}

#[test]
fn conflict_messages_group_by_manager() {
    let c = Conflicts {
        fields: vec![
            ("a".into(), "v1".into(), ".spec.x".into()),
            ("a".into(), "v1".into(), ".spec.y".into()),
        ],
    };
    assert_eq!(
        c.message(),
        "Apply failed with 2 conflicts: conflicts with \"a\" using v1:\n- .spec.x\n- .spec.y"
    );
    assert_eq!(
        manager_from_user_agent("kubectl/v1.32.0 (linux/amd64) kubernetes/abc"),
        "kubectl"
    );
}
