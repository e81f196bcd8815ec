//! Translates a Pod into what the runtime needs: the sandbox config and each container's config
//! (command, environment with `$(VAR)` expansion and field references, cgroup resources, security
//! context). Pure; what needs the API (ConfigMap and Secret values) arrives in [`EnvSources`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use rudder_machinery::quantity;
use rudder_runtime::{
    ContainerConfig, ContainerId, ContainerMetadata, PidNamespace, PodMetadata, Resources,
    SandboxConfig, SecurityConfig,
};

/// Label keys the agent puts on sandboxes and containers to find its pods again.
pub mod labels {
    /// The pod's name.
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// The pod's namespace.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// The pod's uid.
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// The container's name.
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";

    /// Every attempt of one container of a pod, by the labels above.
    pub fn container_filter(
        ns: &str,
        pod: &str,
        container: &str,
    ) -> rudder_runtime::ContainerFilter {
        rudder_runtime::ContainerFilter {
            labels: [
                (POD_NAMESPACE.to_owned(), ns.to_owned()),
                (POD_NAME.to_owned(), pod.to_owned()),
                (CONTAINER_NAME.to_owned(), container.to_owned()),
            ]
            .into(),
            ..Default::default()
        }
    }
}

/// Why a container cannot be configured (reported as `CreateContainerConfigError`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// An env var refers to a ConfigMap or Secret key that does not exist (and is not optional).
    #[error("{kind} \"{name}\" not found or has no key \"{key}\"")]
    MissingKey {
        /// `configmap` or `secret`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The key.
        key: String,
    },
    /// A field reference the agent does not know.
    #[error("unsupported fieldPath: {0}")]
    FieldPath(String),
    /// An ephemeral container's `targetContainerName` names a container that has not been
    /// created (yet).
    #[error("unable to find target container {0}")]
    TargetNotFound(String),
}

/// ConfigMap and Secret data the pod's environment refers to, fetched by the caller.
#[derive(Clone, Debug, Default)]
pub struct EnvSources {
    /// ConfigMap name → data.
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    /// Secret name → decoded data.
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
    /// Service variables (`crate::service_env`): visible to `$(VAR)` expansion, and set unless
    /// the container sets the same name.
    pub services: Vec<(String, String)>,
}

/// Node facts a pod's field references can name.
#[derive(Clone, Debug, Default)]
pub struct PodContext {
    /// `status.hostIP`.
    pub host_ip: String,
    /// `status.podIP`.
    pub pod_ip: String,
}

fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    let m = &pod.metadata;
    BTreeMap::from([
        (
            labels::POD_NAME.to_owned(),
            m.name.clone().unwrap_or_default(),
        ),
        (
            labels::POD_NAMESPACE.to_owned(),
            m.namespace.clone().unwrap_or_default(),
        ),
        (
            labels::POD_UID.to_owned(),
            m.uid.clone().unwrap_or_default(),
        ),
    ])
}

/// The sandbox of `pod` (its `attempt`-th), its containers logging under `log_directory`.
pub fn sandbox_config(
    pod: &Pod,
    attempt: u32,
    log_directory: Option<std::path::PathBuf>,
) -> SandboxConfig {
    let m = &pod.metadata;
    let name = m.name.clone().unwrap_or_default();
    let hostname = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| name.clone());
    SandboxConfig {
        metadata: PodMetadata {
            name,
            namespace: m.namespace.clone().unwrap_or_default(),
            uid: m.uid.clone().unwrap_or_default(),
            attempt,
        },
        hostname,
        log_directory,
        labels: pod_labels(pod),
        annotations: BTreeMap::new(),
        // Honoured by the CRI backend; the embedded runtime gives the pod its own namespace.
        host_network: pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
        share_pid_namespace: shares_process_namespace(pod),
    }
}

fn shares_process_namespace(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.share_process_namespace)
        .unwrap_or(false)
}

