//! DefaultStorageClass: a claim that does not name a class gets the one annotated as the
//! default (the newest, if several are). An explicit `""` means "no class" and is kept.

use serde_json::{Value, json};

const ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

fn is_default(class: &Value) -> bool {
    let annotations = class.pointer("/metadata/annotations");
    ANNOTATIONS
        .iter()
        .any(|a| annotations.and_then(|m| m.get(*a)).and_then(Value::as_str) == Some("true"))
}

/// Sets `spec.storageClassName` of a claim that has none from `classes`.
pub(crate) fn set_default(claim: &mut Value, classes: &[Value]) {
    if claim
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
    {
        return;
    }
    let chosen = classes.iter().filter(|c| is_default(c)).max_by(|a, b| {
        let created = |c: &Value| {
            c.pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        // RFC 3339 timestamps in UTC order as text; the name breaks ties, as upstream.
        (
            created(a),
            b.pointer("/metadata/name").and_then(Value::as_str),
        )
            .cmp(&(
                created(b),
                a.pointer("/metadata/name").and_then(Value::as_str),
            ))
    });
    if let (Some(class), Some(spec)) = (
        chosen.and_then(|c| c.pointer("/metadata/name")).cloned(),
        claim.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        spec.insert("storageClassName".into(), json!(class));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, created: &str, default: bool) -> Value {
        let mut c = json!({"metadata": {"name": name, "creationTimestamp": created}});
        if default {
            c["metadata"]["annotations"] = json!({ANNOTATIONS[0]: "true"});
        }
        c
    }

    #[test]
    fn set_default_table() {
        let old = class("old", "2026-01-01T00:00:00Z", true);
        let new = class("new", "2026-02-01T00:00:00Z", true);
        let plain = class("plain", "2026-03-01T00:00:00Z", false);
        let cases: Vec<(Value, Vec<Value>, Option<&str>)> = vec![
            (json!({}), vec![plain.clone()], None),
            (json!({}), vec![old.clone(), plain.clone()], Some("old")),
            (json!({}), vec![old.clone(), new.clone()], Some("new")),
            (json!({"storageClassName": ""}), vec![old.clone()], Some("")),
            (
                json!({"storageClassName": "mine"}),
                vec![old.clone()],
                Some("mine"),
            ),
        ];
        for (spec, classes, want) in cases {
            let mut claim = json!({"spec": spec.clone()});
            set_default(&mut claim, &classes);
            assert_eq!(claim["spec"]["storageClassName"].as_str(), want, "{spec}");
        }
    }
}
