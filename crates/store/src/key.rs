//! Key and value validation shared by all backends, and prefix arithmetic.

use crate::StoreError;

/// Longest key accepted, in bytes. Kubernetes keys are `/registry/<group>/<resource>/<ns>/<name>`,
/// well under this even with 253-character names.
pub const MAX_KEY_LEN: usize = 2048;

/// Largest value accepted, in bytes. The API server limits request bodies to 3 MiB, and an object
/// can grow a little when the server adds metadata, so the store allows somewhat more.
pub const MAX_VALUE_LEN: usize = 4 * 1024 * 1024 - 64 * 1024;

/// Checks that `key` is usable: non-empty, at most [`MAX_KEY_LEN`] bytes, starts with `/`, and
/// contains no NUL byte (NUL is reserved so that range ends can be computed unambiguously).
pub fn validate_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidKey("key is empty".into()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(StoreError::InvalidKey(format!(
            "key is {} bytes, longer than {MAX_KEY_LEN}",
            key.len()
        )));
    }
    if !key.starts_with('/') {
        return Err(StoreError::InvalidKey(format!(
            "key {key:?} does not start with '/'"
        )));
    }
    if key.contains('\0') {
        return Err(StoreError::InvalidKey("key contains a NUL byte".into()));
    }
    Ok(())
}

/// Checks a value's size against [`MAX_VALUE_LEN`].
pub fn validate_value(value: &[u8]) -> Result<(), StoreError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(StoreError::ValueTooLarge {
            len: value.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// The smallest byte string greater than every string starting with `prefix` (etcd's
/// "range end" for a prefix). `None` means the range is unbounded above.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_table() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"/a", Some(b"/b")),
            (b"/registry/pods/", Some(b"/registry/pods0")),
            (b"a\xff", Some(b"b")),
            (b"\xff\xff", None),
            (b"", None),
        ];
        for (prefix, want) in cases {
            assert_eq!(prefix_end(prefix).as_deref(), *want, "prefix {prefix:?}");
        }
    }

    #[test]
    fn key_validation_table() {
        let long = format!("/{}", "k".repeat(MAX_KEY_LEN));
        let cases: &[(&str, bool)] = &[
            ("/registry/pods/default/a", true),
            ("/", true),
            ("", false),
            ("no-slash", false),
            ("/nul\0byte", false),
            (&long, false),
        ];
        for (key, ok) in cases {
            assert_eq!(validate_key(key).is_ok(), *ok, "key {key:?}");
        }
    }

    #[test]
    fn value_limit() {
        assert!(validate_value(&vec![0; MAX_VALUE_LEN]).is_ok());
        assert!(matches!(
            validate_value(&vec![0; MAX_VALUE_LEN + 1]),
            Err(StoreError::ValueTooLarge { .. })
        ));
    }
}
