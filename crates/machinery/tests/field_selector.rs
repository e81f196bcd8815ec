//! Table tests of field selector parsing, per-kind whitelists and matching.

use rudder_machinery::field_selector::{FieldOperator, escape_value, field_value};
use rudder_machinery::{FieldSelector, MachineryError, supported_fields};
use serde_json::{Value, json};

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "prod"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "default"},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]}
    })
}

/// A term as (field, operator, value).
type Term<'a> = (&'a str, FieldOperator, &'a str);

#[test]
fn parses_terms() {
    let cases: &[(&str, &[Term])] = &[
        ("", &[]),
        (
            "metadata.name=foo",
            &[("metadata.name", FieldOperator::Equals, "foo")],
        ),
        ("a==b", &[("a", FieldOperator::Equals, "b")]),
        ("a!=b", &[("a", FieldOperator::NotEquals, "b")]),
        ("a=", &[("a", FieldOperator::Equals, "")]),
        (
            "b=2,a!=1",
            &[
                ("a", FieldOperator::NotEquals, "1"),
                ("b", FieldOperator::Equals, "2"),
            ],
        ),
        (
            "a=x\\,y\\=z\\\\",
            &[("a", FieldOperator::Equals, "x,y=z\\")],
        ),
        ("a=b,,", &[("a", FieldOperator::Equals, "b")]),
    ];
    for (selector, expected) in cases {
        let parsed = FieldSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        let got: Vec<Term> = parsed
            .terms()
            .iter()
            .map(|t| (t.field.as_str(), t.operator, t.value.as_str()))
            .collect();
        assert_eq!(got, expected.to_vec(), "{selector}");
    }
}

#[test]
fn rejects_with_upstream_messages() {
    let cases: &[(&str, &str)] = &[
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (" ", "invalid selector: ' '; can't understand ' '"),
        (
            "a=b=c",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a!==b",
            "invalid field selector: unescaped character in value: 61",
        ),
        (
            "a=b\\x",
            "invalid field selector: invalid escape sequence: \\x",
        ),
        (
            "a=b\\",
            "invalid field selector: invalid escape sequence: \\",
        ),
    ];
    for (selector, expected) in cases {
        assert_eq!(
            FieldSelector::parse(selector),
            Err(MachineryError::InvalidFieldSelector(expected.to_string())),
            "{selector}"
        );
    }
}

