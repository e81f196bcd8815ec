//! Pod addresses inside the node's pod subnet, one per pod uid, kept in a file so that pods
//! adopted after an agent restart keep theirs. Allocation is pure; [`Ipam::load`] and
//! [`Ipam::save`] are the IO.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::NetError;

/// Allocations in one subnet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ipam {
    /// The node's pod subnet.
    pub subnet: Ipv4Net,
    /// Pod uid → address.
    pub allocated: BTreeMap<String, Ipv4Addr>,
}

impl Ipam {
    /// No allocations yet.
    pub fn new(subnet: Ipv4Net) -> Ipam {
        Ipam {
            subnet,
            allocated: BTreeMap::new(),
        }
    }

    /// The address of `uid`: the one it has, else the lowest free host address after the
    /// gateway.
    pub fn allocate(&mut self, uid: &str) -> Result<Ipv4Addr, NetError> {
        if let Some(ip) = self.allocated.get(uid) {
            return Ok(*ip);
        }
        let gateway = crate::cidr::gateway(self.subnet);
        let taken: std::collections::BTreeSet<Ipv4Addr> =
            self.allocated.values().copied().collect();
        let ip = self
            .subnet
            .hosts()
            .find(|ip| Some(*ip) != gateway && !taken.contains(ip))
            .ok_or(NetError::Exhausted(self.subnet))?;
        self.allocated.insert(uid.to_owned(), ip);
        Ok(ip)
    }

    /// Frees `uid`'s address.
    pub fn release(&mut self, uid: &str) -> Option<Ipv4Addr> {
        self.allocated.remove(uid)
    }

    /// Reads the allocations for `subnet` from `path`; a missing file, or one for another
    /// subnet (the node got a new one), starts empty.
    pub fn load(path: &Path, subnet: Ipv4Net) -> Result<Ipam, NetError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let ipam: Ipam = serde_json::from_slice(&bytes)
                    .map_err(|e| NetError::State(format!("{}: {e}", path.display())))?;
                Ok(if ipam.subnet == subnet {
                    ipam
                } else {
                    Ipam::new(subnet)
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Ipam::new(subnet)),
            Err(e) => Err(NetError::State(format!("{}: {e}", path.display()))),
        }
    }

    /// Writes the allocations to `path` (a new file renamed over the old one, synced, so a
    /// crash leaves one or the other).
    pub fn save(&self, path: &Path) -> Result<(), NetError> {
        let err = |e: std::io::Error| NetError::State(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| NetError::State(e.to_string()))?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(err)?;
            f.write_all(&bytes).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_reuses_and_releases() {
        let mut ipam = Ipam::new("10.42.7.0/29".parse().expect("cidr"));
        let a = ipam.allocate("a").expect("a");
        assert_eq!(a, Ipv4Addr::new(10, 42, 7, 2), "after the gateway");
        assert_eq!(ipam.allocate("a").expect("again"), a);
        let b = ipam.allocate("b").expect("b");
        assert_eq!(b, Ipv4Addr::new(10, 42, 7, 3));
        assert_eq!(ipam.release("a"), Some(a));
        assert_eq!(
            ipam.allocate("c").expect("c"),
            a,
            "a freed address is reused"
        );
        // A /29 has 6 hosts: the gateway and five pods.
        for p in ["d", "e", "f"] {
            ipam.allocate(p).expect("room");
        }
        assert!(matches!(ipam.allocate("g"), Err(NetError::Exhausted(_))));
    }

    #[test]
    fn persists() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("net/ipam.json");
        let subnet: Ipv4Net = "10.42.1.0/24".parse().expect("cidr");
        let mut ipam = Ipam::load(&path, subnet).expect("empty");
        ipam.allocate("pod").expect("allocate");
        ipam.save(&path).expect("save");
        assert_eq!(Ipam::load(&path, subnet).expect("load"), ipam);
        let other: Ipv4Net = "10.42.2.0/24".parse().expect("cidr");
        assert!(Ipam::load(&path, other).expect("load").allocated.is_empty());
        std::fs::write(&path, b"{").expect("corrupt");
        assert!(Ipam::load(&path, subnet).is_err());
    }
}
