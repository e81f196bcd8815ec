//! Resource metrics of the node and its running containers, served at the kubelet endpoint's
//! `/metrics/resource` (see `docs/metrics.md`): the node's counters from `/proc` (`host.rs`),
//! each running container's from the runtime (cgroups on a real node, synthetic numbers on a
//! simulated one), rendered as upstream's Prometheus text (`text.rs`). The counters are
//! cumulative; whoever scrapes computes rates between two scrapes, as metrics-server does.

pub mod host;
pub mod text;

use std::time::{SystemTime, UNIX_EPOCH};

use rudder_runtime::{ContainerFilter, ContainerRuntime, ContainerState};

use crate::pod_spec::labels;
use text::{ContainerSample, Sample};

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The kernel's clock ticks per second, the unit of `/proc/stat`.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf reads a constant of the running kernel and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).unwrap_or(100)
}

/// This machine's counters now, or `None` when `/proc` cannot be read or parsed.
pub async fn host_sample() -> Option<Sample> {
    let stat = tokio::fs::read_to_string("/proc/stat").await.ok()?;
    let meminfo = tokio::fs::read_to_string("/proc/meminfo").await.ok()?;
    let now = SystemTime::now();
    let h = host::parse(&stat, &meminfo, ticks_per_second())?;
    Some(Sample {
        cpu_ns: h.cpu_usage_ns,
        memory_working_set_bytes: h.memory_working_set_bytes,
        timestamp_ms: millis(now),
    })
}

/// The running containers' counters; the flag says whether some could not be read (a
/// container that stopped between list and read, a cgroup that vanished).
pub async fn container_samples(runtime: &dyn ContainerRuntime) -> (Vec<ContainerSample>, bool) {
    let filter = ContainerFilter {
        state: Some(ContainerState::Running),
        ..Default::default()
    };
    let Ok(running) = runtime.list_containers(filter).await else {
        return (Vec::new(), true);
    };
    let mut out = Vec::with_capacity(running.len());
    let mut error = false;
    for c in running {
        let label = |k: &str| c.labels.get(k).cloned();
        // Containers the agent did not create for a pod carry no pod labels: not a pod's.
        let (Some(namespace), Some(pod), Some(container)) = (
            label(labels::POD_NAMESPACE),
            label(labels::POD_NAME),
            label(labels::CONTAINER_NAME),
        ) else {
            continue;
        };
        match runtime.container_stats(&c.id).await {
            Ok(s) => out.push(ContainerSample {
                namespace,
                pod,
                container,
                sample: Sample {
                    cpu_ns: s.cpu_usage_core_nanoseconds,
                    memory_working_set_bytes: s.memory_working_set_bytes,
                    timestamp_ms: millis(s.timestamp),
                },
            }),
            Err(e) => {
                tracing::debug!(container = %c.id.0, error = %e, "container stats");
                error = true;
            }
        }
    }
    (out, error)
}

/// The `/metrics/resource` document of this machine and `runtime`'s containers.
pub async fn resource_metrics(runtime: &dyn ContainerRuntime) -> String {
    let node = host_sample().await;
    let (containers, error) = container_samples(runtime).await;
    text::render(node, &containers, error || node.is_none())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rudder_runtime::simulated::SimulatedRuntime;
    use rudder_runtime::{ContainerConfig, ContainerMetadata, SandboxConfig};

    use super::*;

    /// A running container with the pod labels the agent gives its containers.
    async fn start(rt: &SimulatedRuntime, ns: &str, pod: &str, name: &str) {
        let sb = rt
            .run_pod_sandbox(SandboxConfig::default())
            .await
            .expect("sandbox");
        let labels = BTreeMap::from([
            (labels::POD_NAMESPACE.to_owned(), ns.to_owned()),
            (labels::POD_NAME.to_owned(), pod.to_owned()),
            (labels::CONTAINER_NAME.to_owned(), name.to_owned()),
        ]);
        let config = ContainerConfig {
            metadata: ContainerMetadata {
                name: name.into(),
                attempt: 0,
            },
            command: vec!["nginx".into()],
            labels,
            ..Default::default()
        };
        let id = rt.create_container(&sb, config).await.expect("create");
        rt.start_container(&id).await.expect("start");
    }

    #[tokio::test]
    async fn running_pod_containers_are_reported() {
        let rt = SimulatedRuntime::new();
        start(&rt, "web", "a", "main").await;
        start(&rt, "web", "a", "side").await;
        // Not a pod's container (no labels): left out.
        let sb = rt
            .run_pod_sandbox(SandboxConfig::default())
            .await
            .expect("sandbox");
        let stray = rt
            .create_container(&sb, ContainerConfig::default())
            .await
            .expect("create");
        rt.start_container(&stray).await.expect("start");
        // Created but never started: not running, left out.
        let sb = rt
            .run_pod_sandbox(SandboxConfig::default())
            .await
            .expect("sandbox");
        let idle = ContainerConfig {
            labels: BTreeMap::from([
                (labels::POD_NAMESPACE.to_owned(), "web".to_owned()),
                (labels::POD_NAME.to_owned(), "b".to_owned()),
                (labels::CONTAINER_NAME.to_owned(), "main".to_owned()),
            ]),
            ..Default::default()
        };
        rt.create_container(&sb, idle).await.expect("create");

        let (samples, error) = container_samples(&rt).await;
        assert!(!error);
        let names: Vec<(&str, &str, &str)> = samples
            .iter()
            .map(|s| (s.namespace.as_str(), s.pod.as_str(), s.container.as_str()))
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, [("web", "a", "main"), ("web", "a", "side")]);
        // Synthetic, but plausible: a working set and a recent timestamp.
        assert!(
            samples
                .iter()
                .all(|s| s.sample.memory_working_set_bytes > 0 && s.sample.timestamp_ms > 0)
        );

        let text = resource_metrics(&rt).await;
        assert!(
            text.contains(
                r#"container_memory_working_set_bytes{container="side",namespace="web",pod="a"} "#
            ),
            "{text}"
        );
        assert!(text.contains(r#"pod_cpu_usage_seconds_total{namespace="web",pod="a"} "#));
        // This machine's /proc is readable: the node's own counters are there.
        assert!(text.contains("\nnode_cpu_usage_seconds_total "), "{text}");
        assert!(text.contains("\nresource_scrape_error 0\n"), "{text}");
    }
}
