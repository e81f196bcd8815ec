//! Pod CIDRs: the cluster's range cut into one subnet per node. Pure.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// The node subnets of a cluster range and which of them are taken, as upstream's node-ipam
/// `CidrSet`: taking the lowest free subnet costs a few tree steps, not a scan of every node's
/// subnet (which made assigning 5,000 nodes cubic). A subnet is counted once per claim, so two
/// nodes given the same range by hand both have to let go of it before it is free.
#[derive(Debug, Clone)]
pub struct CidrSet {
    /// The cluster range, host bits cleared.
    base: u64,
    /// Bits per node subnet.
    prefix: u8,
    /// How many node subnets the range holds.
    count: u64,
    /// Taken subnets (by index from the start of the range) and how many claims each has.
    used: BTreeMap<u64, u32>,
    /// Every index below this one is taken: where the search for a free one starts.
    lowest_free: u64,
}

impl CidrSet {
    /// The subnets of `prefix` bits in `cluster`; `None` when `prefix` is shorter than the
    /// cluster's own or longer than 32.
    pub fn new(cluster: Ipv4Net, prefix: u8) -> Option<Self> {
        if prefix < cluster.prefix_len() || prefix > 32 {
            return None;
        }
        Some(Self {
            base: u64::from(u32::from(cluster.network())),
            prefix,
            count: 1u64 << (prefix - cluster.prefix_len()),
            used: BTreeMap::new(),
            lowest_free: 0,
        })
    }

    /// How many node subnets the range holds.
    pub fn capacity(&self) -> u64 {
        self.count
    }

    /// How many are taken.
    pub fn taken(&self) -> u64 {
        self.used.len() as u64
    }

    fn shift(&self) -> u32 {
        32 - u32::from(self.prefix)
    }

    /// The indices of the node subnets `net` overlaps, if any.
    fn indices(&self, net: Ipv4Net) -> Option<std::ops::RangeInclusive<u64>> {
        let last = self.base + (self.count << self.shift()) - 1;
        let start = u64::from(u32::from(net.network())).max(self.base);
        let end = u64::from(u32::from(net.broadcast())).min(last);
        (start <= end)
            .then(|| ((start - self.base) >> self.shift())..=((end - self.base) >> self.shift()))
    }

    fn subnet(&self, index: u64) -> Option<Ipv4Net> {
        let address = u32::try_from(self.base + (index << self.shift())).ok()?;
        Ipv4Net::new(Ipv4Addr::from(address), self.prefix).ok()
    }

    /// Records a subnet held by a node (its `spec.podCIDR`): every node subnet it overlaps is
    /// taken. Ranges outside the cluster's are ignored.
    pub fn occupy(&mut self, net: Ipv4Net) {
        for i in self.indices(net).into_iter().flatten() {
            *self.used.entry(i).or_default() += 1;
        }
    }

    /// Gives back what [`CidrSet::occupy`] (or [`CidrSet::allocate`]) took for `net`.
    pub fn release(&mut self, net: Ipv4Net) {
        for i in self.indices(net).into_iter().flatten() {
            if let Some(claims) = self.used.get_mut(&i) {
                *claims -= 1;
                if *claims == 0 {
                    self.used.remove(&i);
                    self.lowest_free = self.lowest_free.min(i);
                }
            }
        }
    }

    /// Takes the lowest free node subnet; `None` when the range is full.
    pub fn allocate(&mut self) -> Option<Ipv4Net> {
        let mut candidate = self.lowest_free;
        for &i in self.used.range(candidate..).map(|(i, _)| i) {
            if i != candidate {
                break;
            }
            candidate += 1;
        }
        self.lowest_free = candidate;
        if candidate >= self.count {
            return None;
        }
        let subnet = self.subnet(candidate)?;
        self.used.insert(candidate, 1);
        self.lowest_free = candidate + 1;
        Some(subnet)
    }
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

