//! Table tests of policy evaluation and of bindings: messages, reasons, failure policies,
//! variables, match conditions, parameters and validation actions.

use serde_json::{Value as Json, json};

use super::*;
use crate::binding::{self, Outcome, ParamSource};

fn policy(spec: Json) -> CompiledPolicy {
    CompiledPolicy::compile(&json!({"metadata": {"name": "p"}, "spec": spec}))
}

fn deployment(replicas: i64) -> Inputs {
    Inputs {
        object: json!({"metadata": {"name": "web", "namespace": "t"}, "spec": {"replicas": replicas}}),
        request: json!({"operation": "CREATE", "namespace": "t", "userInfo": {"username": "alice", "groups": ["dev"]}}),
        ..Inputs::default()
    }
}

/// A spec, the replicas of the deployment, the failures expected as (message, reason).
type Case = (Json, i64, Vec<(&'static str, Option<&'static str>)>);

fn failures(e: &Evaluation) -> Vec<(&str, Option<&str>)> {
    e.failures
        .iter()
        .map(|f| (f.message.as_str(), f.reason.as_deref()))
        .collect()
}

#[test]
fn validations_table() {
    let cases: Vec<Case> = vec![
        (
            json!({"validations": [{"expression": "object.spec.replicas <= 5"}]}),
            3,
            vec![],
        ),
        (
            json!({"validations": [{"expression": "object.spec.replicas <= 5"}]}),
            6,
            vec![("failed expression: object.spec.replicas <= 5", None)],
        ),
        (
            json!({"validations": [{"expression": "object.spec.replicas <= 5", "message": "too many", "reason": "Forbidden"}]}),
            6,
            vec![("too many", Some("Forbidden"))],
        ),
        (
            json!({"validations": [{"expression": "object.spec.replicas <= 5", "message": "static",
                "messageExpression": "'replicas ' + string(object.spec.replicas) + ' > 5'"}]}),
            6,
            vec![("replicas 6 > 5", None)],
        ),
        // A messageExpression that fails, is empty or spans lines falls back to `message`.
        (
            json!({"validations": [{"expression": "false", "message": "static", "messageExpression": "object.nope"}]}),
            1,
            vec![("static", None)],
        ),
        (
            json!({"validations": [{"expression": "false", "message": "static", "messageExpression": "'a\\nb'"}]}),
            1,
            vec![("static", None)],
        ),
        // Variables, each seeing the ones before it.
        (
            json!({"variables": [{"name": "r", "expression": "object.spec.replicas"}, {"name": "big", "expression": "variables.r > 5"}],
                "validations": [{"expression": "!variables.big", "messageExpression": "'r=' + string(variables.r)"}]}),
            7,
            vec![("r=7", None)],
        ),
        // A broken variable fails only the expressions using it.
        (
            json!({"variables": [{"name": "broken", "expression": "object.spec.nope"}],
                "validations": [{"expression": "object.spec.replicas < 10"}]}),
            7,
            vec![],
        ),
        (
            json!({"variables": [{"name": "broken", "expression": "object.spec.nope"}],
                "validations": [{"expression": "variables.broken == 1"}]}),
            7,
            vec![(
                "expression 'object.spec.nope' resulted in error: no such key: nope",
                None,
            )],
        ),
        // Errors deny under Fail (the default) and are skipped under Ignore.
        (
            json!({"validations": [{"expression": "object.spec.missing > 1"}, {"expression": "object.spec.replicas < 2"}]}),
            3,
            vec![
                (
                    "expression 'object.spec.missing > 1' resulted in error: no such key: missing",
                    None,
                ),
                ("failed expression: object.spec.replicas < 2", None),
            ],
        ),
        (
            json!({"failurePolicy": "Ignore", "validations": [{"expression": "object.spec.missing > 1"}, {"expression": "object.spec.replicas < 2"}]}),
            3,
            vec![("failed expression: object.spec.replicas < 2", None)],
        ),
        // An expression that does not compile is an error at evaluation too.
        (
            json!({"validations": [{"expression": "object.spec.("}]}),
            3,
            vec![],
        ),
        (
            json!({"failurePolicy": "Ignore", "validations": [{"expression": "object.spec.("}]}),
            3,
            vec![],
        ),
    ];
    for (i, (spec, replicas, want)) in cases.iter().enumerate() {
        let p = policy(spec.clone());
        let got = p.evaluate(&deployment(*replicas));
        if spec.to_string().contains("object.spec.(") {
            let fails = spec.get("failurePolicy").is_none();
            assert_eq!(got.failures.len(), usize::from(fails), "case {i}");
            if fails {
                assert!(
                    got.failures[0].message.starts_with("compilation failed"),
                    "{got:?}"
                );
            }
            continue;
        }
        assert_eq!(failures(&got), *want, "case {i}: {spec}");
    }
}

