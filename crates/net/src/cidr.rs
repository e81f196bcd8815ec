//! Pod CIDRs: the cluster's range cut into one subnet per node. Pure.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The first subnet of `prefix` bits inside `cluster` that none of `used` overlaps, or `None`
/// when the cluster range is full.
pub fn next_free(cluster: Ipv4Net, prefix: u8, used: &[Ipv4Net]) -> Option<Ipv4Net> {
    let mut subnets = cluster.subnets(prefix).ok()?;
    subnets.find(|s| !used.iter().any(|u| overlaps(*s, *u)))
}

fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The node's bridge address in its pod subnet: the first host address (pods get the others).
pub fn gateway(subnet: Ipv4Net) -> Option<Ipv4Addr> {
    subnet.hosts().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("cidr")
    }

    #[test]
    fn allocation() {
        let cluster = net("10.42.0.0/16");
        let cases: &[(&[&str], Option<&str>)] = &[
            (&[], Some("10.42.0.0/24")),
            (&["10.42.0.0/24"], Some("10.42.1.0/24")),
            (&["10.42.0.0/24", "10.42.2.0/24"], Some("10.42.1.0/24")),
            // A bigger range taken by hand covers several node subnets.
            (&["10.42.0.0/23"], Some("10.42.2.0/24")),
            // Outside the cluster range: irrelevant.
            (&["10.1.0.0/24"], Some("10.42.0.0/24")),
        ];
        for (used, want) in cases {
            let used: Vec<Ipv4Net> = used.iter().map(|u| net(u)).collect();
            assert_eq!(next_free(cluster, 24, &used), want.map(net), "{used:?}");
        }
        let full: Vec<Ipv4Net> = net("10.0.0.0/30").subnets(31).expect("subnets").collect();
        assert_eq!(next_free(net("10.0.0.0/30"), 31, &full), None);
        assert_eq!(
            next_free(cluster, 8, &[]),
            None,
            "a node subnet larger than the cluster"
        );
        assert_eq!(
            gateway(net("10.42.3.0/24")),
            Some(Ipv4Addr::new(10, 42, 3, 1))
        );
    }
}
