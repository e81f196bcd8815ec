//! The replica calculator of the HorizontalPodAutoscaler: from the pods behind a scale target,
//! their resource requests and their measured usage, how many replicas would bring the usage to
//! the target. Follows upstream's algorithm, including its treatment of pods without metrics and
//! of pods not yet ready (so a rollout does not look like a load spike). Pure.

use std::collections::BTreeMap;

/// Relative distance from the target within which the HPA does not rescale (upstream's
/// `--horizontal-pod-autoscaler-tolerance` default).
pub const TOLERANCE: f64 = 0.1;

/// After a pod starts, how long its CPU samples may still reflect start-up work
/// (`--horizontal-pod-autoscaler-cpu-initialization-period`).
pub const CPU_INITIALIZATION_SECS: i64 = 300;

/// How long after start a pod's first readiness change still counts as "initial"
/// (`--horizontal-pod-autoscaler-initial-readiness-delay`).
pub const INITIAL_READINESS_DELAY_SECS: i64 = 30;

/// What the calculator needs to know about one pod, extracted from the Pod object.
#[derive(Clone, Debug, PartialEq)]
pub struct PodInfo {
    pub name: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, ...
    pub phase: String,
    /// Marked for deletion.
    pub deleting: bool,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// When the `Ready` condition last changed (seconds since the epoch).
    pub ready_transition: Option<i64>,
    /// `status.startTime` (seconds since the epoch).
    pub start_time: Option<i64>,
    /// Sum of the containers' requests for the resource, in milli-units; `None` when some
    /// container has no request (utilization is then undefined).
    pub request_milli: Option<i64>,
}

/// One pod's measured usage of the resource.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PodUsage {
    /// Sum over the pod's containers, in milli-units.
    pub milli: i64,
    /// When the sample was taken (seconds since the epoch).
    pub timestamp: i64,
    /// The sampling window (seconds).
    pub window: i64,
}

/// The target a metric is compared against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// Percentage of the pods' requests (`averageUtilization`).
    Utilization(i32),
    /// Absolute average per pod, in milli-units (`averageValue`).
    AverageValue(i64),
}

/// The calculator's answer for one metric.
#[derive(Clone, Debug, PartialEq)]
pub struct Recommendation {
    pub replicas: i32,
    /// Current average utilization in percent (for utilization targets).
    pub utilization: Option<i32>,
    /// Current average usage per pod, in milli-units.
    pub average_milli: i64,
}

/// Why no recommendation could be made (surfaces as the `ScalingActive=False` condition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CalcError {
    /// The selector matched no pods.
    NoPods,
    /// No pod behind the target reported a sample.
    NoMetrics,
    /// A utilization target, but a pod has no request for the resource.
    MissingRequest { pod: String },
}

impl std::fmt::Display for CalcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CalcError::NoPods => {
                f.write_str("no pods returned by selector while calculating replica count")
            }
            CalcError::NoMetrics => {
                f.write_str("did not receive metrics for targeted pods (pods might be unready)")
            }
            CalcError::MissingRequest { pod } => {
                write!(f, "missing request for resource on pod {pod}")
            }
        }
    }
}

