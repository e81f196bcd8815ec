//! `pod-template-hash` and similar names: upstream's recipe (a 32-bit FNV-1a hash of the pod
//! template and the collision count, printed in decimal and mapped onto the alphabet of
//! `generateName` suffixes). Upstream hashes Go's printed struct; we hash the template's JSON, so
//! values differ from upstream's but are stable, which is all clients rely on.

use k8s_openapi::api::core::v1::PodTemplateSpec;

/// The alphabet upstream uses for safe names: no vowels (no words), no look-alike characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits.
fn fnv1a(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Maps each character of `s` onto the safe alphabet.
fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The `pod-template-hash` of `template` after `collision_count` collisions.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    // serde_json writes struct fields in declaration order and maps in key order: stable.
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv1a(&json, 0x811c_9dc5);
    if let Some(c) = collision_count {
        h = fnv1a(&c.to_le_bytes(), h);
    }
    safe_encode(&h.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_changes_with_template_and_collisions() {
        let mut t = PodTemplateSpec::default();
        let a = template_hash(&t, None);
        assert_eq!(a, template_hash(&t, None));
        assert!(a.bytes().all(|b| ALPHANUMS.contains(&b)));
        assert_ne!(a, template_hash(&t, Some(1)));
        t.metadata = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("x".into()),
            ..Default::default()
        });
        assert_ne!(a, template_hash(&t, None));
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a(b"", 0x811c_9dc5), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a", 0x811c_9dc5), 0xe40c_292c);
    }
}
