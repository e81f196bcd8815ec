//! One CEL expression: compiled once with the environment Kubernetes policies get (the
//! standard library, optional values, the `strings`, `lists`, `math` and base64 extensions,
//! and the Kubernetes list and regex functions written here), evaluated against JSON inputs.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use cel::extractors::This;
use cel::objects::Key;
use cel::{Context, Env, ExecutionError, Program, Value};
use serde_json::Value as Json;

use crate::PolicyError;

/// The shared environment: building it registers hundreds of overloads, so it is built once.
fn env() -> Arc<Env> {
    static ENV: OnceLock<Arc<Env>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Env::stdlib();
        // Each extension registers its own names, so none can clash with another; were one
        // to fail, the environment still works without it (the tests use every extension).
        let _ = env.add_extension(cel::extensions::strings);
        let _ = env.add_extension(cel::extensions::lists);
        let _ = env.add_extension(cel::extensions::math);
        let _ = env.add_extension(cel::extensions::encoders);
        Arc::new(env)
    })
    .clone()
}

/// A compiled expression and its source (error messages quote it, as upstream's do).
#[derive(Debug)]
pub struct Expression {
    pub source: String,
    program: Program,
}

/// The named inputs of an evaluation, as JSON (`null` where upstream has null).
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub object: Json,
    pub old_object: Json,
    pub request: Json,
    pub params: Json,
    pub namespace_object: Json,
}

impl Expression {
    /// Parses `source`; the error is upstream's `compilation failed: ...` text.
    pub fn compile(source: &str) -> Result<Self, PolicyError> {
        let program = env()
            .compile(source)
            .map_err(|e| PolicyError::Compile(e.to_string().trim().to_owned()))?;
        Ok(Self {
            source: source.to_owned(),
            program,
        })
    }

    /// Evaluates with `inputs` and the already evaluated `variables` (a CEL map).
    pub fn eval(&self, inputs: &Inputs, variables: &Value) -> Result<Value, ExecutionError> {
        let mut ctx = Context::with_env(env());
        register_kubernetes_functions(&mut ctx);
        ctx.add_variable_from_value("object", to_cel(&inputs.object));
        ctx.add_variable_from_value("oldObject", to_cel(&inputs.old_object));
        ctx.add_variable_from_value("request", to_cel(&inputs.request));
        ctx.add_variable_from_value("params", to_cel(&inputs.params));
        ctx.add_variable_from_value("namespaceObject", to_cel(&inputs.namespace_object));
        ctx.add_variable_from_value("variables", variables.clone());
        self.program.execute(&ctx)
    }

    /// Upstream's text for a runtime error of this expression.
    pub fn error_text(&self, e: &ExecutionError) -> String {
        format!(
            "expression '{}' resulted in error: {}",
            self.source.trim(),
            error_message(e)
        )
    }
}

/// cel-go's wording for the errors users meet most (a missing field is `no such key: x`).
fn error_message(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        other => other.to_string(),
    }
}

/// JSON as CEL: integers are `int` (Kubernetes schemas make every integer field int64),
/// other numbers `double`, objects maps with string keys.
pub fn to_cel(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_u64() {
                Some(u) => Value::UInt(u),
                None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(map) => {
            let m: HashMap<Key, Value> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), to_cel(v)))
                .collect();
            Value::Map(m.into())
        }
    }
}

/// A CEL map of already evaluated values (for `variables`).
pub fn map_of(entries: &[(String, Value)]) -> Value {
    let m: HashMap<Key, Value> = entries
        .iter()
        .map(|(k, v)| (Key::String(Arc::new(k.clone())), v.clone()))
        .collect();
    Value::Map(m.into())
}

fn compare(a: &Value, b: &Value) -> Result<std::cmp::Ordering, ExecutionError> {
    a.partial_cmp(b)
        .ok_or_else(|| ExecutionError::ValuesNotComparable(a.clone(), b.clone()))
}

