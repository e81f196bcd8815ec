//! LimitRanger: the namespace's LimitRanges fill in containers' missing requests and limits
//! (`defaultRequest`, `default`) and bound what pods, containers and claims ask for (`min`,
//! `max`, `maxLimitRequestRatio`), with upstream's messages. A LimitRange item's own defaults
//! (default from max, defaultRequest from default or min) are applied here as upstream's
//! LimitRange defaulting does at its creation.

use std::collections::BTreeMap;

use rudder_machinery::quantity::to_milli;
use rudder_machinery::quota::usage::format_milli;
use serde_json::{Map, Value, json};

const CONTAINER_FIELDS: [&str; 2] = ["initContainers", "containers"];

/// The `limits` items of every LimitRange of type `kind`.
fn items<'a>(ranges: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    ranges
        .iter()
        .filter_map(|r| r.pointer("/spec/limits").and_then(Value::as_array))
        .flatten()
        .filter(move |i| i.get("type").and_then(Value::as_str) == Some(kind))
}

fn list(v: Option<&Value>) -> Map<String, Value> {
    v.and_then(Value::as_object).cloned().unwrap_or_default()
}

/// An item's effective (default, defaultRequest), after LimitRange defaulting.
fn container_defaults(item: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let mut default = list(item.get("default"));
    for (k, v) in list(item.get("max")) {
        default.entry(k).or_insert(v);
    }
    let mut request = list(item.get("defaultRequest"));
    for (k, v) in default.iter().chain(list(item.get("min")).iter()) {
        request.entry(k.clone()).or_insert_with(|| v.clone());
    }
    (default, request)
}

/// Sets missing container requests and limits of a pod from the Container items (`kind` is
/// `Pod` or `PersistentVolumeClaim`; claims get no defaults) and records what was set in the
/// `kubernetes.io/limit-ranger` annotation.
pub(crate) fn set_defaults(kind: &str, pod: &mut Value, ranges: &[Value]) {
    if kind != "Pod" {
        return;
    }
    let (mut limits, mut requests) = (Map::new(), Map::new());
    for item in items(ranges, "Container") {
        let (l, r) = container_defaults(item);
        for (k, v) in l {
            limits.entry(k).or_insert(v);
        }
        for (k, v) in r {
            requests.entry(k).or_insert(v);
        }
    }
    if limits.is_empty() && requests.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for field in CONTAINER_FIELDS {
        let Some(cs) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let name = c
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let resources = c.entry("resources").or_insert_with(|| json!({}));
            for (which, defaults) in [("requests", &requests), ("limits", &limits)] {
                let Some(res) = resources.as_object_mut() else {
                    continue;
                };
                let set = res.entry(which).or_insert_with(|| json!({}));
                let Some(set) = set.as_object_mut() else {
                    continue;
                };
                let mut added: Vec<&str> = Vec::new();
                for (k, v) in defaults {
                    if !set.contains_key(k) {
                        set.insert(k.clone(), v.clone());
                        added.push(k);
                    }
                }
                if !added.is_empty() {
                    let what = if which == "requests" {
                        "request"
                    } else {
                        "limit"
                    };
                    notes.push(format!(
                        "{} {what} for {field_kind} {name}",
                        added.join(", "),
                        field_kind = if field == "containers" {
                            "container"
                        } else {
                            "init container"
                        }
                    ));
                }
            }
        }
    }
    if !notes.is_empty()
        && let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = annotations.as_object_mut() {
            a.insert(
                "kubernetes.io/limit-ranger".into(),
                json!(format!("LimitRanger plugin set: {}", notes.join("; "))),
            );
        }
    }
}

/// Quantities of one requests or limits list, by resource, in milli-units.
type Amounts = BTreeMap<String, (i128, String)>;

fn amounts(v: Option<&Value>) -> Amounts {
    list(v)
        .into_iter()
        .filter_map(|(k, v)| {
            let text = v.as_str()?.to_owned();
            Some((k, (to_milli(&text)?, text)))
        })
        .collect()
}

