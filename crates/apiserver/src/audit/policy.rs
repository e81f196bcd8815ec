//! `audit.k8s.io/v1` `Policy`: which requests are recorded at which level, by upstream's rules
//! (`k8s.io/apiserver/pkg/audit/policy/checker.go`). Pure.

use rudder_auth::rbac::Attributes;
use serde_json::Value;

use super::AuditError;

/// How much of a request is recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Not recorded (also when no rule matches, as upstream).
    #[default]
    None,
    /// Who did what to which object, and the response code.
    Metadata,
    /// Metadata plus the request body.
    Request,
    /// Request plus the response body.
    RequestResponse,
}

impl Level {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "None" => Level::None,
            "Metadata" => Level::Metadata,
            "Request" => Level::Request,
            "RequestResponse" => Level::RequestResponse,
            _ => return None,
        })
    }

    /// The name upstream writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "None",
            Level::Metadata => "Metadata",
            Level::Request => "Request",
            Level::RequestResponse => "RequestResponse",
        }
    }
}

/// The points of a request's life an event is written at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    RequestReceived,
    /// Headers sent, body still streaming: long-running requests (watch, exec, ...) only.
    ResponseStarted,
    ResponseComplete,
    Panic,
}

impl Stage {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "RequestReceived" => Stage::RequestReceived,
            "ResponseStarted" => Stage::ResponseStarted,
            "ResponseComplete" => Stage::ResponseComplete,
            "Panic" => Stage::Panic,
            _ => return None,
        })
    }

    /// The name upstream writes.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::RequestReceived => "RequestReceived",
            Stage::ResponseStarted => "ResponseStarted",
            Stage::ResponseComplete => "ResponseComplete",
            Stage::Panic => "Panic",
        }
    }
}

/// `rules[].resources[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct GroupResources {
    group: String,
    resources: Vec<String>,
    resource_names: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Rule {
    level: Level,
    users: Vec<String>,
    user_groups: Vec<String>,
    verbs: Vec<String>,
    resources: Vec<GroupResources>,
    namespaces: Vec<String>,
    non_resource_urls: Vec<String>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: Option<bool>,
}

/// What the policy decides for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub level: Level,
    /// The policy's and the matching rule's `omitStages`.
    pub omit_stages: Vec<Stage>,
    /// Whether `metadata.managedFields` is left out of logged objects.
    pub omit_managed_fields: bool,
}

impl Decision {
    /// Whether an event of `stage` is written.
    pub fn records(&self, stage: Stage) -> bool {
        self.level > Level::None && !self.omit_stages.contains(&stage)
    }
}

/// A parsed audit policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<Rule>,
    omit_stages: Vec<Stage>,
    omit_managed_fields: bool,
}

impl Policy {
    /// Parses a `Policy` (YAML or JSON).
    pub fn parse(text: &str) -> Result<Self, AuditError> {
        let doc: Value = serde_yaml_ng::from_str(text)
            .map_err(|e| AuditError::Policy(format!("not YAML: {e}")))?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        if kind != "Policy" || api_version != "audit.k8s.io/v1" {
            return Err(AuditError::Policy(format!(
                "expected apiVersion audit.k8s.io/v1, kind Policy; got {api_version:?}, {kind:?}"
            )));
        }
        let rules = doc
            .get("rules")
            .and_then(Value::as_array)
            .ok_or_else(|| AuditError::Policy("rules: at least one rule is required".into()))?
            .iter()
            .enumerate()
            .map(|(i, r)| parse_rule(r).map_err(|m| AuditError::Policy(format!("rules[{i}]: {m}"))))
            .collect::<Result<Vec<_>, _>>()?;
        if rules.is_empty() {
            return Err(AuditError::Policy(
                "rules: at least one rule is required".into(),
            ));
        }
        Ok(Self {
            rules,
            omit_stages: stages(&doc).map_err(AuditError::Policy)?,
            omit_managed_fields: doc
                .get("omitManagedFields")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// The first matching rule's level, with the stages to omit; `None` level when no rule
    /// matches. `attrs.user` is the authenticated user (before impersonation), as upstream.
    pub fn decide(&self, attrs: &Attributes) -> Decision {
        let Some(rule) = self.rules.iter().find(|r| rule_matches(r, attrs)) else {
            return Decision::default();
        };
        let mut omit_stages = self.omit_stages.clone();
        omit_stages.extend(rule.omit_stages.iter().copied());
        Decision {
            level: rule.level,
            omit_stages,
            omit_managed_fields: rule.omit_managed_fields.unwrap_or(self.omit_managed_fields),
        }
    }
}

fn strings(v: &Value, field: &str) -> Result<Vec<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_owned)
                    .ok_or(format!("{field}: must be strings"))
            })
            .collect(),
        Some(_) => Err(format!("{field}: must be a list")),
    }
}

