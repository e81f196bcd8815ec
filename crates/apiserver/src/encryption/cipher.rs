//! The encrypting providers and their stored formats, byte for byte upstream's:
//! `k8s:enc:aesgcm:v1:<name>:` + 12-byte nonce + ciphertext and tag (the store key as
//! authenticated data, so a value cannot be moved to another key),
//! `k8s:enc:aescbc:v1:<name>:` + 16-byte IV + PKCS#7-padded ciphertext, and
//! `k8s:enc:secretbox:v1:<name>:` + 24-byte nonce + Poly1305 tag + ciphertext (NaCl's order).

use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AesGcm, aead::consts::U12};
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use crypto_secretbox::{AeadInPlace, XSalsa20Poly1305};

/// A provider's kind, as named in the configuration and in the prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    AesGcm,
    AesCbc,
    Secretbox,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::AesGcm => "aesgcm",
            Kind::AesCbc => "aescbc",
            Kind::Secretbox => "secretbox",
        }
    }

    /// The key sizes upstream accepts for the provider.
    pub fn key_sizes(self) -> &'static [usize] {
        match self {
            Kind::AesGcm | Kind::AesCbc => &[16, 24, 32],
            Kind::Secretbox => &[32],
        }
    }
}

enum Gcm {
    A128(AesGcm<Aes128, U12>),
    A192(AesGcm<Aes192, U12>),
    A256(AesGcm<Aes256, U12>),
}

enum Algorithm {
    /// Boxed: the expanded AES key schedules are large.
    Gcm(Box<Gcm>),
    /// The raw key: CBC state is per message.
    Cbc(Vec<u8>),
    Secretbox(Box<XSalsa20Poly1305>),
}

/// One named key of one provider.
pub struct Cipher {
    kind: Kind,
    name: String,
    /// `k8s:enc:<kind>:v1:<name>:`
    prefix: Vec<u8>,
    algorithm: Algorithm,
}

impl std::fmt::Debug for Cipher {
    // Never print key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher({} {:?})", self.kind.as_str(), self.name)
    }
}

impl Cipher {
    /// A cipher from a decoded key; `None` when its length does not suit the provider.
    pub fn new(kind: Kind, name: &str, key: &[u8]) -> Option<Self> {
        if !kind.key_sizes().contains(&key.len()) {
            return None;
        }
        let algorithm = match (kind, key.len()) {
            (Kind::AesGcm, 16) => {
                Algorithm::Gcm(Box::new(Gcm::A128(AesGcm::new_from_slice(key).ok()?)))
            }
            (Kind::AesGcm, 24) => {
                Algorithm::Gcm(Box::new(Gcm::A192(AesGcm::new_from_slice(key).ok()?)))
            }
            (Kind::AesGcm, _) => {
                Algorithm::Gcm(Box::new(Gcm::A256(AesGcm::new_from_slice(key).ok()?)))
            }
            (Kind::AesCbc, _) => Algorithm::Cbc(key.to_vec()),
            (Kind::Secretbox, _) => {
                Algorithm::Secretbox(Box::new(XSalsa20Poly1305::new_from_slice(key).ok()?))
            }
        };
        Some(Self {
            kind,
            name: name.to_owned(),
            prefix: format!("k8s:enc:{}:v1:{name}:", kind.as_str()).into_bytes(),
            algorithm,
        })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// Prefix, fresh random nonce, ciphertext. `None` only if the cipher library refuses,
    /// which a valid key does not.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
        let mut out = self.prefix.clone();
        match &self.algorithm {
            Algorithm::Gcm(gcm) => {
                // Random 96-bit nonces, as upstream: safe for far more writes than one key
                // sees before rotation.
                let nonce: [u8; 12] = rand::random();
                let n = GenericArray::from_slice(&nonce);
                let payload = Payload { msg: plain, aad };
                let sealed = match gcm.as_ref() {
                    Gcm::A128(c) => c.encrypt(n, payload),
                    Gcm::A192(c) => c.encrypt(n, payload),
                    Gcm::A256(c) => c.encrypt(n, payload),
                }
                .ok()?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&sealed);
            }
            Algorithm::Cbc(key) => {
                let iv: [u8; 16] = rand::random();
                let sealed = match key.len() {
                    16 => cbc::Encryptor::<Aes128>::new_from_slices(key, &iv)
                        .ok()?
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                    24 => cbc::Encryptor::<Aes192>::new_from_slices(key, &iv)
                        .ok()?
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                    _ => cbc::Encryptor::<Aes256>::new_from_slices(key, &iv)
                        .ok()?
                        .encrypt_padded_vec_mut::<Pkcs7>(plain),
                };
                out.extend_from_slice(&iv);
                out.extend_from_slice(&sealed);
            }
            Algorithm::Secretbox(sb) => {
                let nonce: [u8; 24] = rand::random();
                let mut buf = plain.to_vec();
                let tag = sb
                    .encrypt_in_place_detached(GenericArray::from_slice(&nonce), b"", &mut buf)
                    .ok()?;
                out.extend_from_slice(&nonce);
                out.extend_from_slice(&tag);
                out.extend_from_slice(&buf);
            }
        }
        Some(out)
    }

    /// The plaintext of `body` (what follows this cipher's prefix), or `None` when this key did
    /// not write it (authentication failed or the layout is wrong).
    pub fn open(&self, aad: &[u8], body: &[u8]) -> Option<Vec<u8>> {
        match &self.algorithm {
            Algorithm::Gcm(gcm) => {
                if body.len() < 12 + 16 {
                    return None;
                }
                let (nonce, sealed) = body.split_at(12);
                let n = GenericArray::from_slice(nonce);
                let payload = Payload { msg: sealed, aad };
                match gcm.as_ref() {
                    Gcm::A128(c) => c.decrypt(n, payload),
                    Gcm::A192(c) => c.decrypt(n, payload),
                    Gcm::A256(c) => c.decrypt(n, payload),
                }
                .ok()
            }
            Algorithm::Cbc(key) => {
                if body.len() < 32 || !body.len().is_multiple_of(16) {
                    return None;
                }
                let (iv, sealed) = body.split_at(16);
                match key.len() {
                    16 => cbc::Decryptor::<Aes128>::new_from_slices(key, iv)
                        .ok()?
                        .decrypt_padded_vec_mut::<Pkcs7>(sealed)
                        .ok(),
                    24 => cbc::Decryptor::<Aes192>::new_from_slices(key, iv)
                        .ok()?
                        .decrypt_padded_vec_mut::<Pkcs7>(sealed)
                        .ok(),
                    _ => cbc::Decryptor::<Aes256>::new_from_slices(key, iv)
                        .ok()?
                        .decrypt_padded_vec_mut::<Pkcs7>(sealed)
                        .ok(),
                }
            }
            Algorithm::Secretbox(sb) => {
                if body.len() < 24 + 16 {
                    return None;
                }
                let (nonce, rest) = body.split_at(24);
                let (tag, sealed) = rest.split_at(16);
                let mut buf = sealed.to_vec();
                sb.decrypt_in_place_detached(
                    GenericArray::from_slice(nonce),
                    b"",
                    &mut buf,
                    GenericArray::from_slice(tag),
                )
                .ok()?;
                Some(buf)
            }
        }
    }
}

