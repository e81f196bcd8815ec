//! Resource amounts as the scheduler counts them: what a pod requests and what a node offers.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use rudder_machinery::quantity::{to_milli, to_units};

/// CPU a container without a CPU request counts as when spreading (upstream's 100m).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory a container without a memory request counts as when spreading (200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// CPU in millicores, memory and ephemeral storage in bytes, pods as a count, and any other
/// (extended) resource in whole units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    pub pods: i64,
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `ResourceList` (requests, allocatable); unparsable amounts count as zero.
    pub fn from_list(list: Option<&BTreeMap<String, Quantity>>) -> Self {
        let mut r = Resources::default();
        for (name, q) in list.into_iter().flatten() {
            r.set(name, &q.0);
        }
        r
    }

    fn set(&mut self, name: &str, text: &str) {
        let clamp = |v: Option<i128>| v.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX));
        match name {
            "cpu" => self.milli_cpu = clamp(to_milli(text)),
            "memory" => self.memory = clamp(to_units(text)),
            "ephemeral-storage" => self.ephemeral_storage = clamp(to_units(text)),
            "pods" => self.pods = clamp(to_units(text)),
            other => {
                self.scalar.insert(other.to_owned(), clamp(to_units(text)));
            }
        }
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Subtracts `other` from `self`.
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }

    /// The amount of resource `name` (`cpu` in millicores).
    pub fn get(&self, name: &str) -> i64 {
        match name {
            "cpu" => self.milli_cpu,
            "memory" => self.memory,
            "ephemeral-storage" => self.ephemeral_storage,
            "pods" => self.pods,
            other => self.scalar.get(other).copied().unwrap_or(0),
        }
    }
}

fn container_requests(c: &Container) -> Resources {
    Resources::from_list(c.resources.as_ref().and_then(|r| r.requests.as_ref()))
}

/// A pod's effective request, as upstream computes it: the sum of its containers, at least the
/// largest init container (init containers run one at a time), plus the pod overhead.
pub fn pod_requests(pod: &Pod) -> Resources {
    let Some(spec) = pod.spec.as_ref() else {
        return Resources::default();
    };
    let mut sum = Resources::default();
    for c in &spec.containers {
        sum.add(&container_requests(c));
    }
    for c in spec.init_containers.iter().flatten() {
        sum.max_with(&container_requests(c));
    }
    sum.add(&Resources::from_list(spec.overhead.as_ref()));
    sum
}

/// A pod's request for spreading: containers without a CPU or memory request count as
/// [`DEFAULT_MILLI_CPU_REQUEST`] / [`DEFAULT_MEMORY_REQUEST`], so best-effort pods still spread.
pub fn pod_non_zero_requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let (mut cpu, mut mem) = (0, 0);
    for c in &spec.containers {
        let r = container_requests(c);
        cpu += if r.milli_cpu == 0 {
            DEFAULT_MILLI_CPU_REQUEST
        } else {
            r.milli_cpu
        };
        mem += if r.memory == 0 {
            DEFAULT_MEMORY_REQUEST
        } else {
            r.memory
        };
    }
    (cpu, mem)
}

/// What a node offers to pods: `status.allocatable`, or `status.capacity` when the node agent
/// did not report allocatable.
pub fn node_allocatable(node: &Node) -> Resources {
    let status = node.status.as_ref();
    let list = status
        .and_then(|s| s.allocatable.as_ref())
        .or_else(|| status.and_then(|s| s.capacity.as_ref()));
    Resources::from_list(list)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("pod")
    }

    #[test]
    fn pod_requests_table() {
        let cases = vec![
            (
                "empty",
                json!({"containers": [{"name": "a"}]}),
                (0, 0),
                (100, DEFAULT_MEMORY_REQUEST),
            ),
            (
                "two containers",
                json!({"containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "1"}}}]}),
                (1250, 1 << 30),
                (1250, (1 << 30) + DEFAULT_MEMORY_REQUEST),
            ),
            (
                "init container larger",
                json!({"initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]}),
                (2000, 0),
                (500, DEFAULT_MEMORY_REQUEST),
            ),
            (
                "overhead",
                json!({"overhead": {"cpu": "100m"},
                       "containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}),
                (200, 0),
                (100, DEFAULT_MEMORY_REQUEST),
            ),
        ];
        for (name, spec, (cpu, mem), non_zero) in cases {
            let p = pod(json!({"metadata": {"name": "p"}, "spec": spec}));
            let r = pod_requests(&p);
            assert_eq!((r.milli_cpu, r.memory), (cpu, mem), "{name}");
            assert_eq!(pod_non_zero_requests(&p), non_zero, "{name}");
        }
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let n: Node = serde_json::from_value(json!({"metadata": {"name": "n"},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110", "example.com/gpu": "2"}}}))
        .expect("node");
        let r = node_allocatable(&n);
        assert_eq!((r.milli_cpu, r.memory, r.pods), (4000, 8 << 30, 110));
        assert_eq!(r.get("example.com/gpu"), 2);
    }
}
