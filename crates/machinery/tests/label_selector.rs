//! Table tests of label selector parsing, matching and `metav1.LabelSelector` conversion.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use rudder_machinery::{LabelSelector, MachineryError, Operator, Requirement};
use serde_json::json;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse_err(selector: &str) -> String {
    match LabelSelector::parse(selector) {
        Err(MachineryError::InvalidLabelSelector(msg)) => msg,
        other => panic!("{selector}: expected an invalid selector, got {other:?}"),
    }
}

/// Label pairs of a test object.
type Pairs<'a> = &'a [(&'a str, &'a str)];

#[test]
fn parses_and_matches() {
    let cases: &[(&str, Pairs, bool)] = &[
        ("", &[], true),
        ("", &[("a", "b")], true),
        ("a=b", &[("a", "b")], true),
        ("a==b", &[("a", "b")], true),
        ("a=b", &[("a", "c")], false),
        ("a!=b", &[], true),
        ("a!=b", &[("a", "b")], false),
        ("a in (x, y),b!=c", &[("a", "x")], true),
        ("a in (x, y),b!=c", &[("a", "y"), ("b", "d")], true),
        ("a in (x, y),b!=c", &[("a", "x"), ("b", "c")], false),
        ("a in (x, y),b!=c", &[("a", "z")], false),
        ("a notin (x)", &[], true),
        ("a notin (x)", &[("a", "x")], false),
        ("a", &[("a", "")], true),
        ("a", &[("b", "")], false),
        ("!a", &[("b", "")], true),
        ("!a", &[("a", "")], false),
        ("a>5", &[("a", "6")], true),
        ("a>5", &[("a", "5")], false),
        ("a<5", &[("a", "-1")], true),
        ("a>5", &[("a", "x")], false),
        ("a>5", &[], false),
        ("a=", &[("a", "")], true),
        ("a=", &[("a", "b")], false),
        ("a in ()", &[("a", "")], true),
        (
            "x in (foo,,baz),y,z notin ()",
            &[("x", ""), ("y", "1"), ("z", "q")],
            true,
        ),
        (
            "x in (foo,,baz),y,z notin ()",
            &[("x", "foo"), ("y", "1"), ("z", "")],
            false,
        ),
        ("in in (in)", &[("in", "in")], true),
        (
            "example.com/app=web, tier = db",
            &[("example.com/app", "web"), ("tier", "db")],
            true,
        ),
        ("\ta = b\n", &[("a", "b")], true),
    ];
    for (selector, have, expected) in cases {
        let parsed = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(
            parsed.matches(&labels(have)),
            *expected,
            "{selector} on {have:?}"
        );
    }
}

#[test]
fn rejects_with_upstream_messages() {
    let value_msg = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
    let cases: Vec<(&str, String)> = vec![
        ("a,", "found '', expected: identifier after ','".into()),
        ("=a", "found '=', expected: !, identifier, or 'end of string'".into()),
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt".into()),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'".into()),
        ("a in x", "unable to parse requirement: found 'x' expected: '('".into()),
        ("a=b c", "found 'c', expected: ',' or 'end of string'".into()),
        ("!a=b", "found '=', expected: ',' or 'end of string'".into()),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier".into()),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer".into(),
        ),
        (
            "x=a||y=b",
            format!("unable to parse requirement: values[0][x]: Invalid value: \"a||y\": {value_msg}"),
        ),
        (
            "a/b/c=d",
            "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".into(),
        ),
        (
            "Example.com/app",
            "unable to parse requirement: <nil>: Invalid value: \"Example.com/app\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into(),
        ),
        (
            "-a",
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".into(),
        ),
    ];
    for (selector, expected) in cases {
        assert_eq!(parse_err(selector), expected, "{selector}");
    }
    let long = format!("a={}", "v".repeat(64));
    assert!(
        parse_err(&long).contains("must be no more than 63 bytes"),
        "{long}"
    );
}

#[test]
fn canonical_text_and_exact_matches() {
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        // selector, canonical text, label asked about, the value it must have
        ("x in (c,b),a", "a,x in (b,c)", "x", None),
        ("b==1,!a", "!a,b==1", "b", Some("1")),
        ("k in (only)", "k in (only)", "k", Some("only")),
        ("n>3,m<2", "m<2,n>3", "n", None),
        ("", "", "a", None),
    ];
    for (selector, text, label, exact) in cases {
        let parsed = LabelSelector::parse(selector).expect(selector);
        assert_eq!(parsed.to_string(), *text, "{selector}");
        assert_eq!(parsed.requires_exact_match(label), *exact, "{selector}");
    }
}

