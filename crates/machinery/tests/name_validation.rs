//! Table tests of the name rules against upstream's messages.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rudder_machinery::name_validation::*;

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const KEY_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn dns1123_subdomain() {
    let long = "a".repeat(254);
    let max = format!("{}.{}", "a".repeat(126), "b".repeat(126));
    let cases: &[(&str, &[&str])] = &[
        ("example.com", &[]),
        ("a", &[]),
        ("1-2.3", &[]),
        (&max, &[]),
        ("", &[SUBDOMAIN_MSG]),
        ("Example.com", &[SUBDOMAIN_MSG]),
        ("-a", &[SUBDOMAIN_MSG]),
        ("a.", &[SUBDOMAIN_MSG]),
        ("a..b", &[SUBDOMAIN_MSG]),
        ("a_b", &[SUBDOMAIN_MSG]),
        (&long, &["must be no more than 253 characters"]),
    ];
    for (input, expected) in cases {
        assert_eq!(is_dns1123_subdomain(input), strings(expected), "{input}");
    }
}

#[test]
fn dns1123_and_dns1035_labels() {
    let long = "a".repeat(64);
    let cases: &[(&str, &[&str], &[&str])] = &[
        // input, DNS-1123 label problems, DNS-1035 label problems
        ("my-name", &[], &[]),
        ("123-abc", &[], &[DNS1035_MSG]),
        ("a.b", &["must not contain dots"], &[DNS1035_MSG]),
        ("A", &[LABEL_MSG], &[DNS1035_MSG]),
        ("a-", &[LABEL_MSG], &[DNS1035_MSG]),
        ("", &[LABEL_MSG], &[DNS1035_MSG]),
        (
            &long,
            &["must be no more than 63 characters"],
            &["must be no more than 63 characters"],
        ),
    ];
    for (input, label, dns1035) in cases {
        assert_eq!(is_dns1123_label(input), strings(label), "1123 {input}");
        assert_eq!(is_dns1035_label(input), strings(dns1035), "1035 {input}");
    }
}

#[test]
fn object_name_rules_with_generate_name_prefixes() {
    let cases: &[(&str, bool, usize)] = &[
        // name, is a generateName prefix, number of subdomain problems
        ("web-", true, 0),
        ("web-", false, 1),
        ("web", true, 0),
        ("-", true, 1),
        ("Web-", true, 1),
    ];
    for (name, prefix, problems) in cases {
        assert_eq!(
            name_is_dns_subdomain(name, *prefix).len(),
            *problems,
            "{name} {prefix}"
        );
        assert_eq!(
            name_is_dns_label(name, *prefix).len(),
            *problems,
            "{name} {prefix}"
        );
    }
    assert!(name_is_dns1035_label("svc-", true).is_empty());
    assert_eq!(
        name_is_dns1035_label("1svc", false),
        strings(&[DNS1035_MSG])
    );
}

#[test]
fn path_segment_names() {
    let cases: &[(&str, bool, &[&str])] = &[
        ("system:admin", false, &[]),
        (".", false, &["may not be '.'"]),
        ("..", false, &["may not be '..'"]),
        ("..", true, &[]),
        ("a/b", false, &["may not contain '/'"]),
        (
            "a%b/",
            false,
            &["may not contain '/'", "may not contain '%'"],
        ),
        ("a%", true, &["may not contain '%'"]),
    ];
    for (name, prefix, expected) in cases {
        assert_eq!(
            validate_path_segment_name(name, *prefix),
            strings(expected),
            "{name}"
        );
    }
}

#[test]
fn label_keys() {
    let long_name = "a".repeat(64);
    let long_key = format!("example.com/{long_name}");
    let cases: &[(&str, Vec<String>)] = &[
        ("app", vec![]),
        ("app.kubernetes.io/name", vec![]),
        ("My_Key.1", vec![]),
        ("", vec!["name part must be non-empty".into(), KEY_NAME_MSG.into()]),
        ("-app", vec![KEY_NAME_MSG.into()]),
        ("/app", vec!["prefix part must be non-empty".into()]),
        (
            "Example.com/app",
            vec![format!("prefix part {SUBDOMAIN_MSG}")],
        ),
        (
            "a/b/c",
            vec!["a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into()],
        ),
        (&long_key, vec!["name part must be no more than 63 bytes".into()]),
    ];
    for (key, expected) in cases {
        assert_eq!(&is_label_key(key), expected, "{key}");
    }
}

#[test]
fn label_values() {
    let long = "v".repeat(64);
    let cases: &[(&str, &[&str])] = &[
        ("", &[]),
        ("v1.2_3-x", &[]),
        ("-v", &[VALUE_MSG]),
        ("a b", &[VALUE_MSG]),
        (&long, &["must be no more than 63 bytes"]),
    ];
    for (value, expected) in cases {
        assert_eq!(is_label_value(value), strings(expected), "{value}");
    }
}

#[test]
fn generated_names() {
    let long = "x".repeat(70);
    let accented = "é".repeat(30);
    let cases: &[(&str, usize)] = &[("web-", 4), ("", 0), (&long, 58), (&accented, 58)];
    let mut rng = StdRng::seed_from_u64(7);
    for (base, kept) in cases {
        let name = generate_name_with(base, &mut rng);
        assert_eq!(name.len(), kept + GENERATED_SUFFIX_LENGTH, "{base}");
        assert!(name.starts_with(&base[..*kept]), "{name}");
        let suffix = &name[*kept..];
        assert!(
            suffix
                .chars()
                .all(|c| GENERATED_SUFFIX_ALPHABET.contains(c)),
            "{suffix}"
        );
    }
    assert_ne!(generate_name("a-"), generate_name("a-"));
}