/// The PID namespace of a container of `pod`, as the kubelet decides it: the pod's with
/// `shareProcessNamespace`; else, for an ephemeral container with a `targetContainerName`
/// (`target`: that name and the target's current container, if it has one), the target's;
/// else one of its own. In a pod sharing its namespace the target's is the pod's anyway.
pub fn pid_namespace(
    pod: &Pod,
    target: Option<(&str, Option<&ContainerId>)>,
) -> Result<PidNamespace, SpecError> {
    if shares_process_namespace(pod) {
        return Ok(PidNamespace::Pod);
    }
    match target {
        None => Ok(PidNamespace::Container),
        Some((_, Some(id))) => Ok(PidNamespace::Target(id.clone())),
        Some((name, None)) => Err(SpecError::TargetNotFound(name.to_owned())),
    }
}

/// `$(VAR)` expansion as Kubernetes does it: known names are replaced, unknown references stay
/// as written, and `$$` is a literal `$`.
pub fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn field_ref(pod: &Pod, ctx: &PodContext, path: &str) -> Result<String, SpecError> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let map_key = |prefix: &str, map: &Option<BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(
            map.as_ref()
                .and_then(|m| m.get(key))
                .cloned()
                .unwrap_or_default(),
        )
    };
    if let Some(v) = map_key("metadata.labels['", &m.labels) {
        return Ok(v);
    }
    if let Some(v) = map_key("metadata.annotations['", &m.annotations) {
        return Ok(v);
    }
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.clone(),
        other => return Err(SpecError::FieldPath(other.to_owned())),
    })
}

/// The environment of `c`, in order, with references resolved and `$(VAR)` expanded against the
/// variables before each one.
pub fn environment(
    pod: &Pod,
    c: &Container,
    ctx: &PodContext,
    sources: &EnvSources,
) -> Result<Vec<(String, String)>, SpecError> {
    let mut vars: BTreeMap<String, String> = sources.services.iter().cloned().collect();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |name: String, value: String, vars: &mut BTreeMap<String, String>| {
        vars.insert(name.clone(), value.clone());
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => out.push((name, value)),
        }
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, optional, kind, name) = if let Some(r) = &from.config_map_ref {
            (
                sources.config_maps.get(&r.name),
                r.optional,
                "configmap",
                r.name.clone(),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                sources.secrets.get(&r.name),
                r.optional,
                "secret",
                r.name.clone(),
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    set(format!("{prefix}{k}"), v.clone(), &mut vars);
                }
            }
            None if optional == Some(true) => {}
            None => {
                return Err(SpecError::MissingKey {
                    kind,
                    name,
                    key: String::new(),
                });
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_ref(pod, ctx, &f.field_path)?
            } else if let Some(r) = &from.config_map_key_ref {
                let data = sources.config_maps.get(&r.name);
                match key_of("configmap", data, &r.name, &r.key, r.optional)? {
                    Some(v) => v,
                    None => continue,
                }
            } else if let Some(r) = &from.secret_key_ref {
                let data = sources.secrets.get(&r.name);
                match key_of("secret", data, &r.name, &r.key, r.optional)? {
                    Some(v) => v,
                    None => continue,
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(e.name.clone(), value, &mut vars);
    }
    // As the kubelet: what the container sets wins over the Service variables.
    for (name, value) in &sources.services {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), value.clone()));
        }
    }
    Ok(out)
}

/// A key of a ConfigMap's or Secret's data; `None` when it is missing but optional.
fn key_of(
    kind: &'static str,
    data: Option<&BTreeMap<String, String>>,
    name: &str,
    key: &str,
    optional: Option<bool>,
) -> Result<Option<String>, SpecError> {
    match data.and_then(|d| d.get(key)) {
        Some(v) => Ok(Some(v.clone())),
        None if optional == Some(true) => Ok(None),
        None => Err(SpecError::MissingKey {
            kind,
            name: name.to_owned(),
            key: key.to_owned(),
        }),
    }
}

