//! The pure rule of leader election: given what the Lease says and the time, acquire, renew or wait.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

/// The fields of a Lease that election reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    pub holder: Option<String>,
    pub renew_time: Option<Timestamp>,
    pub acquire_time: Option<Timestamp>,
    pub duration: Option<Duration>,
    pub transitions: i32,
}

/// What a candidate does with the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// There is no Lease: create one naming us.
    Create,
    /// We hold it: write a fresh `renewTime`.
    Renew,
    /// Nobody holds it, or the holder stopped renewing: take it over (one more transition).
    Acquire,
    /// Someone else holds a live Lease: look again later.
    Wait { holder: String },
}

/// Decides what `identity` does with `lease` at `now`. A Lease without a duration counts as
/// expired once `default_duration` has passed since its last renewal, and a Lease that was never
/// renewed (no `renewTime`) as free, like client-go.
pub fn decide(
    lease: Option<&LeaseView>,
    identity: &str,
    now: Timestamp,
    default_duration: Duration,
) -> Decision {
    let Some(lease) = lease else {
        return Decision::Create;
    };
    let holder = lease.holder.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Acquire;
    }
    let Some(renewed) = lease.renew_time.or(lease.acquire_time) else {
        return Decision::Acquire;
    };
    let duration = lease.duration.unwrap_or(default_duration);
    let elapsed = now.duration_since(renewed);
    match Duration::try_from(elapsed) {
        Ok(elapsed) if elapsed > duration => Decision::Acquire,
        // A renewal in our future (clock skew) is treated as live.
        _ => Decision::Wait {
            holder: holder.to_owned(),
        },
    }
}

/// When `lease` stops being live for candidates other than its holder: its last renewal (or
/// acquisition) plus its duration (`default_duration` when it names none). `None` when it is
/// already free to take (no holder, never renewed).
pub fn expiry(lease: &LeaseView, default_duration: Duration) -> Option<Timestamp> {
    if lease.holder.as_deref().unwrap_or("").is_empty() {
        return None;
    }
    let renewed = lease.renew_time.or(lease.acquire_time)?;
    let duration = lease.duration.unwrap_or(default_duration);
    let span = k8s_openapi::jiff::SignedDuration::try_from(duration).ok()?;
    renewed.checked_add(span).ok()
}

/// A moment after `expiry` at which [`decide`] (which wants the lease strictly older than its
/// duration) certainly answers `Acquire`.
const PAST_EXPIRY: Duration = Duration::from_millis(20);

