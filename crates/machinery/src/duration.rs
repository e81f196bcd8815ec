//! Go's duration syntax (`15s`, `1m30s`, `500ms`, `1h`), which upstream flags and API fields
//! (metrics' `window`) use. Pure.

use std::time::Duration;

/// Parses a Go duration: a sequence of decimal numbers each followed by a unit (`h`, `m`, `s`,
/// `ms`, `us`/`µs`, `ns`). `None` for anything else, including a bare number other than `0`.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text == "0" {
        return Some(Duration::ZERO);
    }
    if text.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        if number_end == 0 {
            return None;
        }
        let value: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * seconds_per_unit;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_table() {
        let cases = [
            ("15s", Some(15_000u64)),
            ("1m0s", Some(60_000)),
            ("1m30s", Some(90_000)),
            ("10.5s", Some(10_500)),
            ("500ms", Some(500)),
            ("1h2m3s", Some(3_723_000)),
            ("0", Some(0)),
            ("", None),
            ("15", None),
            ("s", None),
            ("3x", None),
        ];
        for (text, want) in cases {
            let got = parse_go_duration(text).map(|d| d.as_millis());
            assert_eq!(got, want.map(u128::from), "{text:?}");
        }
    }
}
