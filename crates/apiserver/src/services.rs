//! Service ClusterIPs and NodePorts: allocated when a Service is created (or gains a NodePort),
//! checked against the ranges and against each other, immutable once set, and given back when
//! the Service goes. Each allocation is a reservation object in the store created only if absent,
//! so two API servers on one etcd cannot hand out the same address (upstream's IPAddress
//! objects play the same role). The decisions are pure; [`Allocations`] does the store work.

use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

use bytes::Bytes;
use ipnet::Ipv4Net;
use rudder_store::{DeleteOutcome, Store, WriteOutcome};
use serde_json::{Value, json};

use crate::status::{ApiError, Cause};

/// The NodePort range.
pub const NODE_PORTS: RangeInclusive<u16> = 30000..=32767;

// Under the registry prefix, so the watch cache sees these writes and keeps pace with the
// store's revision; no API resource is served from them.
const IP_PREFIX: &str = "/registry/rudder.io/serviceipallocations/";
const PORT_PREFIX: &str = "/registry/rudder.io/servicenodeportallocations/";

/// What a Service asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub cluster_ip: WantIp,
    /// Per port index: `Some(port)` asked for, `None` to allocate. Empty unless the type needs
    /// node ports.
    pub node_ports: Vec<(usize, Option<u16>)>,
}

/// The ClusterIP a Service asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WantIp {
    /// ExternalName Services have none.
    NotApplicable,
    /// Headless (`None`).
    Headless,
    /// Any free address.
    Any,
    /// This one.
    Exactly(Ipv4Addr),
}

/// Allocation writes into `spec`: anything but an object (or nothing) there is refused before,
/// as indexing into it would panic (found by the robustness fuzzer).
fn spec_is_object(svc: &Value, name: &str) -> Result<(), ApiError> {
    match svc.get("spec") {
        None | Some(Value::Null | Value::Object(_)) => Ok(()),
        Some(other) => Err(invalid(name, "spec", format!("{other}: must be an object"))),
    }
}

fn invalid(name: &str, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message: format!("Invalid value: {message}"),
            field: field.into(),
        }],
    )
}

/// Reads what `svc` asks for, rejecting addresses outside `range` and ports outside the
/// NodePort range.
pub fn wanted(svc: &Value, name: &str, range: Ipv4Net) -> Result<Wanted, ApiError> {
    spec_is_object(svc, name)?;
    let spec = svc.get("spec").cloned().unwrap_or_default();
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let ip = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| spec.pointer("/clusterIPs/0").and_then(Value::as_str));
    let cluster_ip = match (kind, ip) {
        ("ExternalName", _) => WantIp::NotApplicable,
        (_, None) => WantIp::Any,
        (_, Some("None")) => WantIp::Headless,
        (_, Some(s)) => {
            let parsed: Ipv4Addr = s.parse().map_err(|_| {
                invalid(
                    name,
                    "spec.clusterIPs[0]",
                    format!("\"{s}\": must be a valid IP address"),
                )
            })?;
            let r = range;
            if !r.contains(&parsed) || parsed == r.network() || parsed == r.broadcast() {
                return Err(invalid(
                    name,
                    "spec.clusterIPs",
                    format!(
                        "[]string{{\"{s}\"}}: failed to allocate IP {s}: the provided IP ({s}) is not in the valid range. The range of valid IPs is {r}"
                    ),
                ));
            }
            WantIp::Exactly(parsed)
        }
    };
    let mut node_ports = Vec::new();
    if matches!(kind, "NodePort" | "LoadBalancer") {
        for (i, p) in spec
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let asked = p
                .get("nodePort")
                .and_then(Value::as_u64)
                .filter(|n| *n != 0);
            match asked {
                None => node_ports.push((i, None)),
                Some(n) => {
                    let port = u16::try_from(n).ok().filter(|n| NODE_PORTS.contains(n));
                    let Some(port) = port else {
                        return Err(invalid(
                            name,
                            &format!("spec.ports[{i}].nodePort"),
                            format!(
                                "{n}: provided port is not in the valid range. The range of valid ports is {}-{}",
                                NODE_PORTS.start(),
                                NODE_PORTS.end()
                            ),
                        ));
                    };
                    node_ports.push((i, Some(port)));
                }
            }
        }
    }
    Ok(Wanted {
        cluster_ip,
        node_ports,
    })
}