#[test]
fn match_conditions_table() {
    let base = |conditions: Json, fail: &str| {
        policy(json!({"failurePolicy": fail, "matchConditions": conditions,
            "validations": [{"expression": "object.spec.replicas <= 5"}]}))
    };
    let not_alice =
        json!([{"name": "not-alice", "expression": "request.userInfo.username != 'alice'"}]);
    let is_alice = json!([{"name": "alice", "expression": "request.userInfo.username == 'alice'"},
        {"name": "dev", "expression": "'dev' in request.userInfo.groups"}]);
    let broken = json!([{"name": "broken", "expression": "request.nope == 1"}]);
    let cases = [
        (base(not_alice, "Fail"), 0),
        (base(is_alice, "Fail"), 1),
        (base(broken.clone(), "Fail"), 1),
        (base(broken, "Ignore"), 0),
    ];
    for (i, (p, want)) in cases.iter().enumerate() {
        assert_eq!(p.evaluate(&deployment(9)).failures.len(), *want, "case {i}");
    }
}

#[test]
fn audit_annotations_and_old_object() {
    let p = policy(json!({"auditAnnotations": [
        {"key": "high-replicas", "valueExpression": "object.spec.replicas > 5 ? 'replicas ' + string(object.spec.replicas) : null"}],
        "validations": [{"expression": "oldObject == null || object.spec.replicas >= oldObject.spec.replicas", "message": "no scaling down"}]}));
    let mut inputs = deployment(9);
    let got = p.evaluate(&inputs);
    assert_eq!(
        got.audit_annotations,
        vec![("high-replicas".to_string(), "replicas 9".to_string())]
    );
    assert!(got.failures.is_empty());
    inputs.old_object = json!({"spec": {"replicas": 10}});
    assert_eq!(
        failures(&p.evaluate(&inputs)),
        vec![("no scaling down", None)]
    );
    assert!(p.evaluate(&deployment(2)).audit_annotations.is_empty());
}

#[test]
fn compile_errors_name_the_field() {
    let errors = compile_errors(&json!({"spec": {
        "validations": [{"expression": "true"}, {"expression": "object.(", "messageExpression": "'ok'"}],
        "matchConditions": [{"name": "m", "expression": "1 +"}]}}));
    let fields: Vec<&str> = errors.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.matchConditions[0].expression",
            "spec.validations[1].expression"
        ]
    );
    assert!(
        errors
            .iter()
            .all(|(_, _, why)| why.starts_with("compilation failed: "))
    );
}

struct ConfigMaps(Vec<Json>, Option<bool>);

impl ParamSource for ConfigMaps {
    fn scope(&self) -> Option<bool> {
        self.1
    }
    fn list(&self, namespace: Option<&str>) -> Vec<Json> {
        self.0
            .iter()
            .filter(|c| c.pointer("/metadata/namespace").and_then(Json::as_str) == namespace)
            .cloned()
            .collect()
    }
}

fn param_policy() -> CompiledPolicy {
    policy(
        json!({"paramKind": {"apiVersion": "v1", "kind": "ConfigMap"},
        "validations": [{"expression": "object.spec.replicas <= int(params.data.maxReplicas)",
            "messageExpression": "'at most ' + params.data.maxReplicas + ' replicas'"}]}),
    )
}

