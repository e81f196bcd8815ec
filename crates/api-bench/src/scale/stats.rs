//! Latency histograms and event rates for the scale run's report.

use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;

/// Microseconds, up to an hour.
pub(super) fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).context("histogram")
}

pub(super) fn record(h: &mut Histogram<u64>, from: SystemTime, to: SystemTime) -> Result<()> {
    let micros = to.duration_since(from).unwrap_or_default().as_micros();
    h.record(u64::try_from(micros).unwrap_or(u64::MAX).clamp(1, h.high()))?;
    Ok(())
}

/// p50, p99 and max in ms; NaN when nothing was recorded.
pub(super) fn quantiles(h: &Histogram<u64>) -> [f64; 3] {
    if h.is_empty() {
        return [f64::NAN; 3];
    }
    [
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0,
    ]
}

/// Events per second from the first to the last (sorted) time.
pub(super) fn rate(times: &[SystemTime]) -> f64 {
    match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() > 1 => {
            let span = b.duration_since(*a).unwrap_or_default().as_secs_f64();
            if span > 0.0 {
                (times.len() - 1) as f64 / span
            } else {
                f64::NAN
            }
        }
        _ => f64::NAN,
    }
}

/// The most events in any `window` (sorted times), per second.
pub(super) fn peak_rate(times: &[SystemTime], window: Duration) -> f64 {
    let mut best = 0usize;
    let mut lo = 0usize;
    for hi in 0..times.len() {
        while times[hi].duration_since(times[lo]).unwrap_or_default() > window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best as f64 / window.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn rates_over_the_whole_run_and_the_busiest_window() {
        // 11 bindings 100 ms apart, then one 10 s later.
        let mut times: Vec<SystemTime> = (0..11).map(|i| at(i * 100)).collect();
        times.push(at(11_000));
        assert!((rate(&times) - 1.0).abs() < 1e-9);
        assert!((peak_rate(&times, Duration::from_secs(1)) - 11.0).abs() < 1e-9);
        assert!(rate(&[at(5)]).is_nan());
        assert_eq!(peak_rate(&[], Duration::from_secs(1)), 0.0);
    }

    #[test]
    fn quantiles_in_milliseconds() -> Result<()> {
        let mut h = histogram()?;
        assert!(quantiles(&h).iter().all(|q| q.is_nan()));
        for ms in 1..=100 {
            record(&mut h, at(0), at(ms))?;
        }
        let [p50, p99, max] = quantiles(&h);
        assert!((p50 - 50.0).abs() < 0.1, "{p50}");
        assert!((p99 - 99.0).abs() < 0.1, "{p99}");
        assert!((max - 100.0).abs() < 0.1, "{max}");
        Ok(())
    }
}
