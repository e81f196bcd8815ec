//! Validation of custom resources against their CRD's structural OpenAPI v3 schema: types,
//! required properties, enums, bounds, and unknown fields. Pure.

use serde_json::{Map, Value};

use crate::status::Cause;

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.trim_start_matches('.').into(),
    }
}

fn type_ok(ty: &str, v: &Value, int_or_string: bool) -> bool {
    if int_or_string && (v.is_string() || v.is_i64() || v.is_u64()) {
        return true;
    }
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Problems of `obj` against `schema` (the top-level `openAPIV3Schema`). `metadata`, `apiVersion`
/// and `kind` are the server's business and are not checked here.
pub fn violations(schema: &Value, obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if let (Some(props), Some(map)) = (
        schema.get("properties").and_then(Value::as_object),
        obj.as_object(),
    ) {
        for (k, v) in map {
            if matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            if let Some(s) = props.get(k) {
                walk(s, v, &format!(".{k}"), &mut out);
            }
        }
        required(schema, map, "", &mut out);
    }
    out
}

fn required(schema: &Value, map: &Map<String, Value>, path: &str, out: &mut Vec<Cause>) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(r) && !matches!(r, "metadata" | "apiVersion" | "kind") {
            out.push(cause(
                "FieldValueRequired",
                &format!("{path}.{r}"),
                "Required value".into(),
            ));
        }
    }
}

fn walk(schema: &Value, v: &Value, path: &str, out: &mut Vec<Cause>) {
    if v.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            out.push(cause(
                "FieldValueTypeInvalid",
                path,
                "Invalid value: \"null\": field must not be null".into(),
            ));
        }
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !type_ok(ty, v, int_or_string)
    {
        out.push(cause(
            "FieldValueTypeInvalid",
            path,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {ty}: \"{}\"",
                describe(v),
                describe(v)
            ),
        ));
        return;
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(v)
    {
        let allowed: Vec<String> = options.iter().map(Value::to_string).collect();
        out.push(cause(
            "FieldValueNotSupported",
            path,
            format!(
                "Unsupported value: {v}: supported values: {}",
                allowed.join(", ")
            ),
        ));
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && n < min
        {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {v}: {path} in body should be greater than or equal to {min}"
                ),
            ));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && n > max
        {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!("Invalid value: {v}: {path} in body should be less than or equal to {max}"),
            ));
        }
    }
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            out.push(cause(
                "FieldValueTooLong",
                path,
                format!("Too long: may not be longer than {}", schema["maxLength"]),
            ));
        }
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            out.push(cause(
                "FieldValueInvalid",
                path,
                format!(
                    "Invalid value: {v}: {path} in body should be at least {} chars long",
                    schema["minLength"]
                ),
            ));
        }
    }
    match v {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, child) in map {
                    if let Some(s) = props.get(k) {
                        walk(s, child, &format!("{path}.{k}"), out);
                    }
                }
            }
            if let Some(add) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for (k, child) in map {
                    walk(add, child, &format!("{path}.{k}"), out);
                }
            }
            required(schema, map, path, out);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
            if schema
                .get("maxItems")
                .and_then(Value::as_u64)
                .is_some_and(|m| items.len() as u64 > m)
            {
                out.push(cause(
                    "FieldValueTooMany",
                    path,
                    format!(
                        "Too many: {}: must have at most {} items",
                        items.len(),
                        schema["maxItems"]
                    ),
                ));
            }
        }
        _ => {}
    }
}

/// Dotted paths of fields the schema does not declare (what upstream prunes, and reports under
/// `fieldValidation`).
pub fn unknown_fields(schema: &Value, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(map) = obj.as_object() {
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, v) in map {
            if matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            match props.and_then(|p| p.get(k)) {
                Some(s) => unknown_walk(s, v, &format!(".{k}"), &mut out),
                None if preserves(schema) => {}
                None => out.push(format!(".{k}")),
            }
        }
    }
    out
}

/// Removes the fields at `paths` (as [`unknown_fields`] writes them: `.spec.x`, `.a[2].b`).
pub fn prune(obj: &mut Value, paths: &[String]) {
    for path in paths {
        let mut segments = Vec::new();
        for part in path.trim_start_matches('.').split('.') {
            // `items[3]` is a field then an index.
            let mut rest = part;
            if let Some(open) = rest.find('[') {
                segments.push(Segment::Field(&rest[..open]));
                rest = &rest[open..];
                while let Some(close) = rest.find(']') {
                    if let Ok(i) = rest[1..close].parse() {
                        segments.push(Segment::Index(i));
                    }
                    rest = &rest[close + 1..];
                }
            } else {
                segments.push(Segment::Field(rest));
            }
        }
        remove_at(obj, &segments);
    }
}