/// How long a candidate waits before looking at someone else's Lease again: `retry`, or less
/// when the Lease expires sooner. Waking right after the expiry instead of at the next `retry`
/// tick bounds a takeover after the holder died by the lease duration (since its last renewal),
/// where a fixed period would add up to one more `retry`.
pub fn next_look(now: Timestamp, expiry: Option<Timestamp>, retry: Duration) -> Duration {
    let Some(expiry) = expiry else {
        return retry;
    };
    match Duration::try_from(expiry.duration_since(now)) {
        Ok(left) => retry.min(left + PAST_EXPIRY),
        // Already expired (another candidate may be taking it over): look again soon.
        Err(_) => retry.min(PAST_EXPIRY),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid timestamp")
    }

    fn lease(holder: Option<&str>, renewed: Option<i64>, duration: Option<u64>) -> LeaseView {
        LeaseView {
            holder: holder.map(str::to_owned),
            renew_time: renewed.map(at),
            acquire_time: None,
            duration: duration.map(Duration::from_secs),
            transitions: 0,
        }
    }

    #[test]
    fn decision_table() {
        let d15 = Duration::from_secs(15);
        let wait = |h: &str| Decision::Wait { holder: h.into() };
        let cases: Vec<(&str, Option<LeaseView>, i64, Decision)> = vec![
            ("no lease", None, 0, Decision::Create),
            (
                "ours, fresh",
                Some(lease(Some("me"), Some(0), Some(15))),
                1,
                Decision::Renew,
            ),
            (
                "ours, expired: still renew",
                Some(lease(Some("me"), Some(0), Some(15))),
                100,
                Decision::Renew,
            ),
            (
                "other, live",
                Some(lease(Some("b"), Some(0), Some(15))),
                10,
                wait("b"),
            ),
            (
                "other, exactly at duration",
                Some(lease(Some("b"), Some(0), Some(15))),
                15,
                wait("b"),
            ),
            (
                "other, expired",
                Some(lease(Some("b"), Some(0), Some(15))),
                16,
                Decision::Acquire,
            ),
            (
                "other, short duration",
                Some(lease(Some("b"), Some(0), Some(2))),
                3,
                Decision::Acquire,
            ),
            (
                "other, no duration: default",
                Some(lease(Some("b"), Some(0), None)),
                10,
                wait("b"),
            ),
            (
                "other, never renewed",
                Some(lease(Some("b"), None, Some(15))),
                0,
                Decision::Acquire,
            ),
            (
                "released (empty holder)",
                Some(lease(Some(""), Some(0), Some(15))),
                1,
                Decision::Acquire,
            ),
            (
                "no holder",
                Some(lease(None, Some(0), Some(15))),
                1,
                Decision::Acquire,
            ),
            (
                "renewed in the future",
                Some(lease(Some("b"), Some(50), Some(15))),
                0,
                wait("b"),
            ),
        ];
        for (name, lease, now, want) in cases {
            assert_eq!(decide(lease.as_ref(), "me", at(now), d15), want, "{name}");
        }
    }

    #[test]
    fn expiry_table() {
        let d15 = Duration::from_secs(15);
        let cases: Vec<(&str, LeaseView, Option<Timestamp>)> = vec![
            ("renewed", lease(Some("b"), Some(0), Some(15)), Some(at(15))),
            (
                "own duration",
                lease(Some("b"), Some(0), Some(2)),
                Some(at(2)),
            ),
            (
                "default duration",
                lease(Some("b"), Some(3), None),
                Some(at(18)),
            ),
            ("released", lease(Some(""), Some(0), Some(15)), None),
            ("no holder", lease(None, Some(0), Some(15)), None),
            ("never renewed", lease(Some("b"), None, Some(15)), None),
            (
                "acquired, never renewed",
                LeaseView {
                    acquire_time: Some(at(5)),
                    ..lease(Some("b"), None, Some(10))
                },
                Some(at(15)),
            ),
        ];
        for (name, lease, want) in cases {
            assert_eq!(expiry(&lease, d15), want, "{name}");
        }
    }

    #[test]
    fn next_look_table() {
        let retry = Duration::from_secs(2);
        let ms = Duration::from_millis;
        let cases: Vec<(&str, i64, Option<i64>, Duration)> = vec![
            ("free lease: retry period", 0, None, retry),
            ("expiry far away: retry period", 0, Some(15), retry),
            (
                "expiry within the period: just after it",
                14,
                Some(15),
                ms(1020),
            ),
            ("expiry now", 15, Some(15), PAST_EXPIRY),
            ("expired: soon", 20, Some(15), PAST_EXPIRY),
        ];
        for (name, now, expiry, want) in cases {
            assert_eq!(next_look(at(now), expiry.map(at), retry), want, "{name}");
        }
    }

    #[test]
    fn waking_at_next_look_after_expiry_acquires() {
        // The candidate that wakes when next_look says must find the lease takeable.
        let d15 = Duration::from_secs(15);
        let held = lease(Some("b"), Some(0), Some(15));
        let now = at(14);
        let wait = next_look(now, expiry(&held, d15), Duration::from_secs(2));
        let span = k8s_openapi::jiff::SignedDuration::try_from(wait).expect("small");
        let woke = now.checked_add(span).expect("in range");
        assert_eq!(decide(Some(&held), "me", woke, d15), Decision::Acquire);
    }
}