fn expression(
    key: &str,
    operator: &str,
    values: Option<&[&str]>,
) -> metav1::LabelSelectorRequirement {
    metav1::LabelSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values: values.map(|v| v.iter().map(|s| s.to_string()).collect()),
    }
}

#[test]
fn converts_api_selectors() {
    let with = |match_labels: &[(&str, &str)], exprs: Vec<metav1::LabelSelectorRequirement>| {
        metav1::LabelSelector {
            match_labels: (!match_labels.is_empty()).then(|| labels(match_labels)),
            match_expressions: (!exprs.is_empty()).then_some(exprs),
        }
    };
    let cases: Vec<(Option<metav1::LabelSelector>, Pairs, bool)> = vec![
        (None, &[("a", "b")], false),
        (None, &[], false),
        (Some(with(&[], vec![])), &[], true),
        (
            Some(with(&[("app", "web")], vec![])),
            &[("app", "web")],
            true,
        ),
        (
            Some(with(&[("app", "web")], vec![])),
            &[("app", "db")],
            false,
        ),
        (
            Some(with(
                &[("app", "web")],
                vec![expression("tier", "In", Some(&["a", "b"]))],
            )),
            &[("app", "web"), ("tier", "b")],
            true,
        ),
        (
            Some(with(&[], vec![expression("tier", "NotIn", Some(&["a"]))])),
            &[],
            true,
        ),
        (
            Some(with(&[], vec![expression("tier", "Exists", None)])),
            &[("tier", "")],
            true,
        ),
        (
            Some(with(&[], vec![expression("tier", "DoesNotExist", None)])),
            &[("tier", "")],
            false,
        ),
    ];
    for (selector, have, expected) in cases {
        let converted = LabelSelector::from_api(selector.as_ref()).expect("valid");
        assert_eq!(
            converted.matches(&labels(have)),
            expected,
            "{selector:?} on {have:?}"
        );
    }
}

#[test]
fn rejects_invalid_api_selectors() {
    let one = |e| metav1::LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![e]),
    };
    let cases: Vec<(metav1::LabelSelector, &str)> = vec![
        (
            one(expression("a", "Foo", None)),
            "\"Foo\" is not a valid label selector operator",
        ),
        (
            one(expression("a", "In", None)),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            one(expression("a", "Exists", Some(&["x"]))),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist",
        ),
        (
            one(expression("a", "In", Some(&["<x>"]))),
            "values[0][a]: Invalid value: \"<x>\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        ),
        (
            metav1::LabelSelector {
                match_labels: Some(labels(&[("-k", "v")])),
                match_expressions: None,
            },
            "key: Invalid value: \"-k\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
    ];
    for (selector, expected) in cases {
        assert_eq!(
            LabelSelector::from_api(Some(&selector)),
            Err(MachineryError::InvalidLabelSelector(expected.to_string())),
            "{selector:?}"
        );
    }
}

#[test]
fn aggregates_several_problems() {
    let err = Requirement::new("-k", Operator::Equals, vec![])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("[key: Invalid value: \"-k\": "), "{err}");
    assert!(
        err.ends_with(
            ", values: Invalid value: null: exact-match compatibility requires one single value]"
        ),
        "{err}"
    );
}

#[test]
fn matches_json_objects() {
    let selector = LabelSelector::from_value(Some(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]
    })))
    .expect("valid");
    let cases = [
        (json!({"metadata": {"labels": {"app": "web"}}}), true),
        (
            json!({"metadata": {"labels": {"app": "web", "tier": "db"}}}),
            false,
        ),
        (json!({"metadata": {"labels": {"app": 1}}}), false),
        (json!({"metadata": {}}), false),
    ];
    for (object, expected) in cases {
        assert_eq!(selector.matches_object(&object), expected, "{object}");
    }
    assert!(
        LabelSelector::from_value(None)
            .expect("null")
            .matches_nothing()
    );
    assert!(
        LabelSelector::from_value(Some(&json!({})))
            .expect("empty")
            .is_empty()
    );
    assert!(LabelSelector::from_value(Some(&json!({"matchLabels": 3}))).is_err());
}
