//! ValidatingAdmissionPolicy, the IO: reads policies, bindings, parameter objects and the
//! namespace from the watch cache, keeps each policy compiled (per uid and resourceVersion),
//! hands the decisions to `rudder_cel_policy`, and turns its outcome into upstream's answer:
//! the first denial as a `Status` (`<resource> "<name>" is forbidden: ValidatingAdmissionPolicy
//! 'P' with binding 'B' denied request: ...`, code from the validation's `reason`), warnings
//! for `Warn`, and audit annotations (logged). Also checks policies and bindings when they are
//! written: an expression that does not parse is a 422, as upstream's validation compiles them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rudder_auth::UserInfo;
use rudder_cel_policy::{
    self as cel_policy, CompiledPolicy, Inputs, Outcome, ParamSource, Request,
};
use serde_json::{Value, json};

use super::{Attributes, Operation, cached};
use crate::http::ApiRequest;
use crate::keys;
use crate::server::ApiServer;
use crate::status::{ApiError, Cause, Details, qualified};

const GROUP: &str = "admissionregistration.k8s.io";
const POLICIES: &str = "validatingadmissionpolicies";
const BINDINGS: &str = "validatingadmissionpolicybindings";

/// Compiled policies by uid, with the resourceVersion they were compiled at: compiling is
/// the expensive part, and a policy changes far less often than requests arrive.
type Compiled = Mutex<HashMap<String, (String, Arc<CompiledPolicy>)>>;

fn compiled(policy: &Value) -> Arc<CompiledPolicy> {
    static CACHE: OnceLock<Compiled> = OnceLock::new();
    let meta = |f: &str| crate::objects::meta_str(policy, f).to_owned();
    let (uid, rv) = (meta("uid"), meta("resourceVersion"));
    let cache = CACHE.get_or_init(Mutex::default);
    if let Ok(map) = cache.lock()
        && let Some((seen, p)) = map.get(&uid)
        && *seen == rv
    {
        return p.clone();
    }
    let p = Arc::new(CompiledPolicy::compile(policy));
    if let Ok(mut map) = cache.lock() {
        // Policies are few; forgetting deleted ones when the map grows keeps it bounded.
        if map.len() > 1024 {
            map.clear();
        }
        map.insert(uid, (rv, p.clone()));
    }
    p
}

/// Parameter objects of the policy's `paramKind`, from the cache.
struct CachedParams<'a> {
    server: &'a ApiServer,
    resource: Option<Arc<crate::resources::Resource>>,
}

impl ParamSource for CachedParams<'_> {
    fn scope(&self) -> Option<bool> {
        self.resource.as_ref().map(|r| r.namespaced)
    }

    fn list(&self, namespace: Option<&str>) -> Vec<Value> {
        let Some(r) = &self.resource else {
            return Vec::new();
        };
        let mut objects = cached(self.server, r.key_group(), &r.plural, namespace);
        for o in &mut objects {
            r.to_served(o);
        }
        objects
    }
}

fn param_resource(
    server: &ApiServer,
    policy: &CompiledPolicy,
) -> Option<Arc<crate::resources::Resource>> {
    let (api_version, kind) = policy.param_kind.as_ref()?;
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    server
        .resources
        .all()
        .into_iter()
        .find(|r| r.group == group && r.version == version && r.kind == *kind)
}

