//! Table tests of the encryption configuration: parsing, which provider writes, rotation
//! (reading with an old key), unknown keys and plaintext fallback.

use super::*;

const K1: &str = "MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE="; // 32 × '1'
const K2: &str = "MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI="; // 32 × '2'
const SECRET: &str = "/registry/core/secrets/default/db";
const CONFIGMAP: &str = "/registry/core/configmaps/default/db";

fn config(resources: &str, providers: &str) -> String {
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: {resources}\n  providers: {providers}\n"
    )
}

fn gcm(keys: &[(&str, &str)]) -> String {
    let keys: Vec<String> = keys
        .iter()
        .map(|(n, s)| format!("{{name: {n}, secret: \"{s}\"}}"))
        .collect();
    format!("{{aesgcm: {{keys: [{}]}}}}", keys.join(", "))
}

fn transformer(resources: &str, providers: &[String]) -> Transformer {
    Transformer::parse(&config(resources, &format!("[{}]", providers.join(", "))))
        .unwrap_or_else(|e| panic!("{resources} {providers:?}: {e}"))
}

#[test]
fn round_trip_and_scope() {
    let t = transformer("[secrets]", &[gcm(&[("k1", K1)]), "{identity: {}}".into()]);
    let plain = br#"{"kind":"Secret","data":{"p":"aHVudGVyMg=="}}"#;
    let sealed = t.encrypt(SECRET, plain).expect("ok").expect("encrypted");
    assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
    assert!(!sealed.windows(8).any(|w| w == b"aHVudGVy"));
    assert_eq!(
        t.decrypt(SECRET, &sealed).expect("ok").as_deref(),
        Some(&plain[..])
    );
    // Not listed: stored as is.
    assert_eq!(t.encrypt(CONFIGMAP, b"{}").expect("ok"), None);
    assert_eq!(t.writer_for("", "secrets").as_deref(), Some("aesgcm:k1"));
    assert_eq!(t.writer_for("", "configmaps"), None);
}

#[test]
fn identity_first_writes_plaintext_and_still_reads_encrypted() {
    let on = transformer("[secrets]", &[gcm(&[("k1", K1)])]);
    let sealed = on.encrypt(SECRET, b"{}").expect("ok").expect("encrypted");
    let off = transformer("[secrets]", &["{identity: {}}".into(), gcm(&[("k1", K1)])]);
    assert_eq!(off.encrypt(SECRET, b"{}").expect("ok"), None);
    assert_eq!(
        off.decrypt(SECRET, &sealed).expect("ok").as_deref(),
        Some(&b"{}"[..])
    );
}

#[test]
fn plaintext_is_read_with_or_without_identity() {
    let t = transformer("[secrets]", &[gcm(&[("k1", K1)])]);
    assert_eq!(t.decrypt(SECRET, b"{\"a\":1}").expect("ok"), None);
}