/// Cgroup settings from requests and limits (a limit without a request requests the limit,
/// as upstream's defaulting does).
pub fn resources(c: &Container) -> Resources {
    let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let lim = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let milli =
        |m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
         k: &str| {
            m.and_then(|m| m.get(k))
                .and_then(|q| quantity::to_milli(&q.0))
        };
    let cpu_limit = milli(lim, "cpu");
    let cpu_request = milli(req, "cpu").or(cpu_limit);
    let memory_limit = lim
        .and_then(|m| m.get("memory"))
        .and_then(|q| quantity::to_units(&q.0));
    Resources {
        // Upstream: shares = milliCPU * 1024 / 1000, at least 2.
        cpu_shares: cpu_request.map(|m| u64::try_from((m * 1024 / 1000).max(2)).unwrap_or(2)),
        cpu_quota_us: cpu_limit.map(|m| i64::try_from((m * 100).max(1000)).unwrap_or(i64::MAX)),
        cpu_period_us: cpu_limit.map(|_| 100_000),
        memory_limit_bytes: memory_limit.map(|b| i64::try_from(b).unwrap_or(i64::MAX)),
        pids_limit: None,
    }
}

/// The effective security settings: the container's `securityContext` over the pod's.
pub fn security(pod: &Pod, c: &Container) -> SecurityConfig {
    let pod_sc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let sc: Option<&SecurityContext> = c.security_context.as_ref();
    let uid = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|p| p.run_as_user));
    let gid = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_sc.and_then(|p| p.run_as_group));
    let mut groups: Vec<u32> = pod_sc
        .and_then(|p| p.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| u32::try_from(g).ok())
        .collect();
    if let Some(fs) = pod_sc
        .and_then(|p| p.fs_group)
        .and_then(|g| u32::try_from(g).ok())
    {
        groups.push(fs);
    }
    let caps = sc.and_then(|s| s.capabilities.as_ref());
    SecurityConfig {
        run_as_user: uid.and_then(|u| u32::try_from(u).ok()),
        run_as_group: gid.and_then(|g| u32::try_from(g).ok()),
        supplemental_groups: groups,
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        read_only_root_filesystem: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        capabilities_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        capabilities_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        allow_privilege_escalation: sc
            .and_then(|s| s.allow_privilege_escalation)
            .unwrap_or(true),
    }
}

/// The config of container `c` of `pod` (its `attempt`-th run).
pub fn container_config(
    pod: &Pod,
    c: &Container,
    attempt: u32,
    ctx: &PodContext,
    sources: &EnvSources,
) -> Result<ContainerConfig, SpecError> {
    let env = environment(pod, c, ctx, sources)?;
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let expand_all = |v: &Option<Vec<String>>| -> Vec<String> {
        v.iter().flatten().map(|s| expand(s, &vars)).collect()
    };
    let mut container_labels = pod_labels(pod);
    container_labels.insert(labels::CONTAINER_NAME.to_owned(), c.name.clone());
    Ok(ContainerConfig {
        metadata: ContainerMetadata {
            name: c.name.clone(),
            attempt,
        },
        image: c.image.clone().unwrap_or_default(),
        command: expand_all(&c.command),
        args: expand_all(&c.args),
        working_dir: c.working_dir.clone().filter(|w| !w.is_empty()),
        env,
        mounts: Vec::new(),
        resources: resources(c),
        security: security(pod, c),
        log_path: None,
        labels: container_labels,
        annotations: BTreeMap::new(),
        stdin: c.stdin.unwrap_or(false),
        stdin_once: c.stdin_once.unwrap_or(false),
        tty: c.tty.unwrap_or(false),
        // An ephemeral container's target, if any, is the caller's to add (see `pid_namespace`).
        pid_namespace: pid_namespace(pod, None)?,
    })
}

#[cfg(test)]
mod tests;