/// Runs the policies bound to this write; returns the warnings of `Warn` bindings.
pub(crate) fn run(
    server: &ApiServer,
    req: &ApiRequest,
    attrs: &Attributes<'_>,
    obj: &Value,
) -> Result<Vec<String>, ApiError> {
    // Policies never apply to the admission configuration itself, so a bad one can be fixed.
    if attrs.resource.group == GROUP {
        return Ok(Vec::new());
    }
    let bindings = cached(server, GROUP, BINDINGS, None);
    if bindings.is_empty() {
        return Ok(Vec::new());
    }
    let mut policies = cached(server, GROUP, POLICIES, None);
    policies.sort_by(|a, b| {
        crate::objects::meta_str(a, "name").cmp(crate::objects::meta_str(b, "name"))
    });
    let r = attrs.resource;
    let operation = match attrs.op {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
    };
    let namespace_object = match attrs.namespace {
        // A Namespace's own namespace is itself; upstream leaves namespaceObject null then.
        Some(ns) if !(r.group.is_empty() && r.plural == "namespaces") => server
            .cache
            .get(&keys::object_key("", "namespaces", None, ns))
            .and_then(|n| n.value().ok())
            .unwrap_or(Value::Null),
        _ => Value::Null,
    };
    let old = attrs.old.cloned().unwrap_or(Value::Null);
    let request = Request {
        operation,
        group: &r.group,
        version: &r.version,
        resource: &r.plural,
        subresource: attrs.subresource,
        name: attrs.name,
        namespaced: r.namespaced,
        namespace_object: &namespace_object,
        object: obj,
        old_object: &old,
    };
    let user = req.parts.extensions.get::<UserInfo>();
    let inputs = Inputs {
        object: obj.clone(),
        old_object: old.clone(),
        request: request_json(attrs, operation, user),
        params: Value::Null,
        namespace_object: namespace_object.clone(),
    };
    let mut outcome = Outcome::default();
    for policy_obj in &policies {
        let name = crate::objects::meta_str(policy_obj, "name");
        let mut bound: Vec<&Value> = bindings
            .iter()
            .filter(|b| b.pointer("/spec/policyName").and_then(Value::as_str) == Some(name))
            .collect();
        if bound.is_empty() {
            continue;
        }
        let policy = compiled(policy_obj);
        if !cel_policy::matches(&policy.match_constraints, &request, false) {
            continue;
        }
        bound.sort_by(|a, b| {
            crate::objects::meta_str(a, "name").cmp(crate::objects::meta_str(b, "name"))
        });
        let source = CachedParams {
            server,
            resource: param_resource(server, &policy),
        };
        for binding in bound {
            let m = binding
                .pointer("/spec/matchResources")
                .unwrap_or(&Value::Null);
            if !cel_policy::matches(m, &request, true) {
                continue;
            }
            let params = cel_policy::resolve_params(
                &policy,
                binding,
                attrs.namespace.unwrap_or(""),
                &source,
            );
            cel_policy::apply(&policy, binding, params, &inputs, &mut outcome);
        }
    }
    for (key, value) in &outcome.audit_annotations {
        tracing::info!(target: "rudder::audit", key = %key, value = %value, resource = %r.plural, name = attrs.name, "admission policy audit annotation");
    }
    if let Some(denial) = outcome.denials.first() {
        return Err(denied(attrs, &denial.message, &denial.reason));
    }
    Ok(outcome.warnings)
}

/// Upstream's denial: `admission.NewForbidden`'s message and details with the validation's
/// reason and its code, and the message again as a cause (which kubectl prints for 422s).
fn denied(attrs: &Attributes<'_>, message: &str, reason: &str) -> ApiError {
    let r = attrs.resource;
    let reason: &'static str = match reason {
        "Forbidden" => "Forbidden",
        "Unauthorized" => "Unauthorized",
        "RequestEntityTooLarge" => "RequestEntityTooLarge",
        _ => "Invalid",
    };
    ApiError {
        code: cel_policy::reason_code(reason),
        reason,
        message: format!(
            "{} {:?} is forbidden: {message}",
            qualified(&r.group, &r.plural),
            attrs.name
        ),
        details: Some(Box::new(Details {
            group: r.group.clone(),
            kind: r.plural.clone(),
            name: attrs.name.to_owned(),
            causes: vec![Cause {
                reason: String::new(),
                message: message.to_owned(),
                field: String::new(),
            }],
        })),
        retry_after: None,
    }
}

