//! The Service address range (`--service-cluster-ip-range`): which ranges are usable, and the
//! well-known addresses in it (the first for the `kubernetes` Service, the tenth for cluster
//! DNS, as upstream's conventions). Pure.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The range used when none is configured (k3s's default).
pub const DEFAULT: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 43, 0, 0), 16);

/// Widest range accepted: upstream refuses IPv4 masks shorter than /12 (the allocator's bitmap
/// would be too large).
pub const WIDEST_PREFIX: u8 = 12;
/// Narrowest range accepted: the range must hold the network address, the `kubernetes` Service
/// (first address), cluster DNS (tenth) and some room for others.
pub const NARROWEST_PREFIX: u8 = 28;

/// Why a Service address range cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// The mask is shorter than [`WIDEST_PREFIX`].
    #[error(
        "service IP range {0} is too large; for IPv4 the mask must be /{WIDEST_PREFIX} or longer"
    )]
    TooLarge(Ipv4Net),
    /// The mask is longer than [`NARROWEST_PREFIX`].
    #[error(
        "service IP range {0} is too small; it needs at least 16 addresses (a mask of /{NARROWEST_PREFIX} or shorter)"
    )]
    TooSmall(Ipv4Net),
    /// Host bits are set (`10.43.0.5/16`), which usually means a typo.
    #[error("service IP range {given} has host bits set; did you mean {}?", given.trunc())]
    HostBits {
        /// The range as given.
        given: Ipv4Net,
    },
    /// The range is loopback, multicast, link-local or otherwise not routable to pods.
    #[error(
        "service IP range {0} is not usable for Services (loopback, link-local, multicast or reserved)"
    )]
    Special(Ipv4Net),
    /// The range overlaps the pod address range.
    #[error("service IP range {service} overlaps the cluster (pod) range {cluster}")]
    OverlapsCluster {
        /// The Service range.
        service: Ipv4Net,
        /// The pod range.
        cluster: Ipv4Net,
    },
}

/// Checks that `range` can hold Services, and does not overlap the pod range `cluster`.
pub fn check(range: Ipv4Net, cluster: Option<Ipv4Net>) -> Result<(), RangeError> {
    if range.prefix_len() < WIDEST_PREFIX {
        return Err(RangeError::TooLarge(range));
    }
    if range.prefix_len() > NARROWEST_PREFIX {
        return Err(RangeError::TooSmall(range));
    }
    if range.trunc() != range {
        return Err(RangeError::HostBits { given: range });
    }
    let net = range.network();
    if net.is_loopback()
        || net.is_link_local()
        || net.is_multicast()
        || net.is_unspecified()
        || net.octets()[0] >= 240
    {
        return Err(RangeError::Special(range));
    }
    if let Some(cluster) = cluster
        && (range.contains(&cluster.network()) || cluster.contains(&range.network()))
    {
        return Err(RangeError::OverlapsCluster {
            service: range,
            cluster,
        });
    }
    Ok(())
}

/// The `n`th address of `range` (1 is the first after the network address: the `kubernetes`
/// Service's; 10 is cluster DNS's), or `None` when the range is too small for it.
pub fn nth_address(range: Ipv4Net, n: u32) -> Option<Ipv4Addr> {
    let base = u32::from(range.network());
    let ip = Ipv4Addr::from(base.checked_add(n)?);
    (n > 0 && range.contains(&ip) && ip != range.broadcast()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    #[test]
    fn ranges() {
        let cases: &[(&str, Option<&str>, Result<(), &str>)] = &[
            ("10.43.0.0/16", Some("10.42.0.0/16"), Ok(())),
            ("10.43.0.0/16", None, Ok(())),
            ("100.64.1.0/26", Some("10.1.2.0/24"), Ok(())),
            ("10.0.0.0/8", None, Err("too large")),
            ("10.43.0.0/29", None, Err("too small")),
            ("10.43.0.5/16", None, Err("did you mean 10.43.0.0/16")),
            ("127.0.0.0/16", None, Err("not usable")),
            ("169.254.0.0/16", None, Err("not usable")),
            ("224.0.0.0/16", None, Err("not usable")),
            ("10.42.0.0/16", Some("10.42.0.0/16"), Err("overlaps")),
            ("10.40.0.0/13", Some("10.42.0.0/16"), Err("overlaps")),
            ("10.42.7.0/24", Some("10.42.0.0/16"), Err("overlaps")),
        ];
        for (range, cluster, want) in cases {
            let got = check(net(range), cluster.map(net)).map_err(|e| e.to_string());
            match (want, &got) {
                (Ok(()), Ok(())) => {}
                (Err(text), Err(msg)) => assert!(msg.contains(text), "{range}: {msg}"),
                _ => panic!("{range} with {cluster:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn well_known_addresses() {
        let cases: &[(&str, u32, Option<&str>)] = &[
            ("10.43.0.0/16", 1, Some("10.43.0.1")),
            ("10.43.0.0/16", 10, Some("10.43.0.10")),
            ("100.64.1.64/26", 1, Some("100.64.1.65")),
            ("100.64.1.64/26", 10, Some("100.64.1.74")),
            ("10.43.0.0/28", 15, None),
            ("10.43.0.0/28", 14, Some("10.43.0.14")),
            ("10.43.0.0/16", 0, None),
        ];
        for (range, n, want) in cases {
            assert_eq!(
                nth_address(net(range), *n),
                want.map(|w| w.parse().expect("ip")),
                "{range} #{n}"
            );
        }
    }
}