/// Computes the replicas a resource metric asks for. `cpu` selects CPU's extra care for pods
/// still starting; `now` is seconds since the epoch.
pub fn resource_replicas(
    current_replicas: i32,
    target: Target,
    pods: &[PodInfo],
    usage: &BTreeMap<String, PodUsage>,
    cpu: bool,
    now: i64,
) -> Result<Recommendation, CalcError> {
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let groups = group_pods(pods, usage, cpu, now);
    // Samples of ignored and unready pods do not count.
    let mut samples: BTreeMap<&str, i64> = usage
        .iter()
        .filter(|(name, _)| {
            !groups.ignored.contains(&name.as_str()) && !groups.unready.contains(&name.as_str())
        })
        .filter(|(name, _)| pods.iter().any(|p| &p.name == *name))
        .map(|(name, u)| (name.as_str(), u.milli))
        .collect();
    if samples.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    let requests: BTreeMap<&str, i64> = pods
        .iter()
        .filter_map(|p| p.request_milli.map(|r| (p.name.as_str(), r)))
        .collect();
    let ratio_of = |samples: &BTreeMap<&str, i64>| -> Result<(f64, Option<i32>, i64), CalcError> {
        let total: i64 = samples.values().sum();
        let count = i64::try_from(samples.len()).unwrap_or(i64::MAX).max(1);
        let average = total / count;
        match target {
            Target::Utilization(percent) => {
                let mut requested = 0i64;
                for name in samples.keys() {
                    match requests.get(name) {
                        Some(r) => requested += r,
                        None => {
                            return Err(CalcError::MissingRequest {
                                pod: (*name).to_owned(),
                            });
                        }
                    }
                }
                if requested == 0 {
                    return Err(CalcError::MissingRequest {
                        pod: samples
                            .keys()
                            .next()
                            .map(|s| (*s).to_owned())
                            .unwrap_or_default(),
                    });
                }
                let utilization = total.saturating_mul(100) / requested;
                let ratio = utilization as f64 / f64::from(percent.max(1));
                Ok((ratio, i32::try_from(utilization).ok(), average))
            }
            Target::AverageValue(value) => {
                Ok((average as f64 / value.max(1) as f64, None, average))
            }
        }
    };
    let (ratio, utilization, average_milli) = ratio_of(&samples)?;
    let ready_count = samples.len();
    let scale_up_with_unready = !groups.unready.is_empty() && ratio > 1.0;
    if !scale_up_with_unready && groups.missing.is_empty() {
        let replicas = if (1.0 - ratio).abs() <= TOLERANCE {
            current_replicas
        } else {
            ceil_i32(ratio * ready_count as f64)
        };
        return Ok(Recommendation {
            replicas,
            utilization,
            average_milli,
        });
    }
    // Assume the worst for pods we know nothing about: when scaling down, missing pods use
    // their whole request (or the target); when scaling up, they and unready pods use nothing.
    for name in &groups.missing {
        let assumed = if ratio < 1.0 {
            match target {
                Target::Utilization(_) => requests.get(name).copied().unwrap_or(0),
                Target::AverageValue(v) => v,
            }
        } else {
            0
        };
        samples.insert(name, assumed);
    }
    if scale_up_with_unready {
        for name in &groups.unready {
            samples.insert(name, 0);
        }
    }
    let (new_ratio, _, _) = ratio_of(&samples)?;
    let unchanged = Recommendation {
        replicas: current_replicas,
        utilization,
        average_milli,
    };
    if (1.0 - new_ratio).abs() <= TOLERANCE
        || (ratio < 1.0 && new_ratio > 1.0)
        || (ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(unchanged);
    }
    let replicas = ceil_i32(new_ratio * samples.len() as f64);
    // The extra assumptions may only damp a change, never reverse it.
    if (new_ratio < 1.0 && replicas > current_replicas)
        || (new_ratio > 1.0 && replicas < current_replicas)
    {
        return Ok(unchanged);
    }
    Ok(Recommendation {
        replicas,
        utilization,
        average_milli,
    })
}

fn ceil_i32(x: f64) -> i32 {
    // Replica counts are small; the float is finite and non-negative here.
    x.ceil().clamp(0.0, f64::from(i32::MAX)) as i32
}

struct Groups<'a> {
    ignored: Vec<&'a str>,
    unready: Vec<&'a str>,
    missing: Vec<&'a str>,
}

/// Sorts pods as upstream's `groupPods`: deleted and failed pods are ignored, pods without a
/// sample are missing, pending pods (and, for CPU, pods whose samples may still include start-up)
/// are unready.
fn group_pods<'a>(
    pods: &'a [PodInfo],
    usage: &BTreeMap<String, PodUsage>,
    cpu: bool,
    now: i64,
) -> Groups<'a> {
    let mut g = Groups {
        ignored: vec![],
        unready: vec![],
        missing: vec![],
    };
    for pod in pods {
        if pod.deleting || pod.phase == "Failed" {
            g.ignored.push(&pod.name);
            continue;
        }
        if pod.phase == "Pending" {
            g.unready.push(&pod.name);
            continue;
        }
        let Some(sample) = usage.get(&pod.name) else {
            g.missing.push(&pod.name);
            continue;
        };
        if cpu && cpu_sample_unreliable(pod, sample, now) {
            g.unready.push(&pod.name);
        }
    }
    g
}

