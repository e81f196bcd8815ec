//! Priority admission: a pod's `spec.priority` (and `preemptionPolicy`) come from its
//! PriorityClass, or from the class marked `globalDefault` when it names none (then the
//! pod also gets that class's name), or are 0. An unknown class, or a priority the pod sets
//! that the class contradicts, is refused.

use serde_json::{Value, json};

const DEFAULT_PREEMPTION: &str = "PreemptLowerPriority";

/// Sets the pod's priority from `classes` (every PriorityClass).
pub(crate) fn resolve(pod: &mut Value, classes: &[Value]) -> Result<(), String> {
    let named = pod
        .pointer("/spec/priorityClassName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let class = if named.is_empty() {
        // Several global defaults cannot be created upstream; if they exist, the lowest wins.
        classes
            .iter()
            .filter(|c| c.get("globalDefault").and_then(Value::as_bool) == Some(true))
            .min_by_key(|c| c.get("value").and_then(Value::as_i64).unwrap_or(0))
    } else {
        let found = classes
            .iter()
            .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(&named));
        if found.is_none() {
            return Err(format!("no PriorityClass with name {named} was found"));
        }
        found
    };
    let (value, preemption) = match class {
        Some(c) => (
            c.get("value").and_then(Value::as_i64).unwrap_or(0),
            c.get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_PREEMPTION)
                .to_owned(),
        ),
        None => (0, DEFAULT_PREEMPTION.to_owned()),
    };
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if let Some(given) = spec.get("priority").and_then(Value::as_i64)
        && given != value
    {
        return Err(format!(
            "the integer value of priority ({given}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
        ));
    }
    if let Some(given) = spec.get("preemptionPolicy").and_then(Value::as_str)
        && class.is_some()
        && given != preemption
    {
        return Err(format!(
            "the string value of PreemptionPolicy ({given}) must not be provided in pod spec; priority admission controller computed {preemption} from the given PriorityClass name"
        ));
    }
    spec.insert("priority".into(), json!(value));
    if let Some(c) = class {
        if named.is_empty()
            && let Some(n) = c.pointer("/metadata/name")
        {
            spec.insert("priorityClassName".into(), n.clone());
        }
        spec.insert("preemptionPolicy".into(), json!(preemption));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_table() {
        let high = json!({"metadata": {"name": "high"}, "value": 1000});
        let never = json!({"metadata": {"name": "never"}, "value": 5, "preemptionPolicy": "Never"});
        let dflt = json!({"metadata": {"name": "dflt"}, "value": 7, "globalDefault": true});
        // (spec, classes, priority, class name, error)
        type Case<'a> = (
            Value,
            Vec<Value>,
            Option<i64>,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: Vec<Case> = vec![
            (json!({}), vec![high.clone()], Some(0), None, None),
            (
                json!({}),
                vec![high.clone(), dflt.clone()],
                Some(7),
                Some("dflt"),
                None,
            ),
            (
                json!({"priorityClassName": "high"}),
                vec![high.clone(), dflt.clone()],
                Some(1000),
                Some("high"),
                None,
            ),
            (
                json!({"priorityClassName": "high", "priority": 1000}),
                vec![high.clone()],
                Some(1000),
                Some("high"),
                None,
            ),
            (
                json!({"priorityClassName": "nope"}),
                vec![high.clone()],
                None,
                Some("nope"),
                Some("no PriorityClass with name nope was found"),
            ),
            (
                json!({"priorityClassName": "high", "priority": 3}),
                vec![high.clone()],
                Some(3),
                Some("high"),
                Some(
                    "the integer value of priority (3) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name",
                ),
            ),
            (
                json!({"priorityClassName": "never", "preemptionPolicy": "PreemptLowerPriority"}),
                vec![never.clone()],
                None,
                Some("never"),
                Some(
                    "the string value of PreemptionPolicy (PreemptLowerPriority) must not be provided in pod spec; priority admission controller computed Never from the given PriorityClass name",
                ),
            ),
        ];
        for (spec, classes, priority, class, err) in cases {
            let mut pod = json!({"spec": spec.clone()});
            let got = resolve(&mut pod, &classes);
            assert_eq!(got.err().as_deref(), err, "{spec}");
            assert_eq!(pod["spec"]["priority"].as_i64(), priority, "{spec}");
            assert_eq!(pod["spec"]["priorityClassName"].as_str(), class, "{spec}");
        }
        let mut pod = json!({"spec": {"priorityClassName": "never"}});
        resolve(&mut pod, &[never]).unwrap();
        assert_eq!(pod["spec"]["preemptionPolicy"], "Never");
    }
}
