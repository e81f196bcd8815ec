//! Table tests of service-account token issuing and verification, with fixed test keys.

use super::*;

const EC_KEY: &str = include_str!("testdata/ec.key");
const EC_PUB: &str = include_str!("testdata/ec.pub");
const EC2_PUB: &str = include_str!("testdata/ec2.pub");
const RSA_KEY: &str = include_str!("testdata/rsa.key");
const RSA_PUB: &str = include_str!("testdata/rsa.pub");
const NOW: i64 = 1_800_000_000;

fn spec(bound: Option<Bound>) -> TokenSpec {
    TokenSpec {
        issuer: DEFAULT_ISSUER.into(),
        audiences: vec!["api".into()],
        namespace: "ns".into(),
        service_account: ObjectRef {
            name: "default".into(),
            uid: "sa-uid".into(),
        },
        bound,
        now: NOW,
        expiration_seconds: 3600,
        id: "jti-1".into(),
    }
}

fn verifier(pems: &[&str]) -> Verifier {
    Verifier::new(
        &pems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![DEFAULT_ISSUER.into()],
        vec!["api".into()],
    )
    .expect("verifier")
}

#[test]
fn round_trip_and_refusals() {
    let ec = Signer::from_pem(EC_KEY).expect("ec signer");
    let rsa = Signer::from_pem(RSA_KEY).expect("rsa signer");
    let good = Claims::new(spec(None));
    let mut other_iss = good.clone();
    other_iss.iss = "https://elsewhere".into();
    let mut other_aud = good.clone();
    other_aud.aud = vec!["vault".into()];
    let mut bad_sub = good.clone();
    bad_sub.sub = "system:serviceaccount:ns:other".into();
    let at = |t: i64| t;
    type Case<'a> = (
        &'a str,
        &'a Signer,
        &'a Claims,
        &'a [&'a str],
        i64,
        Result<(), TokenError>,
    );
    let cases: Vec<Case> = vec![
        ("es256", &ec, &good, &[EC_PUB], at(NOW), Ok(())),
        ("rs256", &rsa, &good, &[RSA_PUB], at(NOW), Ok(())),
        (
            "second key",
            &ec,
            &good,
            &[EC2_PUB, EC_PUB],
            at(NOW),
            Ok(()),
        ),
        (
            "within leeway",
            &ec,
            &good,
            &[EC_PUB],
            at(NOW + 3600 + 59),
            Ok(()),
        ),
        (
            "expired",
            &ec,
            &good,
            &[EC_PUB],
            at(NOW + 3600 + 61),
            Err(TokenError::Expired),
        ),
        (
            "not yet",
            &ec,
            &good,
            &[EC_PUB],
            at(NOW - 61),
            Err(TokenError::NotYetValid),
        ),
        (
            "issuer",
            &ec,
            &other_iss,
            &[EC_PUB],
            at(NOW),
            Err(TokenError::Issuer("https://elsewhere".into())),
        ),
        (
            "audience",
            &ec,
            &other_aud,
            &[EC_PUB],
            at(NOW),
            Err(TokenError::Audience {
                token: vec!["vault".into()],
                accepted: vec!["api".into()],
            }),
        ),
    ];
    for (name, signer, claims, keys, now, want) in cases {
        let token = signer.sign(claims).expect("sign");
        let got = verifier(keys).verify(&token, now, None).map(|c| {
            assert_eq!(&c, claims, "{name}");
        });
        assert_eq!(got, want, "{name}");
    }
    for (name, signer, claims, keys) in [
        ("wrong key", &ec, &good, &[EC2_PUB][..]),
        ("rsa token, ec keys", &rsa, &good, &[EC_PUB][..]),
        ("subject mismatch", &ec, &bad_sub, &[EC_PUB][..]),
    ] {
        let token = signer.sign(claims).expect("sign");
        let got = verifier(keys).verify(&token, NOW, None);
        assert!(
            matches!(got, Err(TokenError::Malformed(_))),
            "{name}: {got:?}"
        );
    }
    assert!(matches!(
        verifier(&[EC_PUB]).verify("not.a.jwt", NOW, None),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn audiences_can_be_overridden() {
    let ec = Signer::from_pem(EC_KEY).expect("signer");
    let mut claims = Claims::new(spec(None));
    claims.aud = vec!["vault".into()];
    let token = ec.sign(&claims).expect("sign");
    let v = verifier(&[EC_PUB]);
    assert!(v.verify(&token, NOW, None).is_err());
    assert!(v.verify(&token, NOW, Some(&["vault".into()])).is_ok());
}

#[test]
fn claims_and_user_of_bound_tokens() {
    let pod = ObjectRef {
        name: "web".into(),
        uid: "pod-uid".into(),
    };
    let node = ObjectRef {
        name: "n1".into(),
        uid: "node-uid".into(),
    };
    let c = Claims::new(spec(Some(Bound::Pod {
        pod: pod.clone(),
        node: Some(node),
    })));
    assert_eq!(c.sub, "system:serviceaccount:ns:default");
    assert_eq!((c.iat, c.nbf, c.exp), (NOW, NOW, NOW + 3600));
    assert_eq!(c.kubernetes.pod, Some(pod));
    let json = serde_json::to_value(&c).expect("json");
    assert_eq!(json["kubernetes.io"]["serviceaccount"]["uid"], "sa-uid");
    assert_eq!(json["aud"], serde_json::json!(["api"]));
    assert!(json["kubernetes.io"].get("secret").is_none());
    let u = c.user();
    assert_eq!(u.name, "system:serviceaccount:ns:default");
    assert_eq!(u.uid, "sa-uid");
    assert_eq!(
        u.groups,
        vec!["system:serviceaccounts", "system:serviceaccounts:ns"]
    );
    assert_eq!(
        u.extra["authentication.kubernetes.io/pod-name"],
        vec!["web".to_owned()]
    );
    let secret = Claims::new(spec(Some(Bound::Secret(ObjectRef {
        name: "s".into(),
        uid: "u".into(),
    }))));
    assert!(secret.kubernetes.pod.is_none() && secret.kubernetes.secret.is_some());
}

#[test]
fn audience_as_a_string_is_accepted() {
    let json = serde_json::json!({
        "iss": "i", "sub": "system:serviceaccount:a:b", "aud": "one", "exp": 2, "nbf": 1, "iat": 1,
        "kubernetes.io": {"namespace": "a", "serviceaccount": {"name": "b", "uid": "u"}}
    });
    let c: Claims = serde_json::from_value(json).expect("claims");
    assert_eq!(c.aud, vec!["one"]);
}

#[test]
fn expiration_rules() {
    let cases = [
        (None, Ok(3600)),
        (Some(600), Ok(600)),
        (Some(599), Err(())),
        (Some(86400), Ok(86400)),
        (Some((1 << 32) + 1), Err(())),
    ];
    for (requested, want) in cases {
        assert_eq!(expiration(requested).map_err(|_| ()), want, "{requested:?}");
    }
}

#[test]
fn user_names() {
    let cases = [
        ("system:serviceaccount:ns:sa", Some(("ns", "sa"))),
        ("system:serviceaccount:ns:", None),
        ("system:serviceaccount::sa", None),
        ("system:serviceaccount:ns:sa:x", None),
        ("alice", None),
    ];
    for (name, want) in cases {
        assert_eq!(split_user_name(name), want, "{name}");
    }
}

#[test]
fn legacy_tokens_verify_without_expiry_or_audience() {
    let ec = Signer::from_pem(EC_KEY).expect("ec signer");
    let v = verifier(&[EC_PUB]);
    let claims = legacy::LegacyClaims::new("ns", "builder", "sa-uid", "builder-token");
    let token = ec.sign_legacy(&claims).expect("sign");
    // Long after any bound token would have expired.
    let got = v.verify_any(&token, NOW * 2, None).expect("legacy token");
    assert_eq!(got, Verified::Legacy(claims.clone()));
    let user = claims.user();
    assert_eq!(user.name, "system:serviceaccount:ns:builder");
    assert_eq!(user.uid, "sa-uid");
    assert_eq!(
        user.groups,
        ["system:serviceaccounts", "system:serviceaccounts:ns"]
    );
    // A TokenReview for the server's audience accepts it, for another one does not.
    assert!(v.verify_any(&token, NOW, Some(&["api".into()])).is_ok());
    assert!(matches!(
        v.verify_any(&token, NOW, Some(&["vault".into()])),
        Err(TokenError::Audience { .. })
    ));
    // The plain verifier of bound tokens does not take it.
    assert!(v.verify(&token, NOW, None).is_err());
    // Signed by another key.
    assert!(verifier(&[EC2_PUB]).verify_any(&token, NOW, None).is_err());
}

#[test]
fn legacy_claims_must_agree() {
    let ec = Signer::from_pem(EC_KEY).expect("ec signer");
    let v = verifier(&[EC_PUB]);
    let good = legacy::LegacyClaims::new("ns", "builder", "sa-uid", "builder-token");
    let mut other_sub = good.clone();
    other_sub.sub = "system:serviceaccount:ns:admin".into();
    let mut no_secret = good.clone();
    no_secret.secret_name = String::new();
    for (case, claims) in [("subject", other_sub), ("secret", no_secret)] {
        let token = ec.sign_legacy(&claims).expect("sign");
        assert!(
            matches!(
                v.verify_any(&token, NOW, None),
                Err(TokenError::Malformed(_))
            ),
            "{case}"
        );
    }
    // Bound tokens still go through verify_any unchanged.
    let bound = Claims::new(spec(None));
    let token = ec.sign(&bound).expect("sign");
    assert_eq!(
        v.verify_any(&token, NOW, None).expect("bound"),
        Verified::Bound(bound)
    );
}
