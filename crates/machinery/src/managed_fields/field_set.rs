//! Sets of field paths (upstream's `fieldpath.Set`) and their `FieldsV1` JSON form.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::merge_schema::{MergeSchema, PatchStrategy};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathElement {
    /// A field of an object or a key of a map: `f:name`.
    Field(String),
    /// An item of a list of objects, by its key fields (canonical JSON): `k:{"name":"main"}`.
    Key(String),
    /// An item of a set of scalars, by value (JSON): `v:"a"`.
    Value(String),
    /// An item of a list by position: `i:0`.
    Index(usize),
}

impl PathElement {
    fn encode(&self) -> String {
        match self {
            Self::Field(n) => format!("f:{n}"),
            Self::Key(k) => format!("k:{k}"),
            Self::Value(v) => format!("v:{v}"),
            Self::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        let (tag, rest) = s.split_at_checked(2)?;
        match tag {
            "f:" => Some(Self::Field(rest.to_owned())),
            "k:" => Some(Self::Key(canonical(&serde_json::from_str(rest).ok()?))),
            "v:" => Some(Self::Value(canonical(&serde_json::from_str(rest).ok()?))),
            "i:" => rest.parse().ok().map(Self::Index),
            _ => None,
        }
    }

    /// How a path step reads in messages: `.spec`, `[name="main"]`, `[=a]`, `[0]`.
    fn display(&self) -> String {
        match self {
            Self::Field(n) => format!(".{n}"),
            Self::Key(k) => {
                let fields: Map<String, Value> = serde_json::from_str(k).unwrap_or_default();
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("[{}]", parts.join(","))
            }
            Self::Value(v) => format!("[={v}]"),
            Self::Index(i) => format!("[{i}]"),
        }
    }
}

/// JSON with object keys sorted, so equal keys compare equal as strings.
fn canonical(v: &Value) -> String {
    // serde_json's Map is a BTreeMap here (no preserve_order), so output is already sorted.
    serde_json::to_string(v).unwrap_or_default()
}

/// A path from the object root.
pub type FieldPath = Vec<PathElement>;

/// Renders a path for messages, as upstream does (`.spec.containers[name="main"].image`).
pub fn path_string(path: &[PathElement]) -> String {
    path.iter().map(PathElement::display).collect()
}

/// A tree of field paths; a node is a member when its path itself is in the set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<PathElement, FieldSet>,
}

