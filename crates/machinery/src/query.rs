//! URL query strings as Kubernetes clients send them (`application/x-www-form-urlencoded`:
//! `%XX` escapes and `+` for space), decoded into a map and encoded back when a request is
//! forwarded (the API server to a node agent). Pure.

use std::collections::HashMap;

/// Parses a query string into a map (a repeated key keeps its last value).
pub fn parse(query: Option<&str>) -> HashMap<String, String> {
    parse_multi(query).into_iter().collect()
}

/// Parses a query string into its pairs in order, repeated keys included (`exec`'s
/// `command=sh&command=-c&command=...`).
pub fn parse_multi(query: Option<&str>) -> Vec<(String, String)> {
    let Some(q) = query else { return Vec::new() };
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+`; a `%` not followed by two hex digits stays as it is.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes a query key or value: everything but unreserved characters is escaped, so `+` in a
/// time offset (`sinceTime=…+01:00`) survives the trip.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys() {
        let q = parse_multi(Some("command=sh&command=-c&command=echo+a%26b&tty=true"));
        let cmd: Vec<&str> = q
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(cmd, ["sh", "-c", "echo a&b"]);
        assert_eq!(parse(Some("a=1&a=2"))["a"], "2");
    }

    #[test]
    fn decode_and_encode() {
        let cases = [
            ("a%20b", "a b"),
            ("a+b", "a b"),
            ("%3A", ":"),
            ("100%", "100%"),
            ("%zz", "%zz"),
            (
                "2026-11-23T10%3A00%3A00%2B01%3A00",
                "2026-11-23T10:00:00+01:00",
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(decode(raw), want, "{raw}");
        }
        for text in [
            "2026-11-23T10:00:00+01:00",
            "app=web,tier in (a,b)",
            "ünïcode",
        ] {
            assert_eq!(decode(&encode(text)), text);
        }
        let q = parse(Some("a=1&b=x+y&a=2&flag"));
        assert_eq!(
            (q["a"].as_str(), q["b"].as_str(), q["flag"].as_str()),
            ("2", "x y", "")
        );
    }
}
