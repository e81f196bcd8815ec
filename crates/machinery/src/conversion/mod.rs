//! Conversions between versions of built-in kinds that share one storage, as upstream converts
//! through its internal types: `autoscaling/v1` and `autoscaling/v2` HorizontalPodAutoscalers,
//! core/v1 and `events.k8s.io/v1` Events. Each function maps a whole object (JSON) from one
//! version to the other. Pure.

mod event;
mod hpa;

use serde_json::Value;

/// Which built-in conversion a resource needs between its served and its stored version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    /// Versions differ only in `apiVersion` (custom resources with strategy `None`).
    ApiVersionOnly,
    /// HorizontalPodAutoscaler `autoscaling/v1` ⇄ `autoscaling/v2`.
    HorizontalPodAutoscaler,
    /// Event `v1` ⇄ `events.k8s.io/v1`.
    Event,
}

/// Converts `obj` to `to` (an `apiVersion`). Objects already at `to` are left alone; objects
/// of a version the conversion does not know only get their `apiVersion` rewritten.
pub fn convert(conversion: Conversion, obj: &mut Value, to: &str) {
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if from == to || !obj.is_object() {
        return;
    }
    match (conversion, from.as_str(), to) {
        (Conversion::HorizontalPodAutoscaler, "autoscaling/v1", "autoscaling/v2") => {
            hpa::v1_to_v2(obj);
        }
        (Conversion::HorizontalPodAutoscaler, "autoscaling/v2", "autoscaling/v1") => {
            hpa::v2_to_v1(obj);
        }
        (Conversion::Event, "v1", "events.k8s.io/v1") => event::core_to_events(obj),
        (Conversion::Event, "events.k8s.io/v1", "v1") => event::events_to_core(obj),
        _ => {}
    }
    obj["apiVersion"] = Value::String(to.to_owned());
}

/// Moves `obj[from]` to `obj[to]` when present (and not null).
fn rename(obj: &mut serde_json::Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = obj.remove(from)
        && !v.is_null()
    {
        obj.insert(to.to_owned(), v);
    }
}
