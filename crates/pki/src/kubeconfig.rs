//! The kubeconfig file kubectl and client libraries read to reach the cluster.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::{Pki, PkiError, files};

/// Renders a kubeconfig with one cluster, one user (client certificate) and one context, current.
pub fn render(
    server_url: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    user: &str,
    context: &str,
) -> String {
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server_url, "certificate-authority-data": STANDARD.encode(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": STANDARD.encode(cert_pem), "client-key-data": STANDARD.encode(key_pem)}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
        "current-context": context,
        "preferences": {},
    });
    // JSON is valid YAML, and every client parses kubeconfig as YAML.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

/// Writes the admin kubeconfig atomically with mode 0600.
pub fn write(
    path: &Path,
    server_url: &str,
    pki: &Pki,
    user: &str,
    context: &str,
) -> Result<(), PkiError> {
    let (cert, key) = pki.admin_pem();
    let text = render(server_url, pki.ca_cert_pem(), cert, key, user, context);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            what: "creating",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    files::write_secret(path, &text)
}