    /// The subnet a fresh set hands out after the `used` ranges were occupied.
    fn next_free(cluster: Ipv4Net, prefix: u8, used: &[Ipv4Net]) -> Option<Ipv4Net> {
        let mut set = CidrSet::new(cluster, prefix)?;
        for u in used {
            set.occupy(*u);
        }
        set.allocate()
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
            // A smaller one takes the node subnet it is in.
            (&["10.42.0.128/25"], Some("10.42.1.0/24")),
            // Outside the cluster range: irrelevant.
            (&["10.1.0.0/24"], Some("10.42.0.0/24")),
            // Partly outside: only the part inside counts.
            (&["10.40.0.0/14"], None),
            (&["10.0.0.0/8"], None),
        ];
        for (used, want) in cases {
            let used: Vec<Ipv4Net> = used.iter().map(|u| net(u)).collect();
            assert_eq!(next_free(cluster, 24, &used), want.map(net), "{used:?}");
        }
        let full: Vec<Ipv4Net> = net("10.0.0.0/30").subnets(31).expect("subnets").collect();
        assert_eq!(next_free(net("10.0.0.0/30"), 31, &full), None);
        assert!(
            CidrSet::new(cluster, 8).is_none(),
            "a node subnet larger than the cluster"
        );
        assert!(CidrSet::new(cluster, 33).is_none());
        assert_eq!(
            next_free(net("10.42.0.7/16"), 24, &[]),
            Some(net("10.42.0.0/24")),
            "host bits of the cluster range are ignored"
        );
        assert_eq!(next_free(net("0.0.0.0/0"), 0, &[]), Some(net("0.0.0.0/0")));
        assert_eq!(
            next_free(net("255.255.255.254/31"), 32, &[net("255.255.255.254/32")]),
            Some(net("255.255.255.255/32")),
            "the top of the address space"
        );
    }

    #[test]
    fn allocate_release_and_capacity() {
        // 172.16.0.0/12 holds 4,096 /24s: not enough for 5,000 nodes.
        let mut set = CidrSet::new(net("172.16.0.0/12"), 24).expect("set");
        assert_eq!(set.capacity(), 4096);
        let all: Vec<Ipv4Net> = std::iter::from_fn(|| set.allocate()).collect();
        assert_eq!(all.len(), 4096);
        assert_eq!(all[0], net("172.16.0.0/24"));
        assert_eq!(all[4095], net("172.31.255.0/24"));
        assert_eq!((set.taken(), set.allocate()), (4096, None), "full");

        // Released subnets come back lowest first.
        set.release(net("172.16.9.0/24"));
        set.release(net("172.16.3.0/24"));
        assert_eq!(set.allocate(), Some(net("172.16.3.0/24")));
        assert_eq!(set.allocate(), Some(net("172.16.9.0/24")));
        assert_eq!(set.allocate(), None);

        // A subnet claimed twice (two nodes given it by hand) is free after both let go.
        let mut set = CidrSet::new(net("10.0.0.0/22"), 24).expect("set");
        set.occupy(net("10.0.0.0/24"));
        set.occupy(net("10.0.0.0/24"));
        set.release(net("10.0.0.0/24"));
        assert_eq!(set.allocate(), Some(net("10.0.1.0/24")));
        set.release(net("10.0.0.0/24"));
        assert_eq!(set.allocate(), Some(net("10.0.0.0/24")));
        // Releasing what was never taken changes nothing.
        set.release(net("10.0.3.0/24"));
        set.release(net("192.168.0.0/24"));
        assert_eq!(set.allocate(), Some(net("10.0.2.0/24")));
        assert_eq!(set.allocate(), Some(net("10.0.3.0/24")));
        assert_eq!(set.allocate(), None);
    }

    #[test]
    fn gateway_is_the_first_host() {
        assert_eq!(
            gateway(net("10.42.3.0/24")),
            Some(Ipv4Addr::new(10, 42, 3, 1))
        );
    }
}
