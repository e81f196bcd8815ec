//! Decodes Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`) into the JSON form
//! the rest of the API server works on.
//!
//! kubectl 1.32 and later send objects its generators build (`kubectl create configmap`,
//! `create deployment`, `run`, evictions, access reviews...) as protobuf. The wire schema comes
//! from the descriptors of the upstream `generated.proto` files (`schema/k8s-v1.34.fds`, made by
//! `scripts/gen-protobuf-schema`); a decoded message is walked and each field rendered as
//! upstream's JSON encoding of the same Go type would.

mod envelope;
mod to_json;

pub use envelope::{MAGIC, TypeMeta};

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use serde_json::Value;
use std::sync::OnceLock;

/// The media type of Kubernetes protobuf bodies.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// Why a protobuf body could not be turned into an object.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtobufError {
    /// The body does not start with the `k8s\0` magic number.
    #[error(
        "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
    )]
    MissingMagic,
    /// The `runtime.Unknown` envelope did not decode.
    #[error("invalid protobuf envelope: {0}")]
    Envelope(String),
    /// The envelope declares an encoding other than none (upstream never sends one).
    #[error("unsupported protobuf content encoding {0:?}")]
    ContentEncoding(String),
    /// No protobuf schema is known for the declared kind (custom resources have none).
    #[error("no kind \"{kind}\" is registered for version \"{api_version}\" in protobuf")]
    UnknownKind {
        /// `apiVersion` of the envelope.
        api_version: String,
        /// `kind` of the envelope.
        kind: String,
    },
    /// The object bytes do not match the kind's schema.
    #[error("unable to decode {kind} from protobuf: {message}")]
    Decode {
        /// The declared kind.
        kind: String,
        /// What the decoder reported.
        message: String,
    },
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The set is compiled into the binary, so failing to read it is a build defect, not an
        // input problem; the crate's tests decode it.
        DescriptorPool::decode(&include_bytes!("../schema/k8s-v1.34.fds")[..])
            .expect("embedded descriptor set is valid")
    })
}

/// The protobuf message of a kind, by its `apiVersion` and `kind`.
pub fn message_for(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let package = match group {
        "" => format!("api.core.{version}"),
        "apiextensions.k8s.io" => {
            format!("apiextensions_apiserver.pkg.apis.apiextensions.{version}")
        }
        "meta.k8s.io" => format!("apimachinery.pkg.apis.meta.{version}"),
        g => format!("api.{}.{version}", g.split('.').next().unwrap_or(g)),
    };
    pool().get_message_by_name(&format!("{package}.{kind}"))
}

/// Decodes an enveloped protobuf body into a JSON object with `apiVersion` and `kind` set.
pub fn decode(body: &[u8]) -> Result<Value, ProtobufError> {
    let (meta, raw) = envelope::open(body, pool())?;
    let desc =
        message_for(&meta.api_version, &meta.kind).ok_or_else(|| ProtobufError::UnknownKind {
            api_version: meta.api_version.clone(),
            kind: meta.kind.clone(),
        })?;
    let msg = DynamicMessage::decode(desc, raw.as_slice()).map_err(|e| ProtobufError::Decode {
        kind: meta.kind.clone(),
        message: e.to_string(),
    })?;
    let mut obj = to_json::message(&msg);
    if let Value::Object(map) = &mut obj {
        // Upstream's decoder fills TypeMeta from the envelope; the message itself has none.
        map.insert("apiVersion".into(), Value::String(meta.api_version));
        map.insert("kind".into(), Value::String(meta.kind));
    }
    Ok(obj)
}