/// On update: an unset ClusterIP keeps the current one; a different one is refused. Unset
/// node ports of ports that already had one keep theirs (matched by port and protocol).
pub fn carry_over(current: &Value, new: &mut Value, name: &str) -> Result<(), ApiError> {
    spec_is_object(new, name)?;
    let old_ip = current.pointer("/spec/clusterIP").and_then(Value::as_str);
    let new_ip = new
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let external = new.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
    match (old_ip, new_ip) {
        (Some(old), None) if !external => {
            new["spec"]["clusterIP"] = json!(old);
            new["spec"]["clusterIPs"] = json!([old]);
        }
        (Some(old), Some(n)) if old != n && !external => {
            return Err(invalid(
                name,
                "spec.clusterIPs[0]",
                format!("[]string{{\"{n}\"}}: may not change once set"),
            ));
        }
        _ => {}
    }
    let old_ports = current
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let key = |p: &Value| {
        (
            p.get("port").and_then(Value::as_i64),
            p.get("protocol")
                .and_then(Value::as_str)
                .unwrap_or("TCP")
                .to_owned(),
        )
    };
    if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            let unset = p
                .get("nodePort")
                .and_then(Value::as_u64)
                .is_none_or(|n| n == 0);
            if unset
                && let Some(old) = old_ports.iter().find(|o| key(o) == key(p))
                && let Some(n) = old
                    .get("nodePort")
                    .filter(|n| n.as_u64().is_some_and(|n| n > 0))
            {
                p["nodePort"] = n.clone();
            }
        }
    }
    Ok(())
}

/// The addresses and ports a Service holds.
pub fn held(svc: &Value) -> (Option<Ipv4Addr>, Vec<u16>) {
    let ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok());
    let ports = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort")?.as_u64())
        .filter_map(|n| u16::try_from(n).ok())
        .filter(|n| *n != 0)
        .collect();
    (ip, ports)
}

/// Reservations taken for one write, to undo if the write fails.
#[derive(Debug, Default)]
pub struct Taken {
    keys: Vec<String>,
}

/// Reservation keys in the store.
pub struct Allocations<'a> {
    pub store: &'a dyn Store,
    /// The Service address range (`--service-cluster-ip-range`).
    pub range: Ipv4Net,
}

