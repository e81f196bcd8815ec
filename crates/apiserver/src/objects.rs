//! Object metadata rules the API server applies on every write: names, namespaces, uid,
//! timestamps, generation and resourceVersion preconditions. Pure functions over JSON.

use serde_json::{Map, Value, json};

use crate::status::{ApiError, Cause};

/// What the handlers know about the resource being written.
#[derive(Clone, Debug)]
pub struct Kind<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub resource: &'a str,
    pub namespaced: bool,
    /// Whether the resource has a `status` subresource (then the main resource ignores status
    /// changes and `metadata.generation` tracks spec changes).
    pub has_status: bool,
}

impl Kind<'_> {
    /// `apiVersion` as written in objects.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub use rudder_machinery::timestamp::{format_rfc3339 as rfc3339, now_rfc3339};

/// A random version-4 UUID.
pub fn new_uid() -> String {
    let b: [u8; 16] = rand::random();
    let mut b = b;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// Five random characters from the alphabet upstream uses for `generateName` suffixes.
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object is not a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// A string field of `metadata`, or "".
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Checks `apiVersion`/`kind` of a body against the endpoint, filling them in when absent.
pub fn check_type(obj: &mut Value, kind: &Kind<'_>) -> Result<(), ApiError> {
    let api_version = kind.api_version();
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the object is not a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), json!(api_version));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), json!(kind.kind));
        }
        Some(k) if k == kind.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                kind.kind
            )));
        }
    }
    Ok(())
}

/// Makes the path's namespace the object's, rejecting a different one (upstream's rule).
pub fn check_namespace(
    obj: &mut Value,
    kind: &Kind<'_>,
    path_ns: Option<&str>,
) -> Result<(), ApiError> {
    let meta = meta_mut(obj)?;
    match (kind.namespaced, path_ns) {
        (true, Some(ns)) => match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), json!(ns));
                Ok(())
            }
            Some(o) if o == ns => Ok(()),
            Some(_) => Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            )),
        },
        (true, None) => Err(ApiError::bad_request(
            "a namespace is required for this resource",
        )),
        (false, _) => {
            meta.remove("namespace");
            Ok(())
        }
    }
}

/// Metadata for a new object: name (or generated name), uid, timestamps, generation.
/// Returns the final name.
pub fn prepare_create(obj: &mut Value, kind: &Kind<'_>) -> Result<String, ApiError> {
    let meta = meta_mut(obj)?;
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    meta.remove("resourceVersion");
    let name = match meta.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_owned(),
        _ => match meta.get("generateName").and_then(Value::as_str) {
            Some(g) if !g.is_empty() => {
                // Upstream truncates the base so the result fits 63 characters.
                let base: String = g.chars().take(58).collect();
                let name = format!("{base}{}", name_suffix());
                meta.insert("name".into(), json!(name));
                name
            }
            _ => {
                return Err(ApiError::invalid(
                    kind.group,
                    kind.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired".into(),
                        message: "Required value: name or generateName is required".into(),
                        field: "metadata.name".into(),
                    }],
                ));
            }
        },
    };
    meta.insert("uid".into(), json!(new_uid()));
    meta.insert("creationTimestamp".into(), json!(now_rfc3339()));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    if (kind.has_status || obj.get("spec").is_some())
        && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
    {
        meta.insert("generation".into(), json!(1));
    }
    Ok(name)
}

/// Outcome of checking an update's resourceVersion against the stored object.
#[derive(Debug, PartialEq, Eq)]
pub enum Precondition {
    /// The body names no resourceVersion: update whatever is stored (upstream allows this).
    Unconditional,
    /// The body's resourceVersion matches.
    Matches,
    /// The body's resourceVersion is stale.
    Stale,
}

/// Compares the body's resourceVersion with the stored one.
pub fn precondition(new: &Value, stored_rev: u64) -> Result<Precondition, ApiError> {
    match meta_str(new, "resourceVersion") {
        "" => Ok(Precondition::Unconditional),
        rv => match rv.parse::<u64>() {
            Ok(r) if r == stored_rev => Ok(Precondition::Matches),
            Ok(_) => Ok(Precondition::Stale),
            Err(_) => Err(ApiError::bad_request(format!(
                "invalid resourceVersion {rv:?}"
            ))),
        },
    }
}

/// A namespace's `spec.finalizers` (what must finish before a deleted namespace goes).
pub fn spec_finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