/// Kubernetes' CEL library functions that cel-rust does not have: the `lists` library's
/// `isSorted`, `sum`, `min`, `max` and the `regex` library's `find`, `findAll`.
fn register_kubernetes_functions(ctx: &mut Context<'_, '_>) {
    // `add_function` only fails on a name the environment already declares; those names are
    // fixed here and checked by the tests, so a failure leaves the crate's own function.
    let _ = ctx.add_function(
        "isSorted",
        |This(list): This<Arc<Vec<Value>>>| -> Result<bool, ExecutionError> {
            for pair in list.windows(2) {
                if compare(&pair[0], &pair[1])? == std::cmp::Ordering::Greater {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    );
    let _ = ctx.add_function(
        "sum",
        |This(list): This<Arc<Vec<Value>>>| -> Result<Value, ExecutionError> {
            let mut total = Value::Int(0);
            for (i, item) in list.iter().enumerate() {
                total = match (i, &total, item) {
                    (0, _, v) => v.clone(),
                    (_, Value::Int(a), Value::Int(b)) => a
                        .checked_add(*b)
                        .map(Value::Int)
                        .ok_or_else(|| ExecutionError::function_error("sum", "integer overflow"))?,
                    (_, Value::UInt(a), Value::UInt(b)) => a
                        .checked_add(*b)
                        .map(Value::UInt)
                        .ok_or_else(|| ExecutionError::function_error("sum", "integer overflow"))?,
                    (_, Value::Float(a), Value::Float(b)) => Value::Float(a + b),
                    (_, a, b) => {
                        return Err(ExecutionError::function_error(
                            "sum",
                            format!("cannot add {:?} and {:?}", a.type_of(), b.type_of()),
                        ));
                    }
                };
            }
            Ok(total)
        },
    );
    let extreme = |name: &'static str, want: std::cmp::Ordering| {
        move |This(list): This<Arc<Vec<Value>>>| -> Result<Value, ExecutionError> {
            let mut best: Option<&Value> = None;
            for item in list.iter() {
                best = match best {
                    Some(b) if compare(item, b)? != want => Some(b),
                    _ => Some(item),
                };
            }
            best.cloned().ok_or_else(|| {
                ExecutionError::function_error(name, format!("{name} called on empty list"))
            })
        }
    };
    let _ = ctx.add_function("min", extreme("min", std::cmp::Ordering::Less));
    let _ = ctx.add_function("max", extreme("max", std::cmp::Ordering::Greater));
    let _ = ctx.add_function(
        "find",
        |This(s): This<Arc<String>>, re: Arc<String>| -> Result<Value, ExecutionError> {
            let re =
                regex::Regex::new(&re).map_err(|e| ExecutionError::function_error("find", e))?;
            Ok(Value::String(Arc::new(
                re.find(&s)
                    .map(|m| m.as_str().to_owned())
                    .unwrap_or_default(),
            )))
        },
    );
    let _ = ctx.add_function(
        "findAll",
        |This(s): This<Arc<String>>, re: Arc<String>| -> Result<Value, ExecutionError> {
            let re =
                regex::Regex::new(&re).map_err(|e| ExecutionError::function_error("findAll", e))?;
            Ok(Value::List(Arc::new(
                re.find_iter(&s)
                    .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
                    .collect(),
            )))
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(src: &str, object: Json) -> Result<Value, String> {
        let e = Expression::compile(src).map_err(|e| e.to_string())?;
        let inputs = Inputs {
            object,
            ..Inputs::default()
        };
        e.eval(&inputs, &map_of(&[]))
            .map_err(|err| e.error_text(&err))
    }

    #[test]
    fn kubernetes_expressions_table() {
        let deploy = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "a", "image": "nginx:1.27"}, {"name": "b", "image": "busybox:latest"}]}}}});
        let cases: &[(&str, Value)] = &[
            ("object.spec.replicas <= 5", Value::Bool(true)),
            ("object.spec.replicas + 1 == 4", Value::Bool(true)),
            (
                "has(object.metadata.labels) && object.metadata.labels.app == 'web'",
                Value::Bool(true),
            ),
            ("has(object.spec.paused)", Value::Bool(false)),
            (
                "object.spec.template.spec.containers.all(c, c.image.contains(':'))",
                Value::Bool(true),
            ),
            (
                "object.spec.template.spec.containers.exists(c, c.image.endsWith(':latest'))",
                Value::Bool(true),
            ),
            (
                "object.spec.template.spec.containers.map(c, c.name).join(',')",
                Value::String(Arc::new("a,b".into())),
            ),
            (
                "object.metadata.name.matches('^w[a-z]+$')",
                Value::Bool(true),
            ),
            ("object.?spec.?paused.orValue(false)", Value::Bool(false)),
            (
                "object.metadata.name.upperAscii()",
                Value::String(Arc::new("WEB".into())),
            ),
            (
                "[3, 1, 2].sum() == 6 && [1, 2].isSorted() && ![2, 1].isSorted()",
                Value::Bool(true),
            ),
            (
                "[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3",
                Value::Bool(true),
            ),
            (
                "'a1b22'.findAll('[0-9]+') == ['1', '22'] && 'abc'.find('[0-9]') == ''",
                Value::Bool(true),
            ),
            (
                "size(object.spec.template.spec.containers) == 2",
                Value::Bool(true),
            ),
            (
                "'replicas: ' + string(object.spec.replicas)",
                Value::String(Arc::new("replicas: 3".into())),
            ),
        ];
        for (src, want) in cases {
            assert_eq!(eval(src, deploy.clone()).as_ref(), Ok(want), "{src}");
        }
    }

    /// Every function docs/security.md lists as working.
    #[test]
    fn documented_functions_work() {
        let cases = [
            "duration('1h') > duration('30m') && timestamp('2026-01-01T00:00:00Z') < timestamp('2027-01-01T00:00:00Z')",
            "'a,b'.split(',') == ['a', 'b'] && 'abc'.indexOf('c') == 2 && 'aXa'.lastIndexOf('a') == 2",
            "'abc'.charAt(1) == 'b' && ' x '.trim() == 'x' && 'abc'.substring(1) == 'bc' && 'aa'.replace('a', 'b') == 'bb'",
            "'ABC'.lowerAscii() == 'abc' && 'x=%d'.format([1]) == 'x=1' && strings.quote('a') == '\"a\"'",
            "[1, 2, 2].distinct() == [1, 2] && [[1], [2]].flatten() == [1, 2] && [1, 2].reverse() == [2, 1]",
            "[3, 1].sort() == [1, 3] && [1, 2, 3].slice(1, 2) == [2] && lists.range(2) == [0, 1]",
            "[{'n': 2}, {'n': 1}].sortBy(e, e.n)[0].n == 1",
            "math.greatest(1, 5) == 5 && math.least(1, 5) == 1 && math.abs(-2) == 2",
            "base64.encode(b'hi') == 'aGk=' && base64.decode('aGk=') == b'hi'",
            "[1, 2].exists_one(x, x > 1) && [1, 2].filter(x, x > 1) == [2] && 2 in [1, 2]",
            "int('5') == 5 && double(1) == 1.0 && string(true) == 'true' && 'ab'.matches('^a')",
        ];
        for src in cases {
            assert_eq!(eval(src, json!({})), Ok(Value::Bool(true)), "{src}");
        }
    }

    #[test]
    fn errors_table() {
        let obj = json!({"spec": {}});
        assert_eq!(
            eval("object.spec.replicas > 1", obj.clone()),
            Err(
                "expression 'object.spec.replicas > 1' resulted in error: no such key: replicas"
                    .into()
            )
        );
        assert!(
            eval("object.spec.(", obj.clone()).is_err_and(|e| e.starts_with("compilation failed"))
        );
        assert!(eval("oldObject.spec", obj).is_err());
    }
}