impl Allocations<'_> {
    async fn reserve(&self, key: String, owner: &str) -> Result<bool, ApiError> {
        let name = key.rsplit('/').next().unwrap_or_default();
        let value = json!({"metadata": {"name": name}, "owner": owner});
        match self
            .store
            .create(&key, Bytes::from(value.to_string()))
            .await?
        {
            WriteOutcome::Written(_) => Ok(true),
            WriteOutcome::AlreadyExists(_) | WriteOutcome::Conflict(_) => Ok(false),
        }
    }

    /// Allocates what `svc` (to be created, or updated from `previous`) needs and writes the
    /// results into it. `owner` is `namespace/name`.
    pub async fn allocate(
        &self,
        svc: &mut Value,
        previous: Option<&Value>,
        owner: &str,
        name: &str,
    ) -> Result<Taken, ApiError> {
        let mut taken = Taken::default();
        let result = self
            .allocate_into(svc, previous, owner, name, &mut taken)
            .await;
        if let Err(e) = result {
            self.release(&taken).await;
            return Err(e);
        }
        Ok(taken)
    }

    async fn allocate_into(
        &self,
        svc: &mut Value,
        previous: Option<&Value>,
        owner: &str,
        name: &str,
        taken: &mut Taken,
    ) -> Result<(), ApiError> {
        let want = wanted(svc, name, self.range)?;
        let (had_ip, had_ports) = previous.map(held).unwrap_or_default();
        match want.cluster_ip {
            WantIp::Exactly(ip) if Some(ip) != had_ip => {
                let key = format!("{IP_PREFIX}{ip}");
                if !self.reserve(key.clone(), owner).await? {
                    return Err(invalid(
                        name,
                        "spec.clusterIPs",
                        format!(
                            "[]string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated"
                        ),
                    ));
                }
                taken.keys.push(key);
            }
            WantIp::Any => {
                let ip = self.any_ip(owner, taken).await?;
                svc["spec"]["clusterIP"] = json!(ip.to_string());
                svc["spec"]["clusterIPs"] = json!([ip.to_string()]);
            }
            WantIp::Headless => {
                svc["spec"]["clusterIPs"] = json!(["None"]);
            }
            _ => {}
        }
        for (i, port) in want.node_ports {
            match port {
                Some(p) if had_ports.contains(&p) => {}
                Some(p) => {
                    let key = format!("{PORT_PREFIX}{p}");
                    if !self.reserve(key.clone(), owner).await? {
                        return Err(invalid(
                            name,
                            &format!("spec.ports[{i}].nodePort"),
                            format!("{p}: provided port is already allocated"),
                        ));
                    }
                    taken.keys.push(key);
                }
                None => {
                    let p = self.any_port(owner, taken).await?;
                    svc["spec"]["ports"][i]["nodePort"] = json!(p);
                }
            }
        }
        Ok(())
    }

    async fn any_ip(&self, owner: &str, taken: &mut Taken) -> Result<Ipv4Addr, ApiError> {
        let r = self.range;
        let size = u32::from(r.broadcast()) - u32::from(r.network());
        for offset in dynamic_offsets(size, rand::random::<u32>()) {
            let ip = Ipv4Addr::from(u32::from(r.network()) + offset);
            let key = format!("{IP_PREFIX}{ip}");
            if self.reserve(key.clone(), owner).await? {
                taken.keys.push(key);
                return Ok(ip);
            }
        }
        Err(ApiError::internal(format!(
            "failed to allocate a serviceIP: range is full ({r})"
        )))
    }

    /// Reserves `ip` for `owner` (the `kubernetes` Service at start-up); false when it is
    /// already reserved.
    pub async fn reserve_ip(&self, ip: Ipv4Addr, owner: &str) -> Result<bool, ApiError> {
        self.reserve(format!("{IP_PREFIX}{ip}"), owner).await
    }

    async fn any_port(&self, owner: &str, taken: &mut Taken) -> Result<u16, ApiError> {
        let size = u32::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
        let start = rand::random::<u32>() % size;
        for step in 0..size {
            let port = NODE_PORTS.start() + ((start + step) % size) as u16;
            let key = format!("{PORT_PREFIX}{port}");
            if self.reserve(key.clone(), owner).await? {
                taken.keys.push(key);
                return Ok(port);
            }
        }
        Err(ApiError::internal(
            "failed to allocate a nodePort: range is full",
        ))
    }

    /// Undoes reservations of a failed write.
    pub async fn release(&self, taken: &Taken) {
        for k in &taken.keys {
            let _ = self.store.delete(k, None).await;
        }
    }

    /// Gives back what `svc` held and `kept` (its new version, if any) no longer holds.
    pub async fn release_held(&self, svc: &Value, kept: Option<&Value>) {
        let (ip, ports) = held(svc);
        let (kept_ip, kept_ports) = kept.map(held).unwrap_or_default();
        let mut keys = Vec::new();
        if let Some(ip) = ip.filter(|ip| Some(*ip) != kept_ip) {
            keys.push(format!("{IP_PREFIX}{ip}"));
        }
        for p in ports.into_iter().filter(|p| !kept_ports.contains(p)) {
            keys.push(format!("{PORT_PREFIX}{p}"));
        }
        for k in keys {
            match self.store.delete(&k, None).await {
                Ok(DeleteOutcome::Deleted { .. } | DeleteOutcome::NotFound) => {}
                Ok(DeleteOutcome::Conflict(_)) | Err(_) => {
                    tracing::warn!(key = %k, "could not release a service allocation");
                }
            }
        }
    }
}