/// The CEL `request` variable: the AdmissionRequest a webhook would get, without the objects.
fn request_json(attrs: &Attributes<'_>, operation: &str, user: Option<&UserInfo>) -> Value {
    let r = attrs.resource;
    let resource = json!({"group": r.group, "version": r.version, "resource": r.plural});
    let kind = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let user = user.map_or(
        json!({"username": "", "groups": []}),
        |u| json!({"username": u.name, "uid": u.uid, "groups": u.groups, "extra": u.extra}),
    );
    let mut request = json!({
        "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
        "name": attrs.name, "namespace": attrs.namespace.unwrap_or(""), "operation": operation,
        "userInfo": user, "dryRun": attrs.dry_run,
        "options": {"kind": if operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" },
            "apiVersion": "meta.k8s.io/v1"},
    });
    if let Some(sub) = attrs.subresource {
        request["subResource"] = json!(sub);
        request["requestSubResource"] = json!(sub);
    }
    request
}

/// Validates a policy or binding being written (the parts upstream's validation rejects
/// that would otherwise only fail at admission): required fields, enums, CEL that parses.
pub(crate) fn check_definition(attrs: &Attributes<'_>, obj: &Value) -> Result<(), ApiError> {
    let r = attrs.resource;
    if r.group != GROUP || attrs.subresource.is_some() {
        return Ok(());
    }
    let causes = match r.plural.as_str() {
        POLICIES => policy_problems(obj),
        BINDINGS => binding_problems(obj),
        _ => return Ok(()),
    };
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(&r.group, &r.kind, attrs.name, causes))
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

fn required(field: &str) -> Cause {
    cause("FieldValueRequired", field, "Required value".into())
}

fn unsupported(field: &str, value: &str, allowed: &[&str]) -> Cause {
    let allowed: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
    cause(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value:?}: supported values: {}",
            allowed.join(", ")
        ),
    )
}

fn list_len(obj: &Value, pointer: &str) -> usize {
    obj.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn policy_problems(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if list_len(obj, "/spec/validations") == 0 && list_len(obj, "/spec/auditAnnotations") == 0 {
        out.push(required("spec.validations"));
    }
    if list_len(obj, "/spec/matchConstraints/resourceRules") == 0 {
        out.push(required("spec.matchConstraints.resourceRules"));
    }
    if let Some(f) = obj.pointer("/spec/failurePolicy").and_then(Value::as_str)
        && !["Fail", "Ignore"].contains(&f)
    {
        out.push(unsupported("spec.failurePolicy", f, &["Fail", "Ignore"]));
    }
    let reasons = [
        "Unauthorized",
        "Forbidden",
        "Invalid",
        "RequestEntityTooLarge",
    ];
    for (i, v) in obj
        .pointer("/spec/validations")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if v.get("expression")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .is_empty()
        {
            out.push(required(&format!("spec.validations[{i}].expression")));
        }
        if let Some(reason) = v.get("reason").and_then(Value::as_str)
            && !reasons.contains(&reason)
        {
            out.push(unsupported(
                &format!("spec.validations[{i}].reason"),
                reason,
                &reasons,
            ));
        }
    }
    for (field, source, why) in cel_policy::compile_errors(obj) {
        let value = serde_json::to_string(&source).unwrap_or_default();
        out.push(cause(
            "FieldValueInvalid",
            &field,
            format!("Invalid value: {value}: {why}"),
        ));
    }
    out
}

