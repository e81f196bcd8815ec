//! OpenAPI v3 documents (one per group-version, as `/openapi/v3/...` serves them) merged into the
//! single Swagger 2.0 document of `/openapi/v2`: paths with their operations, parameters and
//! responses in v2's shape, and `components.schemas` as `definitions`.

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::schema::{SchemaConverter, rewrite_ref};

/// The operations a v2 path item can hold (v3's `trace` has no v2 form).
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch"];

/// Where a non-body parameter can be in v2 (v3's `cookie` cannot).
const PARAMETER_LOCATIONS: &[&str] = &["query", "header", "path", "formData"];

/// Merges v3 documents into one Swagger 2.0 document titled `title` at `version`.
///
/// Lenient by design: the input is our own v3 output plus CRD schemas, and anything v2 cannot
/// express is dropped rather than failing the whole document. When two documents define the same
/// schema or path, the first wins (shared schemas such as `ObjectMeta` are identical).
pub fn swagger_from_v3(docs: &[Value], title: &str, version: &str) -> Value {
    let names: HashSet<String> = docs
        .iter()
        .filter_map(|d| d.pointer("/components/schemas").and_then(Value::as_object))
        .flat_map(|schemas| schemas.keys().cloned())
        .collect();
    let converter = Converter {
        schemas: SchemaConverter::new(&names),
    };
    let mut paths = Map::new();
    let mut definitions = Map::new();
    let mut parameters = Map::new();
    let mut responses = Map::new();
    let mut security_definitions = Map::new();
    for doc in docs {
        for (path, item) in doc
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if let Some(item) = item.as_object()
                && !paths.contains_key(path)
            {
                paths.insert(path.clone(), converter.path_item(item, doc));
            }
        }
        let components = |kind: &str| {
            doc.pointer(&format!("/components/{kind}"))
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
        };
        for (name, schema) in components("schemas") {
            if !definitions.contains_key(name) {
                definitions.insert(name.clone(), converter.schemas.convert(schema));
            }
        }
        for (name, p) in components("parameters") {
            if let Some(p) = converter.parameter(p)
                && !parameters.contains_key(name)
            {
                parameters.insert(name.clone(), p);
            }
        }
        for (name, r) in components("responses") {
            if !responses.contains_key(name) {
                responses.insert(name.clone(), converter.response(r));
            }
        }
        for (name, s) in components("securitySchemes") {
            if let Some(s) = security_scheme(s)
                && !security_definitions.contains_key(name)
            {
                security_definitions.insert(name.clone(), s);
            }
        }
    }
    let mut out = json!({
        "swagger": "2.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "definitions": definitions,
    });
    let optional = [
        ("parameters", parameters),
        ("responses", responses),
        ("securityDefinitions", security_definitions),
    ];
    for (key, map) in optional {
        if !map.is_empty() {
            out[key] = Value::Object(map);
        }
    }
    if let Some(security) = docs.iter().find_map(|d| d.get("security")) {
        out["security"] = security.clone();
    }
    out
}

struct Converter<'a> {
    schemas: SchemaConverter<'a>,
}