/// Upstream's min, max and ratio checks of one item against requests and limits.
fn check(kind: &str, item: &Value, requests: &Amounts, limits: &Amounts, errors: &mut Vec<String>) {
    for (k, (min, min_text)) in amounts(item.get("min")) {
        match requests.get(&k) {
            None => errors.push(format!(
                "minimum {k} usage per {kind} is {min_text}.  No request is specified"
            )),
            Some((r, text)) if *r < min => errors.push(format!(
                "minimum {k} usage per {kind} is {min_text}, but request is {text}"
            )),
            Some(_) => {}
        }
        if let Some((l, text)) = limits.get(&k).filter(|(l, _)| *l < min) {
            let _ = l;
            errors.push(format!(
                "minimum {k} usage per {kind} is {min_text}, but limit is {text}"
            ));
        }
    }
    for (k, (max, max_text)) in amounts(item.get("max")) {
        if kind == "PersistentVolumeClaim" {
            if let Some((_, text)) = requests.get(&k).filter(|(r, _)| *r > max) {
                errors.push(format!(
                    "maximum {k} usage per {kind} is {max_text}, but request is {text}"
                ));
            }
            continue;
        }
        match limits.get(&k) {
            None => errors.push(format!(
                "maximum {k} usage per {kind} is {max_text}.  No limit is specified"
            )),
            Some((l, text)) if *l > max => errors.push(format!(
                "maximum {k} usage per {kind} is {max_text}, but limit is {text}"
            )),
            Some(_) => {}
        }
    }
    for (k, (ratio, ratio_text)) in amounts(item.get("maxLimitRequestRatio")) {
        let req = requests.get(&k).map_or(0, |r| r.0);
        let lim = limits.get(&k).map_or(0, |l| l.0);
        if req == 0 {
            errors.push(format!("{k} max limit to request ratio per {kind} is {ratio_text}, but no request is specified or request is 0"));
        } else if lim == 0 {
            errors.push(format!("{k} max limit to request ratio per {kind} is {ratio_text}, but no limit is specified or limit is 0"));
        } else {
            #[allow(clippy::cast_precision_loss)]
            let observed = lim as f64 / req as f64;
            #[allow(clippy::cast_precision_loss)]
            let allowed = ratio as f64 / 1000.0;
            if observed > allowed {
                errors.push(format!("{k} max limit to request ratio per {kind} is {ratio_text}, but provided ratio is {observed:.6}"));
            }
        }
    }
}

