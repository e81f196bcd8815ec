//! Upstream's validation of `networking.k8s.io/v1` NetworkPolicy specs (`ValidateNetworkPolicySpec`):
//! ports (protocol, number or name, `endPort`), peers (at least one selector or an `ipBlock`,
//! never an `ipBlock` beside a selector), `ipBlock` CIDRs and their `except`s (valid, strictly
//! inside `cidr`) and `policyTypes`; and its defaulting (`policyTypes`, port protocols). Pure.

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::status::Cause;

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.into(),
        message,
        field: field.into(),
    }
}

fn invalid(field: &str, value: &Value, why: &str) -> Cause {
    cause(
        "FieldValueInvalid",
        field,
        format!("Invalid value: {value}: {why}"),
    )
}

fn required(field: &str, why: &str) -> Cause {
    let message = if why.is_empty() {
        "Required value".to_owned()
    } else {
        format!("Required value: {why}")
    };
    cause("FieldValueRequired", field, message)
}

fn forbidden(field: &str, why: &str) -> Cause {
    cause("FieldValueForbidden", field, format!("Forbidden: {why}"))
}

fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Cause {
    let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
    cause(
        "FieldValueNotSupported",
        field,
        format!(
            "Unsupported value: {value}: supported values: {}",
            list.join(", ")
        ),
    )
}

/// Upstream's `IsValidPortName` (an IANA service name), with its messages.
fn port_name_problems(name: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    if name.is_empty() || name.len() > 15 {
        out.push("must be no more than 15 characters");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        out.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
    }
    if name.contains("--") {
        out.push("must not contain consecutive hyphens");
    }
    if !name.chars().any(|c| c.is_ascii_lowercase()) {
        out.push("must contain at least one letter (a-z)");
    }
    if name.starts_with('-') || name.ends_with('-') {
        out.push("must not begin or end with a hyphen");
    }
    out
}

fn port_number_problem(n: i64) -> Option<&'static str> {
    (!(1..=65535).contains(&n)).then_some("must be between 1 and 65535, inclusive")
}

fn check_port(port: &Value, path: &str, out: &mut Vec<Cause>) {
    if let Some(p) = port.get("protocol").filter(|p| !p.is_null())
        && !matches!(p.as_str(), Some("TCP" | "UDP" | "SCTP"))
    {
        out.push(not_supported(
            &format!("{path}.protocol"),
            p,
            &["SCTP", "TCP", "UDP"],
        ));
    }
    let number = port.get("port").and_then(Value::as_i64);
    match port.get("port") {
        Some(Value::Number(_)) => {
            if let Some(why) = number.and_then(port_number_problem) {
                out.push(invalid(&format!("{path}.port"), &port["port"], why));
            }
        }
        Some(Value::String(name)) => {
            for why in port_name_problems(name) {
                out.push(invalid(&format!("{path}.port"), &port["port"], why));
            }
        }
        _ => {}
    }
    let Some(end) = port.get("endPort").filter(|e| !e.is_null()) else {
        return;
    };
    let end_path = format!("{path}.endPort");
    match (port.get("port"), number, end.as_i64()) {
        (None | Some(Value::Null), _, _) => out.push(required(
            &format!("{path}.port"),
            "must be specified when endPort is specified",
        )),
        (Some(Value::String(_)), _, _) => out.push(forbidden(
            &end_path,
            "may not be specified when `port` is non-numeric",
        )),
        (_, Some(start), Some(e)) => {
            if let Some(why) = port_number_problem(e) {
                out.push(invalid(&end_path, end, why));
            } else if e < start {
                out.push(invalid(
                    &end_path,
                    end,
                    "must be greater than or equal to `port`",
                ));
            }
        }
        _ => out.push(invalid(&end_path, end, "must be a number")),
    }
}

fn check_ip_block(block: &Value, path: &str, out: &mut Vec<Cause>) {
    const CIDR_HINT: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
    let cidr_path = format!("{path}.cidr");
    let cidr = match block.get("cidr").and_then(Value::as_str) {
        None | Some("") => {
            out.push(required(&cidr_path, ""));
            return;
        }
        Some(c) => c,
    };
    let Ok(net) = cidr.parse::<IpNet>() else {
        out.push(invalid(&cidr_path, &json!(cidr), CIDR_HINT));
        return;
    };
    for (i, except) in block
        .get("except")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let field = format!("{path}.except[{i}]");
        match except.as_str().map(str::parse::<IpNet>) {
            Some(Ok(e)) => {
                let strict = e.prefix_len() > net.prefix_len() && net.contains(&e.network());
                if !strict {
                    out.push(invalid(&field, except, "must be a strict subset of `cidr`"));
                }
            }
            _ => out.push(invalid(&field, except, CIDR_HINT)),
        }
    }
}