impl Converter<'_> {
    fn path_item(&self, item: &Map<String, Value>, doc: &Value) -> Value {
        let mut out = Map::new();
        for (key, value) in item {
            if METHODS.contains(&key.as_str()) {
                if let Some(op) = value.as_object() {
                    out.insert(key.clone(), self.operation(op, doc));
                }
            } else if key == "parameters" {
                out.insert(key.clone(), Value::Array(self.parameters(value)));
            } else if key.starts_with("x-") {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }

    fn parameters(&self, list: &Value) -> Vec<Value> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| self.parameter(p))
            .collect()
    }

    /// A v3 operation in v2's shape: the request body becomes an `in: body` parameter, media
    /// types move from `content` maps to `consumes`/`produces`.
    fn operation(&self, op: &Map<String, Value>, doc: &Value) -> Value {
        let mut out = Map::new();
        let mut parameters = Vec::new();
        let mut consumes = Vec::new();
        if let Some(body) = op.get("requestBody") {
            let body = resolve(body, doc, "requestBodies");
            if let Some(content) = body.get("content").and_then(Value::as_object) {
                consumes.extend(content.keys().cloned());
            }
            parameters.push(self.body_parameter(body));
        }
        if let Some(list) = op.get("parameters") {
            parameters.extend(self.parameters(list));
        }
        let mut produces: Vec<String> = Vec::new();
        for (key, value) in op {
            match key.as_str() {
                "tags" | "summary" | "description" | "externalDocs" | "operationId"
                | "deprecated" | "security" => {
                    out.insert(key.clone(), value.clone());
                }
                "responses" => {
                    let responses = value.as_object().into_iter().flatten();
                    let mut converted = Map::new();
                    for (code, r) in responses {
                        if code.starts_with("x-") {
                            converted.insert(code.clone(), r.clone());
                            continue;
                        }
                        let content = r.get("content").and_then(Value::as_object);
                        for media_type in content.into_iter().flat_map(|c| c.keys()) {
                            if !produces.contains(media_type) {
                                produces.push(media_type.clone());
                            }
                        }
                        converted.insert(code.clone(), self.response(r));
                    }
                    out.insert(key.clone(), Value::Object(converted));
                }
                k if k.starts_with("x-") => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        if !consumes.is_empty() {
            out.insert("consumes".into(), json!(consumes));
        }
        if !produces.is_empty() {
            out.insert("produces".into(), json!(produces));
        }
        out.insert("parameters".into(), Value::Array(parameters));
        // v2 requires `responses` on every operation.
        out.entry("responses").or_insert_with(|| json!({}));
        Value::Object(out)
    }

    /// v3 `requestBody` → the v2 body parameter (named `body`, as upstream names it, unless the
    /// document says otherwise with `x-codegen-request-body-name`).
    fn body_parameter(&self, body: &Value) -> Value {
        let name = body
            .get("x-codegen-request-body-name")
            .and_then(Value::as_str)
            .unwrap_or("body");
        let mut out = json!({"in": "body", "name": name});
        out["required"] = json!(
            body.get("required")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        );
        if let Some(d) = body.get("description").filter(|d| d.is_string()) {
            out["description"] = d.clone();
        }
        out["schema"] = media_schema(body)
            .map(|s| self.schemas.convert(s))
            .unwrap_or_else(|| json!({}));
        out
    }

    /// A v3 parameter (or reference to one) in v2's shape: the `schema`'s type and constraints
    /// move onto the parameter itself. `None` for what v2 cannot express (cookies).
    fn parameter(&self, p: &Value) -> Option<Value> {
        let m = p.as_object()?;
        if let Some(reference) = m.get("$ref").and_then(Value::as_str) {
            return rewrite_ref(reference).map(|r| json!({"$ref": r}));
        }
        let location = m.get("in").and_then(Value::as_str)?;
        if !PARAMETER_LOCATIONS.contains(&location) {
            return None;
        }
        let mut out = Map::new();
        for (key, value) in m {
            match key.as_str() {
                "name" | "in" | "description" => {
                    out.insert(key.clone(), value.clone());
                }
                "required" | "allowEmptyValue" | "uniqueItems" if value.is_boolean() => {
                    out.insert(key.clone(), value.clone());
                }
                k if k.starts_with("x-") => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        if location == "path" {
            // v2 insists that path parameters are required.
            out.insert("required".into(), Value::Bool(true));
        }
        let schema = m.get("schema").and_then(Value::as_object);
        primitive_fields(schema, &mut out);
        if out.get("type").is_some_and(|t| t == "array") {
            let format = collection_format(m, location);
            out.insert("collectionFormat".into(), Value::String(format.into()));
        }
        Some(Value::Object(out))
    }

    fn response(&self, r: &Value) -> Value {
        if let Some(reference) = r.get("$ref").and_then(Value::as_str) {
            return rewrite_ref(reference)
                .map_or_else(|| json!({"description": ""}), |r| json!({"$ref": r}));
        }
        let mut out = Map::new();
        let description = r.get("description").and_then(Value::as_str).unwrap_or("");
        out.insert("description".into(), json!(description));
        if let Some(schema) = media_schema(r) {
            out.insert("schema".into(), self.schemas.convert(schema));
        }
        if let Some(headers) = r.get("headers").and_then(Value::as_object) {
            let converted: Map<String, Value> = headers
                .iter()
                .map(|(name, h)| (name.clone(), header(h)))
                .collect();
            out.insert("headers".into(), Value::Object(converted));
        }
        for (key, value) in r.as_object().into_iter().flatten() {
            if key.starts_with("x-") {
                out.insert(key.clone(), value.clone());
            }
        }
        Value::Object(out)
    }
}

/// Follows a `#/components/<kind>/<name>` reference within `doc`, or returns `v` itself.
fn resolve<'a>(v: &'a Value, doc: &'a Value, kind: &str) -> &'a Value {
    v.get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| {
            r.strip_prefix(&format!("#/components/{kind}/"))
                .map(str::to_owned)
        })
        .and_then(|name| doc.pointer(&format!("/components/{kind}/{}", escape_pointer(&name))))
        .unwrap_or(v)
}

fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The schema of a v3 `content` map, preferring JSON, as v2 has one schema for every media type.
fn media_schema(v: &Value) -> Option<&Value> {
    let content = v.get("content")?.as_object()?;
    content
        .get("application/json")
        .or_else(|| content.values().next())?
        .get("schema")
}

/// Keywords a v2 non-body parameter, header or items object takes from the v3 `schema`.
const PRIMITIVE_KEYWORDS: &[&str] = &[
    "format",
    "default",
    "maximum",
    "exclusiveMaximum",
    "minimum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "pattern",
    "maxItems",
    "minItems",
    "uniqueItems",
    "enum",
    "multipleOf",
];

/// Moves `type`, `items` and constraints from a v3 schema onto a v2 primitive (parameter,
/// header, items). v2 requires a type here; a schema that is an object or a reference has no
/// primitive form, so it is described as a string, which is how it travels in a query anyway.
fn primitive_fields(schema: Option<&Map<String, Value>>, out: &mut Map<String, Value>) {
    let ty = schema
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .filter(|t| {
            matches!(
                *t,
                "string" | "number" | "integer" | "boolean" | "array" | "file"
            )
        })
        .unwrap_or("string");
    out.insert("type".into(), json!(ty));
    let Some(schema) = schema else { return };
    for key in PRIMITIVE_KEYWORDS {
        if let Some(v) = schema.get(*key) {
            out.entry(*key).or_insert_with(|| v.clone());
        }
    }
    if ty == "array" {
        let mut items = Map::new();
        primitive_fields(schema.get("items").and_then(Value::as_object), &mut items);
        out.insert("items".into(), Value::Object(items));
    }
}

/// v3 `style`/`explode` → v2 `collectionFormat` for array parameters.
fn collection_format(p: &Map<String, Value>, location: &str) -> &'static str {
    let style = p.get("style").and_then(Value::as_str);
    let form = matches!(location, "query" | "formData");
    let explode = p
        .get("explode")
        .and_then(Value::as_bool)
        .unwrap_or(style.is_none_or(|s| s == "form") && form);
    match style {
        Some("spaceDelimited") => "ssv",
        Some("pipeDelimited") => "pipes",
        _ if form && explode => "multi",
        _ => "csv",
    }
}

fn header(h: &Value) -> Value {
    let mut out = Map::new();
    if let Some(d) = h.get("description").filter(|d| d.is_string()) {
        out.insert("description".into(), d.clone());
    }
    primitive_fields(h.get("schema").and_then(Value::as_object), &mut out);
    Value::Object(out)
}

/// v3 security schemes that have a v2 form: API keys, basic auth, and bearer tokens (which v2
/// can only describe as an `Authorization` header API key, as upstream's v2 does).
fn security_scheme(s: &Value) -> Option<Value> {
    let description = s.get("description").cloned();
    let mut out = match (
        s.get("type").and_then(Value::as_str)?,
        s.get("scheme").and_then(Value::as_str),
    ) {
        ("apiKey", _) => json!({
            "type": "apiKey",
            "name": s.get("name").cloned().unwrap_or(json!("")),
            "in": s.get("in").cloned().unwrap_or(json!("header")),
        }),
        ("http", Some(scheme)) if scheme.eq_ignore_ascii_case("basic") => json!({"type": "basic"}),
        ("http", Some(scheme)) if scheme.eq_ignore_ascii_case("bearer") => {
            json!({"type": "apiKey", "name": "authorization", "in": "header"})
        }
        _ => return None,
    };
    if let Some(d) = description {
        out["description"] = d;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
