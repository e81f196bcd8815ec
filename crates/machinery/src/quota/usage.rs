//! ResourceQuota usage, after upstream's quota evaluators: object counts (`pods`,
//! `services`, `configmaps`, …, `count/<resource>[.<group>]`), service kinds
//! (`services.loadbalancers`, `services.nodeports`), and compute requests and limits of the
//! pods that are not finished (`requests.cpu` or `cpu`, `limits.memory`, …; a pod's request is
//! the larger of its containers' sum and its largest init container). Pure.

use std::collections::BTreeMap;

use crate::quantity;
use k8s_openapi::api::core::v1::{Pod, Service};

/// A quantity in milli-units as upstream prints usage: whole units plainly, else `<n>m`.
pub fn format_milli(milli: i128) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn resource_milli(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    name: &str,
) -> i128 {
    list.and_then(|m| m.get(name))
        .and_then(|q| quantity::to_milli(&q.0))
        .unwrap_or(0)
}

/// A pod's effective request or limit of `resource` (`requests` or `limits`).
fn pod_amount(pod: &Pod, which: &str, resource: &str) -> i128 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0;
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref();
        let list = if which == "requests" {
            r.and_then(|r| r.requests.as_ref())
        } else {
            r.and_then(|r| r.limits.as_ref())
        };
        resource_milli(list, resource)
    };
    let sum: i128 = spec.containers.iter().map(of).sum();
    let init = spec
        .init_containers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(of)
        .max()
        .unwrap_or(0);
    sum.max(init) + resource_milli(spec.overhead.as_ref(), resource)
}

/// Whether a pod still uses quota (not Succeeded or Failed).
fn counts(pod: &Pod) -> bool {
    !matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Usage of each key in `hard`, from the namespace's pods, services and object counts
/// (`plural.group` → number; core kinds as `plural`).
pub fn usage(
    hard: &[String],
    pods: &[&Pod],
    services: &[&Service],
    object_counts: &BTreeMap<String, usize>,
) -> BTreeMap<String, String> {
    let live: Vec<&&Pod> = pods.iter().filter(|p| counts(p)).collect();
    let mut out = BTreeMap::new();
    for key in hard {
        let value = match key.as_str() {
            "pods" | "count/pods" => Some(live.len().to_string()),
            "services" | "count/services" => Some(services.len().to_string()),
            "services.loadbalancers" | "services.nodeports" => {
                let ty = if key == "services.loadbalancers" {
                    "LoadBalancer"
                } else {
                    "NodePort"
                };
                let n = services
                    .iter()
                    .filter(|s| {
                        let t = s.spec.as_ref().and_then(|s| s.type_.as_deref());
                        t == Some(ty) || (ty == "NodePort" && t == Some("LoadBalancer"))
                    })
                    .map(|s| {
                        if ty == "NodePort" {
                            s.spec
                                .as_ref()
                                .and_then(|s| s.ports.as_ref())
                                .map_or(0, Vec::len)
                        } else {
                            1
                        }
                    })
                    .sum::<usize>();
                Some(n.to_string())
            }
            k if k.starts_with("requests.")
                || k.starts_with("limits.")
                || k == "cpu"
                || k == "memory"
                || k == "ephemeral-storage" =>
            {
                let (which, resource) = match k.split_once('.') {
                    Some((w, r)) => (w, r),
                    None => ("requests", k),
                };
                if resource == "storage" {
                    None
                } else {
                    Some(format_milli(
                        live.iter().map(|p| pod_amount(p, which, resource)).sum(),
                    ))
                }
            }
            k => {
                let plural = k.strip_prefix("count/").unwrap_or(k);
                object_counts.get(plural).map(|n| n.to_string())
            }
        };
        if let Some(v) = value {
            out.insert(key.clone(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, PodStatus, ResourceRequirements};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(PodSpec::default()),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                ..Default::default()
            }),
        }
    }

    fn with_requests(mut p: Pod, cpu: &str, mem: &str) -> Pod {
        p.spec.get_or_insert_default().containers = vec![Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: Some(
                    [
                        ("cpu".to_string(), Quantity(cpu.into())),
                        ("memory".to_string(), Quantity(mem.into())),
                    ]
                    .into(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }];
        p
    }

    #[test]
    fn usage_counts_and_sums() {
        let a = with_requests(pod("a"), "250m", "64Mi");
        let b = with_requests(pod("b"), "1", "64Mi");
        let mut done = with_requests(pod("c"), "4", "1Gi");
        done.status.get_or_insert_default().phase = Some("Succeeded".into());
        let hard: Vec<String> = [
            "pods",
            "requests.cpu",
            "memory",
            "configmaps",
            "count/deployments.apps",
            "limits.cpu",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let counts: BTreeMap<String, usize> = [
            ("configmaps".to_string(), 2),
            ("deployments.apps".to_string(), 1),
        ]
        .into();
        let u = usage(&hard, &[&a, &b, &done], &[], &counts);
        assert_eq!(u["pods"], "2");
        assert_eq!(u["requests.cpu"], "1250m");
        assert_eq!(u["memory"], "134217728");
        assert_eq!(u["configmaps"], "2");
        assert_eq!(u["count/deployments.apps"], "1");
        assert_eq!(u["limits.cpu"], "0");
    }
}
