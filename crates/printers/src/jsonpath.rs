//! JSONPath as CRD printer columns use it: the expression language of client-go's `jsonpath`
//! package (one expression, no templates), with missing keys allowed.
//!
//! Supported: `.field`, `['field.with.dots']`, `\.`-escaped dots, `.*`, `..` (recursive
//! descent), `[n]` (negative counts from the end), `[a:b:c]`, `[*]`, and filters
//! `[?(@.path)]` / `[?(@.path OP literal)]` with `==`, `!=`, `<`, `<=`, `>`, `>=`.
//! Evaluation returns every match; errors are what client-go reports as errors (indexing
//! something that is not an array, out-of-range indices, comparing values of different types).

use serde_json::Value;

/// Why a path does not parse or evaluate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The expression is malformed.
    #[error("invalid JSONPath {path:?}: {reason}")]
    Parse {
        /// The expression.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The expression does not apply to the value.
    #[error("{0}")]
    Eval(String),
}

/// A parsed JSONPath expression.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Field(String),
    /// `.*`: every value of an object, every element of an array.
    Wildcard,
    /// `..`: the value and all its descendants.
    Recursive,
    /// `[n]`, `[a:b:c]` and `[*]`; `index` marks the `[n]` form.
    Slice {
        start: Option<i64>,
        end: Option<i64>,
        step: Option<i64>,
        index: bool,
    },
    Filter(Box<Filter>),
}

#[derive(Clone, Debug, PartialEq)]
struct Filter {
    left: Operand,
    compare: Option<(Cmp, Operand)>,
}

#[derive(Clone, Debug, PartialEq)]
enum Operand {
    /// A path relative to the filtered element (`@`) or the root (`$`).
    Path {
        root: bool,
        steps: Vec<Step>,
    },
    Literal(Scalar),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A comparable value, typed the way Go's decoded JSON is: integers and floats differ.
#[derive(Clone, Debug, PartialEq)]
enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Other,
}

impl Scalar {
    fn of(v: &Value) -> Scalar {
        match v {
            Value::String(s) => Scalar::Str(s.clone()),
            Value::Bool(b) => Scalar::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Scalar::Int(i),
                None => Scalar::Float(n.as_f64().unwrap_or(0.0)),
            },
            _ => Scalar::Other,
        }
    }
}

impl JsonPath {
    /// Parses an expression such as `.status.conditions[?(@.type=="Ready")].status`. A pair
    /// of braces around it, as `kubectl -o jsonpath` takes, is accepted.
    pub fn parse(path: &str) -> Result<JsonPath, JsonPathError> {
        let trimmed = path.trim();
        let inner = trimmed
            .strip_prefix('{')
            .and_then(|p| p.strip_suffix('}'))
            .unwrap_or(trimmed)
            .trim();
        let mut p = Parser {
            chars: inner.chars().collect(),
            pos: 0,
            path,
        };
        if p.peek() == Some('$') {
            p.pos += 1;
        }
        let steps = p.steps()?;
        if p.pos != p.chars.len() {
            return Err(p.error("unexpected text after the expression"));
        }
        Ok(JsonPath { steps })
    }

    /// Every value the expression selects in `root`, in document order.
    pub fn evaluate<'a>(&self, root: &'a Value) -> Result<Vec<&'a Value>, JsonPathError> {
        eval(&self.steps, vec![root], root)
    }
}

struct Parser<'p> {
    chars: Vec<char>,
    pos: usize,
    path: &'p str,
}

