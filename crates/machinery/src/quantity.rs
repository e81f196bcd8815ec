//! Kubernetes resource quantities (`500m`, `1.5Gi`, `2`, `1e3`) as exact integers, for cgroup
//! limits, node capacity and scheduling. Pure.

/// A quantity in thousandths of its unit (cores → millicores, bytes → millibytes), rounded up
/// as upstream rounds when it needs an integer. `None` when the text is not a quantity.
pub fn to_milli(text: &str) -> Option<i128> {
    let s = text.trim();
    if s.is_empty() {
        return None;
    }
    let (sign, s) = match s.as_bytes()[0] {
        b'-' => (-1, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    // value = digits / 10^frac_len, scaled by the suffix; work in integers.
    let digits: i128 = format!("{whole}{frac}").parse().ok()?;
    let frac_len = u32::try_from(frac.len()).ok()?;
    let (mult, div_pow10) = match suffix {
        "" => (1i128, 0u32),
        "n" => (1, 9),
        "u" => (1, 6),
        "m" => (1, 3),
        "k" => (1_000, 0),
        "M" => (1_000_000, 0),
        "G" => (1_000_000_000, 0),
        "T" => (1_000_000_000_000, 0),
        "P" => (1_000_000_000_000_000, 0),
        "E" => (1_000_000_000_000_000_000, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        exp if exp.starts_with(['e', 'E']) => {
            let e: i32 = exp[1..].parse().ok()?;
            if e >= 0 {
                (10i128.checked_pow(u32::try_from(e).ok()?)?, 0)
            } else {
                (1, e.unsigned_abs())
            }
        }
        _ => return None,
    };
    // milli = digits * mult * 1000 / 10^(frac_len + div_pow10), rounded up.
    let numerator = digits.checked_mul(mult)?.checked_mul(1000)?;
    let denominator = 10i128.checked_pow(frac_len + div_pow10)?;
    let milli = numerator / denominator + i128::from(numerator % denominator != 0);
    Some(sign * milli)
}

/// A quantity as a whole number of units, rounded up (`1.5` → 2, `500m` → 1, `1Gi` → 1073741824).
pub fn to_units(text: &str) -> Option<i128> {
    let milli = to_milli(text)?;
    Some(milli / 1000 + i128::from(milli % 1000 > 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        let cases: &[(&str, Option<i128>)] = &[
            ("1", Some(1000)),
            ("500m", Some(500)),
            ("0.5", Some(500)),
            ("2.25", Some(2250)),
            ("1k", Some(1_000_000)),
            ("1Ki", Some(1_024_000)),
            ("1.5Gi", Some(1_610_612_736_000)),
            ("128974848", Some(128_974_848_000)),
            ("129e6", Some(129_000_000_000)),
            ("1e-3", Some(1)),
            ("100n", Some(1)),
            ("1u", Some(1)),
            ("-1", Some(-1000)),
            ("", None),
            ("abc", None),
            ("1.2.3", None),
            ("1Zi", None),
            ("m", None),
        ];
        for (text, want) in cases {
            assert_eq!(to_milli(text), *want, "{text}");
        }
        assert_eq!(to_units("1.5"), Some(2));
        assert_eq!(to_units("1Gi"), Some(1 << 30));
        assert_eq!(to_units("250m"), Some(1));
    }
}
