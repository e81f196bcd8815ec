//! Issuing certificates with rcgen: the CA, the serving certificate, client certificates, and
//! CSR signing. ECDSA P-256 keys throughout.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

use crate::{PkiError, PkiOptions};

/// Lifetime of the CA.
pub(crate) const CA_DAYS: i64 = 3650;
/// Lifetime of serving and client certificates.
pub(crate) const CLIENT_DAYS: i64 = 365;

fn validity(params: &mut CertificateParams, days: i64) {
    let now = OffsetDateTime::now_utc();
    // A little back-dating tolerates clock skew between machines.
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(days);
}

/// Checks that a stored key parses, with a clear error naming the file.
pub(crate) fn check_key(path: &Path, pem: &str) -> Result<(), PkiError> {
    KeyPair::from_pem(pem)
        .map(|_| ())
        .map_err(|e| PkiError::Corrupt {
            path: path.to_path_buf(),
            message: format!("not a usable private key: {e}"),
        })
}

/// A new self-signed CA: (certificate PEM, key PEM).
pub(crate) fn new_ca() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rudder-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, CA_DAYS);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn issuer<'a>(
    ca_cert: &str,
    ca_key: &'a KeyPair,
) -> Result<Issuer<'static, &'a KeyPair>, PkiError> {
    Ok(Issuer::from_ca_cert_pem(ca_cert, ca_key)?)
}

fn parse_key(pem: &str) -> Result<KeyPair, PkiError> {
    Ok(KeyPair::from_pem(pem)?)
}

/// The names the serving certificate covers: loopback, the host name, the in-cluster names of
/// the `kubernetes` Service and its ClusterIP, and any extras.
pub(crate) fn serving_sans(opts: &PkiOptions) -> Vec<String> {
    let mut sans: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        opts.service_ip.to_string(),
    ];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            sans.push(h.to_owned());
        }
    }
    for s in &opts.extra_sans {
        if !sans.contains(s) {
            sans.push(s.clone());
        }
    }
    sans
}

fn san(s: &str) -> Result<SanType, PkiError> {
    Ok(match s.parse::<IpAddr>() {
        Ok(ip) => SanType::IpAddress(ip),
        Err(_) => SanType::DnsName(s.try_into()?),
    })
}

/// A serving certificate for `sans`: (certificate PEM, key PEM).
pub(crate) fn serving(
    ca_cert: &str,
    ca_key: &str,
    sans: &[String],
) -> Result<(String, String), PkiError> {
    let ca_key = parse_key(ca_key)?;
    let issuer = issuer(ca_cert, &ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<_, _>>()?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "rudder-apiserver");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut params, CLIENT_DAYS);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A client certificate with CN `cn` and O `groups`: (certificate PEM, key PEM).
pub(crate) fn client(
    ca_cert: &str,
    ca_key: &str,
    cn: &str,
    groups: &[&str],
    days: i64,
) -> Result<(String, String), PkiError> {
    let ca_key = parse_key(ca_key)?;
    let issuer = issuer(ca_cert, &ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for g in groups {
        dn.push(DnType::OrganizationName, *g);
    }
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut params, days);
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Signs a CSR as a client certificate, keeping its subject.
pub(crate) fn sign_csr(
    ca_cert: &str,
    ca_key: &str,
    csr_pem: &str,
    days: i64,
    usage: ExtendedKeyUsagePurpose,
) -> Result<String, PkiError> {
    let ca_key = parse_key(ca_key)?;
    let issuer = issuer(ca_cert, &ca_key)?;
    let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
        .map_err(|e| PkiError::Csr(e.to_string()))?;
    csr.params.is_ca = IsCa::NoCa;
    csr.params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    csr.params.extended_key_usages = vec![usage];
    validity(&mut csr.params, days);
    Ok(csr.signed_by(&issuer)?.pem())
}

/// A key and a CSR for `CN=cn, O=groups` with alternative names `sans` (DNS names or IPs):
/// (CSR PEM, key PEM).
pub(crate) fn request(
    cn: &str,
    groups: &[&str],
    sans: &[String],
) -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for g in groups {
        dn.push(DnType::OrganizationName, *g);
    }
    params.distinguished_name = dn;
    for san in sans {
        params.subject_alt_names.push(match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(
                san.clone()
                    .try_into()
                    .map_err(|e: rcgen::Error| PkiError::Csr(e.to_string()))?,
            ),
        });
    }
    let csr = params.serialize_request(&key)?;
    Ok((csr.pem()?, key.serialize_pem()))
}

/// A signing key pair for service-account tokens: (private PEM, public PEM).
pub(crate) fn signing_key() -> Result<(String, String), PkiError> {
    let key = KeyPair::generate()?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}
