//! Encryption at rest end to end, with the real binary and kubectl: a Secret written with
//! `--encryption-provider-config` is not in the store's files in plaintext while a ConfigMap is;
//! data stored before encryption was turned on is still read; key rotation (new key first,
//! rewrite every Secret, drop the old key) keeps every Secret readable; a key the server does
//! not have gives a 500 naming the object and loses nothing.

mod common;

use std::path::Path;

use common::Server;

const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const SECRET_VALUE: &str = "s3cr3t-at-rest-7f1c9e";
const PLAIN_VALUE: &str = "before-encryption-4b2d";
const CONFIG_VALUE: &str = "plain-config-value-93a0";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A random 32-byte key, base64 (what `head -c 32 /dev/urandom | base64` makes).
fn new_key() -> String {
    use base64::Engine;
    let key: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// An EncryptionConfiguration for Secrets: aesgcm with `keys` (the first writes), then
/// identity; identity alone (no encryption) without keys.
fn write_config(path: &Path, keys: &[(&str, &str)]) {
    let keys: Vec<String> = keys
        .iter()
        .map(|(name, secret)| format!(r#"{{"name":"{name}","secret":"{secret}"}}"#))
        .collect();
    let aesgcm = if keys.is_empty() {
        String::new()
    } else {
        format!("  - aesgcm: {{keys: [{}]}}\n", keys.join(", "))
    };
    let text = format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n{aesgcm}  - identity: {{}}\n"
    );
    std::fs::write(path, text).expect("write the encryption config");
}

fn secret(name: &str, value: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}"}},"data":{{"v":"{}"}}}}"#,
        b64(value)
    )
}

fn read_secret(server: &Server, name: &str) -> String {
    server.ok_kubectl(
        KUBECTL,
        &["get", "secret", name, "-o", "jsonpath={.data.v}"],
    )
}

/// Every file of the store (redb and its write-ahead log), read while the server is stopped:
/// a write may still be only in the log if the server exited before its last checkpoint.
fn store_bytes(server: &Server) -> Vec<u8> {
    let mut all = Vec::new();
    let dir = std::fs::read_dir(server.data_dir().join("store")).expect("list the store dir");
    for entry in dir {
        let path = entry.expect("store dir entry").path();
        if path.is_file() {
            all.extend(std::fs::read(&path).expect("read a store file"));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn secrets_are_encrypted_at_rest_and_keys_rotate() {
    let config_dir = tempfile::tempdir().expect("tempdir");
    let config = config_dir.path().join("encryption.yaml");
    let config_arg = config.to_str().expect("utf-8 path").to_owned();
    let (old_key, new_key, other_key) = (new_key(), new_key(), new_key());

    // Before encryption (identity only, what upstream calls decrypted): stored as it is. The
    // harness keeps the arguments for every restart; the file's content changes.
    write_config(&config, &[]);
    let mut server = Server::start_with(&[
        "--disable-agent",
        "--encryption-provider-config",
        &config_arg,
    ]);
    server.create(KUBECTL, Some("default"), &secret("plain", PLAIN_VALUE));
    server.stop();
    let before = store_bytes(&server);
    assert!(contains(&before, &b64(PLAIN_VALUE)), "unencrypted at first");

    // Encryption on.
    write_config(&config, &[("old", &old_key)]);
    server.restart();
    assert_eq!(
        read_secret(&server, "plain"),
        b64(PLAIN_VALUE),
        "identity-stored data is still read"
    );
    server.create(KUBECTL, Some("default"), &secret("enc", SECRET_VALUE));
    server.configmap(KUBECTL, "default", "cfg", "v", CONFIG_VALUE);
    assert_eq!(read_secret(&server, "enc"), b64(SECRET_VALUE));
    server.stop();
    let raw = store_bytes(&server);
    assert!(
        !contains(&raw, &b64(SECRET_VALUE)) && !contains(&raw, SECRET_VALUE),
        "the secret's value is in the store files in plaintext"
    );
    assert!(
        contains(&raw, CONFIG_VALUE),
        "a ConfigMap is stored as it is"
    );
    assert!(
        contains(&raw, "k8s:enc:aesgcm:v1:old:"),
        "upstream's prefix"
    );

    // Rotation, step 1: the new key first, the old one still there to read with.
    write_config(&config, &[("new", &new_key), ("old", &old_key)]);
    server.restart();
    assert_eq!(read_secret(&server, "enc"), b64(SECRET_VALUE));
    // Step 2: rewrite every Secret, which encrypts it with the new key.
    let all = server.ok_kubectl(KUBECTL, &["get", "secrets", "-A", "-o", "json"]);
    server.kubectl_in(KUBECTL, &["replace", "-f", "-"], &all);
    server.stop();
    let raw = store_bytes(&server);
    assert!(contains(&raw, "k8s:enc:aesgcm:v1:new:"));

    // Step 3: the old key dropped; everything still reads.
    write_config(&config, &[("new", &new_key)]);
    server.restart();
    assert_eq!(read_secret(&server, "enc"), b64(SECRET_VALUE));
    assert_eq!(read_secret(&server, "plain"), b64(PLAIN_VALUE));

    // A key the server does not have: a clear 500 naming the object, for a get and a list;
    // other resources are unaffected; and nothing is lost.
    write_config(&config, &[("other", &other_key)]);
    server.restart();
    let err = server.fail_kubectl(KUBECTL, &["get", "secret", "enc"], None);
    assert!(
        err.contains("Internal error occurred")
            && err.contains("/registry/core/secrets/default/enc")
            && err.contains("\"new\""),
        "{err}"
    );
    let err = server.fail_kubectl(KUBECTL, &["get", "secrets", "-n", "default"], None);
    assert!(err.contains("Internal error occurred"), "{err}");
    let err = server.fail_kubectl(KUBECTL, &["delete", "secret", "enc"], None);
    assert!(err.contains("Internal error occurred"), "{err}");
    let cfg = server.ok_kubectl(KUBECTL, &["get", "cm", "cfg", "-o", "jsonpath={.data.v}"]);
    assert_eq!(cfg, CONFIG_VALUE);
    write_config(&config, &[("new", &new_key)]);
    server.restart();
    assert_eq!(read_secret(&server, "enc"), b64(SECRET_VALUE), "not lost");
}
