//! Cron schedules as CronJobs write them: five fields (minute hour day-of-month month
//! day-of-week) with `*`, `?`, lists, ranges, steps and month/day names, or a macro (`@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`), evaluated in a time
//! zone. Day-of-month and day-of-week both restricted means either may match (cron's rule, as
//! upstream's parser keeps it). Pure.

use std::collections::BTreeSet;

use k8s_openapi::jiff::civil::{Date, DateTime};
use k8s_openapi::jiff::tz::TimeZone;
use k8s_openapi::jiff::{Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    minutes: BTreeSet<u8>,
    hours: BTreeSet<u8>,
    days: BTreeSet<u8>,
    months: BTreeSet<u8>,
    weekdays: BTreeSet<u8>,
    /// Whether day-of-month / day-of-week were `*` (or `?`).
    any_day: bool,
    any_weekday: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn value(s: &str, names: &[&str], offset: u8) -> Result<u8, String> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        return Ok(u8::try_from(i).unwrap_or(0) + offset);
    }
    s.parse()
        .map_err(|_| format!("failed to parse int from {s}"))
}

/// One field: `*`, `?`, `a`, `a-b`, `*/n`, `a-b/n`, `a/n`, comma-separated.
fn field(
    spec: &str,
    min: u8,
    max: u8,
    names: &[&str],
    offset: u8,
) -> Result<(BTreeSet<u8>, bool), String> {
    let mut set = BTreeSet::new();
    let mut any = false;
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<u8>()
                        .map_err(|_| format!("failed to parse int from {s}"))?,
                ),
            ),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            any = step.is_none();
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, names, offset)?, value(b, names, offset)?)
        } else {
            let v = value(range, names, offset)?;
            (v, if step.is_some() { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(format!("end of range ({hi}) above maximum ({max}): {part}"));
        }
        let step = step.unwrap_or(1);
        if step == 0 {
            return Err(format!("step of range should be a positive number: {part}"));
        }
        set.extend((lo..=hi).step_by(usize::from(step)));
    }
    Ok((set, any))
}

impl Schedule {
    /// Parses a schedule; errors read like upstream's.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        let spec = spec.trim();
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with('@') => return Err(format!("unrecognized descriptor: {s}")),
            s => s,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: {spec}",
                parts.len()
            ));
        }
        let (minutes, _) = field(parts[0], 0, 59, &[], 0)?;
        let (hours, _) = field(parts[1], 0, 23, &[], 0)?;
        let (days, any_day) = field(parts[2], 1, 31, &[], 0)?;
        let (months, _) = field(parts[3], 1, 12, &MONTHS, 1)?;
        let (mut weekdays, any_weekday) = field(parts[4], 0, 7, &DAYS, 0)?;
        if weekdays.remove(&7) {
            weekdays.insert(0);
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            any_day,
            any_weekday,
        })
    }

    fn day_matches(&self, d: Date) -> bool {
        let dom = u8::try_from(d.day()).is_ok_and(|v| self.days.contains(&v));
        let dow = u8::try_from(d.weekday().to_sunday_zero_offset())
            .is_ok_and(|v| self.weekdays.contains(&v));
        let month = u8::try_from(d.month()).is_ok_and(|v| self.months.contains(&v));
        month
            && match (self.any_day, self.any_weekday) {
                (true, true) => true,
                (true, false) => dow,
                (false, true) => dom,
                (false, false) => dom || dow,
            }
    }

    /// The first time strictly after `after` that the schedule fires in `tz` (within five
    /// years; `None` for schedules that never fire, such as February 30th).
    pub fn next(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let start = tz.to_datetime(after);
        let mut day = start.date();
        for _ in 0..(366 * 5) {
            if self.day_matches(day) {
                for h in &self.hours {
                    for m in &self.minutes {
                        let dt = DateTime::from_parts(
                            day,
                            k8s_openapi::jiff::civil::time(
                                i8::try_from(*h).ok()?,
                                i8::try_from(*m).ok()?,
                                0,
                                0,
                            ),
                        );
                        // A local time skipped by a DST change fires at the next valid instant,
                        // a repeated one at its first occurrence (jiff's "compatible").
                        let Ok(ts) = tz.to_ambiguous_timestamp(dt).compatible() else {
                            continue;
                        };
                        if ts > after {
                            return Some(ts);
                        }
                    }
                }
            }
            day = day.checked_add(1.day()).ok()?;
        }
        None
    }

    /// The most recent firing in `(after, now]`, and how many firings that range holds
    /// (capped at `cap`, enough to tell "too many missed").
    pub fn last_between(
        &self,
        after: Timestamp,
        now: Timestamp,
        tz: &TimeZone,
        cap: usize,
    ) -> (Option<Timestamp>, usize) {
        let mut last = None;
        let mut n = 0;
        let mut t = after;
        while let Some(next) = self.next(t, tz) {
            if next > now {
                break;
            }
            last = Some(next);
            n += 1;
            if n >= cap {
                // Skip ahead: only the most recent time matters now.
                let mut probe = now.checked_sub(1.minute()).unwrap_or(now);
                while let Some(p) = self.next(probe, tz) {
                    if p > now {
                        break;
                    }
                    last = Some(p);
                    probe = p;
                }
                break;
            }
            t = next;
        }
        (last, n)
    }
}

