//! Field ownership (`metadata.managedFields`) and server-side apply, as upstream's field manager
//! computes them: who set which field, apply's merge-and-prune, and conflicts between managers.
//!
//! Every write records ownership: a create gives its manager every field it set; an update
//! moves the fields it changed to its manager; an apply makes the applied configuration the
//! manager's whole set, removes fields it applied before and no longer does (unless another
//! manager owns them), and fails with [`Conflicts`] when it would change a value another manager
//! owns, unless forced (then ownership moves).

mod field_set;

pub use field_set::{FieldPath, FieldSet, PathElement, get, path_string, remove};

use serde_json::{Value, json};

use crate::merge_schema::MergeSchema;

/// How a manager last wrote its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Server-side apply.
    Apply,
    /// Create, update or a non-apply patch.
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "Apply",
            Self::Update => "Update",
        }
    }
}

/// Who is writing: the manager and the request's context.
#[derive(Clone, Debug)]
pub struct Writer<'a> {
    /// The field manager (`?fieldManager=` or the user agent's product name).
    pub manager: &'a str,
    /// `apiVersion` of the request.
    pub api_version: &'a str,
    /// `status`, `scale`, ... or `None` for the object itself.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time of the write.
    pub now: &'a str,
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
struct Entry {
    manager: String,
    operation: Operation,
    api_version: String,
    subresource: Option<String>,
    time: String,
    fields: FieldSet,
}

impl Entry {
    fn parse(v: &Value) -> Option<Entry> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let operation = match s("operation")?.as_str() {
            "Apply" => Operation::Apply,
            _ => Operation::Update,
        };
        Some(Entry {
            manager: s("manager").unwrap_or_default(),
            operation,
            api_version: s("apiVersion").unwrap_or_default(),
            subresource: s("subresource").filter(|x| !x.is_empty()),
            time: s("time").unwrap_or_default(),
            fields: v
                .get("fieldsV1")
                .map(FieldSet::from_fields_v1)
                .unwrap_or_default(),
        })
    }

    fn to_value(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation.as_str(),
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.fields.to_fields_v1(),
        });
        if let Some(sub) = &self.subresource {
            v["subresource"] = json!(sub);
        }
        v
    }

    fn is(&self, w: &Writer<'_>, op: Operation) -> bool {
        self.manager == w.manager
            && self.operation == op
            && self.subresource.as_deref() == w.subresource
    }
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Entry::parse).collect())
        .unwrap_or_default()
}

fn store_entries(obj: &mut Value, list: Vec<Entry>) {
    let list: Vec<Value> = list
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_value)
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// The fields of `obj` a manager can own: not identity or server-set metadata, and only the
/// part of the object the subresource writes.
fn owned_fields(obj: &Value, schema: &MergeSchema, subresource: Option<&str>) -> FieldSet {
    let mut view = obj.clone();
    if let Some(m) = view.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        match subresource {
            Some("status") => m.retain(|k, _| k == "status"),
            Some(_) => {}
            None => {
                m.remove("status");
            }
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for f in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
                "generateName",
            ] {
                meta.remove(f);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
    }
    FieldSet::of_object(&view, schema)
}

/// Paths of `set` whose values differ between `a` and `b`. A member with members below it (a
/// list item) differs only when it appears or disappears; its fields are compared on their own.
fn changed(set: &FieldSet, a: &Value, b: &Value) -> FieldSet {
    let mut out = FieldSet::default();
    for p in set.paths() {
        let (x, y) = (get(a, &p), get(b, &p));
        let container = x.is_some_and(Value::is_object) && y.is_some_and(Value::is_object);
        if !container && x != y {
            out.insert(&p);
        }
    }
    out
}

/// Records a create by `w`: it owns every field it set.
pub fn on_create(obj: &mut Value, schema: &MergeSchema, w: &Writer<'_>) {
    let fields = owned_fields(obj, schema, w.subresource);
    store_entries(
        obj,
        vec![Entry {
            manager: w.manager.to_owned(),
            operation: Operation::Update,
            api_version: w.api_version.to_owned(),
            subresource: w.subresource.map(str::to_owned),
            time: w.now.to_owned(),
            fields,
        }],
    );
}

/// Records an update from `old` to `new` by `w`: the fields it changed become its own, and no
/// one owns fields that are gone. `new`'s `managedFields` are taken as the client sent them when
/// they differ from `old`'s (a client may reset them), else `old`'s are used.
pub fn on_update(old: &Value, new: &mut Value, schema: &MergeSchema, w: &Writer<'_>) {
    let old_entries = entries(old);
    let sent = new.pointer("/metadata/managedFields").cloned();
    let mut list = if sent.is_some() && sent.as_ref() != old.pointer("/metadata/managedFields") {
        entries(new)
    } else {
        old_entries
    };
    let old_set = owned_fields(old, schema, w.subresource);
    let new_set = owned_fields(new, schema, w.subresource);
    let modified = changed(&new_set, old, new);
    let gone = old_set.difference(&new_set);
    if modified.is_empty() && gone.is_empty() {
        store_entries(new, list);
        return;
    }
    for e in &mut list {
        e.fields = e.fields.difference(&modified).difference(&gone);
    }
    match list.iter_mut().find(|e| e.is(w, Operation::Update)) {
        Some(e) => {
            e.fields = e.fields.union(&modified);
            e.time = w.now.to_owned();
            e.api_version = w.api_version.to_owned();
        }
        None => list.push(Entry {
            manager: w.manager.to_owned(),
            operation: Operation::Update,
            api_version: w.api_version.to_owned(),
            subresource: w.subresource.map(str::to_owned),
            time: w.now.to_owned(),
            fields: modified,
        }),
    }
    store_entries(new, list);
}