fn stages(v: &Value) -> Result<Vec<Stage>, String> {
    strings(v, "omitStages")?
        .iter()
        .map(|s| Stage::parse(s).ok_or(format!("omitStages: unknown stage {s:?}")))
        .collect()
}

fn parse_rule(r: &Value) -> Result<Rule, String> {
    let level = r.get("level").and_then(Value::as_str).unwrap_or("");
    let level = Level::parse(level).ok_or(format!("level: unknown level {level:?}"))?;
    let resources = match r.get("resources") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|g| {
                Ok(GroupResources {
                    group: g
                        .get("group")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_owned(),
                    resources: strings(g, "resources")?,
                    resource_names: strings(g, "resourceNames")?,
                })
            })
            .collect::<Result<_, String>>()?,
        Some(_) => return Err("resources: must be a list".into()),
    };
    let rule = Rule {
        level,
        users: strings(r, "users")?,
        user_groups: strings(r, "userGroups")?,
        verbs: strings(r, "verbs")?,
        resources,
        namespaces: strings(r, "namespaces")?,
        non_resource_urls: strings(r, "nonResourceURLs")?,
        omit_stages: stages(r)?,
        omit_managed_fields: r.get("omitManagedFields").and_then(Value::as_bool),
    };
    // Upstream's validation: a rule is about resources or about paths, not both.
    if !rule.non_resource_urls.is_empty()
        && (!rule.resources.is_empty() || !rule.namespaces.is_empty())
    {
        return Err("rules can apply to API resources or nonResourceURLs, but not both".into());
    }
    for url in &rule.non_resource_urls {
        if url != "*" && !url.starts_with('/') {
            return Err(format!("nonResourceURLs: {url:?} must start with '/'"));
        }
    }
    Ok(rule)
}

fn rule_matches(r: &Rule, a: &Attributes) -> bool {
    if !r.users.is_empty() && !r.users.contains(&a.user.name) {
        return false;
    }
    if !r.user_groups.is_empty() && !a.user.groups.iter().any(|g| r.user_groups.contains(g)) {
        return false;
    }
    if !r.verbs.is_empty() && !r.verbs.contains(&a.verb) {
        return false;
    }
    if !r.namespaces.is_empty() || !r.resources.is_empty() {
        return matches_resource(r, a);
    }
    if !r.non_resource_urls.is_empty() {
        return matches_path(r, a);
    }
    true
}

fn matches_path(r: &Rule, a: &Attributes) -> bool {
    if a.resource_request {
        return false;
    }
    r.non_resource_urls.iter().any(|spec| {
        spec == "*"
            || *spec == a.path
            || spec
                .strip_suffix('*')
                .is_some_and(|prefix| a.path.starts_with(prefix))
    })
}

fn matches_resource(r: &Rule, a: &Attributes) -> bool {
    if !a.resource_request {
        return false;
    }
    // "" in `namespaces` matches cluster-scoped requests, as upstream.
    if !r.namespaces.is_empty() && !r.namespaces.contains(&a.namespace) {
        return false;
    }
    if r.resources.is_empty() {
        return true;
    }
    let combined = if a.subresource.is_empty() {
        a.resource.clone()
    } else {
        format!("{}/{}", a.resource, a.subresource)
    };
    r.resources
        .iter()
        .filter(|g| g.group == a.api_group)
        .any(|g| {
            if g.resources.is_empty() {
                return true;
            }
            let named = g.resource_names.is_empty() || g.resource_names.contains(&a.name);
            named
                && g.resources.iter().any(|res| {
                    *res == combined
                        || res == "*"
                        || (!a.subresource.is_empty()
                            && res.strip_prefix("*/") == Some(a.subresource.as_str()))
                        || res.strip_suffix("/*") == Some(a.resource.as_str())
                })
        })
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
