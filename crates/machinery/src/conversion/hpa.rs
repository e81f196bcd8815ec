//! HorizontalPodAutoscaler `autoscaling/v1` ⇄ `autoscaling/v2`. v1 knows only a CPU
//! utilization target; as upstream, what v1 cannot express (other metrics, `behavior`,
//! conditions) rides in `autoscaling.alpha.kubernetes.io/*` annotations so a v2 object read and
//! written back through v1 loses nothing.

use serde_json::{Map, Value, json};

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

/// Whether a v2 metric is the one v1 expresses: CPU as a utilization percentage.
fn cpu_utilization(metric: &Value) -> Option<i64> {
    (metric["type"] == "Resource"
        && metric["resource"]["name"] == "cpu"
        && metric["resource"]["target"]["type"] == "Utilization")
        .then(|| metric["resource"]["target"]["averageUtilization"].as_i64())
        .flatten()
}

fn current_cpu_utilization(metric: &Value) -> Option<i64> {
    (metric["type"] == "Resource" && metric["resource"]["name"] == "cpu")
        .then(|| metric["resource"]["current"]["averageUtilization"].as_i64())
        .flatten()
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    match obj["metadata"]["annotations"].as_object_mut() {
        Some(m) => m,
        None => unreachable!("annotations was just made an object"),
    }
}

fn drop_empty_annotations(obj: &mut Value) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
}

/// Parses a JSON annotation and removes it.
fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let text = obj
        .get_mut("metadata")?
        .get_mut("annotations")?
        .as_object_mut()?
        .remove(key)?;
    serde_json::from_str(text.as_str()?).ok()
}

pub(super) fn v2_to_v1(obj: &mut Value) {
    let mut spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let metrics = spec
        .as_object_mut()
        .and_then(|s| s.remove("metrics"))
        .and_then(|m| m.as_array().cloned())
        .unwrap_or_default();
    let behavior = spec.as_object_mut().and_then(|s| s.remove("behavior"));
    let cpu = metrics.iter().find_map(cpu_utilization);
    let others: Vec<&Value> = metrics
        .iter()
        .filter(|m| cpu_utilization(m).is_none())
        .collect();
    if let Some(cpu) = cpu {
        spec["targetCPUUtilizationPercentage"] = json!(cpu);
    }
    obj["spec"] = spec;
    if !others.is_empty() {
        annotations(obj).insert(METRICS.into(), json!(json!(others).to_string()));
    }
    if let Some(b) = behavior.filter(|b| !b.is_null()) {
        annotations(obj).insert(BEHAVIOR.into(), json!(b.to_string()));
    }
    if let Some(mut status) = obj.get("status").cloned().filter(Value::is_object) {
        let current = status
            .as_object_mut()
            .and_then(|s| s.remove("currentMetrics"))
            .and_then(|m| m.as_array().cloned())
            .unwrap_or_default();
        let conditions = status.as_object_mut().and_then(|s| s.remove("conditions"));
        if let Some(cpu) = current.iter().find_map(current_cpu_utilization) {
            status["currentCPUUtilizationPercentage"] = json!(cpu);
        }
        let other_current: Vec<&Value> = current
            .iter()
            .filter(|m| current_cpu_utilization(m).is_none())
            .collect();
        if status.get("desiredReplicas").is_none() {
            status["desiredReplicas"] = json!(0);
        }
        obj["status"] = status;
        if !other_current.is_empty() {
            annotations(obj).insert(
                CURRENT_METRICS.into(),
                json!(json!(other_current).to_string()),
            );
        }
        if let Some(c) = conditions.filter(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
            annotations(obj).insert(CONDITIONS.into(), json!(c.to_string()));
        }
    }
    drop_empty_annotations(obj);
}

pub(super) fn v1_to_v2(obj: &mut Value) {
    let extra_metrics = take_annotation(obj, METRICS);
    let behavior = take_annotation(obj, BEHAVIOR);
    let conditions = take_annotation(obj, CONDITIONS);
    let extra_current = take_annotation(obj, CURRENT_METRICS);
    drop_empty_annotations(obj);

    let mut spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
    let cpu = spec
        .as_object_mut()
        .and_then(|s| s.remove("targetCPUUtilizationPercentage"))
        .filter(|v| !v.is_null());
    let mut metrics = vec![];
    if let Some(cpu) = cpu {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": cpu}}}));
    }
    if let Some(Value::Array(extra)) = extra_metrics {
        metrics.extend(extra);
    }
    if !metrics.is_empty() {
        spec["metrics"] = json!(metrics);
    }
    if let Some(b) = behavior {
        spec["behavior"] = b;
    }
    obj["spec"] = spec;

    if let Some(mut status) = obj.get("status").cloned().filter(Value::is_object) {
        let cpu = status
            .as_object_mut()
            .and_then(|s| s.remove("currentCPUUtilizationPercentage"))
            .filter(|v| !v.is_null());
        let mut current = vec![];
        if let Some(cpu) = cpu {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": cpu}}}));
        }
        if let Some(Value::Array(extra)) = extra_current {
            current.extend(extra);
        }
        if !current.is_empty() {
            status["currentMetrics"] = json!(current);
        }
        if let Some(c) = conditions {
            status["conditions"] = c;
        }
        obj["status"] = status;
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::conversion::{Conversion, convert};

    fn v2() -> serde_json::Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "ns"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}}
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 90, "averageValue": "90m"}}}
                ],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}]
            }
        })
    }

    #[test]
    fn v2_reads_as_v1_with_cpu_target_and_keeps_the_rest_in_annotations() {
        let mut v1 = v2();
        convert(
            Conversion::HorizontalPodAutoscaler,
            &mut v1,
            "autoscaling/v1",
        );
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert!(v1["spec"].get("metrics").is_none());
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 90);
        let ann = &v1["metadata"]["annotations"];
        assert!(
            ann["autoscaling.alpha.kubernetes.io/metrics"]
                .as_str()
                .is_some_and(|s| s.contains("memory"))
        );
        assert!(ann["autoscaling.alpha.kubernetes.io/behavior"].is_string());
        assert!(ann["autoscaling.alpha.kubernetes.io/conditions"].is_string());
    }

    #[test]
    fn v2_round_trips_through_v1() {
        let mut obj = v2();
        convert(
            Conversion::HorizontalPodAutoscaler,
            &mut obj,
            "autoscaling/v1",
        );
        convert(
            Conversion::HorizontalPodAutoscaler,
            &mut obj,
            "autoscaling/v2",
        );
        let mut want = v2();
        // v1 keeps only the CPU utilization of the current metrics.
        want["status"]["currentMetrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 90}}}]);
        assert_eq!(obj, want);
    }

    #[test]
    fn kubectl_autoscale_v1_object_reads_as_v2() {
        let mut obj = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}
        });
        convert(
            Conversion::HorizontalPodAutoscaler,
            &mut obj,
            "autoscaling/v2",
        );
        assert_eq!(
            obj["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            50
        );
        assert!(obj["spec"].get("targetCPUUtilizationPercentage").is_none());
        assert!(obj["metadata"].get("annotations").is_none());
    }
}
