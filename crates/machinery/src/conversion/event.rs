//! Event: core/v1 (what `kubectl describe` and most recorders write) ⇄ `events.k8s.io/v1`
//! (the newer shape: `regarding`, `note`, `reportingController`, `deprecated*` fields).

use serde_json::Value;

use super::rename;

/// core/v1 field ⇄ events.k8s.io/v1 field; the rest keep their names.
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

pub(super) fn core_to_events(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (core, events) in RENAMES {
        rename(map, core, events);
    }
    // events.k8s.io requires eventTime; upstream fills it from the old timestamps.
    if map.get("eventTime").is_none_or(Value::is_null) {
        let fallback = map
            .get("deprecatedFirstTimestamp")
            .or_else(|| map.get("deprecatedLastTimestamp"))
            .or_else(|| map.get("metadata").and_then(|m| m.get("creationTimestamp")))
            .and_then(Value::as_str)
            .map(micro_time);
        if let Some(t) = fallback {
            map.insert("eventTime".into(), Value::String(t));
        }
    }
}

pub(super) fn events_to_core(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (core, events) in RENAMES {
        rename(map, events, core);
    }
    // core/v1 readers (kubectl get events) sort and print by the old fields: keep them set.
    if map.get("involvedObject").is_none() {
        map.insert("involvedObject".into(), serde_json::json!({}));
    }
}

/// `2026-01-02T03:04:05Z` as a MicroTime (`2026-01-02T03:04:05.000000Z`).
fn micro_time(t: &str) -> String {
    match t.strip_suffix('Z') {
        Some(base) if !base.contains('.') => format!("{base}.000000Z"),
        _ => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::conversion::{Conversion, convert};

    #[test]
    fn core_event_round_trips_through_events_v1() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "ns", "creationTimestamp": "2026-12-07T10:00:00Z"},
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "ns"},
            "reason": "Scheduled", "message": "Successfully assigned ns/web to n1",
            "source": {"component": "default-scheduler"},
            "firstTimestamp": "2026-12-07T10:00:00Z", "lastTimestamp": "2026-12-07T10:00:05Z",
            "count": 2, "type": "Normal",
            "reportingComponent": "default-scheduler", "reportingInstance": "n1"
        });
        let mut ev = core.clone();
        convert(Conversion::Event, &mut ev, "events.k8s.io/v1");
        assert_eq!(ev["apiVersion"], "events.k8s.io/v1");
        assert_eq!(ev["regarding"]["name"], "web");
        assert_eq!(ev["note"], "Successfully assigned ns/web to n1");
        assert_eq!(ev["reportingController"], "default-scheduler");
        assert_eq!(ev["deprecatedCount"], 2);
        assert_eq!(ev["deprecatedSource"]["component"], "default-scheduler");
        assert_eq!(ev["eventTime"], "2026-12-07T10:00:00.000000Z");
        assert!(ev.get("message").is_none() && ev.get("involvedObject").is_none());
        let mut back = ev;
        convert(Conversion::Event, &mut back, "v1");
        let mut want = core;
        want["eventTime"] = json!("2026-12-07T10:00:00.000000Z");
        assert_eq!(back, want);
    }

    #[test]
    fn events_v1_event_reads_as_core() {
        let mut ev = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "x", "namespace": "ns"},
            "eventTime": "2026-12-07T10:00:00.123456Z",
            "reportingController": "example.com/op", "reportingInstance": "op-1",
            "action": "Reconcile", "reason": "Synced", "note": "all good", "type": "Normal",
            "regarding": {"kind": "ConfigMap", "name": "c"},
            "series": {"count": 3, "lastObservedTime": "2026-12-07T10:01:00.000000Z"}
        });
        convert(Conversion::Event, &mut ev, "v1");
        assert_eq!(ev["message"], "all good");
        assert_eq!(ev["involvedObject"]["name"], "c");
        assert_eq!(ev["reportingComponent"], "example.com/op");
        assert_eq!(ev["series"]["count"], 3);
        assert_eq!(ev["action"], "Reconcile");
        assert_eq!(ev["eventTime"], "2026-12-07T10:00:00.123456Z");
    }
}