/// The pod's effective requests or limits: containers summed, then the largest init
/// container if it is larger.
fn pod_total(pod: &Value, which: &str) -> Amounts {
    // A total made of one container's amount keeps that amount's spelling (`2Gi`).
    let mut total: Amounts = BTreeMap::new();
    let per = |c: &Value| amounts(c.pointer(&format!("/resources/{which}")));
    let list = |f: &str| {
        pod.pointer(&format!("/spec/{f}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for c in list("containers") {
        for (k, (v, text)) in per(&c) {
            total
                .entry(k)
                .and_modify(|t| {
                    t.0 += v;
                    t.1 = format_milli(t.0);
                })
                .or_insert((v, text));
        }
    }
    for c in list("initContainers") {
        for (k, (v, text)) in per(&c) {
            let t = total.entry(k).or_insert((0, String::new()));
            if v > t.0 {
                *t = (v, text);
            }
        }
    }
    total
}

/// The min/max/ratio violations of a pod or claim (`kind`), in upstream's words.
pub(crate) fn validate(kind: &str, obj: &Value, ranges: &[Value]) -> Vec<String> {
    let mut errors = Vec::new();
    if kind == "PersistentVolumeClaim" {
        let requests = amounts(obj.pointer("/spec/resources/requests"));
        let limits = amounts(obj.pointer("/spec/resources/limits"));
        for item in items(ranges, kind) {
            check(kind, item, &requests, &limits, &mut errors);
        }
        return errors;
    }
    for item in items(ranges, "Container") {
        for field in CONTAINER_FIELDS {
            for c in obj
                .pointer(&format!("/spec/{field}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let requests = amounts(c.pointer("/resources/requests"));
                let limits = amounts(c.pointer("/resources/limits"));
                check("Container", item, &requests, &limits, &mut errors);
            }
        }
    }
    for item in items(ranges, "Pod") {
        check(
            "Pod",
            item,
            &pod_total(obj, "requests"),
            &pod_total(obj, "limits"),
            &mut errors,
        );
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(items: Value) -> Vec<Value> {
        vec![json!({"spec": {"limits": items}})]
    }

    fn pod(resources: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": resources}]}})
    }

    #[test]
    fn defaults_table() {
        let ranges = range(
            json!([{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}, "max": {"memory": "1Gi"}}]),
        );
        // (resources, requests after, limits after)
        let cases = [
            (
                json!({}),
                json!({"cpu": "100m", "memory": "1Gi"}),
                json!({"cpu": "500m", "memory": "1Gi"}),
            ),
            (
                json!({"requests": {"cpu": "200m"}}),
                json!({"cpu": "200m", "memory": "1Gi"}),
                json!({"cpu": "500m", "memory": "1Gi"}),
            ),
            (
                json!({"limits": {"cpu": "1", "memory": "64Mi"}}),
                json!({"cpu": "100m", "memory": "1Gi"}),
                json!({"cpu": "1", "memory": "64Mi"}),
            ),
        ];
        for (resources, requests, limits) in cases {
            let mut p = pod(resources.clone());
            set_defaults("Pod", &mut p, &ranges);
            let r = &p["spec"]["containers"][0]["resources"];
            assert_eq!(r["requests"], requests, "{resources}");
            assert_eq!(r["limits"], limits, "{resources}");
        }
        let mut p = pod(json!({}));
        set_defaults("Pod", &mut p, &ranges);
        assert_eq!(
            p["metadata"]["annotations"]["kubernetes.io/limit-ranger"],
            "LimitRanger plugin set: cpu, memory request for container c; cpu, memory limit for container c"
        );
        let mut untouched = pod(json!({}));
        set_defaults("Pod", &mut untouched, &[]);
        assert_eq!(untouched, pod(json!({})));
    }

    #[test]
    fn validate_table() {
        let container = range(
            json!([{"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "2"}}]),
        );
        let pods = range(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
        let claims = range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}}]),
        );
        let cases: Vec<(&str, Value, &Vec<Value>, Vec<&str>)> = vec![
            (
                "Pod",
                pod(json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "1"}})),
                &container,
                vec![],
            ),
            (
                "Pod",
                pod(json!({"requests": {"cpu": "500m"}, "limits": {"cpu": "2"}})),
                &container,
                vec![
                    "maximum cpu usage per Container is 1, but limit is 2",
                    "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
                ],
            ),
            (
                "Pod",
                pod(json!({"requests": {"cpu": "50m"}, "limits": {"cpu": "100m"}})),
                &container,
                vec!["minimum cpu usage per Container is 100m, but request is 50m"],
            ),
            (
                "Pod",
                pod(json!({})),
                &container,
                vec![
                    "minimum cpu usage per Container is 100m.  No request is specified",
                    "maximum cpu usage per Container is 1.  No limit is specified",
                    "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0",
                ],
            ),
            (
                "Pod",
                pod(json!({"requests": {"cpu": "200m"}, "limits": {"cpu": "1"}})),
                &container,
                vec![
                    "cpu max limit to request ratio per Container is 2, but provided ratio is 5.000000",
                ],
            ),
            (
                "Pod",
                pod(json!({"limits": {"memory": "2Gi"}})),
                &pods,
                vec!["maximum memory usage per Pod is 1Gi, but limit is 2Gi"],
            ),
            (
                "PersistentVolumeClaim",
                json!({"spec": {"resources": {"requests": {"storage": "500Mi"}}}}),
                &claims,
                vec![
                    "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi",
                ],
            ),
            (
                "PersistentVolumeClaim",
                json!({"spec": {"resources": {"requests": {"storage": "10Gi"}}}}),
                &claims,
                vec!["maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"],
            ),
            (
                "PersistentVolumeClaim",
                json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}}),
                &claims,
                vec![],
            ),
        ];
        for (kind, obj, ranges, want) in cases {
            assert_eq!(validate(kind, &obj, ranges), want, "{obj}");
        }
    }
}
