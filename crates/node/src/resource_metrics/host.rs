//! The node's own CPU and memory counters from `/proc/stat` and `/proc/meminfo`, which read the
//! same on cgroup v1 and v2 hosts. Pure: the caller reads the files.

/// One reading of the node's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostStats {
    /// CPU time spent on anything but idling, all CPUs, nanoseconds since boot.
    pub cpu_usage_ns: u64,
    /// Memory in use minus inactive file cache, bytes (cAdvisor's working set of the root cgroup).
    pub memory_working_set_bytes: u64,
}

/// Busy CPU time from the aggregate `cpu` line of `/proc/stat`, in nanoseconds, given the
/// kernel's clock ticks per second (`USER_HZ`). Busy is user + nice + system + irq + softirq:
/// idle and iowait are waiting, steal is time the hypervisor gave to someone else, and guest
/// time is already counted in user. That is what the root cgroup's `cpuacct.usage` counts.
pub fn cpu_usage_ns(proc_stat: &str, ticks_per_second: u64) -> Option<u64> {
    if ticks_per_second == 0 {
        return None;
    }
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq [steal guest guest_nice]
    let busy_ticks = [0usize, 1, 2, 5, 6]
        .iter()
        .map(|i| fields.get(*i).copied())
        .sum::<Option<u64>>()?;
    let ns = u128::from(busy_ticks) * 1_000_000_000 / u128::from(ticks_per_second);
    u64::try_from(ns).ok()
}

/// A `/proc/meminfo` field in bytes (the file says kB and means KiB).
fn meminfo_bytes(meminfo: &str, key: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let (k, rest) = l.split_once(':')?;
        if k != key {
            return None;
        }
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// The node's working set: used memory (total − free) minus inactive file cache, as cAdvisor
/// computes it for the root cgroup (usage − `inactive_file`).
pub fn memory_working_set_bytes(meminfo: &str) -> Option<u64> {
    let total = meminfo_bytes(meminfo, "MemTotal")?;
    let free = meminfo_bytes(meminfo, "MemFree")?;
    let inactive_file = meminfo_bytes(meminfo, "Inactive(file)").unwrap_or(0);
    Some(total.saturating_sub(free).saturating_sub(inactive_file))
}

/// Both counters; `None` if either file is not what Linux writes.
pub fn parse(proc_stat: &str, meminfo: &str, ticks_per_second: u64) -> Option<HostStats> {
    Some(HostStats {
        cpu_usage_ns: cpu_usage_ns(proc_stat, ticks_per_second)?,
        memory_working_set_bytes: memory_working_set_bytes(meminfo)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  2939407 7 487831 824239 17899 3 11804 4829 0 0\n\
        cpu0 1467207 0 238500 425197 5980 0 4081 2370 0 0\nintr 1 2 3\nctxt 99\n";

    #[test]
    fn cpu_table() {
        let busy = 2_939_407 + 7 + 487_831 + 3 + 11_804u64;
        let cases = [
            ((STAT, 100), Some(busy * 10_000_000)),
            ((STAT, 1000), Some(busy * 1_000_000)),
            // Old kernels have seven fields.
            (("cpu  10 0 5 100 0 0 1\n", 100), Some(160_000_000)),
            (("cpu  10 0 5 100 0\n", 100), None),
            (("cpu0 1 2 3 4 5 6 7\n", 100), None),
            (("cpu  a b c d e f g\n", 100), None),
            ((STAT, 0), None),
        ];
        for ((text, hz), want) in cases {
            assert_eq!(cpu_usage_ns(text, hz), want, "{text:?} {hz}");
        }
    }

    #[test]
    fn memory_table() {
        let cases = [
            (
                "MemTotal:       24683772 kB\nMemFree:        17912448 kB\n\
                 MemAvailable:   23830704 kB\nInactive(file):  2639804 kB\n",
                Some((24_683_772 - 17_912_448 - 2_639_804) * 1024),
            ),
            ("MemTotal: 1000 kB\nMemFree: 400 kB\n", Some(600 * 1024)),
            (
                "MemTotal: 1000 kB\nMemFree: 400 kB\nInactive(file): 900 kB\n",
                Some(0),
            ),
            ("MemFree: 400 kB\n", None),
            ("MemTotal: lots\nMemFree: 4 kB\n", None),
        ];
        for (text, want) in cases {
            assert_eq!(memory_working_set_bytes(text), want, "{text:?}");
        }
    }

    #[test]
    fn both_or_nothing() {
        let mem = "MemTotal: 1000 kB\nMemFree: 400 kB\n";
        assert_eq!(
            parse(STAT, mem, 100).map(|h| h.memory_working_set_bytes),
            Some(600 * 1024)
        );
        assert_eq!(parse("", mem, 100), None);
        assert_eq!(parse(STAT, "", 100), None);
    }
}
