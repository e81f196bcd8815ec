//! Encryption at rest: upstream's `EncryptionConfiguration` (`--encryption-provider-config`)
//! applied where the API server meets the store, so everything above sees plaintext.
//!
//! `config.rs` parses the file into a [`Transformer`] (pure), `cipher.rs` holds the providers'
//! byte formats (`k8s:enc:<provider>:v1:<key name>:` + nonce + ciphertext, as upstream writes
//! them, pure), and `store.rs` wraps a [`rudder_store::Store`] so writes of the configured
//! resources are encrypted with the first provider and reads try every configured key (ADR 0018).

mod cipher;
mod config;
mod store;

pub use config::Transformer;
pub use store::EncryptedStore;

/// Why an encryption configuration cannot be used, or a stored value cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// The file is not a valid `EncryptionConfiguration`.
    #[error("invalid encryption configuration: {0}")]
    Config(String),
    /// A stored value is encrypted with a key the configuration does not name.
    #[error(
        "unable to transform key {key:?}: it was written with {provider} key {name:?}, which the encryption configuration does not name"
    )]
    UnknownKey {
        /// The store key of the value.
        key: String,
        /// The provider of the value's prefix (`aesgcm`, ...).
        provider: String,
        /// The key name of the value's prefix.
        name: String,
    },
    /// Every configured key of the value's provider and name failed to decrypt it.
    #[error(
        "unable to transform key {key:?}: decrypting with {provider} key {name:?} failed (is it the secret that wrote the value?)"
    )]
    Decrypt {
        /// The store key of the value.
        key: String,
        /// The provider of the value's prefix.
        provider: String,
        /// The key name of the value's prefix.
        name: String,
    },
    /// Encrypting failed (not expected with a valid key; kept as a value rather than a panic).
    #[error("unable to transform key {key:?}: encrypting failed")]
    Encrypt {
        /// The store key of the value.
        key: String,
    },
}

/// Whether an unchanged update of `key` (read at `rev`) must still be written because the
/// stored value is not in the form a write now produces; always false without encryption.
pub async fn stale(store: Option<&EncryptedStore>, key: &str, rev: rudder_store::Revision) -> bool {
    match store {
        Some(s) => s.is_stale(key, rev).await,
        None => false,
    }
}

/// What upstream prefixes every encrypted value with.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";

/// The error text for stored bytes that are still encrypted when they reach a decoder, i.e.
/// that no configured key could decrypt (or the server runs without a configuration). `None`
/// for anything else. Decoders call it so such a value is a clear error naming the key instead
/// of "not JSON".
pub fn undecryptable(key: &str, stored: &[u8]) -> Option<String> {
    let rest = stored.strip_prefix(ENCRYPTED_PREFIX)?;
    let (provider, name) = cipher::parse_prefix(rest)
        .map(|(p, n, _)| (p.to_owned(), n.to_owned()))
        .unwrap_or_else(|| ("an unknown provider".to_owned(), String::new()));
    Some(format!(
        "unable to transform key {key:?}: the value is encrypted with {provider} key {name:?}, which no provider of the encryption configuration (--encryption-provider-config) can decrypt"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecryptable_names_key_and_provider() {
        let msg = undecryptable("/registry/core/secrets/a/b", b"k8s:enc:aesgcm:v1:old:xxxx")
            .expect("encrypted");
        assert!(msg.contains("/registry/core/secrets/a/b"), "{msg}");
        assert!(msg.contains("aesgcm key \"old\""), "{msg}");
        assert_eq!(undecryptable("/k", b"{\"kind\":\"Secret\"}"), None);
        assert!(undecryptable("/k", b"k8s:enc:garbage").is_some());
    }
}
