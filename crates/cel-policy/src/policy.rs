//! A ValidatingAdmissionPolicy compiled: its `matchConditions`, `variables`, `validations`
//! and `auditAnnotations` as CEL programs, and their evaluation for one request and one
//! parameter object, following upstream's validator: a false match condition skips the
//! policy, a false validation is a failure with its message, and an expression that cannot
//! be evaluated is a failure only under `failurePolicy: Fail`.

use cel::Value;
use serde_json::Value as Json;

use crate::PolicyError;
use crate::expr::{Expression, Inputs, map_of};

/// One compiled expression, or why it did not compile.
type Compiled = Result<Expression, String>;

fn compile(source: &str) -> Compiled {
    Expression::compile(source).map_err(|e| e.to_string())
}

#[derive(Debug)]
struct Validation {
    expr: Compiled,
    message: String,
    message_expression: Option<Compiled>,
    reason: Option<String>,
}

/// A policy ready to evaluate.
#[derive(Debug)]
pub struct CompiledPolicy {
    pub name: String,
    /// `failurePolicy: Fail` (the default): errors deny; `Ignore`: they are skipped.
    pub fail: bool,
    /// `spec.paramKind` as (apiVersion, kind).
    pub param_kind: Option<(String, String)>,
    /// `spec.matchConstraints`, matched by [`crate::matching`].
    pub match_constraints: Json,
    match_conditions: Vec<(String, Compiled)>,
    variables: Vec<(String, Compiled)>,
    validations: Vec<Validation>,
    audit_annotations: Vec<(String, Compiled)>,
}

/// A failed validation (or an error under `failurePolicy: Fail`).
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub message: String,
    /// `Forbidden`, `Invalid`, `Unauthorized` or `RequestEntityTooLarge`; `None` is `Invalid`.
    pub reason: Option<String>,
    /// Index of the validation in `spec.validations` (0 for errors outside them).
    pub index: usize,
}

/// What a policy said about one request with one parameter object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    pub failures: Vec<Failure>,
    /// `auditAnnotations` that evaluated to a string: (key, value).
    pub audit_annotations: Vec<(String, String)>,
}

fn str_at<'a>(v: &'a Json, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Json::as_str).unwrap_or("")
}

fn items<'a>(v: &'a Json, pointer: &str) -> impl Iterator<Item = &'a Json> {
    v.pointer(pointer)
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
}

