//! How fast the scale run asks for pods: all at once (every Deployment created with its full
//! replica count), or at a steady rate as upstream's density and load tests create them, so
//! that pod startup latency measures the control plane rather than a queue the run built itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

/// How pods are asked for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// Every Deployment is created with all its replicas.
    AllAtOnce,
    /// Deployments are created with none and scaled up so that the pods asked for never run
    /// ahead of this many per second since the last Deployment was created.
    PerSecond(f64),
}

/// `--pods-per-second`: a positive, finite rate.
pub fn pods_per_second(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a positive number of pods per second")),
    }
}

/// The replicas each Deployment should have `elapsed` into the pacing: the total follows
/// rate × elapsed (rounded down, so never ahead of the rate), filling the Deployments one after
/// another so that each step changes one Deployment, or two where it crosses from one to the
/// next.
pub fn replicas_at(
    pace: Pace,
    deployments: usize,
    replicas: usize,
    elapsed: Duration,
) -> Vec<usize> {
    let total = deployments * replicas;
    let requested = match pace {
        Pace::AllAtOnce => total,
        // Bounded before the cast, which would otherwise saturate silently.
        Pace::PerSecond(r) => (r * elapsed.as_secs_f64()).floor().min(total as f64) as usize,
    };
    (0..deployments)
        .map(|i| requested.saturating_sub(i * replicas).min(replicas))
        .collect()
}

/// How often the pacing looks again: small steps (down to one pod) at low rates, at most ten
/// PATCHes a second at high ones.
pub fn step(rate: f64) -> Duration {
    Duration::from_secs_f64((1.0 / rate).clamp(0.1, 1.0))
}

/// What the requester has done so far, read by the progress line and the report.
#[derive(Default)]
pub(super) struct Requested {
    /// Pods asked for: the sum of the replicas the server has accepted.
    pub pods: AtomicUsize,
    /// Scale PATCHes that failed: conflicts are retried at once, anything else at the next step.
    pub failed: AtomicUsize,
}

/// Creates the Deployments, then (when paced) scales them up until every replica is asked for.
pub(super) async fn request(
    api: Api<Deployment>,
    pace: Pace,
    deployments: usize,
    replicas: usize,
    requested: Arc<Requested>,
) -> Result<()> {
    let mut current = replicas_at(pace, deployments, replicas, Duration::ZERO);
    for (i, &n) in current.iter().enumerate() {
        api.create(&PostParams::default(), &deployment(i, n)?)
            .await
            .with_context(|| format!("creating deployment scale-{i}"))?;
        requested.pods.fetch_add(n, Ordering::Relaxed);
    }
    let Pace::PerSecond(rate) = pace else {
        return Ok(());
    };
    let clock = Instant::now();
    while current.iter().any(|&n| n < replicas) {
        tokio::time::sleep(step(rate)).await;
        let want = replicas_at(pace, deployments, replicas, clock.elapsed());
        for (i, (&w, have)) in want.iter().zip(current.iter_mut()).enumerate() {
            if w == *have {
                continue;
            }
            match scale(&api, i, w, &requested).await {
                Ok(()) => {
                    requested.pods.fetch_add(w - *have, Ordering::Relaxed);
                    *have = w;
                }
                Err(e) => {
                    // Behind schedule now; the next step asks for the backlog with the rest.
                    if requested.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("scaling scale-{i} to {w} failed ({e}); retrying");
                    }
                    break;
                }
            }
        }
    }
    Ok(())
}

/// Sets Deployment `i`'s replicas through the scale subresource, as `kubectl scale` and the HPA
/// do. A 409 Conflict (the server saw the Deployment change under the PATCH) is retried at once
/// a few times, counted in `failed`, so that a busy Deployment controller does not put the
/// pacing a whole step behind.
async fn scale(
    api: &Api<Deployment>,
    i: usize,
    replicas: usize,
    requested: &Requested,
) -> Result<(), kube::Error> {
    let patch = Patch::Merge(json!({"spec": {"replicas": replicas}}));
    let name = format!("scale-{i}");
    let mut attempts = 0;
    loop {
        attempts += 1;
        match api
            .patch_scale(&name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(s)) if s.is_conflict() && attempts < 3 => {
                requested.failed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
}

fn deployment(i: usize, replicas: usize) -> Result<Deployment> {
    let app = format!("scale-{i}");
    Ok(serde_json::from_value(json!({
        "metadata": {"name": app},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app, "bench": "scale"}},
                "spec": {
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "main",
                        "image": "registry.k8s.io/pause:3.10",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                    }],
                },
            },
        },
    }))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_fills_deployments_in_order_at_the_rate() {
        let ms = Duration::from_millis;
        let cases: &[(Pace, usize, usize, Duration, &[usize])] = &[
            (Pace::AllAtOnce, 3, 50, ms(0), &[50, 50, 50]),
            (Pace::AllAtOnce, 3, 50, ms(9_000), &[50, 50, 50]),
            (Pace::AllAtOnce, 0, 50, ms(0), &[]),
            (Pace::PerSecond(20.0), 2, 50, ms(0), &[0, 0]),
            (Pace::PerSecond(20.0), 2, 50, ms(49), &[0, 0]),
            (Pace::PerSecond(20.0), 2, 50, ms(50), &[1, 0]),
            (Pace::PerSecond(20.0), 2, 50, ms(1_000), &[20, 0]),
            (Pace::PerSecond(20.0), 2, 50, ms(2_500), &[50, 0]),
            (Pace::PerSecond(20.0), 2, 50, ms(3_000), &[50, 10]),
            (Pace::PerSecond(20.0), 2, 50, ms(5_000), &[50, 50]),
            (Pace::PerSecond(20.0), 2, 50, ms(3_600_000), &[50, 50]),
            // A step that crosses from one Deployment into the next two.
            (Pace::PerSecond(1000.0), 4, 10, ms(25), &[10, 10, 5, 0]),
            (Pace::PerSecond(0.5), 1, 3, ms(1_999), &[0]),
            (Pace::PerSecond(0.5), 1, 3, ms(2_000), &[1]),
            (Pace::PerSecond(1e300), 2, 3, ms(1), &[3, 3]),
        ];
        for &(pace, deployments, replicas, elapsed, want) in cases {
            assert_eq!(
                replicas_at(pace, deployments, replicas, elapsed),
                want,
                "{pace:?} {deployments}×{replicas} at {elapsed:?}"
            );
        }
    }

    #[test]
    fn steps_are_one_pod_at_low_rates_and_ten_a_second_at_most() {
        let cases = [
            (0.5, 1_000),
            (1.0, 1_000),
            (4.0, 250),
            (10.0, 100),
            (5_000.0, 100),
        ];
        for (rate, ms) in cases {
            assert_eq!(step(rate), Duration::from_millis(ms), "{rate}");
        }
    }

    #[test]
    fn rates_must_be_positive_numbers() {
        assert_eq!(pods_per_second("20"), Ok(20.0));
        assert_eq!(pods_per_second("0.5"), Ok(0.5));
        for bad in ["0", "-1", "inf", "NaN", "fast", ""] {
            assert!(pods_per_second(bad).is_err(), "{bad}");
        }
    }
}
