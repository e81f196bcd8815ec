//! Facts about this machine a Node reports: CPUs, memory, disk, kernel, OS image, identity.
//! Parsing is pure (tested with tables); reading the files sits in [`Machine::detect`].

use std::path::Path;

use crate::NodeError;

/// What the node reports about the machine it runs on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Host name (`kubernetes.io/hostname`).
    pub hostname: String,
    /// Logical CPUs.
    pub cpus: u64,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// Size of the filesystem holding the agent's data, in bytes (ephemeral storage).
    pub disk_bytes: u64,
    /// `uname -r`.
    pub kernel_version: String,
    /// `PRETTY_NAME` of /etc/os-release.
    pub os_image: String,
    /// `GOARCH` spelling of the architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// /etc/machine-id.
    pub machine_id: String,
    /// /proc/sys/kernel/random/boot_id.
    pub boot_id: String,
    /// The first non-loopback IPv4 address, if any.
    pub internal_ip: Option<String>,
}

impl Machine {
    /// Reads the facts of this machine; `data_dir` is where ephemeral storage lives.
    pub fn detect(data_dir: &Path) -> Result<Self, NodeError> {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let meminfo =
            std::fs::read_to_string("/proc/meminfo").map_err(|source| NodeError::Machine {
                what: "/proc/meminfo".into(),
                source,
            })?;
        let hostname = hostname();
        Ok(Self {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes: mem_total(&meminfo).unwrap_or(0),
            disk_bytes: disk_size(data_dir)?,
            kernel_version: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os_image: os_image(&read("/etc/os-release")),
            architecture: go_arch(std::env::consts::ARCH).to_owned(),
            machine_id: read("/etc/machine-id").trim().to_owned(),
            boot_id: read("/proc/sys/kernel/random/boot_id").trim().to_owned(),
            internal_ip: default_route_ipv4(&read("/proc/net/route"), &read("/proc/net/fib_trie"))
                .or_else(|| first_ipv4(&read("/proc/net/fib_trie"))),
            hostname,
        })
    }
}

/// The lower-cased host name, as the kubelet registers it.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into the buffer we own.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let name = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

/// `MemTotal` of /proc/meminfo in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        let mut parts = rest.split_whitespace();
        let n: u64 = parts.next()?.parse().ok()?;
        match parts.next() {
            Some("kB") | None => Some(n * 1024),
            _ => None,
        }
    })
}

/// `PRETTY_NAME` from /etc/os-release (unquoted), or `Linux`.
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".into())
}

/// Go's name for a Rust architecture.
pub fn go_arch(rust_arch: &str) -> &str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The local IPv4 address on the interface of the default route (from /proc/net/route and
/// /proc/net/fib_trie): the machine's address to other machines, not that of a bridge it
/// serves pods on.
pub fn default_route_ipv4(route: &str, fib_trie: &str) -> Option<String> {
    let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
    let rows: Vec<Vec<&str>> = route
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .filter(|f: &Vec<&str>| f.len() >= 8)
        .collect();
    let iface = rows
        .iter()
        .find(|f| f[1] == "00000000" && f[7] == "00000000")?[0];
    let subnets: Vec<(u32, u32)> = rows
        .iter()
        .filter(|f| f[0] == iface && f[2] == "00000000" && f[1] != "00000000")
        .filter_map(|f| Some((hex(f[1])?, hex(f[7])?)))
        .collect();
    local_ipv4s(fib_trie).into_iter().find(|ip| {
        ip.parse::<std::net::Ipv4Addr>().is_ok_and(|a| {
            subnets
                .iter()
                .any(|(net, mask)| u32::from(a) & mask == *net)
        })
    })
}

/// Every local IPv4 address in /proc/net/fib_trie's `LOCAL` host entries.
fn local_ipv4s(fib_trie: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last_ip: Option<&str> = None;
    for line in fib_trie.lines() {
        let t = line.trim();
        if let Some(ip) = t.strip_prefix("|-- ") {
            last_ip = Some(ip);
        } else if t.contains("/32 host LOCAL")
            && let Some(ip) = last_ip
            && !out.iter().any(|o| o == ip)
        {
            out.push(ip.to_owned());
        }
    }
    out
}

/// The first local non-loopback IPv4 address in /proc/net/fib_trie's `LOCAL` host entries.
pub fn first_ipv4(fib_trie: &str) -> Option<String> {
    local_ipv4s(fib_trie)
        .into_iter()
        .find(|ip| !ip.starts_with("127."))
}

fn disk_size(dir: &Path) -> Result<u64, NodeError> {
    use std::os::unix::ffi::OsStrExt;
    let err = |source| NodeError::Machine {
        what: format!("filesystem of {}", dir.display()),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut path = dir.as_os_str().as_bytes().to_vec();
    path.push(0);
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer.
    let rc = unsafe { libc::statvfs(path.as_ptr().cast(), &mut st) };
    if rc != 0 {
        return Err(err(std::io::Error::last_os_error()));
    }
    Ok(st.f_blocks as u64 * st.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_machine_files() {
        assert_eq!(
            mem_total("MemFree: 10 kB\nMemTotal:       24598760 kB\n"),
            Some(24_598_760 * 1024)
        );
        assert_eq!(mem_total("nothing"), None);
        assert_eq!(
            os_image("NAME=\"Debian\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n"),
            "Debian GNU/Linux 12 (bookworm)"
        );
        assert_eq!(os_image(""), "Linux");
        assert_eq!(go_arch("x86_64"), "amd64");
        assert_eq!(go_arch("aarch64"), "arm64");
        let trie = "Local:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 10.0.0.5\n        /32 host LOCAL\n";
        assert_eq!(first_ipv4(trie), Some("10.0.0.5".into()));
        // The default route's interface wins over a pod bridge's address.
        let route = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n\
            rudder0\t00002A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\n";
        let trie = "     |-- 10.42.0.1\n        /32 host LOCAL\n     |-- 192.0.2.2\n        /32 host LOCAL\n";
        assert_eq!(default_route_ipv4(route, trie), Some("192.0.2.2".into()));
        assert_eq!(default_route_ipv4("Iface\n", trie), None);
        assert_eq!(
            first_ipv4("     |-- 127.0.0.1\n        /32 host LOCAL\n"),
            None
        );
    }

    #[test]
    fn detects_this_machine() {
        let dir = std::env::temp_dir();
        let m = Machine::detect(&dir).expect("detect");
        assert!(
            m.cpus >= 1 && m.memory_bytes > 0 && m.disk_bytes > 0,
            "{m:?}"
        );
        assert!(!m.hostname.is_empty());
    }
}
