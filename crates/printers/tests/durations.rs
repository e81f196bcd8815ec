//! Human durations and timestamps against upstream's `duration` package behaviour.

use rudder_printers::duration::{
    age, format_rfc3339, human_duration, parse_rfc3339, short_human_duration, since,
};

const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const YEAR: i64 = 365 * DAY;

#[test]
fn human_duration_table() {
    let cases = [
        (-5, "<invalid>"),
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (1, "1s"),
        (70, "70s"),
        (119, "119s"),
        (120, "2m"),
        (190, "3m10s"),
        (9 * MIN + 59, "9m59s"),
        (10 * MIN, "10m"),
        (10 * MIN + 59, "10m"),
        (70 * MIN, "70m"),
        (3 * HOUR - 1, "179m"),
        (3 * HOUR, "3h"),
        (3 * HOUR + 5 * MIN + 7, "3h5m"),
        (7 * HOUR + 59 * MIN, "7h59m"),
        (8 * HOUR + 30 * MIN, "8h"),
        (47 * HOUR, "47h"),
        (48 * HOUR, "2d"),
        (49 * HOUR, "2d1h"),
        (8 * DAY - 1, "7d23h"),
        (8 * DAY + 2 * HOUR, "8d"),
        (367 * DAY, "367d"),
        (2 * YEAR - 1, "729d"),
        (2 * YEAR + 25 * HOUR, "2y1d"),
        (3 * YEAR, "3y"),
        (8 * YEAR + 2 * HOUR, "8y"),
        (20 * YEAR, "20y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(secs), want, "{secs}s");
    }
}

#[test]
fn short_human_duration_table() {
    let cases = [
        (-2, "<invalid>"),
        (-1, "0s"),
        (59, "59s"),
        (60, "1m"),
        (59 * MIN + 59, "59m"),
        (HOUR, "1h"),
        (23 * HOUR, "23h"),
        (DAY, "1d"),
        (364 * DAY, "364d"),
        (YEAR, "1y"),
        (3 * YEAR + DAY, "3y"),
    ];
    for (secs, want) in cases {
        assert_eq!(short_human_duration(secs), want, "{secs}s");
    }
}

#[test]
fn rfc3339_parsing() {
    let base = 1_780_315_200; // 2026-06-01T12:00:00Z
    let cases: [(&str, Option<i64>); 11] = [
        ("2026-06-01T12:00:00Z", Some(base)),
        ("2026-06-01T12:00:00.123456Z", Some(base)),
        ("2026-06-01T14:00:00+02:00", Some(base)),
        ("2026-06-01T07:30:00-04:30", Some(base)),
        ("2026-06-01t12:00:00z", Some(base)),
        ("1970-01-01T00:00:00Z", Some(0)),
        ("2026-06-01 12:00:00Z", None),
        ("2026-06-01T12:00:00", None),
        ("2026-13-01T12:00:00Z", None),
        ("2026-06-01T12:00:00.Z", None),
        ("garbage", None),
    ];
    for (text, want) in cases {
        assert_eq!(parse_rfc3339(text), want, "{text}");
    }
}

#[test]
fn rfc3339_round_trip() {
    for secs in [
        0i64,
        951_782_400,
        1_780_315_200,
        -62_135_596_800,
        4_102_444_799,
    ] {
        let text = format_rfc3339(secs);
        assert_eq!(parse_rfc3339(&text), Some(secs), "{text}");
    }
    assert_eq!(format_rfc3339(-62_135_596_800), "0001-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
}

#[test]
fn ages_of_timestamps() {
    let now = 1_780_315_200;
    assert_eq!(age("2026-06-01T11:56:48Z", now), "3m12s");
    assert_eq!(age("2026-05-30T12:00:00Z", now), "2d");
    assert_eq!(age("not a time", now), "<unknown>");
    assert_eq!(since(None, now), "<unknown>");
    // A clock a little ahead of ours is "now"; far ahead is invalid.
    assert_eq!(age("2026-06-01T12:00:01Z", now), "0s");
    assert_eq!(age("2026-06-01T12:10:00Z", now), "<invalid>");
}
