//! The cluster's certificates: a CA made at first start, the API server's serving certificate,
//! client certificates (admin, nodes), rustls configurations, and the admin kubeconfig.
//!
//! Everything lives in one directory (`<data-dir>/pki`); files are written atomically, keys with
//! mode 0600, so a crash never leaves half a key behind and a restart reuses what exists.

mod files;
mod identity;
mod issue;
pub mod kubeconfig;
mod shared;
mod tls;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use identity::{ClientIdentity, client_identity, csr_identity};
pub use shared::{Seeded, seed_from};

/// Why a certificate operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// Reading or writing a file failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A stored key or certificate could not be parsed (the file is damaged or foreign).
    #[error("{path}: {message}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// Generating or signing a certificate failed.
    #[error("certificate generation: {0}")]
    Generate(#[from] rcgen::Error),
    /// Building a TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A certificate signing request was not acceptable.
    #[error("certificate signing request: {0}")]
    Csr(String),
}

/// What the serving certificate must cover.
#[derive(Clone, Debug)]
pub struct PkiOptions {
    /// Additional DNS names or IP addresses for the serving certificate.
    pub extra_sans: Vec<String>,
    /// The ClusterIP of the `kubernetes` Service.
    pub service_ip: IpAddr,
}

impl Default for PkiOptions {
    fn default() -> Self {
        Self {
            extra_sans: Vec::new(),
            service_ip: IpAddr::from([10, 43, 0, 1]),
        }
    }
}

/// The cluster's key material, loaded or created.
pub struct Pki {
    dir: PathBuf,
    ca_cert_pem: String,
    ca_key_pem: String,
    serving_cert_pem: String,
    serving_key_pem: String,
    admin_cert_pem: String,
    admin_key_pem: String,
    sa_key_pem: String,
    sa_pub_pem: String,
}

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const SERVING_CERT: &str = "serving.crt";
const SERVING_KEY: &str = "serving.key";
const SERVING_SANS: &str = "serving.sans";
const ADMIN_CERT: &str = "admin.crt";
const ADMIN_KEY: &str = "admin.key";
const SA_KEY: &str = "sa.key";
const SA_PUB: &str = "sa.pub";

/// Common name and group of the admin client certificate.
pub const ADMIN_USER: &str = "rudder-admin";
/// The group that bypasses authorization, as upstream's.
pub const ADMIN_GROUP: &str = "system:masters";

