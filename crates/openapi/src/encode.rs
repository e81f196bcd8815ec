//! A Swagger 2.0 JSON document → the gnostic `openapi.v2.Document` protobuf, filled the way
//! gnostic's `NewDocument` fills it from the same JSON, so kubectl reads what an upstream server
//! would send.
//!
//! Values with no fixed type (`default`, `enum`, `example`, vendor extensions) travel as
//! `Any { yaml }`, the YAML text of the value: kube-openapi's parser `yaml.Unmarshal`s them, e.g.
//! `x-kubernetes-group-version-kind`, which kubectl needs to find a kind's schema.

use prost::Message;
use serde_json::{Map, Value};

use crate::Error;
use crate::gnostic as g;

type Result<T> = std::result::Result<T, Error>;

/// Encodes a Swagger 2.0 JSON document as gnostic `openapi.v2.Document` protobuf bytes.
pub fn encode(swagger: &Value) -> Result<Vec<u8>> {
    Ok(document(swagger)?.encode_to_vec())
}

/// Decodes gnostic `openapi.v2.Document` protobuf bytes (what kubectl does with them).
pub fn decode(bytes: &[u8]) -> Result<g::Document> {
    Ok(g::Document::decode(bytes)?)
}

/// The gnostic `Document` of a Swagger 2.0 JSON document.
pub fn document(swagger: &Value) -> Result<g::Document> {
    let m = swagger.as_object().ok_or(Error::NotAnObject)?;
    Ok(g::Document {
        swagger: string(m, "swagger"),
        info: obj(m, "info").map(info).transpose()?,
        host: string(m, "host"),
        base_path: string(m, "basePath"),
        schemes: strings(m, "schemes"),
        consumes: strings(m, "consumes"),
        produces: strings(m, "produces"),
        paths: obj(m, "paths").map(paths).transpose()?,
        definitions: obj(m, "definitions")
            .map(|d| {
                Ok::<_, Error>(g::Definitions {
                    additional_properties: named_schemas(d)?,
                })
            })
            .transpose()?,
        parameters: obj(m, "parameters")
            .map(|p| {
                Ok::<_, Error>(g::ParameterDefinitions {
                    additional_properties: named(p.iter(), |name, v| {
                        Ok(g::NamedParameter {
                            name,
                            value: Some(parameter(v)?),
                        })
                    })?,
                })
            })
            .transpose()?,
        responses: obj(m, "responses")
            .map(|r| {
                Ok::<_, Error>(g::ResponseDefinitions {
                    additional_properties: named(r.iter(), |name, v| {
                        Ok(g::NamedResponse {
                            name,
                            value: Some(response(v)?),
                        })
                    })?,
                })
            })
            .transpose()?,
        security: security(m),
        security_definitions: obj(m, "securityDefinitions")
            .map(security_definitions)
            .transpose()?,
        tags: m
            .get("tags")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_object)
            .map(tag)
            .collect::<Result<_>>()?,
        external_docs: obj(m, "externalDocs").map(external_docs).transpose()?,
        vendor_extension: extensions(m)?,
    })
}

fn obj<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Map<String, Value>> {
    m.get(key).and_then(Value::as_object)
}