impl FieldSet {
    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: &[PathElement]) {
        let mut node = self;
        for el in path {
            node = node.children.entry(el.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether `path` is a member.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// Whether `path` or anything under it is a member.
    pub fn covers(&self, path: &[PathElement]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    fn node(&self, path: &[PathElement]) -> Option<&FieldSet> {
        let mut node = self;
        for el in path {
            node = node.children.get(el)?;
        }
        Some(node)
    }

    /// Every member path, parents before children.
    pub fn paths(&self) -> Vec<FieldPath> {
        let mut out = Vec::new();
        self.walk(&mut Vec::new(), &mut out);
        out
    }

    fn walk(&self, prefix: &mut FieldPath, out: &mut Vec<FieldPath>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (el, child) in &self.children {
            prefix.push(el.clone());
            child.walk(prefix, out);
            prefix.pop();
        }
    }

    /// Members of `self` that are not members of `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::default();
        for p in self.paths() {
            if !other.contains(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// Members of both.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet::default();
        for p in self.paths() {
            if other.contains(&p) {
                out.insert(&p);
            }
        }
        out
    }

    /// Members of either.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        for p in other.paths() {
            out.insert(&p);
        }
        out
    }

    /// The `FieldsV1` JSON form: `{"f:spec":{"f:replicas":{}}}`, with `".": {}` marking a
    /// member that also has members below it.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && !self.children.is_empty() {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (el, child) in &self.children {
            if !child.is_empty() {
                map.insert(el.encode(), child.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// Parses `FieldsV1` JSON; unknown or malformed entries are skipped.
    pub fn from_fields_v1(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        if let Some(map) = v.as_object() {
            for (k, child) in map {
                if k == "." {
                    set.member = true;
                } else if let Some(el) = PathElement::decode(k) {
                    let mut sub = FieldSet::from_fields_v1(child);
                    if child.as_object().is_some_and(Map::is_empty) {
                        sub.member = true;
                    }
                    set.children.insert(el, sub);
                }
            }
        }
        set
    }

    /// The fields `value` sets: every leaf, and every item of a keyed list or set.
    pub fn of_object(value: &Value, schema: &MergeSchema) -> FieldSet {
        let mut set = FieldSet::default();
        collect(value, schema, &mut Vec::new(), &mut set);
        set
    }
}

fn collect(value: &Value, schema: &MergeSchema, path: &mut FieldPath, out: &mut FieldSet) {
    let Some(map) = value.as_object() else {
        out.insert(path);
        return;
    };
    if map.is_empty() && !path.is_empty() {
        out.insert(path);
        return;
    }
    for (name, v) in map {
        let meta = schema.field(name);
        path.push(PathElement::Field(name.clone()));
        match v {
            Value::Object(m) if !m.is_empty() => collect(v, &meta.schema, path, out),
            Value::Array(items) if !items.is_empty() => match (meta.merge_key, meta.strategy) {
                (Some(key), _) if items.iter().all(|i| i.get(key).is_some()) => {
                    for item in items {
                        path.push(PathElement::Key(item_key(item, key)));
                        out.insert(path);
                        collect(item, &meta.schema, path, out);
                        path.pop();
                    }
                }
                (None, PatchStrategy::Merge) if items.iter().all(|i| !i.is_object()) => {
                    for item in items {
                        path.push(PathElement::Value(canonical(item)));
                        out.insert(path);
                        path.pop();
                    }
                }
                // Any other list is atomic: owned as a whole.
                _ => out.insert(path),
            },
            _ => out.insert(path),
        }
        path.pop();
    }
}

/// The `k:` form of a list item: its merge key field and value.
pub(crate) fn item_key(item: &Value, key: &str) -> String {
    let mut m = Map::new();
    m.insert(
        key.to_owned(),
        item.get(key).cloned().unwrap_or(Value::Null),
    );
    canonical(&Value::Object(m))
}

/// The value at `path` in `value`.
pub fn get<'v>(value: &'v Value, path: &[PathElement]) -> Option<&'v Value> {
    let mut cur = value;
    for el in path {
        cur = match el {
            PathElement::Field(n) => cur.get(n)?,
            PathElement::Key(k) => {
                let want: Map<String, Value> = serde_json::from_str(k).ok()?;
                cur.as_array()?
                    .iter()
                    .find(|item| want.iter().all(|(f, v)| item.get(f) == Some(v)))?
            }
            PathElement::Value(v) => {
                let want: Value = serde_json::from_str(v).ok()?;
                cur.as_array()?.iter().find(|item| **item == want)?
            }
            PathElement::Index(i) => cur.as_array()?.get(*i)?,
        };
    }
    Some(cur)
}

/// Removes the value at `path` (a field, or a list item); absent paths are ignored.
pub fn remove(value: &mut Value, path: &[PathElement]) {
    let Some((last, parent_path)) = path.split_last() else {
        return;
    };
    let mut cur = value;
    for el in parent_path {
        let next = match el {
            PathElement::Field(n) => cur.get_mut(n),
            PathElement::Index(i) => cur.get_mut(*i),
            PathElement::Key(_) | PathElement::Value(_) => {
                let pos = cur.as_array().and_then(|items| position(items, el));
                match pos {
                    Some(p) => cur.get_mut(p),
                    None => None,
                }
            }
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    match last {
        PathElement::Field(n) => {
            if let Some(m) = cur.as_object_mut() {
                m.remove(n);
            }
        }
        el => {
            if let Some(items) = cur.as_array_mut() {
                let pos = match el {
                    PathElement::Index(i) => Some(*i).filter(|i| *i < items.len()),
                    _ => position(items, el),
                };
                if let Some(p) = pos {
                    items.remove(p);
                }
            }
        }
    }
}

fn position(items: &[Value], el: &PathElement) -> Option<usize> {
    match el {
        PathElement::Key(k) => {
            let want: Map<String, Value> = serde_json::from_str(k).ok()?;
            items
                .iter()
                .position(|item| want.iter().all(|(f, v)| item.get(f) == Some(v)))
        }
        PathElement::Value(v) => {
            let want: Value = serde_json::from_str(v).ok()?;
            items.iter().position(|item| *item == want)
        }
        PathElement::Index(i) => Some(*i),
        PathElement::Field(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_schema() -> MergeSchema {
        MergeSchema::for_kind("apps", "v1", "Deployment").expect("built-in")
    }

    #[test]
    fn object_fields_in_fields_v1_form() {
        let obj = json!({
            "spec": {
                "replicas": 2,
                "template": {"spec": {"containers": [{"name": "main", "image": "a", "args": ["x"]}]}},
            },
            "metadata": {"labels": {"app": "web"}, "finalizers": ["f1"]},
        });
        let set = FieldSet::of_object(&obj, &deployment_schema());
        assert_eq!(
            set.to_fields_v1(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"f1\"": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"main\"}": {
                        ".": {}, "f:args": {}, "f:image": {}, "f:name": {}
                    }}}},
                },
            })
        );
        assert_eq!(FieldSet::from_fields_v1(&set.to_fields_v1()), set);
    }

    #[test]
    fn set_algebra() {
        let p =
            |s: &str| -> FieldPath { s.split('.').map(|f| PathElement::Field(f.into())).collect() };
        let mut a = FieldSet::default();
        a.insert(&p("spec.replicas"));
        a.insert(&p("spec.paused"));
        let mut b = FieldSet::default();
        b.insert(&p("spec.replicas"));
        b.insert(&p("metadata.labels.app"));
        assert_eq!(a.intersection(&b).paths(), vec![p("spec.replicas")]);
        assert_eq!(a.difference(&b).paths(), vec![p("spec.paused")]);
        assert_eq!(a.union(&b).paths().len(), 3);
        assert!(a.covers(&p("spec")) && !a.contains(&p("spec")));
        assert!(FieldSet::default().is_empty());
    }

    #[test]
    fn get_and_remove_by_key_and_value() {
        let mut obj = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b"}]}, "f": ["p", "q"]});
        let key = vec![
            PathElement::Field("spec".into()),
            PathElement::Field("containers".into()),
            PathElement::Key(r#"{"name":"a"}"#.into()),
            PathElement::Field("image".into()),
        ];
        assert_eq!(get(&obj, &key), Some(&json!("x")));
        assert_eq!(path_string(&key), r#".spec.containers[name="a"].image"#);
        remove(&mut obj, &key[..3]);
        assert_eq!(obj["spec"]["containers"], json!([{"name": "b"}]));
        remove(
            &mut obj,
            &[
                PathElement::Field("f".into()),
                PathElement::Value("\"p\"".into()),
            ],
        );
        assert_eq!(obj["f"], json!(["q"]));
        // Absent paths are no-ops.
        remove(&mut obj, &key);
        remove(
            &mut obj,
            &[PathElement::Field("nope".into()), PathElement::Index(3)],
        );
    }
}
