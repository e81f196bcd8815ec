//! Renders a decoded protobuf message as upstream's JSON encoding of the same Go type.
//!
//! Most messages map field by field (protobuf field names are the JSON names). The exceptions
//! are the types with hand-written JSON forms in apimachinery (times, quantities, int-or-string,
//! raw extensions, ...), which are matched by their full message name.

use base64::Engine;
use prost_reflect::{DynamicMessage, MapKey, ReflectMessage, Value as PValue};
use rudder_machinery::timestamp::format_rfc3339_micros as rfc3339;
use serde_json::{Map, Number, Value};

/// The JSON form of `msg`.
pub(crate) fn message(msg: &DynamicMessage) -> Value {
    let name = msg.descriptor().full_name().to_owned();
    let short = name.rsplit('.').next().unwrap_or("");
    match name.as_str() {
        "apimachinery.pkg.apis.meta.v1.Time" => time(msg, false),
        "apimachinery.pkg.apis.meta.v1.MicroTime" => time(msg, true),
        "apimachinery.pkg.apis.meta.v1.Duration" => {
            Value::String(go_duration(int(msg, "duration")))
        }
        "apimachinery.pkg.apis.meta.v1.FieldsV1" => embedded_json(bytes(msg, "Raw")),
        "apimachinery.pkg.api.resource.Quantity"
        | "apimachinery.pkg.api.resource.QuantityValue" => Value::String(text(msg, "string")),
        "apimachinery.pkg.util.intstr.IntOrString" => {
            if int(msg, "type") == 0 {
                Value::from(int(msg, "intVal"))
            } else {
                Value::String(text(msg, "strVal"))
            }
        }
        "apimachinery.pkg.runtime.RawExtension" => raw_extension(bytes(msg, "raw")),
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON" => {
            embedded_json(bytes(msg, "raw"))
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray" => {
            either(msg, "schema", "jSONSchemas")
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool" => {
            either(msg, "schema", "allows")
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray" => {
            either(msg, "schema", "property")
        }
        _ if short == "ExtraValue" || name == "apimachinery.pkg.apis.meta.v1.Verbs" => msg
            .get_field_by_name("items")
            .map(|v| value(&v))
            .unwrap_or_else(|| Value::Array(Vec::new())),
        _ => {
            let schema_props =
                name == "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps";
            let mut out = Map::new();
            for (field, v) in msg.fields() {
                // Go's encoder writes every non-pointer string even when empty; its JSON encoder
                // omits them (`omitempty`), so an empty string here is an absent field.
                if matches!(v, PValue::String(s) if s.is_empty()) {
                    continue;
                }
                let rendered = value(v);
                if rendered.is_null() {
                    continue;
                }
                if is_inline(&name, field.name()) {
                    // Go embeds this struct (`json:",inline"`): its fields sit in the parent.
                    if let Value::Object(inner) = rendered {
                        out.extend(inner);
                    }
                    continue;
                }
                let key = if schema_props {
                    schema_key(field.name())
                } else {
                    field.name().to_owned()
                };
                out.insert(key, rendered);
            }
            Value::Object(out)
        }
    }
}

/// Fields holding a struct Go embeds inline; protobuf names them after the embedded type.
fn is_inline(message: &str, field: &str) -> bool {
    matches!(
        (message, field),
        (
            "api.core.v1.ConfigMapEnvSource"
                | "api.core.v1.ConfigMapKeySelector"
                | "api.core.v1.ConfigMapProjection"
                | "api.core.v1.ConfigMapVolumeSource"
                | "api.core.v1.SecretEnvSource"
                | "api.core.v1.SecretKeySelector"
                | "api.core.v1.SecretProjection",
            "localObjectReference"
        ) | ("api.core.v1.Volume", "volumeSource")
            | ("api.core.v1.PersistentVolumeSpec", "persistentVolumeSource")
            | ("api.core.v1.EphemeralContainer", "ephemeralContainerCommon")
            | ("api.core.v1.Probe", "handler")
            | ("api.networking.v1.IngressRule", "ingressRuleValue")
            | (
                "api.admissionregistration.v1.NamedRuleWithOperations",
                "ruleWithOperations"
            )
            | ("api.admissionregistration.v1.RuleWithOperations", "rule")
    )
}

