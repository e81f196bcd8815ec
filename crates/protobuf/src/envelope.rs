//! The `k8s\0` + `runtime.Unknown` envelope around every Kubernetes protobuf object.

use prost_reflect::{DescriptorPool, DynamicMessage, Value as PValue};

use crate::ProtobufError;

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// The `apiVersion` and `kind` an envelope declares.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeMeta {
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    /// The kind.
    pub kind: String,
}

/// Splits a body into its declared type and the bytes of the object message.
pub(crate) fn open(
    body: &[u8],
    pool: &DescriptorPool,
) -> Result<(TypeMeta, Vec<u8>), ProtobufError> {
    let rest = body
        .strip_prefix(&MAGIC[..])
        .ok_or(ProtobufError::MissingMagic)?;
    let unknown = pool
        .get_message_by_name("apimachinery.pkg.runtime.Unknown")
        .ok_or_else(|| ProtobufError::Envelope("runtime.Unknown is not in the schema".into()))?;
    let msg = DynamicMessage::decode(unknown, rest)
        .map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let text = |m: &DynamicMessage, name: &str| -> String {
        match m.get_field_by_name(name).as_deref() {
            Some(PValue::String(s)) => s.clone(),
            _ => String::new(),
        }
    };
    let encoding = text(&msg, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let meta = match msg.get_field_by_name("typeMeta").as_deref() {
        Some(PValue::Message(tm)) => TypeMeta {
            api_version: text(tm, "apiVersion"),
            kind: text(tm, "kind"),
        },
        _ => TypeMeta::default(),
    };
    let raw = match msg.get_field_by_name("raw").as_deref() {
        Some(PValue::Bytes(b)) => b.to_vec(),
        _ => Vec::new(),
    };
    Ok((meta, raw))
}