enum Segment<'a> {
    Field(&'a str),
    Index(usize),
}

fn remove_at(v: &mut Value, path: &[Segment<'_>]) {
    match path {
        [] => {}
        [Segment::Field(f)] => {
            if let Some(m) = v.as_object_mut() {
                m.remove(*f);
            }
        }
        [Segment::Field(f), rest @ ..] => {
            if let Some(next) = v.get_mut(*f) {
                remove_at(next, rest);
            }
        }
        [Segment::Index(i), rest @ ..] => {
            if let Some(next) = v.get_mut(*i) {
                remove_at(next, rest);
            }
        }
    }
}

fn preserves(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn unknown_walk(schema: &Value, v: &Value, path: &str, out: &mut Vec<String>) {
    if preserves(schema) && schema.get("properties").is_none() {
        return;
    }
    match v {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let add = schema.get("additionalProperties");
            for (k, child) in map {
                match (props.and_then(|p| p.get(k)), add) {
                    (Some(s), _) => unknown_walk(s, child, &format!("{path}.{k}"), out),
                    (None, Some(a)) if a.is_object() => {
                        unknown_walk(a, child, &format!("{path}.{k}"), out)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if preserves(schema) => {}
                    (None, _) if props.is_none() && schema.get("type").is_none() => {}
                    (None, _) => out.push(format!("{path}.{k}")),
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_walk(s, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prune_removes_unknown_paths() {
        let cases = [
            (
                json!({"spec": {"a": 1, "x": 2}}),
                vec![".spec.x"],
                json!({"spec": {"a": 1}}),
            ),
            (
                json!({"spec": {"items": [{"k": 1, "bad": 2}, {"k": 2}]}}),
                vec![".spec.items[0].bad"],
                json!({"spec": {"items": [{"k": 1}, {"k": 2}]}}),
            ),
            (
                json!({"top": 1, "keep": 2}),
                vec![".top", ".missing.deeper"],
                json!({"keep": 2}),
            ),
        ];
        for (mut obj, paths, want) in cases {
            let paths: Vec<String> = paths.into_iter().map(String::from).collect();
            prune(&mut obj, &paths);
            assert_eq!(obj, want);
        }
    }

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["size"],
                    "properties": {
                        "size": {"type": "integer", "minimum": 1, "maximum": 10},
                        "mode": {"type": "string", "enum": ["fast", "slow"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "items": {"type": "string"}},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    }
                },
                "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn violations_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"spec": {"size": 3, "mode": "fast", "port": "http", "tags": ["a"], "labels": {"a": "b"}}}),
                vec![],
            ),
            (json!({"spec": {"size": "3"}}), vec!["spec.size"]),
            (json!({"spec": {"size": 30}}), vec!["spec.size"]),
            (
                json!({"spec": {"size": 3, "mode": "medium"}}),
                vec!["spec.mode"],
            ),
            (json!({"spec": {}}), vec!["spec.size"]),
            (
                json!({"spec": {"size": 3, "tags": [1]}}),
                vec!["spec.tags[0]"],
            ),
            (
                json!({"spec": {"size": 3, "labels": {"a": 1}}}),
                vec!["spec.labels.a"],
            ),
            (json!({"spec": {"size": 3, "port": 8080}}), vec![]),
        ];
        for (obj, want) in cases {
            let got: Vec<String> = violations(&schema(), &obj)
                .into_iter()
                .map(|c| c.field)
                .collect();
            assert_eq!(got, want, "{obj}");
        }
    }

    #[test]
    fn unknown_fields_table() {
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (
                json!({"apiVersion": "x", "kind": "W", "metadata": {"anything": 1}, "spec": {"size": 1}}),
                vec![],
            ),
            (json!({"spec": {"size": 1, "sise": 2}}), vec![".spec.sise"]),
            (json!({"spec": {"extra": {"free": {"form": true}}}}), vec![]),
            (json!({"spec": {"labels": {"any": "thing"}}}), vec![]),
            (json!({"top": 1}), vec![".top"]),
        ];
        for (obj, want) in cases {
            assert_eq!(unknown_fields(&schema(), &obj), want, "{obj}");
        }
    }
}
