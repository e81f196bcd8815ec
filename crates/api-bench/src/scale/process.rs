//! The control plane's CPU and memory from `/proc/PID`, sampled while the scale run goes on so
//! that a run cut short (or a server already gone) still has figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// A process's CPU time so far and its resident memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Usage {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    /// `VmHWM`: the peak, as the kernel kept it.
    pub peak_rss_kib: u64,
}

/// The kernel's clock tick for `/proc/PID/stat` times: USER_HZ, 100 on every Linux target.
const TICKS_PER_SECOND: f64 = 100.0;

pub(super) fn process_usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_usage(&stat, &status)
}

fn parse_usage(stat: &str, status: &str) -> Option<Usage> {
    // Fields after the command (which may hold spaces) start at `state`; utime and stime are
    // the 14th and 15th fields overall.
    let after = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let kib = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some(Usage {
        cpu_seconds: (utime + stime) / TICKS_PER_SECOND,
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
    })
}

/// What the sampler has seen: the first and the latest reading, and the busiest 5 s of CPU.
#[derive(Default)]
pub(super) struct Sampled {
    pub first: Option<(Instant, Usage)>,
    pub last: Option<(Instant, Usage)>,
    /// Cores.
    pub peak_cpu: Option<f64>,
}

impl Sampled {
    /// Cores on average between the first and the latest reading.
    pub(super) fn cpu_average(&self) -> Option<f64> {
        let ((t0, u0), (t1, u1)) = (self.first?, self.last?);
        let span = t1.duration_since(t0).as_secs_f64();
        (span > 0.0).then(|| (u1.cpu_seconds - u0.cpu_seconds) / span)
    }
}

/// Reads the process every 5 s until aborted or the process is gone.
pub(super) async fn sample_process(pid: u32, sampled: Arc<Mutex<Sampled>>) {
    loop {
        let Some(now) = process_usage(pid) else {
            return;
        };
        let at = Instant::now();
        {
            let mut s = sampled.lock().await;
            if let Some((then, before)) = s.last {
                let span = at.duration_since(then).as_secs_f64();
                if span > 0.0 {
                    let cores = (now.cpu_seconds - before.cpu_seconds) / span;
                    s.peak_cpu = Some(s.peak_cpu.map_or(cores, |p| p.max(cores)));
                }
            }
            s.first.get_or_insert((at, now));
            s.last = Some((at, now));
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_and_status_as_linux_writes_them() {
        // A command with a space and a parenthesis, utime 250 and stime 50 ticks.
        let stat = "4242 (rudder (x) y) S 1 4242 4242 0 -1 4194560 9 0 0 0 250 50 0 0 20 0 8 0";
        let status = "Name:\trudder\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(
            parse_usage(stat, status),
            Some(Usage {
                cpu_seconds: 3.0,
                rss_kib: 102_400,
                peak_rss_kib: 204_800,
            })
        );
        assert_eq!(parse_usage(stat, "Name:\trudder\n"), None);
        assert_eq!(parse_usage("4242 (rudder) S 1", status), None);
    }

    #[test]
    fn average_cpu_between_the_first_and_last_reading() {
        let t0 = Instant::now();
        let usage = |cpu_seconds| Usage {
            cpu_seconds,
            rss_kib: 0,
            peak_rss_kib: 0,
        };
        let mut s = Sampled::default();
        assert_eq!(s.cpu_average(), None);
        s.first = Some((t0, usage(10.0)));
        s.last = Some((t0 + Duration::from_secs(4), usage(16.0)));
        assert_eq!(s.cpu_average(), Some(1.5));
    }
}
