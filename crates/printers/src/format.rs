//! Small readers and formatters shared by the printers: typed field access on JSON objects that
//! tolerates anything missing, and upstream's formats for labels, selectors, containers, lists.

use rudder_machinery::LabelSelector;
use serde_json::Value;

use crate::duration;

/// The string at `ptr`, or "" when missing or not a string.
pub(crate) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The string at `ptr` when present and a string.
pub(crate) fn opt_s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// The integer at `ptr`, or 0 (Go's zero value for an unset int field).
pub(crate) fn i(v: &Value, ptr: &str) -> i64 {
    opt_i(v, ptr).unwrap_or(0)
}

/// The integer at `ptr` when present (floats are truncated, as a Go int conversion would).
pub(crate) fn opt_i(v: &Value, ptr: &str) -> Option<i64> {
    let n = v.pointer(ptr)?;
    n.as_i64().or_else(|| n.as_f64().map(|f| f as i64))
}

/// The boolean at `ptr` when present.
pub(crate) fn opt_b(v: &Value, ptr: &str) -> Option<bool> {
    v.pointer(ptr).and_then(Value::as_bool)
}

/// The array at `ptr`, or an empty slice.
pub(crate) fn arr<'a>(v: &'a Value, ptr: &str) -> &'a [Value] {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Whether `ptr` holds something other than null (a set pointer field in Go terms).
pub(crate) fn present(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr).is_some_and(|x| !x.is_null())
}

/// The number of keys of the object at `ptr` (0 when missing).
pub(crate) fn key_count(v: &Value, ptr: &str) -> i64 {
    v.pointer(ptr)
        .and_then(Value::as_object)
        .map_or(0, |m| m.len() as i64)
}

/// `metadata.name` as a cell.
pub(crate) fn name(obj: &Value) -> Value {
    Value::from(s(obj, "/metadata/name"))
}

/// The object's age as a cell.
pub(crate) fn age(obj: &Value, now: i64) -> Value {
    Value::from(duration::since(
        opt_s(obj, "/metadata/creationTimestamp"),
        now,
    ))
}

/// Upstream's `labels.FormatLabels`: `k=v` pairs sorted by key, or `<none>`.
pub(crate) fn format_labels(map: Option<&Value>) -> String {
    let Some(map) = map.and_then(Value::as_object) else {
        return "<none>".into();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if pairs.is_empty() {
        return "<none>".into();
    }
    pairs.sort();
    pairs.join(",")
}

/// Upstream's `metav1.FormatLabelSelector`: the selector's canonical text, `<none>` when it
/// selects everything or nothing, `<error>` when it is malformed.
pub(crate) fn format_label_selector(selector: Option<&Value>) -> String {
    match LabelSelector::from_value(selector) {
        Ok(sel) => {
            let text = sel.to_string();
            if text.is_empty() {
                "<none>".into()
            } else {
                text
            }
        }
        Err(_) => "<error>".into(),
    }
}

/// A selector's canonical text as Deployments print it: empty when it selects everything or
/// nothing, `<invalid>` when it is malformed.
pub(crate) fn selector_text(selector: Option<&Value>) -> String {
    LabelSelector::from_value(selector)
        .map(|sel| sel.to_string())
        .unwrap_or_else(|_| "<invalid>".into())
}

/// Container names and images of a pod spec's `containers`, each comma-joined.
pub(crate) fn containers(list: &[Value]) -> (String, String) {
    let names: Vec<&str> = list.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = list.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}

/// The containers and images of the pod template at `template_ptr` as two cells.
pub(crate) fn template_cells(obj: &Value, template_ptr: &str) -> [Value; 2] {
    let (names, images) = containers(arr(obj, &format!("{template_ptr}/spec/containers")));
    [Value::from(names), Value::from(images)]
}

/// Upstream's `listWithMoreString`: the shown items, `+ N more...` when clipped, `<unset>` when
/// there are none.
pub(crate) fn list_with_more(list: &[String], more: bool, count: usize, max: usize) -> String {
    let joined = list.join(",");
    if more {
        return format!("{joined} + {} more...", count.saturating_sub(max));
    }
    if joined.is_empty() {
        return "<unset>".into();
    }
    joined
}

/// An `IntOrString` field as Go's `IntOrString.String()` prints it.
pub(crate) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// A resource quantity (`500m`, `1Gi`); an absent one prints as `0`, Go's zero `Quantity`.
pub(crate) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `True`/`False` of an optional boolean, `<unset>` when missing (upstream's `printBoolPtr`).
pub(crate) fn bool_ptr(v: Option<bool>) -> String {
    match v {
        Some(true) => "True".into(),
        Some(false) => "False".into(),
        None => "<unset>".into(),
    }
}

/// The value, or `<none>` when it is empty.
pub(crate) fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}

/// The status (`True`, `False`, …) of the condition of type `ty` at `ptr`, if present.
pub(crate) fn condition_status<'a>(v: &'a Value, ptr: &str, ty: &str) -> Option<&'a str> {
    arr(v, ptr)
        .iter()
        .find(|c| s(c, "/type") == ty)
        .map(|c| s(c, "/status"))
}

/// Load-balancer ingress points (IPs, else hostnames), sorted and de-duplicated like Go's
/// `sets.String`, comma-joined. The server always renders wide, so nothing is clipped.
pub(crate) fn load_balancer_ingress(v: &Value, ptr: &str) -> String {
    let mut points: Vec<&str> = arr(v, ptr)
        .iter()
        .filter_map(|ing| {
            let ip = s(ing, "/ip");
            let host = s(ing, "/hostname");
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    points.sort_unstable();
    points.dedup();
    points.join(",")
}

/// `host:port`, bracketing IPv6 addresses like Go's `net.JoinHostPort`.
pub(crate) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}
