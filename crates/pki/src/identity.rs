//! Who a client certificate says its holder is: CN is the user, O entries are the groups.

/// The user and groups of a verified client certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject's common name.
    pub user: String,
    /// The subject's organizations.
    pub groups: Vec<String>,
}

/// Reads the identity from a DER certificate (already verified by the TLS layer). `None` if it
/// cannot be parsed or has no common name.
pub fn client_identity(der: &[u8]) -> Option<ClientIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    identity_of(cert.subject())
}

/// CN as the user, O entries as the groups.
fn identity_of(subject: &x509_parser::x509::X509Name<'_>) -> Option<ClientIdentity> {
    let user = subject.iter_common_name().next()?.as_str().ok()?.to_owned();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(str::to_owned))
        .collect();
    Some(ClientIdentity { user, groups })
}

/// The subject a PEM certificate signing request asks for (CN as user, O as groups); `None` if
/// it is not a parsable CSR with a common name.
pub fn csr_identity(pem: &str) -> Option<ClientIdentity> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    let (_, csr) =
        <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(&pem.contents)
            .ok()?;
    identity_of(&csr.certification_request_info.subject)
}