fn binding_problems(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    if obj
        .pointer("/spec/policyName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .is_empty()
    {
        out.push(required("spec.policyName"));
    }
    let actions: Vec<&str> = obj
        .pointer("/spec/validationActions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if actions.is_empty() {
        out.push(required("spec.validationActions"));
    }
    for (i, a) in actions.iter().enumerate() {
        let field = format!("spec.validationActions[{i}]");
        if !["Deny", "Warn", "Audit"].contains(a) {
            out.push(unsupported(&field, a, &["Audit", "Deny", "Warn"]));
        } else if actions[..i].contains(a) {
            out.push(cause(
                "FieldValueDuplicate",
                &field,
                format!("Duplicate value: {a:?}"),
            ));
        }
    }
    if actions.contains(&"Deny") && actions.contains(&"Warn") {
        out.push(cause(
            "FieldValueInvalid",
            "spec.validationActions",
            "Invalid value: [\"Deny\",\"Warn\"]: must not contain both Deny and Warn (repeating the same validation failure information in the API response and headers serves no purpose)".into(),
        ));
    }
    if let Some(p) = obj.pointer("/spec/paramRef").filter(|p| !p.is_null()) {
        let has = |f: &str| p.get(f).is_some_and(|v| !v.is_null() && v != "");
        if has("name") == has("selector") {
            out.push(cause(
                "FieldValueRequired",
                "spec.paramRef.name",
                "Required value: one of name or selector must be specified".into(),
            ));
        }
        match p.get("parameterNotFoundAction").and_then(Value::as_str) {
            None => out.push(required("spec.paramRef.parameterNotFoundAction")),
            Some("Allow" | "Deny") => {}
            Some(other) => out.push(unsupported(
                "spec.paramRef.parameterNotFoundAction",
                other,
                &["Allow", "Deny"],
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(causes: &[Cause]) -> Vec<&str> {
        causes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn policies_and_bindings_are_served() {
        let all = crate::resources::Resources::builtin(crate::resources::builtin());
        let policy = all.get(GROUP, "v1", POLICIES).expect("policies served");
        assert!(!policy.namespaced && policy.subresources == ["status"]);
        assert!(
            all.get(GROUP, "v1", BINDINGS)
                .is_some_and(|b| !b.namespaced)
        );
    }

    #[test]
    fn policy_problems_table() {
        let rules = json!({"resourceRules": [{"apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["deployments"]}]});
        let cases = [
            (
                json!({"spec": {"matchConstraints": rules, "validations": [{"expression": "true"}]}}),
                vec![],
            ),
            (
                json!({"spec": {"matchConstraints": rules}}),
                vec!["spec.validations"],
            ),
            (
                json!({"spec": {"validations": [{"expression": "true"}]}}),
                vec!["spec.matchConstraints.resourceRules"],
            ),
            (
                json!({"spec": {"matchConstraints": rules, "failurePolicy": "Maybe", "validations": [{"expression": "object.(", "reason": "Teapot"}]}}),
                vec![
                    "spec.failurePolicy",
                    "spec.validations[0].reason",
                    "spec.validations[0].expression",
                ],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(fields(&policy_problems(&obj)), want, "{obj}");
        }
    }

    #[test]
    fn binding_problems_table() {
        let cases = [
            (
                json!({"spec": {"policyName": "p", "validationActions": ["Deny"]}}),
                vec![],
            ),
            (
                json!({"spec": {}}),
                vec!["spec.policyName", "spec.validationActions"],
            ),
            (
                json!({"spec": {"policyName": "p", "validationActions": ["Deny", "Warn", "Deny", "Nope"]}}),
                vec![
                    "spec.validationActions[2]",
                    "spec.validationActions[3]",
                    "spec.validationActions",
                ],
            ),
            (
                json!({"spec": {"policyName": "p", "validationActions": ["Audit"], "paramRef": {"name": "x"}}}),
                vec!["spec.paramRef.parameterNotFoundAction"],
            ),
            (
                json!({"spec": {"policyName": "p", "validationActions": ["Audit"], "paramRef": {"parameterNotFoundAction": "Allow"}}}),
                vec!["spec.paramRef.name"],
            ),
        ];
        for (obj, want) in cases {
            assert_eq!(fields(&binding_problems(&obj)), want, "{obj}");
        }
    }
}
