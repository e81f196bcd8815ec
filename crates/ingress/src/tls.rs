//! TLS for the HTTPS listener: the certificates of our Ingresses' `spec.tls` entries, loaded from
//! `kubernetes.io/tls` Secrets, and a rustls resolver choosing one by SNI (exact host, then a
//! wildcard host, then the default certificate).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::Ingress;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::routes::host_matches;

/// Why a Secret's certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The Secret lacks `tls.crt` or `tls.key`.
    #[error("missing {0}")]
    Missing(&'static str),
    /// `tls.crt` holds no PEM certificate.
    #[error("tls.crt: no certificate")]
    NoCertificate,
    /// `tls.key` is not a PEM private key.
    #[error("tls.key: {0}")]
    Key(String),
    /// The key's type is not one rustls signs with.
    #[error("unsupported key: {0}")]
    Unsupported(rustls::Error),
    /// The default certificate could not be generated.
    #[error("generating the default certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Certificates by TLS host (exact names and `*.suffix` wildcards), plus the one for any other
/// name.
#[derive(Debug, Clone)]
pub struct Certs {
    by_host: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl Certs {
    /// Only the default certificate.
    pub fn new(default: Arc<CertifiedKey>) -> Self {
        Self {
            by_host: HashMap::new(),
            default,
        }
    }

    /// The certificates `ingresses` (ours only) name in `spec.tls`, from `secrets`. A secret
    /// that is missing or invalid is logged and skipped, as upstream controllers do (the host
    /// then gets the default certificate). The first Ingress naming a host keeps it; a `tls`
    /// entry without hosts covers its rules' hosts.
    pub fn build(default: Arc<CertifiedKey>, ingresses: &[&Ingress], secrets: &[Secret]) -> Self {
        let mut certs = Self::new(default);
        let mut parsed: HashMap<(String, String), Option<Arc<CertifiedKey>>> = HashMap::new();
        for ing in ingresses {
            let ns = ing.metadata.namespace.clone().unwrap_or_default();
            let Some(spec) = &ing.spec else { continue };
            for tls in spec.tls.iter().flatten() {
                let Some(secret_name) = &tls.secret_name else {
                    continue;
                };
                let key = (ns.clone(), secret_name.clone());
                let cert = parsed
                    .entry(key)
                    .or_insert_with(|| {
                        let secret = secrets.iter().find(|s| {
                            s.metadata.namespace.as_deref() == Some(&ns)
                                && s.metadata.name.as_deref() == Some(secret_name)
                        });
                        let Some(secret) = secret else {
                            tracing::warn!(%ns, secret = %secret_name, "ingress TLS secret not found");
                            return None;
                        };
                        match certified_key(secret) {
                            Ok(c) => Some(Arc::new(c)),
                            Err(e) => {
                                tracing::warn!(%ns, secret = %secret_name, error = %e, "ingress TLS secret unusable");
                                None
                            }
                        }
                    })
                    .clone();
                let Some(cert) = cert else { continue };
                let hosts: Vec<String> = match &tls.hosts {
                    Some(h) if !h.is_empty() => h.clone(),
                    _ => spec
                        .rules
                        .iter()
                        .flatten()
                        .filter_map(|r| r.host.clone())
                        .collect(),
                };
                for h in hosts {
                    certs
                        .by_host
                        .entry(h.to_ascii_lowercase())
                        .or_insert_with(|| cert.clone());
                }
            }
        }
        certs
    }

    /// The certificate for an SNI name (none: the client sent no SNI, e.g. it dialled an IP).
    pub fn select(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(sni) = sni.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(c) = self.by_host.get(&sni) {
            return c.clone();
        }
        self.by_host
            .iter()
            .filter(|(pattern, _)| pattern.starts_with("*.") && host_matches(pattern, &sni))
            .map(|(_, c)| c.clone())
            .next()
            .unwrap_or_else(|| self.default.clone())
    }
}

/// Parses a Secret's `tls.crt` (chain) and `tls.key`.
pub fn certified_key(secret: &Secret) -> Result<CertifiedKey, CertError> {
    let data = secret.data.as_ref();
    let get = |k: &'static str| {
        data.and_then(|d| d.get(k))
            .map(|b| b.0.clone())
            .ok_or(CertError::Missing(k))
    };
    let (crt, key) = (get("tls.crt")?, get("tls.key")?);
    certified_key_pem(&crt, &key)
}

/// A rustls certificate and signing key from PEM.
pub fn certified_key_pem(crt: &[u8], key: &[u8]) -> Result<CertifiedKey, CertError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(crt)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| CertError::Key(e.to_string()))?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(CertError::Unsupported)?;
    Ok(CertifiedKey::new(chain, signer))
}

