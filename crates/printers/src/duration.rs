//! Human durations and RFC 3339 timestamps, rendered the way upstream's printers render them.
//!
//! Everything works on whole Unix seconds: the API's timestamps have second precision (events'
//! `MicroTime` is truncated, which changes no printed value).

/// Upstream's `duration.HumanDuration`: two or three significant figures, `45s`, `3m12s`,
/// `2h5m`, `3d4h`, `2y30d`. Slightly negative durations (clock skew) print as `0s`, more
/// negative ones as `<invalid>`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return with_remainder(minutes, "m", secs % 60, "s");
    }
    if minutes < 3 * 60 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        return with_remainder(hours, "h", minutes % 60, "m");
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return with_remainder(hours / 24, "d", hours % 24, "h");
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return with_remainder(hours / 24 / 365, "y", (hours / 24) % 365, "d");
    }
    format!("{}y", hours / 24 / 365)
}

/// `3m` or, with a remainder, `3m12s`.
fn with_remainder(major: i64, major_unit: &str, minor: i64, minor_unit: &str) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// Upstream's `duration.ShortHumanDuration`: one unit only (`45s`, `12m`, `5h`, `3d`, `2y`).
pub fn short_human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    let (minutes, hours) = (secs / 60, secs / 3600);
    if secs < 60 {
        format!("{secs}s")
    } else if minutes < 60 {
        format!("{minutes}m")
    } else if hours < 24 {
        format!("{hours}h")
    } else if hours < 24 * 365 {
        format!("{}d", hours / 24)
    } else {
        format!("{}y", hours / 24 / 365)
    }
}

/// The time elapsed since `timestamp` as [`human_duration`]; `<unknown>` when the timestamp is
/// missing or unreadable (upstream prints that for the zero time).
pub fn since(timestamp: Option<&str>, now: i64) -> String {
    match timestamp.and_then(parse_rfc3339) {
        Some(then) => human_duration(now - then),
        None => "<unknown>".into(),
    }
}

/// The age of an object created at `timestamp` (an RFC 3339 string), as `kubectl get` shows it.
pub fn age(timestamp: &str, now: i64) -> String {
    since(Some(timestamp), now)
}

pub use rudder_machinery::timestamp::{format_rfc3339, parse_rfc3339};