#[test]
fn whitelists_fields_per_kind() {
    let cases: &[(&str, &str, &str, Result<&str, &str>)] = &[
        // group, kind, selector, Ok(canonical text) or Err(upstream message)
        (
            "",
            "Pod",
            "spec.nodeName=n1,status.phase=Running",
            Ok("spec.nodeName=n1,status.phase=Running"),
        ),
        ("", "Pod", "spec.host=n1", Ok("spec.nodeName=n1")),
        (
            "",
            "Pod",
            "spec.foo=x",
            Err("field label not supported: spec.foo"),
        ),
        (
            "",
            "Node",
            "spec.unschedulable=true",
            Ok("spec.unschedulable=true"),
        ),
        (
            "",
            "Node",
            "metadata.namespace=x",
            Err("field label not supported: metadata.namespace"),
        ),
        (
            "",
            "Event",
            "involvedObject.uid=u,source=kubelet",
            Ok("involvedObject.uid=u,source=kubelet"),
        ),
        ("", "Secret", "type=Opaque", Ok("type=Opaque")),
        (
            "",
            "Namespace",
            "status.phase=Active",
            Ok("status.phase=Active"),
        ),
        (
            "",
            "Service",
            "spec.clusterIP=None",
            Ok("spec.clusterIP=None"),
        ),
        (
            "",
            "ReplicationController",
            "status.replicas=0",
            Ok("status.replicas=0"),
        ),
        (
            "",
            "ConfigMap",
            "metadata.namespace=a",
            Ok("metadata.namespace=a"),
        ),
        (
            "apps",
            "ReplicaSet",
            "status.replicas=0",
            Err(
                "\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
        ),
        (
            "batch",
            "Job",
            "status.successful=1",
            Ok("status.successful=1"),
        ),
        (
            "batch",
            "Job",
            "status.active=1",
            Err("field label \"status.active\" not supported for batchv1.Job"),
        ),
        (
            "events.k8s.io",
            "Event",
            "regarding.name=web",
            // events.k8s.io Events are stored as core Events: the term reads the stored field.
            Ok("involvedObject.name=web"),
        ),
        (
            "certificates.k8s.io",
            "CertificateSigningRequest",
            "spec.signerName=x",
            Ok("spec.signerName=x"),
        ),
        (
            "resource.k8s.io",
            "ResourceSlice",
            "spec.pool=x",
            Err("field label not supported for resource.k8s.io/v1, Kind=ResourceSlice: spec.pool"),
        ),
    ];
    for (group, kind, selector, expected) in cases {
        let parsed = FieldSelector::parse(selector).expect(selector);
        let converted = parsed.convert_for(group, "v1", kind);
        match (converted, expected) {
            (Ok(s), Ok(text)) => assert_eq!(s.to_string(), *text, "{kind} {selector}"),
            (Err(MachineryError::UnsupportedFieldLabel { message, .. }), Err(msg)) => {
                assert_eq!(message, *msg, "{kind} {selector}")
            }
            (got, _) => panic!("{kind} {selector}: unexpected {got:?}"),
        }
    }
}

#[test]
fn lists_supported_fields() {
    assert_eq!(
        supported_fields("apps", "Deployment"),
        ["metadata.name", "metadata.namespace"]
    );
    assert_eq!(
        supported_fields("", "Node"),
        ["metadata.name", "spec.unschedulable"]
    );
    assert!(supported_fields("", "Pod").contains(&"status.nominatedNodeName"));
    assert!(supported_fields("", "Event").contains(&"reportingComponent"));
    assert_eq!(
        supported_fields("", "Secret"),
        ["type", "metadata.namespace", "metadata.name"]
    );
}

#[test]
fn matches_objects() {
    let node = json!({"metadata": {"name": "n1"}, "spec": {}});
    let event = json!({"metadata": {"name": "e", "namespace": "prod"},
        "involvedObject": {"kind": "Pod", "name": "web-1"}, "source": {"component": "kubelet"},
        "reason": "Started", "type": "Normal"});
    let rc = json!({"metadata": {"name": "rc"}, "status": {"replicas": 3}});
    let job = json!({"metadata": {"name": "j"}, "status": {"succeeded": 1}});
    let pod = pod();
    let empty = json!({});
    let cases: Vec<(&str, &str, &Value, &str, bool)> = vec![
        ("", "Pod", &pod, "metadata.name=web-1", true),
        ("", "Pod", &pod, "metadata.name=web-2", false),
        (
            "",
            "Pod",
            &pod,
            "metadata.namespace=prod,spec.nodeName=n1",
            true,
        ),
        ("", "Pod", &pod, "spec.nodeName!=n1", false),
        ("", "Pod", &pod, "spec.nodeName!=n2", true),
        (
            "",
            "Pod",
            &pod,
            "status.phase=Running,spec.restartPolicy=Always",
            true,
        ),
        ("", "Pod", &pod, "spec.hostNetwork=false", true),
        ("", "Pod", &pod, "status.podIP=10.0.0.5", true),
        ("", "Pod", &pod, "status.nominatedNodeName=", true),
        ("", "Pod", &pod, "status.podIPs=10.0.0.5", false),
        ("", "Pod", &pod, "spec.host=n1", true),
        ("", "Node", &node, "spec.unschedulable=false", true),
        ("", "Node", &node, "spec.unschedulable=true", false),
        (
            "",
            "Event",
            &event,
            "source=kubelet,involvedObject.kind=Pod",
            true,
        ),
        ("", "Event", &event, "involvedObject.namespace=", true),
        ("", "ReplicationController", &rc, "status.replicas=3", true),
        (
            "",
            "ReplicationController",
            &empty,
            "status.replicas=0",
            true,
        ),
        ("batch", "Job", &job, "status.successful=1", true),
        (
            "rbac.authorization.k8s.io",
            "ClusterRole",
            &node,
            "metadata.namespace=",
            true,
        ),
    ];
    for (group, kind, object, selector, expected) in cases {
        let selector = FieldSelector::parse(selector)
            .and_then(|s| s.convert_for(group, "v1", kind))
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(
            selector.matches_object(group, kind, object),
            expected,
            "{kind} {selector}"
        );
    }
}

#[test]
fn exact_matches_values_and_escaping() {
    let selector = FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed").expect("valid");
    assert_eq!(selector.requires_exact_match("spec.nodeName"), Some("n1"));
    assert_eq!(selector.requires_exact_match("status.phase"), None);
    assert!(FieldSelector::everything().is_empty());
    assert_eq!(
        field_value("", "Pod", &pod(), "spec.schedulerName"),
        "default-scheduler"
    );
    let cases = ["plain", "a,b", "x=y", "back\\slash", ""];
    for value in cases {
        let text = format!("f={}", escape_value(value));
        let parsed = FieldSelector::parse(&text).expect(&text);
        assert_eq!(parsed.terms()[0].value, value, "{text}");
        assert_eq!(parsed.to_string(), text);
    }
}