#[test]
fn params_table() {
    let limits = json!({"metadata": {"name": "limits", "namespace": "t", "labels": {"kind": "limits"}}, "data": {"maxReplicas": "3"}});
    let other = json!({"metadata": {"name": "other", "namespace": "t"}, "data": {}});
    let source = ConfigMaps(vec![limits.clone(), other], Some(true));
    let p = param_policy();
    let with_ref = |r: Json| json!({"metadata": {"name": "b"}, "spec": {"paramRef": r}});
    let names = |found: Result<Vec<Json>, String>| {
        found.map(|v| {
            v.iter()
                .map(|p| {
                    p.pointer("/metadata/name")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_owned()
                })
                .collect::<Vec<_>>()
        })
    };
    let resolve = |b: &Json, ns: &str| names(binding::resolve_params(&p, b, ns, &source));
    assert_eq!(
        resolve(&with_ref(json!({"name": "limits"})), "t"),
        Ok(vec!["limits".to_string()])
    );
    assert_eq!(
        resolve(&with_ref(json!({"name": "limits"})), "u"),
        Ok(vec![])
    );
    assert_eq!(
        resolve(&with_ref(json!({"name": "limits", "namespace": "t"})), "u"),
        Ok(vec!["limits".to_string()])
    );
    assert_eq!(
        resolve(
            &with_ref(json!({"selector": {"matchLabels": {"kind": "limits"}}})),
            "t"
        ),
        Ok(vec!["limits".to_string()])
    );
    assert_eq!(
        resolve(
            &with_ref(json!({"name": "nope", "parameterNotFoundAction": "Deny"})),
            "t"
        ),
        Err("no params found for policy binding with `Deny` parameterNotFoundAction".into())
    );
    assert!(resolve(&with_ref(json!({"name": "limits"})), "").is_err());
    assert_eq!(resolve(&json!({"spec": {}}), "t"), Ok(vec![String::new()]));
    let unknown = ConfigMaps(vec![], None);
    assert!(binding::resolve_params(&p, &with_ref(json!({"name": "x"})), "t", &unknown).is_err());
    // The param gets its type, as upstream's wrapping does.
    let found = binding::resolve_params(&p, &with_ref(json!({"name": "limits"})), "t", &source);
    assert_eq!(found.map(|v| v[0]["kind"].clone()), Ok(json!("ConfigMap")));
}

#[test]
fn actions_table() {
    let p = param_policy();
    let params = Ok(vec![json!({"data": {"maxReplicas": "3"}})]);
    let bind =
        |actions: Json| json!({"metadata": {"name": "b"}, "spec": {"validationActions": actions}});
    let run = |b: Json, params: Result<Vec<Json>, String>, replicas: i64| {
        let mut out = Outcome::default();
        binding::apply(&p, &b, params, &deployment(replicas), &mut out);
        out
    };
    let out = run(bind(json!(["Deny"])), params.clone(), 5);
    assert_eq!(
        out.denials[0].message,
        "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: at most 3 replicas"
    );
    assert_eq!(
        (
            out.denials[0].reason.as_str(),
            binding::reason_code("Invalid")
        ),
        ("Invalid", 422)
    );
    assert!(
        run(bind(json!(["Deny"])), params.clone(), 2)
            .denials
            .is_empty()
    );
    let out = run(bind(json!(["Warn", "Audit"])), params.clone(), 5);
    assert!(out.denials.is_empty());
    assert_eq!(
        out.warnings,
        [
            "Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': at most 3 replicas"
        ]
    );
    assert_eq!(out.audit_annotations[0].0, binding::VALIDATION_FAILURE_KEY);
    let audit: Json = serde_json::from_str(&out.audit_annotations[0].1).unwrap_or_default();
    assert_eq!(
        audit,
        json!([{"message": "at most 3 replicas", "policy": "p", "binding": "b", "expressionIndex": 0, "validationActions": ["Warn", "Audit"]}])
    );
    // No params found (Allow): nothing is evaluated.
    assert_eq!(
        run(bind(json!(["Deny"])), Ok(vec![]), 5),
        Outcome::default()
    );
    // A configuration error denies under Fail whatever the actions.
    let out = run(bind(json!(["Warn"])), Err("why".into()), 5);
    assert_eq!(
        out.denials[0].message,
        "ValidatingAdmissionPolicy 'p' with binding 'b' denied request: failed to configure binding: why"
    );
    assert_eq!(binding::reason_code("Forbidden"), 403);
    assert_eq!(binding::reason_code("RequestEntityTooLarge"), 413);
    assert_eq!(binding::reason_code("Unauthorized"), 401);
}