fn check_peer(peer: &Value, path: &str, out: &mut Vec<Cause>) {
    let has = |k: &str| peer.get(k).is_some_and(|v| !v.is_null());
    let n = ["podSelector", "namespaceSelector", "ipBlock"]
        .iter()
        .filter(|k| has(k))
        .count();
    if n == 0 {
        out.push(required(path, "must specify a peer"));
    } else if n > 1 && has("ipBlock") {
        out.push(forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
    if let Some(block) = peer.get("ipBlock").filter(|b| !b.is_null()) {
        check_ip_block(block, &format!("{path}.ipBlock"), out);
    }
}

/// The problems of a NetworkPolicy (empty: valid).
pub fn problems(obj: &Value) -> Vec<Cause> {
    let mut out = Vec::new();
    let Some(spec) = obj.get("spec") else {
        return out;
    };
    for (dir, peers_key) in [("ingress", "from"), ("egress", "to")] {
        for (i, rule) in spec
            .get(dir)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let base = format!("spec.{dir}[{i}]");
            for (j, port) in rule
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                check_port(port, &format!("{base}.ports[{j}]"), &mut out);
            }
            for (j, peer) in rule
                .get(peers_key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                check_peer(peer, &format!("{base}.{peers_key}[{j}]"), &mut out);
            }
        }
    }
    if let Some(types) = spec.get("policyTypes").and_then(Value::as_array) {
        for (i, t) in types.iter().enumerate() {
            if !matches!(t.as_str(), Some("Ingress" | "Egress")) {
                out.push(not_supported(
                    &format!("spec.policyTypes[{i}]"),
                    t,
                    &["Egress", "Ingress"],
                ));
            }
        }
        if types.len() > 2 {
            out.push(forbidden(
                "spec.policyTypes",
                "may not specify more than two policyTypes",
            ));
        }
    }
    out
}

/// Upstream's defaults: `policyTypes` (Ingress, and Egress when there are egress rules) and
/// `TCP` for ports without a protocol.
pub fn default_spec(spec: &mut Map<String, Value>) {
    for dir in ["ingress", "egress"] {
        let rules = spec.get_mut(dir).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            let ports = rule.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
                if port.get("protocol").is_none_or(Value::is_null) {
                    port.insert("protocol".into(), json!("TCP"));
                }
            }
        }
    }
    let empty = spec
        .get("policyTypes")
        .is_none_or(|t| t.as_array().is_none_or(Vec::is_empty));
    if empty {
        let egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let mut types = vec![json!("Ingress")];
        if egress {
            types.push(json!("Egress"));
        }
        spec.insert("policyTypes".into(), Value::Array(types));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_table() {
        let cases: Vec<(&str, Value, &[&str])> = vec![
            (
                "valid",
                json!({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}, {"podSelector": {}, "namespaceSelector": {}}], "ports": [{"port": 80, "endPort": 90}, {"port": "http", "protocol": "UDP"}]}]}),
                &[],
            ),
            (
                "bad cidr",
                json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}]}),
                &["spec.ingress[0].from[0].ipBlock.cidr"],
            ),
            (
                "missing cidr",
                json!({"egress": [{"to": [{"ipBlock": {}}]}]}),
                &["spec.egress[0].to[0].ipBlock.cidr"],
            ),
            (
                "except outside cidr",
                json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["10.1.0.0/24", "10.0.0.0/16", "x"]}}]}]}),
                &[
                    "spec.ingress[0].from[0].ipBlock.except[0]",
                    "spec.ingress[0].from[0].ipBlock.except[1]",
                    "spec.ingress[0].from[0].ipBlock.except[2]",
                ],
            ),
            (
                "ipBlock beside a selector",
                json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]}),
                &["spec.ingress[0].from[0]"],
            ),
            (
                "empty peer",
                json!({"egress": [{"to": [{}]}]}),
                &["spec.egress[0].to[0]"],
            ),
            (
                "port out of range",
                json!({"ingress": [{"ports": [{"port": 0}, {"port": 70000}]}]}),
                &[
                    "spec.ingress[0].ports[0].port",
                    "spec.ingress[0].ports[1].port",
                ],
            ),
            (
                "endPort below port",
                json!({"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]}),
                &["spec.ingress[0].ports[0].endPort"],
            ),
            (
                "endPort with a named port",
                json!({"ingress": [{"ports": [{"port": "http", "endPort": 80}]}]}),
                &["spec.ingress[0].ports[0].endPort"],
            ),
            (
                "endPort without port",
                json!({"ingress": [{"ports": [{"endPort": 80}]}]}),
                &["spec.ingress[0].ports[0].port"],
            ),
            (
                "bad protocol and port name",
                json!({"ingress": [{"ports": [{"protocol": "ICMP", "port": "Bad_Name"}]}]}),
                &[
                    "spec.ingress[0].ports[0].protocol",
                    "spec.ingress[0].ports[0].port",
                ],
            ),
            (
                "policy types",
                json!({"policyTypes": ["Ingress", "Sideways", "Egress"]}),
                &["spec.policyTypes[1]", "spec.policyTypes"],
            ),
        ];
        for (what, spec, fields) in cases {
            let got: Vec<String> = problems(&json!({"spec": spec}))
                .into_iter()
                .map(|c| c.field)
                .collect();
            assert_eq!(got, fields.to_vec(), "{what}");
        }
    }

    #[test]
    fn defaults() {
        for (spec, types) in [
            (json!({"podSelector": {}}), json!(["Ingress"])),
            (json!({"egress": [{}]}), json!(["Ingress", "Egress"])),
            (json!({"egress": []}), json!(["Ingress"])),
            (
                json!({"policyTypes": ["Egress"], "ingress": [{}]}),
                json!(["Egress"]),
            ),
        ] {
            let mut spec = spec.as_object().cloned().unwrap_or_default();
            default_spec(&mut spec);
            assert_eq!(spec["policyTypes"], types);
        }
        let mut spec =
            json!({"ingress": [{"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]})
                .as_object()
                .cloned()
                .unwrap_or_default();
        default_spec(&mut spec);
        assert_eq!(spec["ingress"][0]["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ingress"][0]["ports"][1]["protocol"], "UDP");
    }
}
