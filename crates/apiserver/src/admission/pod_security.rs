//! Pod Security admission: the Pod Security Standards (privileged, baseline, restricted)
//! chosen per namespace by the `pod-security.kubernetes.io/enforce|warn|audit` labels. An
//! `enforce` violation refuses the pod with upstream's `violates PodSecurity "level:version"`
//! message; a `warn` one becomes a response warning. Each check gives upstream's reason and
//! detail; audit annotations are not written (there is no audit log).

use serde_json::Value;

const LABEL: &str = "pod-security.kubernetes.io/";

/// A standard's level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "privileged" => Some(Self::Privileged),
            "baseline" => Some(Self::Baseline),
            "restricted" => Some(Self::Restricted),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

/// What the namespace's policy says about a pod.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Decision {
    /// Why the pod is refused (the text after `pods "x" is forbidden: `).
    pub denied: Option<String>,
    pub warnings: Vec<String>,
}

/// Applies the namespace's `enforce` and `warn` labels to a pod.
pub(crate) fn evaluate(namespace: &Value, pod: &Value) -> Decision {
    let label = |mode: &str| {
        namespace
            .pointer("/metadata/labels")
            .and_then(|l| l.get(format!("{LABEL}{mode}")))
            .and_then(Value::as_str)
    };
    let policy = |mode: &str| {
        let level = Level::parse(label(mode)?)?;
        let version = label(&format!("{mode}-version")).unwrap_or("latest");
        Some((level, version.to_owned()))
    };
    let mut decision = Decision::default();
    if let Some((level, version)) = policy("enforce") {
        let found = violations(level, pod);
        if !found.is_empty() {
            decision.denied = Some(format!(
                "violates PodSecurity \"{}:{version}\": {}",
                level.name(),
                found.join(", ")
            ));
        }
    }
    if let Some((level, version)) = policy("warn") {
        let found = violations(level, pod);
        if !found.is_empty() {
            decision.warnings.push(format!(
                "would violate PodSecurity \"{}:{version}\": {}",
                level.name(),
                found.join(", ")
            ));
        }
    }
    decision
}

/// Every container of the pod with its name (init, regular and ephemeral).
fn containers(pod: &Value) -> Vec<&Value> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect()
}

fn cname(c: &Value) -> &str {
    c.get("name").and_then(Value::as_str).unwrap_or("")
}

/// `container "a"` or `containers "a", "b"`, as upstream names what breaks a rule.
fn named(noun: &str, names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let plural = if names.len() == 1 { "" } else { "s" };
    format!("{noun}{plural} {}", quoted.join(", "))
}

/// The containers for which `bad` holds.
fn offending(pod: &Value, bad: impl Fn(&Value) -> bool) -> Vec<String> {
    containers(pod)
        .into_iter()
        .filter(|c| bad(c))
        .map(|c| cname(c).to_owned())
        .collect()
}

fn sc<'a>(c: &'a Value, field: &str) -> Option<&'a Value> {
    c.get("securityContext").and_then(|s| s.get(field))
}

fn pod_sc<'a>(pod: &'a Value, field: &str) -> Option<&'a Value> {
    pod.pointer("/spec/securityContext")
        .and_then(|s| s.get(field))
}

const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];

