//! Synthetic resource usage of simulated containers, so `kubectl top` has plausible numbers on
//! simulated nodes: each container gets a steady CPU rate and a working set derived from its
//! id (different containers differ, one container stays put), and its cumulative CPU time
//! grows with the time it has run. Pure: the caller passes the clock.

use std::time::{Duration, SystemTime};

/// Page size the working set is a multiple of, as a real cgroup's is.
const PAGE: u64 = 4096;

/// A well-mixed 64-bit hash of the id (FNV-1a, then a finaliser), stable across runs.
fn mix(id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The container's steady CPU rate in millicores (1–50m) and working set (4–64 MiB).
pub(crate) fn profile(id: &str) -> (u64, u64) {
    let h = mix(id);
    let millicores = 1 + h % 50;
    let pages = (4 << 20) / PAGE + (h >> 16) % ((60 << 20) / PAGE);
    (millicores, pages * PAGE)
}

/// `(cumulative cpu ns, working set bytes)` of container `id` at `now`, having run from
/// `started` until `finished` (or still running). A container that never started used nothing.
pub(crate) fn usage(
    id: &str,
    started: Option<SystemTime>,
    finished: Option<SystemTime>,
    now: SystemTime,
) -> (u64, u64) {
    let Some(started) = started else {
        return (0, 0);
    };
    let (millicores, working_set) = profile(id);
    let until = finished.unwrap_or(now).min(now);
    let ran = until.duration_since(started).unwrap_or(Duration::ZERO);
    // millicores × ns / 1000 = core-ns; u128 so a long-lived container cannot overflow.
    let cpu = ran.as_nanos() * u128::from(millicores) / 1000;
    let memory = if finished.is_some() { 0 } else { working_set };
    (u64::try_from(cpu).unwrap_or(u64::MAX), memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_table() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = Duration::from_secs;
        let id = "sim0000000000001";
        let (mc, ws) = profile(id);
        let cases = [
            // Never started: nothing.
            ((None, None, t0), (0, 0)),
            // Ran 10 s at `mc` millicores: mc × 10⁷ ns.
            ((Some(t0), None, t0 + secs(10)), (mc * 10_000_000, ws)),
            // Finished after 4 s: CPU stops growing, memory is released.
            (
                (Some(t0), Some(t0 + secs(4)), t0 + secs(100)),
                (mc * 4_000_000, 0),
            ),
            // A clock behind the start time counts as no time.
            ((Some(t0 + secs(5)), None, t0), (0, ws)),
        ];
        for ((started, finished, now), want) in cases {
            assert_eq!(
                usage(id, started, finished, now),
                want,
                "{started:?} {now:?}"
            );
        }
    }

    #[test]
    fn profiles_are_plausible_and_differ() {
        let profiles: Vec<(u64, u64)> =
            (0..200).map(|i| profile(&format!("sim{i:013x}"))).collect();
        for (mc, ws) in &profiles {
            assert!((1..=50).contains(mc), "{mc}");
            assert!(((4 << 20)..=(64 << 20)).contains(ws), "{ws}");
            assert_eq!(ws % PAGE, 0);
        }
        let distinct: std::collections::BTreeSet<_> = profiles.iter().collect();
        assert!(distinct.len() > 150, "{}", distinct.len());
        assert_eq!(profile("a"), profile("a"));
    }
}
