//! First start creates the material with safe modes; later starts reuse it; certificates chain
//! to the CA; a real TLS handshake authenticates the admin; the kubeconfig parses.

use std::os::unix::fs::PermissionsExt;

use rudder_pki::{ADMIN_GROUP, ADMIN_USER, Pki, PkiOptions, client_identity, kubeconfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[test]
fn first_start_creates_and_second_reuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    let first = Pki::load_or_create(&pki_dir, &PkiOptions::default()).expect("create");
    for (file, want) in [
        ("ca.key", 0o600),
        ("serving.key", 0o600),
        ("admin.key", 0o600),
        ("sa.key", 0o600),
        ("ca.crt", 0o644),
    ] {
        assert_eq!(mode(&pki_dir.join(file)), want, "{file}");
    }
    assert_eq!(mode(&pki_dir), 0o700);
    let second = Pki::load_or_create(&pki_dir, &PkiOptions::default()).expect("reuse");
    assert_eq!(first.ca_cert_pem(), second.ca_cert_pem());
    assert_eq!(first.serving_cert_pem(), second.serving_cert_pem());
    // New names re-issue the serving certificate under the same CA.
    let opts = PkiOptions {
        extra_sans: vec!["api.example.test".into()],
        ..PkiOptions::default()
    };
    let third = Pki::load_or_create(&pki_dir, &opts).expect("reissue");
    assert_eq!(first.ca_cert_pem(), third.ca_cert_pem());
    assert_ne!(first.serving_cert_pem(), third.serving_cert_pem());
    let der = rustls_pki_types::CertificateDer::from_pem_slice_first(third.serving_cert_pem());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("parse");
    let names: Vec<String> = cert
        .subject_alternative_name()
        .expect("san ext")
        .expect("san present")
        .value
        .general_names
        .iter()
        .map(|n| format!("{n}"))
        .collect();
    for want in ["api.example.test", "kubernetes.default.svc", "localhost"] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "{want} not in {names:?}"
        );
    }
}

trait FirstPem {
    fn from_pem_slice_first(pem: &str) -> Vec<u8>;
}

impl FirstPem for rustls_pki_types::CertificateDer<'_> {
    fn from_pem_slice_first(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .expect("one certificate")
            .expect("valid pem")
            .to_vec()
    }
}

#[test]
fn corrupt_key_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki_dir = dir.path().join("pki");
    Pki::load_or_create(&pki_dir, &PkiOptions::default()).expect("create");
    std::fs::write(pki_dir.join("ca.key"), "not a key").expect("corrupt");
    let err = Pki::load_or_create(&pki_dir, &PkiOptions::default())
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("ca.key"), "{err}");
}

#[tokio::test]
async fn tls_handshake_authenticates_the_admin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&dir.path().join("pki"), &PkiOptions::default()).expect("create");
    let acceptor = tokio_rustls::TlsAcceptor::from(pki.server_config().expect("server config"));
    let connector =
        tokio_rustls::TlsConnector::from(pki.admin_client_config().expect("client config"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut tls = acceptor.accept(tcp).await.expect("handshake");
        let der = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("client cert")
            .to_vec();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.expect("read");
        client_identity(&der).expect("identity")
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("client handshake");
    tls.write_all(b"ping").await.expect("write");
    let who = server.await.expect("server task");
    assert_eq!(who.user, ADMIN_USER);
    assert_eq!(who.groups, vec![ADMIN_GROUP.to_owned()]);
}

#[test]
fn kubeconfig_parses_as_yaml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&dir.path().join("pki"), &PkiOptions::default()).expect("create");
    let path = dir.path().join("kubeconfig");
    kubeconfig::write(&path, "https://127.0.0.1:6443", &pki, "admin", "rudder").expect("write");
    assert_eq!(mode(&path), 0o600);
    let doc: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).expect("read")).expect("yaml");
    assert_eq!(doc["current-context"].as_str(), Some("rudder"));
    assert_eq!(
        doc["clusters"][0]["cluster"]["server"].as_str(),
        Some("https://127.0.0.1:6443")
    );
    assert!(
        doc["users"][0]["user"]["client-key-data"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
}