fn string(m: &Map<String, Value>, key: &str) -> String {
    m.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn strings(m: &Map<String, Value>, key: &str) -> Vec<String> {
    m.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn boolean(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn float(m: &Map<String, Value>, key: &str) -> f64 {
    m.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn int(m: &Map<String, Value>, key: &str) -> i64 {
    m.get(key)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

/// A value as gnostic keeps it: its YAML text.
fn any(v: &Value) -> Result<g::Any> {
    Ok(g::Any {
        value: None,
        yaml: serde_yaml_ng::to_string(v)?,
    })
}

fn opt_any(m: &Map<String, Value>, key: &str) -> Result<Option<g::Any>> {
    m.get(key).map(any).transpose()
}

fn anys(m: &Map<String, Value>, key: &str) -> Result<Vec<g::Any>> {
    m.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(any)
        .collect()
}

/// The `Named*` messages (gnostic's ordered maps) of `entries`, each built by `make`.
fn named<'a, N>(
    entries: impl Iterator<Item = (&'a String, &'a Value)>,
    mut make: impl FnMut(String, &'a Value) -> Result<N>,
) -> Result<Vec<N>> {
    entries.map(|(k, v)| make(k.clone(), v)).collect()
}

/// Every `x-` key, in document order, as gnostic collects them.
fn extensions(m: &Map<String, Value>) -> Result<Vec<g::NamedAny>> {
    named(m.iter().filter(|(k, _)| k.starts_with("x-")), |name, v| {
        Ok(g::NamedAny {
            name,
            value: Some(any(v)?),
        })
    })
}

fn info(m: &Map<String, Value>) -> Result<g::Info> {
    Ok(g::Info {
        title: string(m, "title"),
        version: string(m, "version"),
        description: string(m, "description"),
        terms_of_service: string(m, "termsOfService"),
        contact: obj(m, "contact")
            .map(|c| {
                Ok::<_, Error>(g::Contact {
                    name: string(c, "name"),
                    url: string(c, "url"),
                    email: string(c, "email"),
                    vendor_extension: extensions(c)?,
                })
            })
            .transpose()?,
        license: obj(m, "license")
            .map(|l| {
                Ok::<_, Error>(g::License {
                    name: string(l, "name"),
                    url: string(l, "url"),
                    vendor_extension: extensions(l)?,
                })
            })
            .transpose()?,
        vendor_extension: extensions(m)?,
    })
}

fn external_docs(m: &Map<String, Value>) -> Result<g::ExternalDocs> {
    Ok(g::ExternalDocs {
        description: string(m, "description"),
        url: string(m, "url"),
        vendor_extension: extensions(m)?,
    })
}

fn tag(m: &Map<String, Value>) -> Result<g::Tag> {
    Ok(g::Tag {
        name: string(m, "name"),
        description: string(m, "description"),
        external_docs: obj(m, "externalDocs").map(external_docs).transpose()?,
        vendor_extension: extensions(m)?,
    })
}

fn paths(m: &Map<String, Value>) -> Result<g::Paths> {
    Ok(g::Paths {
        vendor_extension: extensions(m)?,
        path: named(m.iter().filter(|(k, _)| k.starts_with('/')), |name, v| {
            Ok(g::NamedPathItem {
                name,
                value: Some(path_item(v.as_object().unwrap_or(&Map::new()))?),
            })
        })?,
    })
}

fn path_item(m: &Map<String, Value>) -> Result<g::PathItem> {
    let op = |method: &str| obj(m, method).map(operation).transpose();
    Ok(g::PathItem {
        x_ref: string(m, "$ref"),
        get: op("get")?,
        put: op("put")?,
        post: op("post")?,
        delete: op("delete")?,
        options: op("options")?,
        head: op("head")?,
        patch: op("patch")?,
        parameters: parameters_items(m)?,
        vendor_extension: extensions(m)?,
    })
}

fn operation(m: &Map<String, Value>) -> Result<g::Operation> {
    Ok(g::Operation {
        tags: strings(m, "tags"),
        summary: string(m, "summary"),
        description: string(m, "description"),
        external_docs: obj(m, "externalDocs").map(external_docs).transpose()?,
        operation_id: string(m, "operationId"),
        produces: strings(m, "produces"),
        consumes: strings(m, "consumes"),
        parameters: parameters_items(m)?,
        responses: obj(m, "responses").map(responses).transpose()?,
        schemes: strings(m, "schemes"),
        deprecated: boolean(m, "deprecated"),
        security: security(m),
        vendor_extension: extensions(m)?,
    })
}

fn parameters_items(m: &Map<String, Value>) -> Result<Vec<g::ParametersItem>> {
    use g::parameters_item::Oneof;
    m.get("parameters")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let oneof = match p.get("$ref").and_then(Value::as_str) {
                Some(r) => Oneof::JsonReference(g::JsonReference {
                    x_ref: r.to_owned(),
                    description: p
                        .get("description")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                }),
                None => Oneof::Parameter(Box::new(parameter(p)?)),
            };
            Ok(g::ParametersItem { oneof: Some(oneof) })
        })
        .collect()
}

/// Fields shared by every v2 primitive-valued object (non-body parameters, headers, items);
/// the struct's own fields come first, `$items` is the items field's value.
macro_rules! primitive {
    ($ty:ident, $m:expr, $items:expr, { $($field:ident : $value:expr),* $(,)? }) => {
        g::$ty {
            $($field: $value,)*
            r#type: string($m, "type"),
            format: string($m, "format"),
            items: $items,
            collection_format: string($m, "collectionFormat"),
            default: opt_any($m, "default")?,
            maximum: float($m, "maximum"),
            exclusive_maximum: boolean($m, "exclusiveMaximum"),
            minimum: float($m, "minimum"),
            exclusive_minimum: boolean($m, "exclusiveMinimum"),
            max_length: int($m, "maxLength"),
            min_length: int($m, "minLength"),
            pattern: string($m, "pattern"),
            max_items: int($m, "maxItems"),
            min_items: int($m, "minItems"),
            unique_items: boolean($m, "uniqueItems"),
            r#enum: anys($m, "enum")?,
            multiple_of: float($m, "multipleOf"),
            vendor_extension: extensions($m)?,
        }
    };
}

fn primitives_items(m: &Map<String, Value>) -> Result<g::PrimitivesItems> {
    let items = obj(m, "items")
        .map(|i| primitives_items(i).map(Box::new))
        .transpose()?;
    Ok(primitive!(PrimitivesItems, m, items, {}))
}

fn items_of(m: &Map<String, Value>) -> Result<Option<g::PrimitivesItems>> {
    obj(m, "items").map(primitives_items).transpose()
}

/// gnostic tells body from non-body parameters by which schema matches; `in` decides it for
/// every well-formed parameter, so that is what is checked here.
fn parameter(v: &Value) -> Result<g::Parameter> {
    use g::non_body_parameter::Oneof as NonBody;
    use g::parameter::Oneof;
    let empty = Map::new();
    let m = v.as_object().unwrap_or(&empty);
    let location = string(m, "in");
    let non_body =
        |oneof: NonBody| Oneof::NonBodyParameter(g::NonBodyParameter { oneof: Some(oneof) });
    let oneof = match location.as_str() {
        "body" => Oneof::BodyParameter(g::BodyParameter {
            description: string(m, "description"),
            name: string(m, "name"),
            r#in: location.clone(),
            required: boolean(m, "required"),
            schema: m.get("schema").map(schema).transpose()?,
            vendor_extension: extensions(m)?,
        }),
        "header" => non_body(NonBody::HeaderParameterSubSchema(primitive!(
            HeaderParameterSubSchema, m, items_of(m)?, {
                required: boolean(m, "required"),
                r#in: location.clone(),
                description: string(m, "description"),
                name: string(m, "name"),
            }
        ))),
        "formData" => non_body(NonBody::FormDataParameterSubSchema(primitive!(
            FormDataParameterSubSchema, m, items_of(m)?, {
                required: boolean(m, "required"),
                r#in: location.clone(),
                description: string(m, "description"),
                name: string(m, "name"),
                allow_empty_value: boolean(m, "allowEmptyValue"),
            }
        ))),
        "path" => non_body(NonBody::PathParameterSubSchema(primitive!(
            PathParameterSubSchema, m, items_of(m)?, {
                required: boolean(m, "required"),
                r#in: location.clone(),
                description: string(m, "description"),
                name: string(m, "name"),
            }
        ))),
        // Query is also where gnostic's last-matching-wins leaves a parameter whose `in` is
        // unknown and which it would reject: better a usable entry than a failed document.
        _ => non_body(NonBody::QueryParameterSubSchema(primitive!(
            QueryParameterSubSchema, m, items_of(m)?, {
                required: boolean(m, "required"),
                r#in: location.clone(),
                description: string(m, "description"),
                name: string(m, "name"),
                allow_empty_value: boolean(m, "allowEmptyValue"),
            }
        ))),
    };
    Ok(g::Parameter { oneof: Some(oneof) })
}

fn responses(m: &Map<String, Value>) -> Result<g::Responses> {
    use g::response_value::Oneof;
    let response_code = m
        .iter()
        .filter(|(k, _)| !k.starts_with("x-"))
        .map(|(code, v)| {
            let oneof = match v.get("$ref").and_then(Value::as_str) {
                Some(r) => Oneof::JsonReference(g::JsonReference {
                    x_ref: r.to_owned(),
                    description: String::new(),
                }),
                None => Oneof::Response(Box::new(response(v)?)),
            };
            Ok(g::NamedResponseValue {
                name: code.clone(),
                value: Some(g::ResponseValue { oneof: Some(oneof) }),
            })
        })
        .collect::<Result<_>>()?;
    Ok(g::Responses {
        response_code,
        vendor_extension: extensions(m)?,
    })
}

fn response(v: &Value) -> Result<g::Response> {
    let empty = Map::new();
    let m = v.as_object().unwrap_or(&empty);
    let headers = obj(m, "headers")
        .map(|h| {
            let additional_properties = named(h.iter(), |name, v| {
                let hm = v.as_object().unwrap_or(&empty);
                Ok(g::NamedHeader {
                    name,
                    value: Some(primitive!(Header, hm, items_of(hm)?, {
                        description: string(hm, "description"),
                    })),
                })
            })?;
            Ok::<_, Error>(g::Headers {
                additional_properties,
            })
        })
        .transpose()?;
    Ok(g::Response {
        description: string(m, "description"),
        schema: m.get("schema").map(schema_item).transpose()?,
        headers,
        examples: obj(m, "examples")
            .map(|e| {
                Ok::<_, Error>(g::Examples {
                    additional_properties: named(e.iter(), |name, v| {
                        Ok(g::NamedAny {
                            name,
                            value: Some(any(v)?),
                        })
                    })?,
                })
            })
            .transpose()?,
        vendor_extension: extensions(m)?,
    })
}

/// A response schema; gnostic reads `type: file` ones as `FileSchema`.
fn schema_item(v: &Value) -> Result<g::SchemaItem> {
    use g::schema_item::Oneof;
    let oneof = match v.as_object() {
        Some(m) if m.get("type").is_some_and(|t| t == "file") => {
            Oneof::FileSchema(Box::new(g::FileSchema {
                format: string(m, "format"),
                title: string(m, "title"),
                description: string(m, "description"),
                default: opt_any(m, "default")?,
                required: strings(m, "required"),
                r#type: string(m, "type"),
                read_only: boolean(m, "readOnly"),
                external_docs: obj(m, "externalDocs").map(external_docs).transpose()?,
                example: opt_any(m, "example")?,
                vendor_extension: extensions(m)?,
            }))
        }
        _ => Oneof::Schema(Box::new(schema(v)?)),
    };
    Ok(g::SchemaItem { oneof: Some(oneof) })
}

fn named_schemas(m: &Map<String, Value>) -> Result<Vec<g::NamedSchema>> {
    named(m.iter(), |name, v| {
        Ok(g::NamedSchema {
            name,
            value: Some(schema(v)?),
        })
    })
}

/// One schema, recursively. Non-object input (which gnostic would reject) becomes an empty
/// schema: anything goes.
pub(crate) fn schema(v: &Value) -> Result<g::Schema> {
    use g::additional_properties_item::Oneof;
    let Some(m) = v.as_object() else {
        return Ok(g::Schema::default());
    };
    let additional_properties = match m.get("additionalProperties") {
        Some(Value::Bool(b)) => Some(Oneof::Boolean(*b)),
        Some(s @ Value::Object(_)) => Some(Oneof::Schema(Box::new(schema(s)?))),
        _ => None,
    }
    .map(|oneof| g::AdditionalPropertiesItem { oneof: Some(oneof) });
    let r#type = m.get("type").and_then(|t| match t {
        Value::String(s) => Some(g::TypeItem {
            value: vec![s.clone()],
        }),
        Value::Array(list) => Some(g::TypeItem {
            value: list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        }),
        _ => None,
    });
    // gnostic holds `items` as a list but only ever fills it from a single schema.
    let items = match m.get("items") {
        Some(Value::Array(list)) => Some(g::ItemsItem {
            schema: list.iter().map(schema).collect::<Result<_>>()?,
        }),
        Some(s @ Value::Object(_)) => Some(g::ItemsItem {
            schema: vec![schema(s)?],
        }),
        _ => None,
    };
    Ok(g::Schema {
        x_ref: string(m, "$ref"),
        format: string(m, "format"),
        title: string(m, "title"),
        description: string(m, "description"),
        default: opt_any(m, "default")?,
        multiple_of: float(m, "multipleOf"),
        maximum: float(m, "maximum"),
        exclusive_maximum: boolean(m, "exclusiveMaximum"),
        minimum: float(m, "minimum"),
        exclusive_minimum: boolean(m, "exclusiveMinimum"),
        max_length: int(m, "maxLength"),
        min_length: int(m, "minLength"),
        pattern: string(m, "pattern"),
        max_items: int(m, "maxItems"),
        min_items: int(m, "minItems"),
        unique_items: boolean(m, "uniqueItems"),
        max_properties: int(m, "maxProperties"),
        min_properties: int(m, "minProperties"),
        required: strings(m, "required"),
        r#enum: anys(m, "enum")?,
        additional_properties,
        r#type,
        items,
        all_of: m
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(schema)
            .collect::<Result<_>>()?,
        properties: obj(m, "properties")
            .map(|p| {
                Ok::<_, Error>(g::Properties {
                    additional_properties: named_schemas(p)?,
                })
            })
            .transpose()?,
        discriminator: string(m, "discriminator"),
        read_only: boolean(m, "readOnly"),
        xml: obj(m, "xml")
            .map(|x| {
                Ok::<_, Error>(g::Xml {
                    name: string(x, "name"),
                    namespace: string(x, "namespace"),
                    prefix: string(x, "prefix"),
                    attribute: boolean(x, "attribute"),
                    wrapped: boolean(x, "wrapped"),
                    vendor_extension: extensions(x)?,
                })
            })
            .transpose()?,
        external_docs: obj(m, "externalDocs").map(external_docs).transpose()?,
        example: opt_any(m, "example")?,
        vendor_extension: extensions(m)?,
    })
}

fn security(m: &Map<String, Value>) -> Vec<g::SecurityRequirement> {
    m.get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .map(|req| g::SecurityRequirement {
            additional_properties: req
                .iter()
                .map(|(name, scopes)| g::NamedStringArray {
                    name: name.clone(),
                    value: Some(g::StringArray {
                        value: scopes
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect(),
                    }),
                })
                .collect(),
        })
        .collect()
}

fn security_definitions(m: &Map<String, Value>) -> Result<g::SecurityDefinitions> {
    use g::security_definitions_item::Oneof;
    let mut additional_properties = Vec::new();
    for (name, v) in m {
        let Some(s) = v.as_object() else { continue };
        let scopes = || {
            obj(s, "scopes").map(|sc| g::Oauth2Scopes {
                additional_properties: sc
                    .iter()
                    .map(|(k, v)| g::NamedString {
                        name: k.clone(),
                        value: v.as_str().unwrap_or_default().to_owned(),
                    })
                    .collect(),
            })
        };
        let oneof = match (string(s, "type").as_str(), string(s, "flow").as_str()) {
            ("basic", _) => Oneof::BasicAuthenticationSecurity(g::BasicAuthenticationSecurity {
                r#type: string(s, "type"),
                description: string(s, "description"),
                vendor_extension: extensions(s)?,
            }),
            ("apiKey", _) => Oneof::ApiKeySecurity(g::ApiKeySecurity {
                r#type: string(s, "type"),
                name: string(s, "name"),
                r#in: string(s, "in"),
                description: string(s, "description"),
                vendor_extension: extensions(s)?,
            }),
            ("oauth2", "implicit") => Oneof::Oauth2ImplicitSecurity(g::Oauth2ImplicitSecurity {
                r#type: string(s, "type"),
                flow: string(s, "flow"),
                scopes: scopes(),
                authorization_url: string(s, "authorizationUrl"),
                description: string(s, "description"),
                vendor_extension: extensions(s)?,
            }),
            ("oauth2", "password") => Oneof::Oauth2PasswordSecurity(g::Oauth2PasswordSecurity {
                r#type: string(s, "type"),
                flow: string(s, "flow"),
                scopes: scopes(),
                token_url: string(s, "tokenUrl"),
                description: string(s, "description"),
                vendor_extension: extensions(s)?,
            }),
            ("oauth2", "application") => {
                Oneof::Oauth2ApplicationSecurity(g::Oauth2ApplicationSecurity {
                    r#type: string(s, "type"),
                    flow: string(s, "flow"),
                    scopes: scopes(),
                    token_url: string(s, "tokenUrl"),
                    description: string(s, "description"),
                    vendor_extension: extensions(s)?,
                })
            }
            ("oauth2", "accessCode") => {
                Oneof::Oauth2AccessCodeSecurity(g::Oauth2AccessCodeSecurity {
                    r#type: string(s, "type"),
                    flow: string(s, "flow"),
                    scopes: scopes(),
                    authorization_url: string(s, "authorizationUrl"),
                    token_url: string(s, "tokenUrl"),
                    description: string(s, "description"),
                    vendor_extension: extensions(s)?,
                })
            }
            _ => continue,
        };
        additional_properties.push(g::NamedSecurityDefinitionsItem {
            name: name.clone(),
            value: Some(g::SecurityDefinitionsItem { oneof: Some(oneof) }),
        });
    }
    Ok(g::SecurityDefinitions {
        additional_properties,
    })
}

#[cfg(test)]
mod tests;