/// The offsets (from the network address) dynamic allocation tries, in order, for a range of
/// `size` addresses before the broadcast one. As upstream, a lower band is kept for addresses
/// asked for by value (the `kubernetes` Service's first address, cluster DNS's tenth) and used
/// only once the upper band is full; the search starts at a random place (`seed`) so freed
/// addresses are not reused right away.
fn dynamic_offsets(size: u32, seed: u32) -> impl Iterator<Item = u32> {
    let band = (size / 16).clamp(16, 256).min(size);
    let upper = size - band;
    let start = if upper == 0 { 0 } else { seed % upper };
    let upper_part = (0..upper).map(move |i| band + (start + i) % upper);
    // Offset 0 is the network address and 1 the `kubernetes` Service's.
    upper_part.chain(2..band)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RANGE: Ipv4Net = Ipv4Net::new_assert(Ipv4Addr::new(10, 43, 0, 0), 16);

    #[test]
    fn dynamic_allocation_prefers_the_upper_band() {
        let small: Vec<u32> = dynamic_offsets(63, 5).collect();
        // A /26: 16 reserved for static addresses, 47 above them.
        assert_eq!(small.len(), 47 + 14);
        assert_eq!(small[0], 16 + 5);
        assert!(small[..47].iter().all(|o| *o >= 16));
        assert_eq!(&small[47..49], &[2, 3]);
        assert!(!small.contains(&0) && !small.contains(&1));
        let mut sorted = small.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), small.len(), "no offset twice");
        let big: Vec<u32> = dynamic_offsets(65535, 0).take(1).collect();
        assert_eq!(big, vec![256], "the band is at most 256 addresses");
    }

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s"}, "spec": spec})
    }

    #[test]
    fn what_services_ask_for() {
        let cases: Vec<(Value, Result<WantIp, u16>)> = vec![
            (json!({"ports": [{"port": 80}]}), Ok(WantIp::Any)),
            (json!({"clusterIP": "None"}), Ok(WantIp::Headless)),
            (
                json!({"clusterIP": "10.43.1.2"}),
                Ok(WantIp::Exactly(Ipv4Addr::new(10, 43, 1, 2))),
            ),
            (
                json!({"clusterIPs": ["10.43.1.3"]}),
                Ok(WantIp::Exactly(Ipv4Addr::new(10, 43, 1, 3))),
            ),
            (
                json!({"type": "ExternalName", "externalName": "x.example"}),
                Ok(WantIp::NotApplicable),
            ),
            (json!({"clusterIP": "10.99.0.1"}), Err(422)),
            (json!({"clusterIP": "10.43.0.0"}), Err(422)),
            (json!({"clusterIP": "banana"}), Err(422)),
        ];
        for (spec, want) in cases {
            let got = wanted(&svc(spec.clone()), "s", RANGE)
                .map(|w| w.cluster_ip)
                .map_err(|e| e.code);
            assert_eq!(got, want, "{spec}");
        }
        let np = wanted(
            &svc(json!({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "nodePort": 30080}]})),
            "s",
            RANGE,
        )
        .expect("valid");
        assert_eq!(np.node_ports, vec![(0, None), (1, Some(30080))]);
        let out = wanted(
            &svc(json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]})),
            "s",
            RANGE,
        )
        .expect_err("out of range");
        assert!(
            out.message
                .contains("The range of valid ports is 30000-32767"),
            "{}",
            out.message
        );
        assert!(
            wanted(
                &svc(json!({"ports": [{"port": 80, "nodePort": 80}]})),
                "s",
                RANGE
            )
            .is_ok(),
            "node ports of a ClusterIP Service are not allocated"
        );
    }

    #[test]
    fn updates_keep_what_was_allocated() {
        let current = svc(
            json!({"type": "NodePort", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "ports": [{"port": 80, "nodePort": 30001}, {"port": 53, "protocol": "UDP", "nodePort": 30002}]}),
        );
        let mut new = svc(
            json!({"type": "NodePort", "ports": [{"port": 53, "protocol": "UDP"}, {"port": 443}]}),
        );
        carry_over(&current, &mut new, "s").expect("carry over");
        assert_eq!(new["spec"]["clusterIP"], "10.43.0.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30002);
        assert!(new["spec"]["ports"][1].get("nodePort").is_none());
        let mut changed = svc(json!({"clusterIP": "10.43.0.10"}));
        let err = carry_over(&current, &mut changed, "s").expect_err("immutable");
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("may not change once set"),
            "{}",
            err.message
        );
        assert_eq!(
            held(&current),
            (Some(Ipv4Addr::new(10, 43, 0, 9)), vec![30001, 30002])
        );
    }
}