/// Splits what follows `k8s:enc:` into provider, key name and body: `aesgcm:v1:key1:BODY`.
pub fn parse_prefix(rest: &[u8]) -> Option<(&str, &str, &[u8])> {
    let mut parts = rest.splitn(4, |b| *b == b':');
    let provider = std::str::from_utf8(parts.next()?).ok()?;
    let version = parts.next()?;
    let name = std::str::from_utf8(parts.next()?).ok()?;
    let body = parts.next()?;
    (version == b"v1").then_some((provider, name, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_provider_and_size() {
        for (kind, size) in [
            (Kind::AesGcm, 16),
            (Kind::AesGcm, 24),
            (Kind::AesGcm, 32),
            (Kind::AesCbc, 16),
            (Kind::AesCbc, 24),
            (Kind::AesCbc, 32),
            (Kind::Secretbox, 32),
        ] {
            let key = vec![7u8; size];
            let c = Cipher::new(kind, "k1", &key).expect("valid key");
            let sealed = c.seal(b"/registry/x", b"hello world").expect("seal");
            let want = format!("k8s:enc:{}:v1:k1:", kind.as_str());
            assert!(sealed.starts_with(want.as_bytes()), "{kind:?}");
            assert!(!sealed.windows(5).any(|w| w == b"hello"), "{kind:?} leaks");
            let body = &sealed[want.len()..];
            assert_eq!(
                c.open(b"/registry/x", body).as_deref(),
                Some(&b"hello world"[..])
            );
            // Fresh randomness every time.
            assert_ne!(
                sealed,
                c.seal(b"/registry/x", b"hello world").expect("seal")
            );
            let other = Cipher::new(kind, "k1", &vec![8u8; size]).expect("valid key");
            // Only CBC cannot tell a wrong key for sure (a garbage padding may pass); AEADs must.
            if kind != Kind::AesCbc {
                assert_eq!(other.open(b"/registry/x", body), None, "{kind:?}");
            }
        }
    }

    #[test]
    fn gcm_binds_the_store_key() {
        let c = Cipher::new(Kind::AesGcm, "k", &[1u8; 32]).expect("key");
        let sealed = c.seal(b"/registry/core/secrets/a/b", b"x").expect("seal");
        let body = &sealed[c.prefix().len()..];
        assert!(c.open(b"/registry/core/secrets/a/b", body).is_some());
        assert_eq!(c.open(b"/registry/core/secrets/a/c", body), None);
    }

    #[test]
    fn bad_key_sizes_are_refused() {
        assert!(Cipher::new(Kind::AesGcm, "k", &[0u8; 20]).is_none());
        assert!(Cipher::new(Kind::Secretbox, "k", &[0u8; 16]).is_none());
    }

    #[test]
    fn prefix_parsing_table() {
        type Parsed<'a> = Option<(&'a str, &'a str, &'a [u8])>;
        let cases: [(&[u8], Parsed<'_>); 4] = [
            (b"aesgcm:v1:key1:BODY", Some(("aesgcm", "key1", b"BODY"))),
            (b"aesgcm:v1:key1::x", Some(("aesgcm", "key1", b":x"))),
            (b"aesgcm:v2:key1:BODY", None),
            (b"aesgcm", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_prefix(input), want);
        }
    }
}
