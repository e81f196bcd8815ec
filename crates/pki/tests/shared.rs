//! A second server seeded from a first one's `pki/` shares its CA, service-account key and admin
//! certificate but makes its own serving certificate; a restart changes nothing; a server of
//! another cluster is refused, and an incomplete source leaves nothing behind.

use rudder_pki::{Pki, PkiOptions, Seeded, seed_from};

fn opts(san: &str) -> PkiOptions {
    PkiOptions {
        extra_sans: vec![san.to_owned()],
        ..PkiOptions::default()
    }
}

#[test]
fn a_seeded_server_shares_the_cluster_identity_and_keeps_its_own_serving_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (dir.path().join("a/pki"), dir.path().join("b/pki"));
    let a = Pki::load_or_create(&a_dir, &opts("a.example")).expect("first server");

    assert_eq!(seed_from(&a_dir, &b_dir).expect("seed"), Seeded::Copied);
    let b = Pki::load_or_create(&b_dir, &opts("b.example")).expect("second server");
    assert_eq!(a.ca_cert_pem(), b.ca_cert_pem());
    assert_eq!(a.service_account_key_pem(), b.service_account_key_pem());
    assert_eq!(a.admin_pem(), b.admin_pem());
    assert_ne!(a.serving_cert_pem(), b.serving_cert_pem());
    let serving_b = b.serving_cert_pem().to_owned();

    // The next start of the second server finds the same CA and keeps everything.
    assert_eq!(
        seed_from(&a_dir, &b_dir).expect("again"),
        Seeded::AlreadyShared
    );
    let b = Pki::load_or_create(&b_dir, &opts("b.example")).expect("restart");
    assert_eq!(b.serving_cert_pem(), serving_b);
    assert_eq!(a.ca_cert_pem(), b.ca_cert_pem());
}

#[test]
fn a_server_of_another_cluster_is_not_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_dir, c_dir) = (dir.path().join("a/pki"), dir.path().join("c/pki"));
    Pki::load_or_create(&a_dir, &PkiOptions::default()).expect("a");
    let c = Pki::load_or_create(&c_dir, &PkiOptions::default()).expect("c");
    let err = seed_from(&a_dir, &c_dir).expect_err("another cluster's CA");
    assert!(err.to_string().contains("different cluster CA"), "{err}");
    let again = Pki::load_or_create(&c_dir, &PkiOptions::default()).expect("c again");
    assert_eq!(again.ca_cert_pem(), c.ca_cert_pem());
}

#[test]
fn an_incomplete_source_copies_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (dir.path().join("a/pki"), dir.path().join("b/pki"));
    assert!(seed_from(&a_dir, &b_dir).is_err(), "no CA at all");

    Pki::load_or_create(&a_dir, &PkiOptions::default()).expect("a");
    std::fs::remove_file(a_dir.join("sa.key")).expect("remove");
    let err = seed_from(&a_dir, &b_dir).expect_err("no signing key");
    assert!(err.to_string().contains("sa.key"), "{err}");
    assert!(!b_dir.join("ca.crt").exists());
    assert!(!b_dir.join("ca.key").exists());
}
