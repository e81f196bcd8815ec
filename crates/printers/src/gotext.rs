//! Go's text forms of JSON values, which CRD string columns show: `fmt.Print` of scalars and
//! `encoding/json` of arrays and objects (sorted keys, HTML-safe escapes, Go's float syntax).

use serde_json::{Number, Value};

/// How client-go's JSONPath prints a value into a string cell; `None` for JSON `null`, which
/// upstream leaves as an empty cell.
pub(crate) fn print_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n, FloatStyle::Print)),
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            write_json(&mut out, v);
            Some(out)
        }
    }
}

#[derive(Clone, Copy)]
enum FloatStyle {
    /// `fmt.Print`: `%g` with the shortest digits, exponent from 1e+06 and below 1e-04.
    Print,
    /// `encoding/json`: plain decimals, exponent from 1e21 and below 1e-6.
    Json,
}

fn number_text(n: &Number, style: FloatStyle) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let (digits, exp) = shortest_digits(f);
    let use_exp = match style {
        FloatStyle::Print => !(-4..6).contains(&exp),
        FloatStyle::Json => f != 0.0 && (f.abs() < 1e-6 || f.abs() >= 1e21),
    };
    if !use_exp {
        // Rust's `Display` is the shortest round-trip decimal without an exponent, which is
        // what Go prints in this range.
        return format!("{f}");
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    let mantissa = match (digits.get(..1), digits.get(1..)) {
        (Some(first), Some(rest)) if !rest.is_empty() => format!("{first}.{rest}"),
        _ => digits,
    };
    let exp_text = match style {
        FloatStyle::Print => format!("{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs()),
        // encoding/json trims `e-07` to `e-7`.
        FloatStyle::Json if exp < 0 => format!("-{}", exp.abs()),
        FloatStyle::Json => format!("+{exp:02}"),
    };
    format!("{sign}{mantissa}e{exp_text}")
}

/// The shortest decimal digits of `|f|` and the decimal exponent of the first digit.
fn shortest_digits(f: f64) -> (String, i32) {
    let text = format!("{:e}", f.abs());
    let (mantissa, exp) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// Go's `json.Marshal` of a decoded JSON value.
fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&number_text(n, FloatStyle::Json)),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Go sorts map keys whatever order the object was decoded in.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(out, k);
                out.push(':');
                write_json(out, &map[k]);
            }
            out.push('}');
        }
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
