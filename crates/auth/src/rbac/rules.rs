//! One RBAC `PolicyRule` and the two questions asked of rules: does a rule allow a request
//! (upstream's `RuleAllows`), and does a set of rules cover another (upstream's `Covers`, the
//! basis of escalation prevention).

use serde::{Deserialize, Serialize};

use super::Attributes;

/// `rbac.authorization.k8s.io/v1` `PolicyRule`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Rule {
    /// Verbs, `*` for all.
    pub verbs: Vec<String>,
    /// API groups (`""` is the core group), `*` for all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources, `resource/subresource`, `*`, `*/subresource` or `resource/*`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names the rule is limited to; empty for all.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths, exact or with a trailing `*`.
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

impl Rule {
    /// A resource rule (no resource names).
    pub fn resource(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Self {
        Self {
            verbs: strings(verbs),
            api_groups: strings(groups),
            resources: strings(resources),
            ..Default::default()
        }
    }

    /// A non-resource rule.
    pub fn urls(verbs: &[&str], urls: &[&str]) -> Self {
        Self {
            verbs: strings(verbs),
            non_resource_urls: strings(urls),
            ..Default::default()
        }
    }

    /// This rule limited to `names`.
    #[must_use]
    pub fn names(mut self, names: &[&str]) -> Self {
        self.resource_names = strings(names);
        self
    }

    /// Whether the rule allows the request `attrs` describes.
    pub fn allows(&self, attrs: &Attributes) -> bool {
        if !verb_matches(&self.verbs, &attrs.verb) {
            return false;
        }
        if !attrs.resource_request {
            return url_matches(&self.non_resource_urls, &attrs.path);
        }
        let combined = if attrs.subresource.is_empty() {
            attrs.resource.clone()
        } else {
            format!("{}/{}", attrs.resource, attrs.subresource)
        };
        contains_or_star(&self.api_groups, &attrs.api_group)
            && resource_matches(&self.resources, &combined, &attrs.subresource)
            && (self.resource_names.is_empty() || self.resource_names.contains(&attrs.name))
    }
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|&x| x.to_owned()).collect()
}

fn contains_or_star(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == "*" || x == want)
}

fn verb_matches(verbs: &[String], verb: &str) -> bool {
    contains_or_star(verbs, verb)
}

/// `*` matches everything; `*/sub` every resource's subresource `sub`; otherwise exact.
fn resource_matches(resources: &[String], combined: &str, subresource: &str) -> bool {
    resources.iter().any(|r| {
        r == "*"
            || r == combined
            || (!subresource.is_empty()
                && r.strip_prefix("*/").is_some_and(|sub| sub == subresource))
    })
}

/// Exact paths, or prefixes ending in `*`.
fn url_matches(urls: &[String], path: &str) -> bool {
    urls.iter().any(|u| {
        u == "*"
            || u == path
            || u.strip_suffix('*')
                .is_some_and(|prefix| path.starts_with(prefix))
    })
}

/// The rules of `wanted` that `owner` does not cover, each broken down to one verb, group,
/// resource and name (or one verb and URL) as upstream reports them. Empty when covered.
pub fn uncovered(owner: &[Rule], wanted: &[Rule]) -> Vec<Rule> {
    let mut missing = Vec::new();
    for rule in wanted {
        for atom in breakdown(rule) {
            if !owner.iter().any(|o| covers(o, &atom)) && !missing.contains(&atom) {
                missing.push(atom);
            }
        }
    }
    missing
}

/// Splits a rule into rules with one verb, one group, one resource and at most one name.
fn breakdown(rule: &Rule) -> Vec<Rule> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                let base = Rule {
                    verbs: vec![verb.clone()],
                    api_groups: vec![group.clone()],
                    resources: vec![resource.clone()],
                    ..Default::default()
                };
                if rule.resource_names.is_empty() {
                    out.push(base);
                    continue;
                }
                for name in &rule.resource_names {
                    out.push(Rule {
                        resource_names: vec![name.clone()],
                        ..base.clone()
                    });
                }
            }
        }
        for url in &rule.non_resource_urls {
            out.push(Rule::urls(&[verb], &[url]));
        }
    }
    out
}

/// Whether `owner` grants everything the single-valued rule `atom` does.
fn covers(owner: &Rule, atom: &Rule) -> bool {
    let verbs = atom.verbs.iter().all(|v| verb_matches(&owner.verbs, v));
    if !atom.non_resource_urls.is_empty() {
        return verbs
            && atom.non_resource_urls.iter().all(|u| {
                owner.non_resource_urls.iter().any(|o| {
                    o == "*" || o == u || o.strip_suffix('*').is_some_and(|p| u.starts_with(p))
                })
            });
    }
    let groups = atom
        .api_groups
        .iter()
        .all(|g| contains_or_star(&owner.api_groups, g));
    let resources = atom
        .resources
        .iter()
        .all(|r| owner.resources.iter().any(|o| resource_covers(o, r)));
    let names = owner.resource_names.is_empty()
        || (!atom.resource_names.is_empty()
            && atom
                .resource_names
                .iter()
                .all(|n| owner.resource_names.contains(n)));
    verbs && groups && resources && names
}

/// `*` covers all, `r/*` covers every subresource of `r`, `*/s` covers every `x/s`.
fn resource_covers(owner: &str, wanted: &str) -> bool {
    if owner == "*" || owner == wanted {
        return true;
    }
    if let Some(base) = owner.strip_suffix("/*") {
        return wanted.split_once('/').is_some_and(|(r, _)| r == base);
    }
    if let Some(sub) = owner.strip_prefix("*/") {
        return wanted.split_once('/').is_some_and(|(_, s)| s == sub);
    }
    false
}