fn cpu_sample_unreliable(pod: &PodInfo, sample: &PodUsage, now: i64) -> bool {
    let (Some(start), Some(transition)) = (pod.start_time, pod.ready_transition) else {
        // No readiness information: treat as not ready yet.
        return !pod.ready;
    };
    if start + CPU_INITIALIZATION_SECS > now {
        // Young pod: its sample counts only if it was ready for the whole window.
        !pod.ready || sample.timestamp < transition + sample.window
    } else {
        // Older pod: unready only if it never became ready after its initial delay.
        !pod.ready && start + INITIAL_READINESS_DELAY_SECS > transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 10_000;

    fn pod(name: &str, request: Option<i64>) -> PodInfo {
        PodInfo {
            name: name.into(),
            phase: "Running".into(),
            deleting: false,
            ready: true,
            ready_transition: Some(NOW - 1_000),
            start_time: Some(NOW - 1_000),
            request_milli: request,
        }
    }

    fn usage(list: &[(&str, i64)]) -> BTreeMap<String, PodUsage> {
        list.iter()
            .map(|(n, m)| {
                (
                    (*n).to_owned(),
                    PodUsage {
                        milli: *m,
                        timestamp: NOW - 10,
                        window: 15,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn utilization_table() {
        // (current, target %, pods (name, request), usage, want replicas, want utilization)
        type Case<'a> = (
            i32,
            i32,
            Vec<PodInfo>,
            Vec<(&'a str, i64)>,
            i32,
            Option<i32>,
        );
        let cases: Vec<Case> = vec![
            // 100% of request against a 50% target: double.
            (
                2,
                50,
                vec![pod("a", Some(100)), pod("b", Some(100))],
                vec![("a", 100), ("b", 100)],
                4,
                Some(100),
            ),
            // Within tolerance: keep.
            (
                3,
                50,
                vec![
                    pod("a", Some(100)),
                    pod("b", Some(100)),
                    pod("c", Some(100)),
                ],
                vec![("a", 52), ("b", 55), ("c", 50)],
                3,
                Some(52),
            ),
            // Idle: scale down to what the load needs.
            (
                4,
                50,
                (0..4).map(|i| pod(&format!("p{i}"), Some(200))).collect(),
                vec![("p0", 20), ("p1", 20), ("p2", 20), ("p3", 20)],
                1,
                Some(10),
            ),
            // A burning pod (1000m of 100m) against 80%: ceil(10/0.8 * 1) = 13.
            (
                1,
                80,
                vec![pod("a", Some(100))],
                vec![("a", 1000)],
                13,
                Some(1000),
            ),
        ];
        for (i, (current, target, pods, used, want, want_util)) in cases.into_iter().enumerate() {
            let got = resource_replicas(
                current,
                Target::Utilization(target),
                &pods,
                &usage(&used),
                true,
                NOW,
            )
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
            assert_eq!(got.replicas, want, "case {i}");
            assert_eq!(got.utilization, want_util, "case {i}");
        }
    }

    #[test]
    fn missing_metrics_damp_changes() {
        // Scaling down with a pod missing: it is assumed at its full request, so less shrink.
        let pods = vec![
            pod("a", Some(100)),
            pod("b", Some(100)),
            pod("c", Some(100)),
        ];
        let got = resource_replicas(
            3,
            Target::Utilization(50),
            &pods,
            &usage(&[("a", 10), ("b", 10)]),
            true,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // (10 + 10 + 100) / 300 = 40% → ratio 0.8 → ceil(0.8 × 3) = 3.
        assert_eq!(got.replicas, 3);
        // Scaling up with a pod missing: assumed idle, so the jump is smaller.
        let got = resource_replicas(
            3,
            Target::Utilization(50),
            &pods,
            &usage(&[("a", 200), ("b", 200)]),
            true,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // ready-only ratio 4.0 would give 8; with c at 0: 400/300 = 133% → 2.67 × 3 = 8.
        assert_eq!(got.replicas, 8);
        // A missing pod that would flip the direction keeps the current count.
        let got = resource_replicas(
            2,
            Target::Utilization(50),
            &[pod("a", Some(100)), pod("b", Some(100))],
            &usage(&[("a", 40)]),
            true,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.replicas, 2);
    }

    #[test]
    fn pending_and_failed_pods() {
        let mut pending = pod("p", Some(100));
        pending.phase = "Pending".into();
        let mut failed = pod("f", Some(100));
        failed.phase = "Failed".into();
        let mut deleting = pod("d", Some(100));
        deleting.deleting = true;
        let pods = vec![pod("a", Some(100)), pending, failed, deleting];
        // a burns 200% of its request; the pending pod is assumed idle: (200+0)/200 = 100%.
        let got = resource_replicas(
            2,
            Target::Utilization(50),
            &pods,
            &usage(&[("a", 200), ("f", 900), ("d", 900)]),
            true,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.replicas, 4);
        assert_eq!(got.utilization, Some(200));
    }

    #[test]
    fn young_cpu_pods_count_as_unready_until_ready_a_whole_window() {
        let mut young = pod("y", Some(100));
        young.start_time = Some(NOW - 60);
        young.ready_transition = Some(NOW - 12);
        // Sample at NOW-10 with a 15 s window: began before the pod was ready.
        let pods = vec![pod("a", Some(100)), young.clone()];
        let got = resource_replicas(
            2,
            Target::Utilization(100),
            &pods,
            &usage(&[("a", 100), ("y", 900)]),
            true,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // y's 900m is not trusted: only a counts and it is on target.
        assert_eq!(got.replicas, 2);
        // For memory the same pod counts.
        let got = resource_replicas(
            2,
            Target::Utilization(100),
            &pods,
            &usage(&[("a", 100), ("y", 900)]),
            false,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.replicas, 10);
    }

    #[test]
    fn average_value_target() {
        let pods = vec![pod("a", None), pod("b", None)];
        let got = resource_replicas(
            2,
            Target::AverageValue(100_000),
            &pods,
            &usage(&[("a", 300_000), ("b", 100_000)]),
            false,
            NOW,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.replicas, 4);
        assert_eq!(got.average_milli, 200_000);
        assert_eq!(got.utilization, None);
    }

    #[test]
    fn errors() {
        assert_eq!(
            resource_replicas(1, Target::Utilization(50), &[], &usage(&[]), true, NOW),
            Err(CalcError::NoPods)
        );
        assert_eq!(
            resource_replicas(
                1,
                Target::Utilization(50),
                &[pod("a", Some(100))],
                &usage(&[]),
                true,
                NOW
            ),
            Err(CalcError::NoMetrics)
        );
        assert_eq!(
            resource_replicas(
                1,
                Target::Utilization(50),
                &[pod("a", None)],
                &usage(&[("a", 10)]),
                true,
                NOW
            ),
            Err(CalcError::MissingRequest { pod: "a".into() })
        );
    }
}