impl CompiledPolicy {
    /// Compiles every expression of `policy`; one that does not compile is kept as its
    /// error, which evaluation reports under the policy's `failurePolicy`, as upstream does
    /// with expressions that fail its type check.
    pub fn compile(policy: &Json) -> Self {
        let kind = policy.pointer("/spec/paramKind").filter(|p| !p.is_null());
        Self {
            name: str_at(policy, "/metadata/name").to_owned(),
            fail: str_at(policy, "/spec/failurePolicy") != "Ignore",
            param_kind: kind.map(|k| {
                (
                    str_at(k, "/apiVersion").to_owned(),
                    str_at(k, "/kind").to_owned(),
                )
            }),
            match_constraints: policy
                .pointer("/spec/matchConstraints")
                .cloned()
                .unwrap_or(Json::Null),
            match_conditions: items(policy, "/spec/matchConditions")
                .map(|c| {
                    (
                        str_at(c, "/name").to_owned(),
                        compile(str_at(c, "/expression")),
                    )
                })
                .collect(),
            variables: items(policy, "/spec/variables")
                .map(|c| {
                    (
                        str_at(c, "/name").to_owned(),
                        compile(str_at(c, "/expression")),
                    )
                })
                .collect(),
            validations: items(policy, "/spec/validations")
                .map(|v| Validation {
                    expr: compile(str_at(v, "/expression")),
                    message: str_at(v, "/message").to_owned(),
                    message_expression: v
                        .get("messageExpression")
                        .and_then(Json::as_str)
                        .filter(|s| !s.trim().is_empty())
                        .map(compile),
                    reason: v
                        .get("reason")
                        .and_then(Json::as_str)
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned),
                })
                .collect(),
            audit_annotations: items(policy, "/spec/auditAnnotations")
                .map(|a| {
                    (
                        str_at(a, "/key").to_owned(),
                        compile(str_at(a, "/valueExpression")),
                    )
                })
                .collect(),
        }
    }

    /// Evaluates the policy for one request and one parameter object (`inputs.params`).
    pub fn evaluate(&self, inputs: &Inputs) -> Evaluation {
        let mut out = Evaluation::default();
        let fail = |out: &mut Evaluation, message: String, index: usize| {
            if self.fail {
                out.failures.push(Failure {
                    message,
                    reason: None,
                    index,
                });
            }
        };
        let (variables, broken) = self.variables(inputs);
        let run = |expr: &Compiled| -> Result<Value, String> {
            let expr = expr.as_ref().map_err(Clone::clone)?;
            if let Some((_, why)) = broken
                .iter()
                .find(|(name, _)| references(&expr.source, name))
            {
                return Err(why.clone());
            }
            expr.eval(inputs, &variables)
                .map_err(|e| expr.error_text(&e))
        };
        for (name, condition) in &self.match_conditions {
            match run(condition) {
                Ok(Value::Bool(true)) => {}
                Ok(Value::Bool(false)) => return out,
                Ok(other) => {
                    let why = format!(
                        "matchCondition '{name}' must evaluate to bool, got {:?}",
                        other.type_of()
                    );
                    fail(&mut out, why, 0);
                    return out;
                }
                Err(why) => {
                    fail(&mut out, why, 0);
                    return out;
                }
            }
        }
        for (index, v) in self.validations.iter().enumerate() {
            match run(&v.expr) {
                Ok(Value::Bool(true)) => {}
                // Upstream denies whatever is not `true` (its type check makes it a bool).
                Ok(_) => out.failures.push(Failure {
                    message: self.message(v, &run),
                    reason: v.reason.clone(),
                    index,
                }),
                Err(why) => fail(&mut out, why, index),
            }
        }
        for (key, expr) in &self.audit_annotations {
            match run(expr) {
                Ok(Value::String(s)) => out.audit_annotations.push((key.clone(), s.to_string())),
                Ok(Value::Null) => {}
                Ok(other) => fail(
                    &mut out,
                    format!(
                        "valueExpression '{}' resulted in unsupported return type: {:?}",
                        expr.as_ref().map(|e| e.source.as_str()).unwrap_or(""),
                        other.type_of()
                    ),
                    0,
                ),
                Err(why) => fail(&mut out, why, 0),
            }
        }
        out
    }

    /// The `variables` map (each variable sees the ones before it) and the variables that
    /// failed, with why: an expression fails only if it uses one of them, as upstream
    /// evaluates variables lazily.
    fn variables(&self, inputs: &Inputs) -> (Value, Vec<(String, String)>) {
        let mut done: Vec<(String, Value)> = Vec::new();
        let mut broken: Vec<(String, String)> = Vec::new();
        for (name, expr) in &self.variables {
            let result = match expr {
                Err(why) => Err(why.clone()),
                Ok(e) => match broken.iter().find(|(b, _)| references(&e.source, b)) {
                    Some((_, why)) => Err(why.clone()),
                    None => e
                        .eval(inputs, &map_of(&done))
                        .map_err(|err| e.error_text(&err)),
                },
            };
            match result {
                Ok(v) => done.push((name.clone(), v)),
                Err(why) => broken.push((name.clone(), why)),
            }
        }
        (map_of(&done), broken)
    }

    /// A failed validation's message: `messageExpression` when it yields a non-empty single
    /// line, else `message`, else upstream's `failed expression: <expression>`.
    fn message(&self, v: &Validation, run: &dyn Fn(&Compiled) -> Result<Value, String>) -> String {
        if let Some(expr) = &v.message_expression
            && let Ok(Value::String(s)) = run(expr)
            && !s.trim().is_empty()
            && !s.contains(['\n', '\r'])
        {
            return s.trim().to_owned();
        }
        if !v.message.is_empty() {
            return v.message.clone();
        }
        let source = v.expr.as_ref().map(|e| e.source.trim()).unwrap_or("");
        format!("failed expression: {source}")
    }
}

/// Whether `source` mentions `variables.<name>` (followed by anything but a name character).
fn references(source: &str, name: &str) -> bool {
    let needle = format!("variables.{name}");
    source.match_indices(&needle).any(|(i, _)| {
        source[i + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
    })
}

/// Where each expression of a policy fails to compile: (field path, expression, why), for the
/// 422 a create or update of a policy with invalid CEL gets.
pub fn compile_errors(policy: &Json) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut check = |path: String, source: &str| {
        if let Err(PolicyError::Compile(why)) = Expression::compile(source) {
            out.push((
                path,
                source.to_owned(),
                format!("compilation failed: {why}"),
            ));
        }
    };
    for (i, c) in items(policy, "/spec/matchConditions").enumerate() {
        check(
            format!("spec.matchConditions[{i}].expression"),
            str_at(c, "/expression"),
        );
    }
    for (i, c) in items(policy, "/spec/variables").enumerate() {
        check(
            format!("spec.variables[{i}].expression"),
            str_at(c, "/expression"),
        );
    }
    for (i, v) in items(policy, "/spec/validations").enumerate() {
        check(
            format!("spec.validations[{i}].expression"),
            str_at(v, "/expression"),
        );
        if let Some(m) = v.get("messageExpression").and_then(Json::as_str) {
            check(format!("spec.validations[{i}].messageExpression"), m);
        }
    }
    for (i, a) in items(policy, "/spec/auditAnnotations").enumerate() {
        check(
            format!("spec.auditAnnotations[{i}].valueExpression"),
            str_at(a, "/valueExpression"),
        );
    }
    out
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