/// An apply would change fields other managers own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflicts {
    /// `(manager, apiVersion, path)` of each conflicting field.
    pub fields: Vec<(String, String, String)>,
}

impl Conflicts {
    /// Upstream's message: `Apply failed with 1 conflict: conflict with "kubectl" using apps/v1:
    /// .spec.replicas`.
    pub fn message(&self) -> String {
        let n = self.fields.len();
        let mut by_manager: Vec<(String, String, Vec<String>)> = Vec::new();
        for (m, v, p) in &self.fields {
            match by_manager.iter_mut().find(|(bm, bv, _)| bm == m && bv == v) {
                Some((_, _, paths)) => paths.push(p.clone()),
                None => by_manager.push((m.clone(), v.clone(), vec![p.clone()])),
            }
        }
        let parts: Vec<String> = by_manager
            .iter()
            .map(|(m, v, paths)| {
                if paths.len() == 1 {
                    format!("conflict with \"{m}\" using {v}: {}", paths[0])
                } else {
                    let list: Vec<String> = paths.iter().map(|p| format!("- {p}")).collect();
                    format!("conflicts with \"{m}\" using {v}:\n{}", list.join("\n"))
                }
            })
            .collect();
        format!(
            "Apply failed with {n} conflict{}: {}",
            if n == 1 { "" } else { "s" },
            parts.join("\n")
        )
    }
}

/// Server-side apply of `config` by `w` onto `live` (`None` when creating). `merged` is the live
/// object with the configuration merged in (strategic merge with the kind's keys), which the
/// caller computes because merging can fail on bad input. Returns the new object with its
/// `managedFields`, or the conflicts when not `force`d.
pub fn apply(
    live: Option<&Value>,
    merged: Value,
    config: &Value,
    schema: &MergeSchema,
    w: &Writer<'_>,
    force: bool,
) -> Result<Value, Conflicts> {
    let config_set = owned_fields(config, schema, w.subresource);
    let Some(live) = live else {
        let mut obj = config.clone();
        strip_managed(&mut obj);
        store_entries(&mut obj, vec![apply_entry(w, config_set)]);
        return Ok(obj);
    };
    let mut list = entries(live);
    let mut merged = merged;
    // Apply does not take managedFields from the configuration.
    if let Some(m) = merged.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
    let modified = changed(&config_set, live, &merged);
    let mut conflicts = Vec::new();
    for e in list.iter_mut().filter(|e| !e.is(w, Operation::Apply)) {
        let clash = e.fields.intersection(&modified);
        if clash.is_empty() {
            continue;
        }
        if force {
            e.fields = e.fields.difference(&clash);
        } else {
            for p in clash.paths() {
                conflicts.push((e.manager.clone(), e.api_version.clone(), path_string(&p)));
            }
        }
    }
    if !conflicts.is_empty() {
        return Err(Conflicts { fields: conflicts });
    }
    // Fields this manager applied before and no longer does are removed, unless another manager
    // also owns them (or something under them).
    let previous = list
        .iter()
        .find(|e| e.is(w, Operation::Apply))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let others: FieldSet = list
        .iter()
        .filter(|e| !e.is(w, Operation::Apply))
        .fold(FieldSet::default(), |acc, e| acc.union(&e.fields));
    for p in previous.difference(&config_set).paths() {
        if !others.covers(&p) && !config_set.covers(&p) {
            remove(&mut merged, &p);
        }
    }
    match list.iter_mut().find(|e| e.is(w, Operation::Apply)) {
        Some(e) => {
            if e.fields != config_set || !modified.is_empty() {
                e.time = w.now.to_owned();
            }
            e.fields = config_set;
            e.api_version = w.api_version.to_owned();
        }
        None => list.push(apply_entry(w, config_set)),
    }
    store_entries(&mut merged, list);
    Ok(merged)
}

fn apply_entry(w: &Writer<'_>, fields: FieldSet) -> Entry {
    Entry {
        manager: w.manager.to_owned(),
        operation: Operation::Apply,
        api_version: w.api_version.to_owned(),
        subresource: w.subresource.map(str::to_owned),
        time: w.now.to_owned(),
        fields,
    }
}

fn strip_managed(obj: &mut Value) {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("managedFields");
    }
}

/// The default manager name for a request without `fieldManager`: the user agent's product
/// (`kubectl/v1.32.0 (linux/amd64) ...` gives `kubectl`), as upstream.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    let product = user_agent.split('/').next().unwrap_or("").trim();
    let product: String = product.chars().take(128).collect();
    product
}

#[cfg(test)]
mod tests;