/// Characters that end a field name (client-go's terminators, plus the filter syntax).
fn terminates(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}' | '(' | ')' | '=' | '!' | '<' | '>'
        )
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn error(&self, reason: &str) -> JsonPathError {
        JsonPathError::Parse {
            path: self.path.to_owned(),
            reason: format!("{reason} at offset {}", self.pos),
        }
    }

    fn expect(&mut self, c: char) -> Result<(), JsonPathError> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected {c:?}")))
        }
    }

    /// Steps up to the end of the input or a character no step starts with.
    fn steps(&mut self) -> Result<Vec<Step>, JsonPathError> {
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Some('.') => {
                    self.pos += 1;
                    if self.peek() == Some('.') {
                        self.pos += 1;
                        steps.push(Step::Recursive);
                    }
                    match self.peek() {
                        Some('*') => {
                            self.pos += 1;
                            steps.push(Step::Wildcard);
                        }
                        Some(c) if !terminates(c) => {
                            steps.push(Step::Field(self.field_name()));
                        }
                        // A lone `.` is the current value.
                        _ => {}
                    }
                }
                Some('[') => steps.push(self.bracket()?),
                _ => return Ok(steps),
            }
        }
    }

    /// A field name, with `\x` escapes resolved to `x`.
    fn field_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c == '\\' {
                self.pos += 1;
                if let Some(escaped) = self.peek() {
                    name.push(escaped);
                    self.pos += 1;
                }
                continue;
            }
            if terminates(c) {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn bracket(&mut self) -> Result<Step, JsonPathError> {
        self.expect('[')?;
        self.skip_spaces();
        let step = match self.peek() {
            Some('?') => {
                self.pos += 1;
                self.expect('(')?;
                let filter = self.filter()?;
                self.expect(')')?;
                Step::Filter(Box::new(filter))
            }
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                Step::Field(self.quoted(q)?)
            }
            Some('*') => {
                self.pos += 1;
                Step::Slice {
                    start: None,
                    end: None,
                    step: None,
                    index: false,
                }
            }
            _ => self.slice()?,
        };
        self.skip_spaces();
        self.expect(']')?;
        Ok(step)
    }

    /// The rest of a quoted string whose opening quote `q` was consumed.
    fn quoted(&mut self, q: char) -> Result<String, JsonPathError> {
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some('\\') => {
                    self.pos += 1;
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.pos += 1;
                    }
                }
                Some(c) if c == q => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn int(&mut self) -> Result<Option<i64>, JsonPathError> {
        self.skip_spaces();
        let start = self.pos;
        if self.peek() == Some('-') {
            self.pos += 1;
        }
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        self.skip_spaces();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| self.error("invalid array index"))
    }

    fn slice(&mut self) -> Result<Step, JsonPathError> {
        let start = self.int()?;
        if self.peek() != Some(':') {
            return match start {
                Some(n) => Ok(Step::Slice {
                    start: Some(n),
                    end: Some(n + 1),
                    step: None,
                    index: true,
                }),
                None => Err(self.error("invalid array index")),
            };
        }
        self.pos += 1;
        let end = self.int()?;
        let step = if self.peek() == Some(':') {
            self.pos += 1;
            self.int()?
        } else {
            None
        };
        Ok(Step::Slice {
            start,
            end,
            step,
            index: false,
        })
    }

    fn filter(&mut self) -> Result<Filter, JsonPathError> {
        let left = self.operand()?;
        self.skip_spaces();
        let cmp = match (self.peek(), self.chars.get(self.pos + 1).copied()) {
            (Some('='), Some('=')) => Some((Cmp::Eq, 2)),
            (Some('!'), Some('=')) => Some((Cmp::Ne, 2)),
            (Some('<'), Some('=')) => Some((Cmp::Le, 2)),
            (Some('>'), Some('=')) => Some((Cmp::Ge, 2)),
            (Some('<'), _) => Some((Cmp::Lt, 1)),
            (Some('>'), _) => Some((Cmp::Gt, 1)),
            _ => None,
        };
        let compare = match cmp {
            Some((cmp, len)) => {
                self.pos += len;
                Some((cmp, self.operand()?))
            }
            None => None,
        };
        self.skip_spaces();
        Ok(Filter { left, compare })
    }

    fn operand(&mut self) -> Result<Operand, JsonPathError> {
        self.skip_spaces();
        match self.peek() {
            Some(c @ ('@' | '$')) => {
                self.pos += 1;
                Ok(Operand::Path {
                    root: c == '$',
                    steps: self.steps()?,
                })
            }
            Some(q @ ('\'' | '"')) => {
                self.pos += 1;
                Ok(Operand::Literal(Scalar::Str(self.quoted(q)?)))
            }
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.'))
                {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                let scalar = match word.as_str() {
                    "true" => Scalar::Bool(true),
                    "false" => Scalar::Bool(false),
                    w => match (w.parse::<i64>(), w.parse::<f64>()) {
                        (Ok(i), _) => Scalar::Int(i),
                        (_, Ok(f)) => Scalar::Float(f),
                        _ => return Err(self.error("invalid filter operand")),
                    },
                };
                Ok(Operand::Literal(scalar))
            }
        }
    }
}

fn eval<'a>(
    steps: &[Step],
    mut current: Vec<&'a Value>,
    root: &'a Value,
) -> Result<Vec<&'a Value>, JsonPathError> {
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            // client-go skips nil values before applying a step.
            if v.is_null() && !matches!(step, Step::Recursive) {
                continue;
            }
            match step {
                Step::Field(name) => next.extend(v.as_object().and_then(|m| m.get(name))),
                Step::Wildcard => match v {
                    Value::Object(m) => next.extend(m.values()),
                    Value::Array(a) => next.extend(a.iter()),
                    _ => {}
                },
                Step::Recursive => descendants(v, &mut next),
                Step::Slice {
                    start,
                    end,
                    step,
                    index,
                } => slice(v, (*start, *end, *step), *index, &mut next)?,
                Step::Filter(f) => filter(f, v, root, &mut next)?,
            }
        }
        current = next;
    }
    Ok(current)
}