#[test]
fn rotation_reads_with_the_old_key_and_writes_with_the_new() {
    let old = transformer("[secrets]", &[gcm(&[("old", K1)])]);
    let sealed_old = old
        .encrypt(SECRET, b"{\"v\":1}")
        .expect("ok")
        .expect("encrypted");
    // Step 1: new key first, old key still listed.
    let both = transformer("[secrets]", &[gcm(&[("new", K2), ("old", K1)])]);
    assert_eq!(
        both.decrypt(SECRET, &sealed_old).expect("ok").as_deref(),
        Some(&b"{\"v\":1}"[..])
    );
    let sealed_new = both
        .encrypt(SECRET, b"{\"v\":1}")
        .expect("ok")
        .expect("encrypted");
    assert!(sealed_new.starts_with(b"k8s:enc:aesgcm:v1:new:"));
    // Step 2: the old key dropped; rewritten values still read, old ones fail clearly.
    let new = transformer("[secrets]", &[gcm(&[("new", K2)])]);
    assert!(new.decrypt(SECRET, &sealed_new).expect("ok").is_some());
    let err = new.decrypt(SECRET, &sealed_old).expect_err("old key gone");
    assert!(matches!(err, EncryptionError::UnknownKey { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains(SECRET) && msg.contains("\"old\""), "{msg}");
}

#[test]
fn same_name_other_secret_is_a_decrypt_error() {
    let a = transformer("[secrets]", &[gcm(&[("k", K1)])]);
    let b = transformer("[secrets]", &[gcm(&[("k", K2)])]);
    let sealed = a.encrypt(SECRET, b"{}").expect("ok").expect("encrypted");
    let err = b.decrypt(SECRET, &sealed).expect_err("wrong secret");
    assert!(matches!(err, EncryptionError::Decrypt { .. }), "{err}");
}

#[test]
fn wildcards_table() {
    let cases = [
        ("['*.*']", "apps", "deployments", true),
        ("['*.apps']", "apps", "deployments", true),
        ("['*.apps']", "", "secrets", false),
        ("['*.']", "", "configmaps", true),
        ("['*.']", "apps", "deployments", false),
        ("[deployments.apps]", "apps", "deployments", true),
        ("[widgets.example.com]", "example.com", "widgets", true),
        ("[secrets]", "example.com", "secrets", false),
    ];
    for (resources, group, resource, want) in cases {
        let t = transformer(resources, &[gcm(&[("k", K1)])]);
        assert_eq!(
            t.writer_for(group, resource).is_some(),
            want,
            "{resources} {group}/{resource}"
        );
    }
}

#[test]
fn first_matching_entry_wins() {
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers: [{}]\n- resources: ['*.*']\n  providers: [{{identity: {{}}}}]\n",
        gcm(&[("k", K1)])
    );
    let t = Transformer::parse(&text).expect("valid");
    assert_eq!(t.writer_for("", "secrets").as_deref(), Some("aesgcm:k"));
    assert_eq!(t.writer_for("", "pods").as_deref(), Some("identity"));
}

#[test]
fn invalid_configurations_table() {
    let valid_gcm = gcm(&[("k", K1)]);
    let cases: Vec<(String, &str)> = vec![
        ("kind: Other".into(), "EncryptionConfiguration"),
        (
            config("[]", &format!("[{valid_gcm}]")),
            "at least one resource",
        ),
        (config("[secrets]", "[]"), "at least one provider"),
        (config("['*']", &format!("[{valid_gcm}]")), "\"*.*\""),
        (
            config("[secrets]", "[{aesgcm: {keys: []}}]"),
            "at least one key",
        ),
        (
            config(
                "[secrets]",
                "[{aesgcm: {keys: [{name: k, secret: c2hvcnQ=}]}}]",
            ),
            "takes",
        ),
        (
            config("[secrets]", "[{aesgcm: {keys: [{name: k, secret: '!!'}]}}]"),
            "base64",
        ),
        (
            config(
                "[secrets]",
                &format!("[{{aesgcm: {{keys: [{{name: 'a:b', secret: {K1}}}]}}}}]"),
            ),
            "':'",
        ),
        (config("[secrets]", &gcm_twice()), "twice"),
        (config("[secrets]", "[{kms: {name: x}}]"), "kms"),
        (config("[secrets]", "[{rot13: {}}]"), "unknown provider"),
        (
            config("[secrets]", "[{identity: {}, aesgcm: {}}]"),
            "exactly one",
        ),
        (
            config("['*.*', secrets]", &format!("[{valid_gcm}]")),
            "already covered",
        ),
        (
            config("[secrets, secrets]", &format!("[{valid_gcm}]")),
            "already covered",
        ),
    ];
    for (text, want) in cases {
        let err = Transformer::parse(&text).expect_err(&text).to_string();
        assert!(err.contains(want), "{text}\n→ {err}\n(wanted {want:?})");
    }
}

fn gcm_twice() -> String {
    format!("[{}]", gcm(&[("k", K1), ("k", K2)]))
}

#[test]
fn staleness_table() {
    let old = transformer("[secrets]", &[gcm(&[("old", K1)])]);
    let both = transformer("[secrets]", &[gcm(&[("new", K2), ("old", K1)])]);
    let off = transformer("[secrets]", &["{identity: {}}".into(), gcm(&[("new", K2)])]);
    let by_old = old.encrypt(SECRET, b"{}").expect("ok").expect("sealed");
    let by_new = both.encrypt(SECRET, b"{}").expect("ok").expect("sealed");
    let cases = [
        (
            &both,
            &by_old[..],
            true,
            "written with a key that no longer writes",
        ),
        (&both, &by_new[..], false, "written with the writing key"),
        (&both, &b"{}"[..], true, "plaintext where encryption is on"),
        (
            &off,
            &by_new[..],
            true,
            "encrypted where identity now writes",
        ),
        (&off, &b"{}"[..], false, "plaintext where identity writes"),
    ];
    for (t, stored, want, what) in cases {
        assert_eq!(t.is_stale(SECRET, stored), want, "{what}");
    }
    assert!(
        !both.is_stale(CONFIGMAP, b"{}"),
        "not configured, plaintext"
    );
}