/// Merges an update into the stored object according to the subresource being written, and
/// carries over what clients may not change. `old` is the stored object.
/// `old` with the ephemeral containers of `new`, which must keep every existing one unchanged
/// and give the new ones a unique name and an image (upstream's rules for the subresource).
fn ephemeral_containers(new: &Value, old: &Value) -> Result<Value, ApiError> {
    let list = |v: &Value, field: &str| -> Vec<Value> {
        v.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let name_of = |c: &Value| {
        c.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let invalid = |field: &str, message: String| {
        ApiError::invalid(
            "",
            "Pod",
            meta_str(old, "name"),
            vec![crate::status::Cause {
                reason: "FieldValueInvalid".into(),
                message,
                field: field.into(),
            }],
        )
    };
    let wanted = list(new, "ephemeralContainers");
    for existing in list(old, "ephemeralContainers") {
        let name = name_of(&existing);
        match wanted.iter().find(|c| name_of(c) == name) {
            Some(c) if *c == existing => {}
            _ => {
                return Err(invalid(
                    "spec.ephemeralContainers",
                    format!(
                        "Forbidden: existing ephemeral containers \"{name}\" may not be removed or changed"
                    ),
                ));
            }
        }
    }
    let mut names: Vec<String> = list(old, "containers")
        .iter()
        .chain(list(old, "initContainers").iter())
        .map(name_of)
        .collect();
    for (i, c) in wanted.iter().enumerate() {
        let name = name_of(c);
        if name.is_empty() || names.contains(&name) {
            return Err(invalid(
                &format!("spec.ephemeralContainers[{i}].name"),
                format!("Duplicate value or empty name: \"{name}\""),
            ));
        }
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            return Err(invalid(
                &format!("spec.ephemeralContainers[{i}].image"),
                "Required value".into(),
            ));
        }
        names.push(name);
    }
    let mut merged = old.clone();
    if wanted.is_empty() {
        if let Some(spec) = merged.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("ephemeralContainers");
        }
    } else {
        merged["spec"]["ephemeralContainers"] = Value::Array(wanted);
    }
    Ok(merged)
}

pub fn prepare_update(
    new: &mut Value,
    old: &Value,
    kind: &Kind<'_>,
    subresource: Option<&str>,
) -> Result<(), ApiError> {
    let uid = meta_str(new, "uid");
    {
        if !uid.is_empty() && uid != meta_str(old, "uid") {
            return Err(ApiError::conflict(
                kind.group,
                kind.resource,
                meta_str(old, "name"),
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(old, "uid")
                ),
            ));
        }
    }
    match subresource {
        Some("status") => {
            // Only status changes through /status; everything else stays as stored, except
            // that the caller's metadata labels/annotations are ignored too (upstream resets
            // metadata apart from what status writers may set).
            let status = new.get("status").cloned();
            let mut merged = old.clone();
            match status {
                Some(s) => merged["status"] = s,
                None => {
                    if let Some(m) = merged.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            *new = merged;
        }
        // Only spec.finalizers changes through a namespace's /finalize.
        Some("finalize") => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or_else(|| json!([]));
            let mut merged = old.clone();
            merged["spec"]["finalizers"] = finalizers;
            *new = merged;
        }
        // Only a pod's spec.ephemeralContainers changes through /ephemeralcontainers, and only
        // by additions (`kubectl debug`).
        Some("ephemeralcontainers") => {
            let merged = ephemeral_containers(new, old)?;
            *new = merged;
        }
        // Internal writers that set spec and status together (pod binding).
        Some("binding") => carry_immutable_metadata(new, old)?,
        _ => {
            if kind.has_status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
            }
            carry_immutable_metadata(new, old)?;
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if generation > 0 {
                let changed = spec_of(new) != spec_of(old);
                let next = if changed { generation + 1 } else { generation };
                meta_mut(new)?.insert("generation".into(), json!(next));
            }
        }
    }
    Ok(())
}

/// Everything but metadata and status: what `generation` tracks.
fn spec_of(obj: &Value) -> Map<String, Value> {
    obj.as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "metadata" | "status" | "apiVersion" | "kind")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn carry_immutable_metadata(new: &mut Value, old: &Value) -> Result<(), ApiError> {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let meta = meta_mut(new)?;
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(field) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
    meta.remove("resourceVersion");
    meta.remove("selfLink");
    Ok(())
}

/// The stored bytes of `key` as an object at revision `rev` (its resourceVersion set), without
/// building the cache form an update does not need.
pub fn from_stored(key: &str, stored: &[u8], rev: rudder_store::Revision) -> Result<Value, String> {
    if let Some(why) = crate::encryption::undecryptable(key, stored) {
        return Err(why);
    }
    let mut value: Value = serde_json::from_slice(stored)
        .map_err(|e| format!("stored object {key} is not JSON: {e}"))?;
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
    Ok(value)
}

/// The bytes stored for an object: its JSON without `resourceVersion` (the store's revision
/// is the resourceVersion).
pub fn to_stored(obj: &Value) -> Result<Vec<u8>, ApiError> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
    serde_json::to_vec(&obj).map_err(|e| ApiError::internal(format!("encoding object: {e}")))
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .map(strings)
        .unwrap_or_default()
}