/// The time zone named by a CronJob's `timeZone` (IANA name, from the system's zoneinfo), UTC
/// when unset.
pub fn time_zone(name: Option<&str>) -> Result<TimeZone, String> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(TimeZone::UTC);
    };
    if name == "UTC" || name == "Etc/UTC" {
        return Ok(TimeZone::UTC);
    }
    // Names are paths below the zoneinfo directory: refuse anything that climbs out.
    if name.starts_with('/') || name.split('/').any(|p| p == ".." || p.is_empty()) {
        return Err(format!("unknown time zone {name}"));
    }
    let data = std::fs::read(format!("/usr/share/zoneinfo/{name}"))
        .map_err(|_| format!("unknown time zone {name}"))?;
    TimeZone::tzif(name, &data).map_err(|e| format!("unknown time zone {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    #[test]
    fn parses_fields_macros_and_errors() {
        assert!(Schedule::parse("*/15 0-6,12 1 jan-mar mon").is_ok());
        assert_eq!(Schedule::parse("@hourly"), Schedule::parse("0 * * * *"));
        assert_eq!(Schedule::parse("0 0 * * 7"), Schedule::parse("0 0 * * SUN"));
        assert!(Schedule::parse("* * * *").is_err());
        assert!(Schedule::parse("60 * * * *").is_err());
        assert!(Schedule::parse("@often").is_err());
    }

    #[test]
    fn next_times() {
        let utc = TimeZone::UTC;
        let cases = [
            (
                "*/5 * * * *",
                "2026-01-01T00:02:00Z",
                "2026-01-01T00:05:00Z",
            ),
            ("@hourly", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"),
            (
                "0 9 * * mon",
                "2026-01-01T00:00:00Z",
                "2026-01-05T09:00:00Z",
            ),
            // Either day field may match when both are restricted.
            (
                "0 0 13 * fri",
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
            ),
            ("@yearly", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"),
        ];
        for (spec, after, want) in cases {
            let s = Schedule::parse(spec).expect(spec);
            assert_eq!(s.next(ts(after), &utc), Some(ts(want)), "{spec}");
        }
        assert_eq!(
            Schedule::parse("0 0 30 2 *")
                .expect("feb 30")
                .next(ts("2026-01-01T00:00:00Z"), &utc),
            None
        );
    }

    #[test]
    fn time_zones_shift_firings() {
        let Ok(ny) = time_zone(Some("America/New_York")) else {
            return; // no zoneinfo on this machine
        };
        let s = Schedule::parse("0 9 * * *").expect("daily");
        // 09:00 in New York in January is 14:00 UTC.
        assert_eq!(
            s.next(ts("2026-01-10T00:00:00Z"), &ny),
            Some(ts("2026-01-10T14:00:00Z"))
        );
        assert!(time_zone(Some("../etc/passwd")).is_err());
        assert!(time_zone(Some("Mars/Olympus")).is_err());
    }

    #[test]
    fn last_missed_time() {
        let s = Schedule::parse("* * * * *").expect("every minute");
        let (last, n) = s.last_between(
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-01T00:10:30Z"),
            &TimeZone::UTC,
            100,
        );
        assert_eq!(last, Some(ts("2026-01-01T00:10:00Z")));
        assert_eq!(n, 10);
        let (last, n) = s.last_between(
            ts("2026-01-01T00:00:00Z"),
            ts("2026-01-03T00:00:30Z"),
            &TimeZone::UTC,
            100,
        );
        assert_eq!(last, Some(ts("2026-01-03T00:00:00Z")));
        assert_eq!(n, 100);
    }
}