fn value(v: &PValue) -> Value {
    match v {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(n) | PValue::EnumNumber(n) => Value::from(*n),
        PValue::I64(n) => Value::from(*n),
        PValue::U32(n) => Value::from(*n),
        PValue::U64(n) => Value::from(*n),
        PValue::F32(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        PValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        PValue::String(s) => Value::String(s.clone()),
        // `[]byte` fields are base64 in JSON (Secret data, caBundle, ...).
        PValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::Message(m) => message(m),
        PValue::List(items) => Value::Array(items.iter().map(value).collect()),
        PValue::Map(entries) => {
            let mut out = Map::new();
            for (k, v) in entries {
                let key = match k {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                out.insert(key, value(v));
            }
            Value::Object(out)
        }
    }
}

fn field(msg: &DynamicMessage, name: &str) -> Option<PValue> {
    msg.get_field_by_name(name).map(|v| v.into_owned())
}

fn int(msg: &DynamicMessage, name: &str) -> i64 {
    match field(msg, name) {
        Some(PValue::I64(n)) => n,
        Some(PValue::I32(n)) => i64::from(n),
        _ => 0,
    }
}

fn text(msg: &DynamicMessage, name: &str) -> String {
    match field(msg, name) {
        Some(PValue::String(s)) => s,
        _ => String::new(),
    }
}

fn bytes(msg: &DynamicMessage, name: &str) -> Vec<u8> {
    match field(msg, name) {
        Some(PValue::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    }
}

/// Whichever of two alternatives is set (the `...Or...` types of CRD schemas).
fn either(msg: &DynamicMessage, first: &str, second: &str) -> Value {
    let set = |name: &str| {
        msg.descriptor()
            .get_field_by_name(name)
            .filter(|f| msg.has_field(f))
            .map(|f| value(&msg.get_field(&f)))
    };
    set(first).or_else(|| set(second)).unwrap_or(Value::Null)
}

fn embedded_json(raw: Vec<u8>) -> Value {
    serde_json::from_slice(&raw).unwrap_or(Value::Null)
}

/// A nested object: JSON as it came, or a protobuf-enveloped object of a known kind.
fn raw_extension(raw: Vec<u8>) -> Value {
    if raw.starts_with(crate::MAGIC) {
        crate::decode(&raw).unwrap_or(Value::Null)
    } else {
        embedded_json(raw)
    }
}

/// JSON names of `JSONSchemaProps` fields whose JSON spelling is not a protobuf identifier.
fn schema_key(name: &str) -> String {
    match name {
        "ref" => "$ref".into(),
        "schema" => "$schema".into(),
        n if n.starts_with("xKubernetes") => {
            let mut out = String::from("x-kubernetes");
            for c in n["xKubernetes".len()..].chars() {
                if c.is_ascii_uppercase() {
                    out.push('-');
                    out.push(c.to_ascii_lowercase());
                } else {
                    out.push(c);
                }
            }
            out
        }
        n => n.to_owned(),
    }
}

/// `metav1.Time` (whole seconds) or `metav1.MicroTime` (microseconds); the zero time is null,
/// as upstream's JSON encoder writes it.
fn time(msg: &DynamicMessage, micro: bool) -> Value {
    let (secs, nanos) = (int(msg, "seconds"), int(msg, "nanos"));
    if secs == 0 && nanos == 0 {
        return Value::Null;
    }
    Value::String(rfc3339(secs, micro.then_some(nanos / 1000)))
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub(crate) fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let frac = |value: u64, unit: u64, suffix: &str| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            format!("{whole}{suffix}")
        } else {
            let digits = unit.to_string().len() - 1;
            let f = format!("{rest:0digits$}");
            format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}", frac(n, 1_000, "µs"));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}", frac(n, 1_000_000, "ms"));
    }
    let secs_total = n / 1_000_000_000;
    let (h, m) = (secs_total / 3600, secs_total % 3600 / 60);
    let s = frac(n % 60_000_000_000, 1_000_000_000, "s");
    if h > 0 {
        format!("{sign}{h}h{m}m{s}")
    } else if m > 0 {
        format!("{sign}{m}m{s}")
    } else {
        format!("{sign}{s}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_like_go() {
        let cases = [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_661_500_000_000, "1h1m1.5s"),
            (-2_000_000_000, "-2s"),
        ];
        for (n, want) in cases {
            assert_eq!(go_duration(n), want, "{n}");
        }
    }

    #[test]
    fn schema_keys() {
        for (proto, json) in [
            ("ref", "$ref"),
            ("schema", "$schema"),
            (
                "xKubernetesPreserveUnknownFields",
                "x-kubernetes-preserve-unknown-fields",
            ),
            ("xKubernetesListMapKeys", "x-kubernetes-list-map-keys"),
            ("properties", "properties"),
        ] {
            assert_eq!(schema_key(proto), json);
        }
    }
}
