//! One ValidatingAdmissionPolicyBinding applied: which parameter objects its `paramRef`
//! selects (`name` or `selector`, `namespace`, `parameterNotFoundAction`), and what the
//! policy's failures become under its `validationActions` — a denial in upstream's words
//! (`Deny`), a `Warning` header (`Warn`), an audit annotation (`Audit`).

use serde_json::{Value as Json, json};

use crate::expr::Inputs;
use crate::policy::CompiledPolicy;
use rudder_machinery::LabelSelector;

/// The audit annotation key upstream records failures of `Audit` bindings under.
pub const VALIDATION_FAILURE_KEY: &str = "validation.policy.admission.k8s.io/validation_failure";

/// What the policies said about a request, across bindings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Denials in evaluation order; the first is the request's answer.
    pub denials: Vec<Denial>,
    pub warnings: Vec<String>,
    /// Audit annotations: (key, value).
    pub audit_annotations: Vec<(String, String)>,
}

/// A refused request: the message after `<resource> "<name>" is forbidden: ` and the reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Denial {
    pub message: String,
    /// `Invalid` unless the validation names another.
    pub reason: String,
}

/// Where the parameter objects of a kind live, for [`resolve_params`].
pub trait ParamSource {
    /// Whether the kind is known, and whether it is namespaced.
    fn scope(&self) -> Option<bool>;
    /// The objects of the kind in `namespace` (`None`: cluster-scoped kind).
    fn list(&self, namespace: Option<&str>) -> Vec<Json>;
}

/// The parameter objects the binding's `paramRef` selects for a request in `namespace`:
/// `[null]` when the policy takes none, `[]` when none is found and the binding allows that,
/// an error (upstream's words) for a misconfigured or `Deny`ing binding.
pub fn resolve_params(
    policy: &CompiledPolicy,
    binding: &Json,
    namespace: &str,
    source: &dyn ParamSource,
) -> Result<Vec<Json>, String> {
    let Some((api_version, kind)) = &policy.param_kind else {
        return Ok(vec![Json::Null]);
    };
    let param_ref = match binding.pointer("/spec/paramRef") {
        None | Some(Json::Null) => return Ok(vec![Json::Null]),
        Some(r) => r,
    };
    let Some(namespaced) = source.scope() else {
        return Err(format!(
            "paramKind kind `{api_version}, Kind={kind}` not known"
        ));
    };
    let field = |f: &str| param_ref.get(f).and_then(Json::as_str).unwrap_or("");
    let list_ns = if namespaced {
        match (field("namespace"), namespace) {
            ("", "") => {
                return Err(
                    "cannot use namespaced paramRef in policy binding that matches \
                            cluster-scoped resources"
                        .into(),
                );
            }
            ("", ns) | (ns, _) => Some(ns),
        }
    } else if !field("namespace").is_empty() {
        return Err(
            "paramRef.namespace must not be provided for a cluster-scoped `paramKind`".into(),
        );
    } else {
        None
    };
    let candidates = source.list(list_ns);
    let found: Vec<Json> = if !field("name").is_empty() {
        candidates
            .into_iter()
            .filter(|p| p.pointer("/metadata/name").and_then(Json::as_str) == Some(field("name")))
            .collect()
    } else if let Some(sel) = param_ref.get("selector").filter(|s| !s.is_null()) {
        let sel = LabelSelector::from_value(Some(sel)).map_err(|e| e.to_string())?;
        candidates
            .into_iter()
            .filter(|p| sel.matches_object(p))
            .collect()
    } else {
        return Err("one of name or selector must be provided".into());
    };
    if found.is_empty() && field("parameterNotFoundAction") == "Deny" {
        return Err(
            "no params found for policy binding with `Deny` parameterNotFoundAction".into(),
        );
    }
    // CEL sees the object with its type (the cache's copy has it; upstream adds it too).
    Ok(found
        .into_iter()
        .map(|mut p| {
            if let Some(m) = p.as_object_mut() {
                m.entry("apiVersion").or_insert_with(|| json!(api_version));
                m.entry("kind").or_insert_with(|| json!(kind));
            }
            p
        })
        .collect())
}

/// The binding's `validationActions`.
fn actions(binding: &Json) -> Vec<&str> {
    binding
        .pointer("/spec/validationActions")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .filter_map(Json::as_str)
        .collect()
}

/// Applies one matching binding of `policy`: evaluates the policy for each parameter object
/// (`params`: what [`resolve_params`] returned) and adds what its failures mean to `out`.
pub fn apply(
    policy: &CompiledPolicy,
    binding: &Json,
    params: Result<Vec<Json>, String>,
    inputs: &Inputs,
    out: &mut Outcome,
) {
    let binding_name = binding
        .pointer("/metadata/name")
        .and_then(Json::as_str)
        .unwrap_or("");
    let denied = |message: &str| {
        format!(
            "ValidatingAdmissionPolicy '{}' with binding '{binding_name}' denied request: {message}",
            policy.name
        )
    };
    let params = match params {
        Ok(p) => p,
        // A configuration error is denied whatever the actions, unless the policy ignores
        // failures, as upstream does.
        Err(why) => {
            if policy.fail {
                out.denials.push(Denial {
                    message: denied(&format!("failed to configure binding: {why}")),
                    reason: "Invalid".into(),
                });
            }
            return;
        }
    };
    let actions = actions(binding);
    for param in params {
        let mut inputs = inputs.clone();
        inputs.params = param;
        let evaluation = policy.evaluate(&inputs);
        for failure in &evaluation.failures {
            for action in &actions {
                match *action {
                    "Deny" => out.denials.push(Denial {
                        message: denied(&failure.message),
                        reason: failure.reason.clone().unwrap_or_else(|| "Invalid".into()),
                    }),
                    "Warn" => out.warnings.push(format!(
                        "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{binding_name}': {}",
                        policy.name, failure.message
                    )),
                    "Audit" => out.audit_annotations.push((
                        VALIDATION_FAILURE_KEY.into(),
                        json!([{
                            "message": failure.message,
                            "policy": policy.name,
                            "binding": binding_name,
                            "expressionIndex": failure.index,
                            "validationActions": actions,
                        }])
                        .to_string(),
                    )),
                    _ => {}
                }
            }
        }
        for (key, value) in evaluation.audit_annotations {
            let key = format!("{}/{key}", policy.name);
            // Upstream joins distinct values of one key (several bindings or params).
            match out.audit_annotations.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) if v.split(", ").any(|x| x == value) => {}
                Some((_, v)) => *v = format!("{v}, {value}"),
                None => out.audit_annotations.push((key, value)),
            }
        }
    }
}

/// The HTTP code upstream answers a denial's reason with.
pub fn reason_code(reason: &str) -> u16 {
    match reason {
        "Forbidden" => 403,
        "Unauthorized" => 401,
        "RequestEntityTooLarge" => 413,
        _ => 422,
    }
}
