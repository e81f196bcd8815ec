//! The scheduler's configuration file, shaped like upstream's `KubeSchedulerConfiguration`
//! (`kubescheduler.config.k8s.io/v1`): profiles named by `schedulerName`, plugins enabled and
//! disabled per extension point (or `multiPoint`) with score weights, and `pluginConfig` args.
//! Without a file the one profile is upstream's `default-scheduler`.

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::SchedulerError;
use crate::framework::{Plugin, Point};
use crate::plugins::{BUILT_IN, REGISTRY};

/// A plugin's `pluginConfig` args (JSON `null` when there are none).
pub type PluginArgs = Value;

/// The default profile's plugins and score weights, in upstream's order.
pub const DEFAULT_PLUGINS: &[(&str, i64)] = &[
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("VolumeBinding", 0),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
];

pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct File {
    #[serde(default)]
    percentage_of_nodes_to_score: Option<u32>,
    #[serde(default)]
    profiles: Vec<ProfileFile>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ProfileFile {
    scheduler_name: Option<String>,
    #[serde(default)]
    plugins: HashMap<String, PluginSet>,
    #[serde(default)]
    plugin_config: Vec<PluginConfig>,
}

#[derive(Debug, Deserialize, Default)]
struct PluginSet {
    #[serde(default)]
    enabled: Vec<PluginRef>,
    #[serde(default)]
    disabled: Vec<PluginRef>,
}

#[derive(Debug, Deserialize)]
struct PluginRef {
    name: String,
    #[serde(default)]
    weight: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct PluginConfig {
    name: String,
    #[serde(default)]
    args: Value,
}

/// One configured plugin in a profile.
#[derive(Clone)]
pub struct Enabled {
    pub plugin: Arc<dyn Plugin>,
    /// Extension points it runs at in this profile.
    pub points: Vec<Point>,
    pub weight: i64,
}

/// A scheduling profile: the plugins pods with this `schedulerName` go through.
#[derive(Clone)]
pub struct Profile {
    pub scheduler_name: String,
    pub plugins: Vec<Enabled>,
    /// Whether DefaultPreemption is enabled (PostFilter).
    pub preemption: bool,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<(&str, i64)> = self
            .plugins
            .iter()
            .map(|p| (p.plugin.name(), p.weight))
            .collect();
        f.debug_struct("Profile")
            .field("scheduler_name", &self.scheduler_name)
            .field("plugins", &names)
            .field("preemption", &self.preemption)
            .finish()
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub profiles: Vec<Profile>,
    /// Percentage of nodes to find feasible before scoring; 0 means upstream's adaptive rule.
    pub percentage_of_nodes_to_score: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_yaml("{}").unwrap_or_else(|_| Config {
            profiles: Vec::new(),
            percentage_of_nodes_to_score: 0,
        })
    }
}

impl Config {
    /// Parses a configuration file; an empty file or no profiles means the default profile.
    pub fn from_yaml(text: &str) -> Result<Self, SchedulerError> {
        let file: File = if text.trim().is_empty() {
            File::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| SchedulerError::Config(e.to_string()))?
        };
        let mut profiles_in = file.profiles;
        if profiles_in.is_empty() {
            profiles_in.push(ProfileFile::default());
        }
        let mut profiles = Vec::new();
        for p in profiles_in {
            let profile = build_profile(p)?;
            if profiles
                .iter()
                .any(|q: &Profile| q.scheduler_name == profile.scheduler_name)
            {
                return Err(SchedulerError::Config(format!(
                    "duplicate profile {}",
                    profile.scheduler_name
                )));
            }
            profiles.push(profile);
        }
        Ok(Config {
            profiles,
            percentage_of_nodes_to_score: file.percentage_of_nodes_to_score.unwrap_or(0).min(100),
        })
    }

    /// Reads and parses a configuration file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, SchedulerError> {
        let text = std::fs::read_to_string(path).map_err(|source| SchedulerError::ReadConfig {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_yaml(&text)
    }

    /// The profile for a pod's `schedulerName`.
    pub fn profile(&self, scheduler_name: &str) -> Option<&Profile> {
        self.profiles
            .iter()
            .find(|p| p.scheduler_name == scheduler_name)
    }
}

fn known(name: &str) -> bool {
    REGISTRY.iter().any(|(n, _)| *n == name) || BUILT_IN.contains(&name)
}

fn build_profile(file: ProfileFile) -> Result<Profile, SchedulerError> {
    let name = file
        .scheduler_name
        .unwrap_or_else(|| DEFAULT_SCHEDULER_NAME.to_owned());
    // Start from the defaults at every point, then apply multiPoint, then per-point sets.
    let mut list: Vec<(String, i64)> = DEFAULT_PLUGINS
        .iter()
        .map(|(n, w)| ((*n).to_owned(), *w))
        .collect();
    let mut preemption = true;
    let mut disabled_at: HashMap<String, Vec<Point>> = HashMap::new();
    for (key, set) in &file.plugins {
        let point = if key == "multiPoint" {
            None
        } else {
            Some(
                Point::ALL
                    .into_iter()
                    .find(|p| p.config_key() == key)
                    .ok_or_else(|| {
                        SchedulerError::Config(format!(
                            "profile {name}: unknown extension point {key}"
                        ))
                    })?,
            )
        };
        for d in &set.disabled {
            if d.name != "*" && !known(&d.name) {
                return Err(SchedulerError::Config(format!(
                    "profile {name}: unknown plugin {}",
                    d.name
                )));
            }
            let hit = |n: &str| d.name == "*" || d.name == n;
            match point {
                None => {
                    list.retain(|(n, _)| !hit(n));
                    if hit("DefaultPreemption") {
                        preemption = false;
                    }
                }
                Some(Point::PostFilter) if hit("DefaultPreemption") => preemption = false,
                Some(pt) => {
                    for (n, _) in &list {
                        if hit(n) {
                            disabled_at.entry(n.clone()).or_default().push(pt);
                        }
                    }
                }
            }
        }
        for e in &set.enabled {
            if !known(&e.name) {
                return Err(SchedulerError::Config(format!(
                    "profile {name}: unknown plugin {}",
                    e.name
                )));
            }
            if e.name == "DefaultPreemption" {
                preemption = true;
                continue;
            }
            if BUILT_IN.contains(&e.name.as_str()) {
                continue;
            }
            if let Some(pt) = point
                && let Some(v) = disabled_at.get_mut(&e.name)
            {
                v.retain(|p| *p != pt);
            }
            match list.iter_mut().find(|(n, _)| *n == e.name) {
                Some(entry) => {
                    if let Some(w) = e.weight {
                        entry.1 = w;
                    }
                }
                None => list.push((e.name.clone(), e.weight.unwrap_or(1))),
            }
        }
    }
    let args: HashMap<&str, &Value> = file
        .plugin_config
        .iter()
        .map(|c| (c.name.as_str(), &c.args))
        .collect();
    for (plugin, a) in &args {
        validate_args(plugin, a)
            .map_err(|e| SchedulerError::Config(format!("profile {name}: {e}")))?;
    }
    let mut plugins = Vec::new();
    for (n, weight) in list {
        let Some((_, factory)) = REGISTRY.iter().find(|(r, _)| *r == n) else {
            continue;
        };
        let plugin = factory(args.get(n.as_str()).copied().unwrap_or(&Value::Null));
        let off = disabled_at.get(&n).cloned().unwrap_or_default();
        let points: Vec<Point> = plugin
            .points()
            .iter()
            .copied()
            .filter(|p| !off.contains(p))
            .collect();
        plugins.push(Enabled {
            plugin,
            points,
            weight: weight.max(0),
        });
    }
    Ok(Profile {
        scheduler_name: name,
        plugins,
        preemption,
    })
}

/// Rejects a plugin's args as upstream's validation does (the message names the field).
fn validate_args(plugin: &str, args: &Value) -> Result<(), String> {
    if plugin == "InterPodAffinity"
        && let Some(w) = args.get("hardPodAffinityWeight")
        && !w.as_i64().is_some_and(|w| (0..=100).contains(&w))
    {
        return Err(format!(
            "InterPodAffinity: hardPodAffinityWeight: Invalid value: {w}: not in valid range [0-100]"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Summary = (String, Vec<(&'static str, i64)>, bool);

    fn summary(c: &Config) -> Vec<Summary> {
        c.profiles
            .iter()
            .map(|p| {
                let plugins = p
                    .plugins
                    .iter()
                    .filter(|e| e.points.contains(&Point::Score))
                    .map(|e| (e.plugin.name(), e.weight))
                    .collect();
                (p.scheduler_name.clone(), plugins, p.preemption)
            })
            .collect()
    }

    #[test]
    fn default_profile() {
        let c = Config::default();
        assert_eq!(c.profiles.len(), 1);
        assert_eq!(c.profiles[0].scheduler_name, "default-scheduler");
        assert_eq!(c.profiles[0].plugins.len(), DEFAULT_PLUGINS.len());
        assert!(c.profiles[0].preemption);
        assert_eq!(
            summary(&c)[0].1,
            vec![
                ("TaintToleration", 3),
                ("NodeAffinity", 2),
                ("NodeResourcesFit", 1),
                ("PodTopologySpread", 2),
                ("InterPodAffinity", 2),
                ("NodeResourcesBalancedAllocation", 1),
                ("ImageLocality", 1),
            ]
        );
    }

    #[test]
    fn profiles_table() {
        let yaml = r#"
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  plugins:
    multiPoint:
      disabled: [{name: ImageLocality}, {name: DefaultPreemption}]
    score:
      disabled: [{name: "*"}]
      enabled: [{name: NodeResourcesFit, weight: 5}]
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
"#;
        let c = Config::from_yaml(yaml).expect("config");
        let s = summary(&c);
        assert_eq!(
            s[1],
            (
                "bin-packing".to_owned(),
                vec![("NodeResourcesFit", 5)],
                false
            )
        );
        // Filters are untouched by the score-only disable.
        let bp = c.profile("bin-packing").expect("profile");
        assert!(
            bp.plugins
                .iter()
                .any(|e| e.plugin.name() == "TaintToleration" && e.points.contains(&Point::Filter))
        );
        assert!(
            !bp.plugins
                .iter()
                .any(|e| e.plugin.name() == "ImageLocality")
        );
    }

    #[test]
    fn errors_table() {
        let cases = vec![
            (
                "unknown plugin",
                "profiles: [{schedulerName: x, plugins: {score: {enabled: [{name: Nope}]}}}]",
                "unknown plugin Nope",
            ),
            (
                "unknown point",
                "profiles: [{plugins: {sideways: {enabled: []}}}]",
                "unknown extension point sideways",
            ),
            (
                "duplicate",
                "profiles: [{schedulerName: a}, {schedulerName: a}]",
                "duplicate profile a",
            ),
            (
                "hard weight out of range",
                "profiles: [{pluginConfig: [{name: InterPodAffinity, args: {hardPodAffinityWeight: 101}}]}]",
                "hardPodAffinityWeight: Invalid value: 101: not in valid range [0-100]",
            ),
            (
                "hard weight not a number",
                "profiles: [{pluginConfig: [{name: InterPodAffinity, args: {hardPodAffinityWeight: a}}]}]",
                "hardPodAffinityWeight: Invalid value: \"a\"",
            ),
            ("not yaml", "profiles: [", ""),
        ];
        for (name, yaml, want) in cases {
            let e = Config::from_yaml(yaml).expect_err(name).to_string();
            assert!(e.contains(want), "{name}: {e}");
        }
    }
}