/// A self-signed certificate for names no Ingress has one for (ingress-nginx's "fake"
/// certificate): clients reject it, but the handshake completes and they get a 404 or the
/// default backend instead of a TLS alert.
pub fn default_certificate() -> Result<Arc<CertifiedKey>, CertError> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec!["ingress.local".to_owned()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "rudder ingress default certificate",
    );
    let cert = params.self_signed(&key)?;
    certified_key_pem(cert.pem().as_bytes(), key.serialize_pem().as_bytes()).map(Arc::new)
}

/// The resolver the HTTPS listener uses; the watcher swaps in new certificates.
#[derive(Debug)]
pub struct Resolver(pub RwLock<Arc<Certs>>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        Some(certs.select(hello.server_name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use serde_json::json;

    fn keypair(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        let cert = params.self_signed(&key).expect("cert");
        (cert.pem(), key.serialize_pem())
    }

    fn secret(name: &str, crt: &str, key: &str) -> Secret {
        let mut s: Secret = serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "type": "kubernetes.io/tls",
        }))
        .expect("secret");
        s.data = Some(
            [
                ("tls.crt".to_owned(), ByteString(crt.as_bytes().to_vec())),
                ("tls.key".to_owned(), ByteString(key.as_bytes().to_vec())),
            ]
            .into(),
        );
        s
    }

    #[test]
    fn sni_selects_certificates() {
        let (a_crt, a_key) = keypair("a.test");
        let (w_crt, w_key) = keypair("*.w.test");
        let (r_crt, r_key) = keypair("rules.test");
        let secrets = [
            secret("a", &a_crt, &a_key),
            secret("w", &w_crt, &w_key),
            secret("r", &r_crt, &r_key),
            secret("broken", "not pem", &a_key),
        ];
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "i", "namespace": "default"},
            "spec": {
                "tls": [
                    {"hosts": ["a.test"], "secretName": "a"},
                    {"hosts": ["*.w.test"], "secretName": "w"},
                    {"hosts": ["broken.test"], "secretName": "broken"},
                    {"hosts": ["gone.test"], "secretName": "missing"},
                    {"secretName": "r"},
                ],
                "rules": [{"host": "rules.test"}],
            },
        }))
        .expect("ingress");
        let default = default_certificate().expect("default");
        let certs = Certs::build(default.clone(), &[&ing], &secrets);
        let first = |c: Arc<CertifiedKey>| c.cert[0].clone();
        let pem = |p: &str| CertificateDer::from_pem_slice(p.as_bytes()).expect("pem");
        for (sni, want) in [
            (Some("a.test"), pem(&a_crt)),
            (Some("A.TEST"), pem(&a_crt)),
            (Some("x.w.test"), pem(&w_crt)),
            (Some("x.y.w.test"), first(default.clone())),
            (Some("rules.test"), pem(&r_crt)),
            (Some("broken.test"), first(default.clone())),
            (Some("gone.test"), first(default.clone())),
            (None, first(default.clone())),
        ] {
            assert_eq!(first(certs.select(sni)), want, "{sni:?}");
        }
    }

    #[test]
    fn unusable_secrets() {
        let (crt, key) = keypair("a.test");
        assert!(matches!(
            certified_key_pem(b"", key.as_bytes()),
            Err(CertError::NoCertificate)
        ));
        assert!(matches!(
            certified_key_pem(crt.as_bytes(), b"junk"),
            Err(CertError::Key(_))
        ));
        let mut s = secret("x", &crt, &key);
        s.data.as_mut().expect("data").remove("tls.key");
        assert!(matches!(
            certified_key(&s),
            Err(CertError::Missing("tls.key"))
        ));
    }
}
