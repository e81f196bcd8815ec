//! Validation of objects before they are stored: names, labels, the typed shape of built-in
//! kinds, a custom resource's OpenAPI schema, and unknown fields per `fieldValidation`.

use rudder_machinery::name_validation as names;
use serde_json::Value;

use crate::params::FieldValidation;
use crate::resources::Resource;
use crate::status::{ApiError, Cause};

fn invalid(field: &str, value: &str, problems: &[String]) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!(
            "Invalid value: {}: {}",
            serde_json::to_string(value).unwrap_or_default(),
            problems.join("; ")
        ),
        field: field.into(),
    }
}

/// Upstream's name rule for the kind.
fn name_problems(resource: &Resource, name: &str) -> Vec<String> {
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Namespace") => names::name_is_dns_label(name, false),
        ("", "Service") => names::name_is_dns1035_label(name, false),
        ("rbac.authorization.k8s.io", _) => names::validate_path_segment_name(name, false),
        _ if resource.custom => names::validate_path_segment_name(name, false),
        _ => names::name_is_dns_subdomain(name, false),
    }
}

/// Checks the object; returns warnings (unknown fields under `Warn`) or the 4xx to answer.
pub fn check(
    resource: &Resource,
    obj: &mut Value,
    validation: FieldValidation,
    name: &str,
) -> Result<Vec<String>, ApiError> {
    let mut causes = Vec::new();
    let problems = name_problems(resource, name);
    if !problems.is_empty() {
        causes.push(invalid("metadata.name", name, &problems));
    }
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let p = names::is_label_key(k);
            if !p.is_empty() {
                causes.push(invalid("metadata.labels", k, &p));
            }
            match v.as_str() {
                Some(s) => {
                    let p = names::is_label_value(s);
                    if !p.is_empty() {
                        causes.push(invalid(&format!("metadata.labels.{k}"), s, &p));
                    }
                }
                None => causes.push(invalid(
                    &format!("metadata.labels.{k}"),
                    &v.to_string(),
                    &["must be a string".into()],
                )),
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for k in annotations.keys() {
            let p = names::is_label_key(k);
            if !p.is_empty() {
                causes.push(invalid("metadata.annotations", k, &p));
            }
        }
    }
    if (resource.group.as_str(), resource.kind.as_str()) == ("networking.k8s.io", "NetworkPolicy") {
        causes.extend(crate::network_policy::problems(obj));
    }
    let unknown = if resource.custom {
        match &resource.schema {
            Some(schema) => {
                causes.extend(crate::schema_check::violations(schema, obj));
                crate::schema_check::unknown_fields(schema, obj)
            }
            None => Vec::new(),
        }
    } else {
        match rudder_api::by_plural(&resource.group, &resource.version, &resource.plural) {
            Some(info) => {
                if let Err(rudder_api::ApiError::Decode { path, message }) =
                    rudder_api::decode_check(info, obj)
                {
                    // Upstream rejects bodies that do not decode with 400, before validation.
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version \"{v}\" cannot be handled as a {kind}: {message} (at {path})",
                        kind = resource.kind,
                        v = resource.version
                    )));
                }
                rudder_api::unknown_fields_of(info, obj).unwrap_or_default()
            }
            None => Vec::new(),
        }
    };
    if !causes.is_empty() {
        return Err(ApiError::invalid(
            &resource.group,
            &resource.kind,
            name,
            causes,
        ));
    }
    // What the schema does not declare is dropped, as upstream's decoding (built-in kinds) and
    // pruning (custom resources) do; Strict refuses it instead, below.
    if validation != FieldValidation::Strict {
        crate::schema_check::prune(obj, &unknown);
    }
    let messages: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{}\"", f.trim_start_matches('.')))
        .collect();
    match validation {
        FieldValidation::Strict if !messages.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            messages.join(", ")
        ))),
        FieldValidation::Warn => Ok(messages),
        _ => Ok(Vec::new()),
    }
}