const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn caps_added(c: &Value) -> Vec<String> {
    sc(c, "capabilities")
        .and_then(|c| c.get("add"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The reasons (with details) the pod breaks the level's checks, in upstream's order.
fn violations(level: Level, pod: &Value) -> Vec<String> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut push = |reason: &str, detail: String| out.push(format!("{reason} ({detail})"));
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let flag = |f: &str| spec.get(f).and_then(Value::as_bool) == Some(true);
    let host: Vec<String> = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| flag(f))
        .map(|f| format!("{f}=true"))
        .collect();
    if !host.is_empty() {
        push("host namespaces", host.join(", "));
    }
    let privileged = offending(pod, |c| {
        sc(c, "privileged").and_then(Value::as_bool) == Some(true)
    });
    if !privileged.is_empty() {
        push(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                named("container", &privileged)
            ),
        );
    }
    let mut extra_caps = Vec::new();
    for c in containers(pod) {
        for cap in caps_added(c) {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) {
                extra_caps.push(format!(
                    "{} must not include {cap:?} in securityContext.capabilities.add",
                    named("container", &[cname(c).to_owned()])
                ));
            }
        }
    }
    if !extra_caps.is_empty() {
        push("non-default capabilities", extra_caps.join("; "));
    }
    let volumes: Vec<&Value> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let vname = |v: &Value| {
        v.get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let host_paths: Vec<String> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| vname(v))
        .collect();
    if !host_paths.is_empty() {
        push(
            "hostPath volumes",
            format!(
                "{} use{} hostPath",
                named("volume", &host_paths),
                if host_paths.len() == 1 { "s" } else { "" }
            ),
        );
    }
    let mut host_ports = Vec::new();
    for c in containers(pod) {
        let ports: Vec<String> = c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| p.get("hostPort").and_then(Value::as_i64))
            .filter(|p| *p != 0)
            .map(|p| p.to_string())
            .collect();
        if !ports.is_empty() {
            host_ports.push(format!(
                "{} uses hostPort{} {}",
                named("container", &[cname(c).to_owned()]),
                if ports.len() == 1 { "" } else { "s" },
                ports.join(", ")
            ));
        }
    }
    if !host_ports.is_empty() {
        push("hostPort", host_ports.join("; "));
    }
    let apparmor_bad = |p: Option<&Value>| {
        p.and_then(|p| p.get("type")).and_then(Value::as_str) == Some("Unconfined")
    };
    if apparmor_bad(pod_sc(pod, "appArmorProfile"))
        || containers(pod)
            .iter()
            .any(|c| apparmor_bad(sc(c, "appArmorProfile")))
    {
        push("forbidden AppArmor profile", "\"unconfined\"".to_owned());
    }
    let selinux_bad = |o: Option<&Value>| {
        o.is_some_and(|o| {
            let ty = o.get("type").and_then(Value::as_str).unwrap_or("");
            ![
                "",
                "container_t",
                "container_init_t",
                "container_kvm_t",
                "container_engine_t",
            ]
            .contains(&ty)
                || o.get("user")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
                || o.get("role")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
        })
    };
    if selinux_bad(pod_sc(pod, "seLinuxOptions"))
        || containers(pod)
            .iter()
            .any(|c| selinux_bad(sc(c, "seLinuxOptions")))
    {
        push(
            "seLinuxOptions",
            "forbidden securityContext.seLinuxOptions: type, user or role".to_owned(),
        );
    }
    let unmasked = offending(pod, |c| {
        sc(c, "procMount")
            .and_then(Value::as_str)
            .is_some_and(|m| m != "Default")
    });
    if !unmasked.is_empty() {
        push(
            "procMount",
            format!(
                "{} must not set securityContext.procMount to \"Unmasked\"",
                named("container", &unmasked)
            ),
        );
    }
    let seccomp = |p: Option<&Value>| {
        p.and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let pod_seccomp = seccomp(pod_sc(pod, "seccompProfile"));
    if pod_seccomp.as_deref() == Some("Unconfined") {
        push(
            "seccompProfile",
            "pod must not set securityContext.seccompProfile.type to \"Unconfined\"".to_owned(),
        );
    }
    let unconfined = offending(pod, |c| {
        seccomp(sc(c, "seccompProfile")).as_deref() == Some("Unconfined")
    });
    if !unconfined.is_empty() {
        push(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                named("container", &unconfined)
            ),
        );
    }
    let sysctls: Vec<String> = pod_sc(pod, "sysctls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("name").and_then(Value::as_str))
        .filter(|n| !SAFE_SYSCTLS.contains(n))
        .map(str::to_owned)
        .collect();
    if !sysctls.is_empty() {
        push("forbidden sysctls", sysctls.join(", "));
    }
    if level == Level::Baseline {
        return out;
    }
    let restricted_volumes: Vec<String> = volumes
        .iter()
        .filter_map(|v| {
            let ty = v.as_object()?.keys().find(|k| *k != "name")?.clone();
            (!RESTRICTED_VOLUMES.contains(&ty.as_str())).then(|| {
                format!(
                    "{} uses restricted volume type {ty:?}",
                    named("volume", &[vname(v)])
                )
            })
        })
        .collect();
    if !restricted_volumes.is_empty() {
        push("restricted volume types", restricted_volumes.join("; "));
    }
    let escalation = offending(pod, |c| {
        sc(c, "allowPrivilegeEscalation").and_then(Value::as_bool) != Some(false)
    });
    if !escalation.is_empty() {
        push(
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                named("container", &escalation)
            ),
        );
    }
    let drops_all = |c: &Value| {
        sc(c, "capabilities")
            .and_then(|c| c.get("drop"))
            .and_then(Value::as_array)
            .is_some_and(|d| d.iter().any(|x| x == "ALL"))
    };
    let no_drop = offending(pod, |c| !drops_all(c));
    let mut cap_details = Vec::new();
    if !no_drop.is_empty() {
        cap_details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            named("container", &no_drop)
        ));
    }
    for c in containers(pod) {
        let added: Vec<String> = caps_added(c)
            .into_iter()
            .filter(|c| c != "NET_BIND_SERVICE")
            .map(|c| format!("{c:?}"))
            .collect();
        if !added.is_empty() {
            cap_details.push(format!(
                "{} must not include {} in securityContext.capabilities.add",
                named("container", &[cname(c).to_owned()]),
                added.join(", ")
            ));
        }
    }
    if !cap_details.is_empty() {
        push("unrestricted capabilities", cap_details.join("; "));
    }
    let pod_non_root = pod_sc(pod, "runAsNonRoot").and_then(Value::as_bool);
    let non_root_unset = offending(pod, |c| {
        sc(c, "runAsNonRoot")
            .and_then(Value::as_bool)
            .or(pod_non_root)
            != Some(true)
    });
    if pod_non_root == Some(false) || !non_root_unset.is_empty() {
        let who = if non_root_unset.is_empty() {
            "pod".to_owned()
        } else {
            format!("pod or {}", named("container", &non_root_unset))
        };
        push(
            "runAsNonRoot != true",
            format!("{who} must set securityContext.runAsNonRoot=true"),
        );
    }
    if pod_sc(pod, "runAsUser").and_then(Value::as_i64) == Some(0) {
        push("runAsUser=0", "pod must not set runAsUser=0".to_owned());
    }
    let root = offending(pod, |c| {
        sc(c, "runAsUser").and_then(Value::as_i64) == Some(0)
    });
    if !root.is_empty() {
        push(
            "runAsUser=0",
            format!("{} must not set runAsUser=0", named("container", &root)),
        );
    }
    let allowed_seccomp =
        |t: Option<String>| matches!(t.as_deref(), Some("RuntimeDefault" | "Localhost"));
    let unset_seccomp = offending(pod, |c| {
        let own = seccomp(sc(c, "seccompProfile"));
        if own.is_some() {
            !allowed_seccomp(own)
        } else {
            !allowed_seccomp(pod_seccomp.clone())
        }
    });
    if !unset_seccomp.is_empty() && pod_seccomp.as_deref() != Some("Unconfined") {
        let who = if pod_seccomp.is_none() {
            format!("pod or {}", named("container", &unset_seccomp))
        } else {
            named("container", &unset_seccomp)
        };
        push(
            "seccompProfile",
            format!(
                "{who} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ns(labels: Value) -> Value {
        json!({"metadata": {"name": "ns", "labels": labels}})
    }

    fn restricted_ok() -> Value {
        json!({"spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "t", "projected": {}}]
        }})
    }

    #[test]
    fn violations_table() {
        let privileged = json!({"spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}]}});
        let hosty = json!({"spec": {"hostNetwork": true, "hostPID": true, "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
            "containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}], "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}});
        let plain = json!({"spec": {"containers": [{"name": "c"}, {"name": "d"}]}});
        let cases: Vec<(Level, Value, Vec<&str>)> = vec![
            (Level::Privileged, privileged.clone(), vec![]),
            (
                Level::Baseline,
                privileged.clone(),
                vec!["privileged (container \"c\" must not set securityContext.privileged=true)"],
            ),
            (
                Level::Baseline,
                hosty.clone(),
                vec![
                    "host namespaces (hostNetwork=true, hostPID=true)",
                    "non-default capabilities (container \"c\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)",
                    "hostPath volumes (volume \"h\" uses hostPath)",
                    "hostPort (container \"c\" uses hostPort 8080)",
                ],
            ),
            (Level::Baseline, plain.clone(), vec![]),
            (
                Level::Restricted,
                plain.clone(),
                vec![
                    "allowPrivilegeEscalation != false (containers \"c\", \"d\" must set securityContext.allowPrivilegeEscalation=false)",
                    "unrestricted capabilities (containers \"c\", \"d\" must set securityContext.capabilities.drop=[\"ALL\"])",
                    "runAsNonRoot != true (pod or containers \"c\", \"d\" must set securityContext.runAsNonRoot=true)",
                    "seccompProfile (pod or containers \"c\", \"d\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                ],
            ),
            (Level::Restricted, restricted_ok(), vec![]),
        ];
        for (level, pod, want) in cases {
            assert_eq!(violations(level, &pod), want, "{level:?} {pod}");
        }
    }

    #[test]
    fn evaluate_table() {
        let privileged = json!({"spec": {"containers": [{"name": "c", "securityContext": {"privileged": true}}]}});
        let d = evaluate(
            &ns(json!({"pod-security.kubernetes.io/enforce": "restricted"})),
            &restricted_ok(),
        );
        assert_eq!(d, Decision::default());
        let d = evaluate(
            &ns(
                json!({"pod-security.kubernetes.io/enforce": "baseline", "pod-security.kubernetes.io/enforce-version": "v1.30"}),
            ),
            &privileged,
        );
        assert_eq!(
            d.denied.as_deref(),
            Some(
                "violates PodSecurity \"baseline:v1.30\": privileged (container \"c\" must not set securityContext.privileged=true)"
            )
        );
        let d = evaluate(
            &ns(json!({"pod-security.kubernetes.io/warn": "baseline"})),
            &privileged,
        );
        assert_eq!(d.denied, None);
        assert_eq!(
            d.warnings,
            [
                "would violate PodSecurity \"baseline:latest\": privileged (container \"c\" must not set securityContext.privileged=true)"
            ]
        );
        assert_eq!(evaluate(&ns(json!({})), &privileged), Decision::default());
        assert_eq!(
            evaluate(
                &ns(json!({"pod-security.kubernetes.io/enforce": "bogus"})),
                &privileged
            ),
            Decision::default()
        );
    }
}
