//! Pod priority: `spec.priority` when the API server resolved it at admission, otherwise from
//! `priorityClassName`, the built-in system classes, or the global default class.
//!
//! rudder's API server does not resolve PriorityClasses at admission yet, so the scheduler does
//! it here; once admission does, `spec.priority` wins and this is a no-op.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::scheduling::v1::PriorityClass;

/// `system-cluster-critical`'s value, fixed by upstream.
pub const SYSTEM_CLUSTER_CRITICAL: i32 = 2_000_000_000;
/// `system-node-critical`'s value, fixed by upstream.
pub const SYSTEM_NODE_CRITICAL: i32 = 2_000_001_000;

/// The PriorityClasses the scheduler knows.
#[derive(Debug, Clone, Default)]
pub struct Classes {
    values: HashMap<String, i32>,
    /// Name of the class with `globalDefault: true`, if any.
    global_default: Option<String>,
}

impl Classes {
    pub fn upsert(&mut self, class: &PriorityClass) {
        let name = class.metadata.name.clone().unwrap_or_default();
        if class.global_default == Some(true) {
            self.global_default = Some(name.clone());
        } else if self.global_default.as_deref() == Some(name.as_str()) {
            self.global_default = None;
        }
        self.values.insert(name, class.value.unwrap_or(0));
    }

    pub fn remove(&mut self, name: &str) {
        self.values.remove(name);
        if self.global_default.as_deref() == Some(name) {
            self.global_default = None;
        }
    }

    fn value(&self, name: &str) -> Option<i32> {
        match name {
            "system-cluster-critical" => Some(SYSTEM_CLUSTER_CRITICAL),
            "system-node-critical" => Some(SYSTEM_NODE_CRITICAL),
            other => self.values.get(other).copied(),
        }
    }

    /// The pod's priority: `spec.priority`, else its class's value, else the global default's,
    /// else 0. A class that does not exist counts as 0 (admission would have refused the pod).
    pub fn resolve(&self, pod: &Pod) -> i32 {
        let spec = pod.spec.as_ref();
        if let Some(p) = spec.and_then(|s| s.priority) {
            return p;
        }
        match spec
            .and_then(|s| s.priority_class_name.as_deref())
            .filter(|n| !n.is_empty())
        {
            Some(name) => self.value(name).unwrap_or(0),
            None => self
                .global_default
                .as_deref()
                .and_then(|n| self.value(n))
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table() {
        let class = |name: &str, value: i32, default: bool| -> PriorityClass {
            serde_json::from_value(
                json!({"metadata": {"name": name}, "value": value, "globalDefault": default}),
            )
            .expect("class")
        };
        let mut classes = Classes::default();
        classes.upsert(&class("high", 1000, false));
        let mut with_default = classes.clone();
        with_default.upsert(&class("batch", -5, true));
        let pod = |spec: serde_json::Value| -> Pod {
            serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).expect("pod")
        };
        let c = json!([{"name": "c"}]);
        let cases = vec![
            ("nothing", &classes, pod(json!({"containers": c})), 0),
            (
                "spec.priority wins",
                &classes,
                pod(json!({"containers": c, "priority": 7, "priorityClassName": "high"})),
                7,
            ),
            (
                "class",
                &classes,
                pod(json!({"containers": c, "priorityClassName": "high"})),
                1000,
            ),
            (
                "unknown class",
                &classes,
                pod(json!({"containers": c, "priorityClassName": "nope"})),
                0,
            ),
            (
                "system-cluster-critical",
                &classes,
                pod(json!({"containers": c, "priorityClassName": "system-cluster-critical"})),
                SYSTEM_CLUSTER_CRITICAL,
            ),
            (
                "system-node-critical",
                &classes,
                pod(json!({"containers": c, "priorityClassName": "system-node-critical"})),
                SYSTEM_NODE_CRITICAL,
            ),
            (
                "global default",
                &with_default,
                pod(json!({"containers": c})),
                -5,
            ),
        ];
        for (name, classes, p, want) in cases {
            assert_eq!(classes.resolve(&p), want, "{name}");
        }
    }
}
