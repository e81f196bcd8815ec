//! Request bodies: JSON, YAML or Kubernetes protobuf into a JSON value, with upstream's errors for bad input.

use serde_json::Value;

use crate::http::ApiRequest;
use crate::status::ApiError;

/// Decodes the body as JSON, or YAML or protobuf when the content type says so.
pub(crate) fn decode_body(req: &ApiRequest) -> Result<Value, ApiError> {
    let ct = crate::server::header(req, "content-type").to_ascii_lowercase();
    let media = ct.split(';').next().unwrap_or("").trim().to_owned();
    if req.body.is_empty() {
        return Err(ApiError::bad_request("request body is empty"));
    }
    let value: Value = match media.as_str() {
        "application/yaml" | "application/apply-patch+yaml" | "text/yaml" => {
            serde_yaml_ng::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?
        }
        ""
        | "application/json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json"
        | "*/*" => serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?,
        rudder_protobuf::MEDIA_TYPE => match rudder_protobuf::decode(&req.body) {
            Ok(v) => v,
            // Custom resources have no protobuf form, upstream included.
            Err(rudder_protobuf::ProtobufError::UnknownKind { .. }) => {
                return Err(ApiError::unsupported_media_type(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
                ));
            }
            Err(e) => return Err(ApiError::bad_request(e.to_string())),
        },
        other => {
            return Err(ApiError::unsupported_media_type(format!(
                "the body of the request was in an unknown format ({other}) - accepted media types include: application/json, application/yaml"
            )));
        }
    };
    Ok(value)
}