fn descendants<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(v);
    match v {
        Value::Object(m) => m.values().for_each(|c| descendants(c, out)),
        Value::Array(a) => a.iter().for_each(|c| descendants(c, out)),
        _ => {}
    }
}

fn slice<'a>(
    v: &'a Value,
    (start, end, step): (Option<i64>, Option<i64>, Option<i64>),
    index: bool,
    out: &mut Vec<&'a Value>,
) -> Result<(), JsonPathError> {
    let Value::Array(items) = v else {
        return Err(JsonPathError::Eval(format!(
            "{} is not array or slice",
            type_name(v)
        )));
    };
    let len = items.len() as i64;
    let mut from = start.unwrap_or(0);
    if from < 0 {
        from += len;
    }
    let mut to = end.unwrap_or(len);
    // `[-1]` is `[-1:0]` with the end derived from the index.
    if to < 0 || (index && to == 0) {
        to += len;
    }
    if from == to {
        return Ok(());
    }
    if from < 0 || from >= len {
        return Err(out_of_bounds(from, len));
    }
    if to < 0 || to > len {
        return Err(out_of_bounds(to - 1, len));
    }
    if from > to {
        return Err(JsonPathError::Eval(format!(
            "starting index {from} is greater than ending index {to}"
        )));
    }
    let step = match step {
        Some(s) if s <= 0 => return Err(JsonPathError::Eval("step must be > 0".into())),
        Some(s) => s as usize,
        None => 1,
    };
    out.extend(items[from as usize..to as usize].iter().step_by(step));
    Ok(())
}

fn out_of_bounds(index: i64, len: i64) -> JsonPathError {
    JsonPathError::Eval(format!(
        "array index out of bounds: index {index}, length {len}"
    ))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "map[string]interface {}",
    }
}

fn operand_values<'a>(
    op: &Operand,
    element: &'a Value,
    root: &'a Value,
) -> Result<Vec<Scalar>, JsonPathError> {
    match op {
        Operand::Literal(s) => Ok(vec![s.clone()]),
        Operand::Path {
            root: from_root,
            steps,
        } => {
            let start = if *from_root { root } else { element };
            Ok(eval(steps, vec![start], root)?
                .into_iter()
                .map(Scalar::of)
                .collect())
        }
    }
}

/// The one value a comparison side must have; `None` skips the element.
fn single(values: Vec<Scalar>) -> Result<Option<Scalar>, JsonPathError> {
    match values.len() {
        0 => Ok(None),
        1 => Ok(values.into_iter().next()),
        _ => Err(JsonPathError::Eval(
            "can only compare one element at a time".into(),
        )),
    }
}

fn filter<'a>(
    f: &Filter,
    v: &'a Value,
    root: &'a Value,
    out: &mut Vec<&'a Value>,
) -> Result<(), JsonPathError> {
    let candidates: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    for element in candidates {
        let lefts = operand_values(&f.left, element, root)?;
        let Some((cmp, right)) = &f.compare else {
            if !lefts.is_empty() {
                out.push(element);
            }
            continue;
        };
        let Some(left) = single(lefts)? else { continue };
        let Some(right) = single(operand_values(right, element, root)?)? else {
            continue;
        };
        if compare(*cmp, &left, &right)? {
            out.push(element);
        }
    }
    Ok(())
}

/// Go template comparison rules: only values of the same basic kind compare.
fn compare(cmp: Cmp, left: &Scalar, right: &Scalar) -> Result<bool, JsonPathError> {
    use std::cmp::Ordering;
    let ordering = match (left, right) {
        (Scalar::Str(a), Scalar::Str(b)) => a.partial_cmp(b),
        (Scalar::Int(a), Scalar::Int(b)) => a.partial_cmp(b),
        (Scalar::Float(a), Scalar::Float(b)) => a.partial_cmp(b),
        (Scalar::Bool(a), Scalar::Bool(b)) => {
            return match cmp {
                Cmp::Eq => Ok(a == b),
                Cmp::Ne => Ok(a != b),
                _ => Err(JsonPathError::Eval("invalid type for comparison".into())),
            };
        }
        (Scalar::Other, _) | (_, Scalar::Other) => {
            return Err(JsonPathError::Eval("invalid type for comparison".into()));
        }
        _ => {
            return Err(JsonPathError::Eval(
                "incompatible types for comparison".into(),
            ));
        }
    };
    let Some(o) = ordering else {
        return Ok(matches!(cmp, Cmp::Ne));
    };
    Ok(match cmp {
        Cmp::Eq => o == Ordering::Equal,
        Cmp::Ne => o != Ordering::Equal,
        Cmp::Lt => o == Ordering::Less,
        Cmp::Le => o != Ordering::Greater,
        Cmp::Gt => o == Ordering::Greater,
        Cmp::Ge => o != Ordering::Less,
    })
}