impl Pki {
    /// Loads the key material in `dir`, creating what is missing. The serving certificate is
    /// re-issued (same CA) when the names it must cover changed.
    pub fn load_or_create(dir: &Path, opts: &PkiOptions) -> Result<Self, PkiError> {
        files::ensure_dir(dir)?;
        let (ca_cert_pem, ca_key_pem) = match (
            files::read_opt(&dir.join(CA_CERT))?,
            files::read_opt(&dir.join(CA_KEY))?,
        ) {
            (Some(c), Some(k)) => {
                issue::check_key(&dir.join(CA_KEY), &k)?;
                (c, k)
            }
            _ => {
                tracing::info!(dir = %dir.display(), "creating the cluster CA");
                let (c, k) = issue::new_ca()?;
                files::write_secret(&dir.join(CA_KEY), &k)?;
                files::write_public(&dir.join(CA_CERT), &c)?;
                (c, k)
            }
        };
        let sans = issue::serving_sans(opts);
        let wanted = sans.join(",");
        let (serving_cert_pem, serving_key_pem) = match (
            files::read_opt(&dir.join(SERVING_CERT))?,
            files::read_opt(&dir.join(SERVING_KEY))?,
            files::read_opt(&dir.join(SERVING_SANS))?,
        ) {
            (Some(c), Some(k), Some(s)) if s.trim() == wanted => (c, k),
            _ => {
                let (c, k) = issue::serving(&ca_cert_pem, &ca_key_pem, &sans)?;
                files::write_secret(&dir.join(SERVING_KEY), &k)?;
                files::write_public(&dir.join(SERVING_CERT), &c)?;
                files::write_public(&dir.join(SERVING_SANS), &wanted)?;
                (c, k)
            }
        };
        let (admin_cert_pem, admin_key_pem) = match (
            files::read_opt(&dir.join(ADMIN_CERT))?,
            files::read_opt(&dir.join(ADMIN_KEY))?,
        ) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let (c, k) = issue::client(
                    &ca_cert_pem,
                    &ca_key_pem,
                    ADMIN_USER,
                    &[ADMIN_GROUP],
                    issue::CLIENT_DAYS,
                )?;
                files::write_secret(&dir.join(ADMIN_KEY), &k)?;
                files::write_public(&dir.join(ADMIN_CERT), &c)?;
                (c, k)
            }
        };
        let (sa_key_pem, sa_pub_pem) = match (
            files::read_opt(&dir.join(SA_KEY))?,
            files::read_opt(&dir.join(SA_PUB))?,
        ) {
            (Some(k), Some(p)) => {
                issue::check_key(&dir.join(SA_KEY), &k)?;
                (k, p)
            }
            _ => {
                let (private, public) = issue::signing_key()?;
                files::write_secret(&dir.join(SA_KEY), &private)?;
                files::write_public(&dir.join(SA_PUB), &public)?;
                (private, public)
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            ca_cert_pem,
            ca_key_pem,
            serving_cert_pem,
            serving_key_pem,
            admin_cert_pem,
            admin_key_pem,
            sa_key_pem,
            sa_pub_pem,
        })
    }

    /// The directory the material lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// The serving certificate (PEM).
    pub fn serving_cert_pem(&self) -> &str {
        &self.serving_cert_pem
    }

    /// The admin client certificate and key (PEM).
    pub fn admin_pem(&self) -> (&str, &str) {
        (&self.admin_cert_pem, &self.admin_key_pem)
    }

    /// The service-account token signing key (PEM, PKCS#8 P-256: ES256 tokens) and its public
    /// half (PEM), kept in `sa.key`/`sa.pub` across restarts.
    pub fn service_account_key_pem(&self) -> (&str, &str) {
        (&self.sa_key_pem, &self.sa_pub_pem)
    }

    /// Issues a client certificate for `cn` in `groups`, valid for `days`.
    pub fn issue_client_cert(
        &self,
        cn: &str,
        groups: &[&str],
        days: i64,
    ) -> Result<(String, String), PkiError> {
        issue::client(&self.ca_cert_pem, &self.ca_key_pem, cn, groups, days)
    }

    /// Signs a PEM certificate signing request as a client certificate valid for `days`.
    pub fn sign_csr(&self, csr_pem: &str, days: i64) -> Result<String, PkiError> {
        let usage = rcgen::ExtendedKeyUsagePurpose::ClientAuth;
        issue::sign_csr(&self.ca_cert_pem, &self.ca_key_pem, csr_pem, days, usage)
    }

    /// Signs a PEM certificate signing request as a serving certificate valid for `days`.
    pub fn sign_serving_csr(&self, csr_pem: &str, days: i64) -> Result<String, PkiError> {
        let usage = rcgen::ExtendedKeyUsagePurpose::ServerAuth;
        issue::sign_csr(&self.ca_cert_pem, &self.ca_key_pem, csr_pem, days, usage)
    }

    /// TLS for the API server: HTTP/2 and HTTP/1.1, client certificates verified against the
    /// CA when presented (requests without one are authenticated otherwise, or not at all).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        tls::server_config(
            &self.ca_cert_pem,
            &self.serving_cert_pem,
            &self.serving_key_pem,
        )
    }

    /// TLS for in-cluster clients: trusts the CA, presents the admin certificate.
    pub fn admin_client_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        tls::client_config(
            &self.ca_cert_pem,
            Some((&self.admin_cert_pem, &self.admin_key_pem)),
        )
    }
}

/// A new key and a PEM CSR for `CN=cn, O=groups` with alternative names `sans` (DNS names or
/// IP addresses): (CSR, key).
pub fn certificate_request(
    cn: &str,
    groups: &[&str],
    sans: &[String],
) -> Result<(String, String), PkiError> {
    issue::request(cn, groups, sans)
}

/// Client TLS that trusts only the certificates of `ca_pem` and presents none (the API server
/// calling an admission webhook with its `caBundle`).
pub fn client_config_trusting(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, PkiError> {
    tls::client_config(ca_pem, None)
}

/// The DER of the first certificate in a PEM text.
pub fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    Some(pem.contents)
}

/// A DER certificate as PEM.
pub fn certificate_pem(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// The pin of a CA certificate as joining nodes check it (kubeadm's `--discovery-token-ca-cert-hash`):
/// `sha256:` and the hex SHA-256 of its SubjectPublicKeyInfo.
pub fn ca_cert_hash(ca_pem: &str) -> Option<String> {
    ca_cert_hash_der(&certificate_der(ca_pem)?)
}

/// [`ca_cert_hash`] of a DER certificate.
pub fn ca_cert_hash_der(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let spki = cert.tbs_certificate.subject_pki.raw;
    let digest = ring::digest::digest(&ring::digest::SHA256, spki);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("sha256:{hex}"))
}

/// Server TLS for a node agent's endpoint with its own certificate: client certificates are
/// verified against the cluster CA `ca_pem`.
pub fn serving_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    tls::server_config(ca_pem, cert_pem, key_pem)
}

/// Writes `text` with mode 0600, atomically (keys, kubeconfigs).
pub fn write_secret_file(path: &Path, text: &str) -> Result<(), PkiError> {
    files::write_secret(path, text)
}
