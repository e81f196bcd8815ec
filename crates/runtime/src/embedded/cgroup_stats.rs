//! Pure parsing of a cgroup's CPU and memory counters, as cAdvisor reads them for the kubelet:
//! cumulative CPU time, memory usage, and the working set (usage minus inactive file cache,
//! the number `kubectl top` shows and eviction decides on). The files are read by `cgroups.rs`.

/// One reading of a cgroup's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CgroupStats {
    /// Cumulative CPU time, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory charged to the cgroup, page cache included, bytes.
    pub memory_usage_bytes: u64,
    /// `memory_usage_bytes` minus the inactive file cache, bytes.
    pub memory_working_set_bytes: u64,
}

/// The value of `key` in a flat-keyed file (`memory.stat`, `cpu.stat`, `memory.events`, ...).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// cAdvisor's working set: usage minus inactive file pages, never below zero. Inactive file
/// cache is what the kernel reclaims first, so it is not "in use" for eviction purposes.
fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

/// cgroup v1: `cpuacct.usage` (ns), `memory.usage_in_bytes`, `memory.stat`. The hierarchical
/// `total_inactive_file` is used because a pod-level cgroup's own `inactive_file` excludes its
/// children. `None` when a counter is missing or unreadable.
pub(crate) fn parse_v1(
    cpuacct_usage: &str,
    usage_in_bytes: &str,
    stat: &str,
) -> Option<CgroupStats> {
    let cpu = number(cpuacct_usage)?;
    let usage = number(usage_in_bytes)?;
    let inactive = keyed(stat, "total_inactive_file")
        .or_else(|| keyed(stat, "inactive_file"))
        .unwrap_or(0);
    Some(CgroupStats {
        cpu_usage_ns: cpu,
        memory_usage_bytes: usage,
        memory_working_set_bytes: working_set(usage, inactive),
    })
}

/// cgroup v2: `cpu.stat` (`usage_usec`, microseconds), `memory.current`, `memory.stat`
/// (`inactive_file`, already hierarchical on v2).
pub(crate) fn parse_v2(cpu_stat: &str, memory_current: &str, stat: &str) -> Option<CgroupStats> {
    let cpu = keyed(cpu_stat, "usage_usec")?.checked_mul(1000)?;
    let usage = number(memory_current)?;
    let inactive = keyed(stat, "inactive_file").unwrap_or(0);
    Some(CgroupStats {
        cpu_usage_ns: cpu,
        memory_usage_bytes: usage,
        memory_working_set_bytes: working_set(usage, inactive),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_STAT: &str = "cache 8192\nrss 4096\ninactive_file 100\nactive_file 0\n\
        total_cache 16384\ntotal_rss 4096\ntotal_inactive_file 12288\ntotal_active_file 4096\n";

    #[test]
    fn v1_table() {
        let cases = [
            (
                ("123456789\n", "20480\n", V1_STAT),
                Some(CgroupStats {
                    cpu_usage_ns: 123_456_789,
                    memory_usage_bytes: 20480,
                    memory_working_set_bytes: 8192,
                }),
            ),
            // More inactive cache than usage (counters read at different moments): zero.
            (
                ("0", "4096", "total_inactive_file 8192\n"),
                Some(CgroupStats {
                    cpu_usage_ns: 0,
                    memory_usage_bytes: 4096,
                    memory_working_set_bytes: 0,
                }),
            ),
            // No memory.stat at all: the working set is the usage.
            (
                ("5", "4096", ""),
                Some(CgroupStats {
                    cpu_usage_ns: 5,
                    memory_usage_bytes: 4096,
                    memory_working_set_bytes: 4096,
                }),
            ),
            // A non-hierarchical memory.stat falls back to the cgroup's own inactive_file.
            (
                ("5", "4096", "inactive_file 1024\n"),
                Some(CgroupStats {
                    cpu_usage_ns: 5,
                    memory_usage_bytes: 4096,
                    memory_working_set_bytes: 3072,
                }),
            ),
            (("", "4096", V1_STAT), None),
            (("12", "lots", V1_STAT), None),
        ];
        for ((cpu, usage, stat), want) in cases {
            assert_eq!(
                parse_v1(cpu, usage, stat),
                want,
                "{cpu:?} {usage:?} {stat:?}"
            );
        }
    }

    #[test]
    fn v2_table() {
        let cpu_stat = "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n\
            nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        let mem_stat = "anon 1048576\nfile 2097152\nkernel 0\nactive_anon 0\ninactive_anon 0\n\
            active_file 1048576\ninactive_file 1048576\n";
        let cases = [
            (
                (cpu_stat, "3145728\n", mem_stat),
                Some(CgroupStats {
                    cpu_usage_ns: 2_500_000_000,
                    memory_usage_bytes: 3_145_728,
                    memory_working_set_bytes: 2_097_152,
                }),
            ),
            (("usage_usec 0\n", "0\n", ""), Some(CgroupStats::default())),
            // `max` is a limit file's value, never a usage: unreadable.
            ((cpu_stat, "max\n", mem_stat), None),
            (("user_usec 5\n", "1", ""), None),
        ];
        for ((cpu, current, stat), want) in cases {
            assert_eq!(parse_v2(cpu, current, stat), want, "{cpu:?} {current:?}");
        }
    }

    #[test]
    fn keyed_files() {
        let s = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(s, "oom_kill"), Some(3));
        assert_eq!(keyed(s, "oom"), None);
    }
}