/// The strings of a JSON array (anything else reads as empty).
pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the object is marked for deletion.
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod_kind() -> Kind<'static> {
        Kind {
            group: "",
            version: "v1",
            kind: "Pod",
            resource: "pods",
            namespaced: true,
            has_status: true,
        }
    }

    #[test]
    fn rfc3339_table() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_795_392_000, "2026-11-23T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
        ];
        for (secs, want) in cases {
            assert_eq!(rfc3339(secs), want);
        }
    }

    #[test]
    fn uid_and_suffix_shapes() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert_ne!(uid, new_uid());
        let s = name_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.chars().all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)));
    }

    #[test]
    fn create_metadata_table() {
        let k = pod_kind();
        let mut named = json!({"metadata": {"name": "web"}, "spec": {}});
        assert_eq!(prepare_create(&mut named, &k).expect("ok"), "web");
        assert!(named["metadata"]["uid"].is_string());
        assert_eq!(named["metadata"]["generation"], 1);
        let mut generated = json!({"metadata": {"generateName": "web-"}});
        let name = prepare_create(&mut generated, &k).expect("ok");
        assert!(name.starts_with("web-") && name.len() == 9);
        let mut nameless = json!({"metadata": {}});
        assert_eq!(
            prepare_create(&mut nameless, &k).expect_err("no name").code,
            422
        );
        let mut with_rv = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        assert_eq!(prepare_create(&mut with_rv, &k).expect_err("rv").code, 400);
    }

    #[test]
    fn namespace_rules_table() {
        let k = pod_kind();
        let mut o = json!({"metadata": {"name": "a"}});
        check_namespace(&mut o, &k, Some("ns")).expect("filled");
        assert_eq!(o["metadata"]["namespace"], "ns");
        let mut o = json!({"metadata": {"name": "a", "namespace": "other"}});
        assert_eq!(
            check_namespace(&mut o, &k, Some("ns"))
                .expect_err("mismatch")
                .code,
            400
        );
        let node = Kind {
            namespaced: false,
            ..pod_kind()
        };
        let mut o = json!({"metadata": {"name": "a", "namespace": "x"}});
        check_namespace(&mut o, &node, None).expect("cluster scoped");
        assert!(o["metadata"].get("namespace").is_none());
    }

    #[test]
    fn type_checks_table() {
        let k = pod_kind();
        let mut o = json!({});
        check_type(&mut o, &k).expect("filled in");
        assert_eq!(
            (o["apiVersion"].as_str(), o["kind"].as_str()),
            (Some("v1"), Some("Pod"))
        );
        let mut o = json!({"apiVersion": "apps/v1", "kind": "Pod"});
        assert_eq!(check_type(&mut o, &k).expect_err("wrong version").code, 400);
        let mut o = json!({"apiVersion": "v1", "kind": "Service"});
        assert_eq!(check_type(&mut o, &k).expect_err("wrong kind").code, 400);
    }

    #[test]
    fn update_rules() {
        let k = pod_kind();
        let old = json!({"metadata": {"name": "a", "uid": "u1", "generation": 1, "creationTimestamp": "t"}, "spec": {"x": 1}, "status": {"phase": "Running"}});
        // Main resource: status is kept, generation bumps on spec change.
        let mut new =
            json!({"metadata": {"name": "a"}, "spec": {"x": 2}, "status": {"phase": "Failed"}});
        prepare_update(&mut new, &old, &k, None).expect("update");
        assert_eq!(new["status"]["phase"], "Running");
        assert_eq!(new["metadata"]["generation"], 2);
        assert_eq!(new["metadata"]["uid"], "u1");
        // Label-only change keeps generation.
        let mut new = json!({"metadata": {"name": "a", "labels": {"a": "b"}}, "spec": {"x": 1}});
        prepare_update(&mut new, &old, &k, None).expect("update");
        assert_eq!(new["metadata"]["generation"], 1);
        // Status subresource: only status changes.
        let mut new =
            json!({"metadata": {"name": "a"}, "spec": {"x": 99}, "status": {"phase": "Succeeded"}});
        prepare_update(&mut new, &old, &k, Some("status")).expect("status");
        assert_eq!(new["spec"]["x"], 1);
        assert_eq!(new["status"]["phase"], "Succeeded");
        // A different uid is a conflict.
        let mut new = json!({"metadata": {"name": "a", "uid": "other"}});
        assert_eq!(
            prepare_update(&mut new, &old, &k, None)
                .expect_err("uid")
                .code,
            409
        );
    }

    #[test]
    fn preconditions_table() {
        let cases = [
            ("", Precondition::Unconditional),
            ("7", Precondition::Matches),
            ("6", Precondition::Stale),
        ];
        for (rv, want) in cases {
            let o = json!({"metadata": {"resourceVersion": rv}});
            assert_eq!(precondition(&o, 7).expect("ok"), want, "{rv}");
        }
        assert!(precondition(&json!({"metadata": {"resourceVersion": "x"}}), 7).is_err());
    }
}
