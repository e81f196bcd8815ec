//! The HorizontalPodAutoscaler controller (autoscaling/v2): every sync period it reads the
//! target's `scale` subresource and the pods' usage from `metrics.k8s.io`, computes the replicas
//! each Resource/ContainerResource metric asks for ([`replicas`]), keeps the largest, applies
//! `behavior` ([`behavior`]) and `[minReplicas, maxReplicas]`, rescales through `scale`, and
//! reports conditions, current metrics and events as upstream does.

pub mod behavior;
pub mod metrics;
pub mod replicas;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus, MetricValueStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::core::{DynamicObject, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use rudder_machinery::LabelSelector;
use serde_json::json;

use self::behavior::History;
use self::replicas::{PodInfo, Target};
use crate::context::run_controller;
use crate::events::{NORMAL, Recorder, WARNING};
use crate::informer::{Informer, own_triggers};
use crate::{Context, Result};

const COMPONENT: &str = "horizontal-pod-autoscaler";

/// Upstream's `--horizontal-pod-autoscaler-sync-period` default.
pub const DEFAULT_SYNC_PERIOD: std::time::Duration = std::time::Duration::from_secs(15);

struct State {
    ctx: Context,
    recorder: Recorder,
    /// Recommendations and scale events per HPA uid, as upstream keeps them in memory.
    history: Mutex<HashMap<String, History>>,
}

/// Runs the HPA controller.
pub async fn run(ctx: Context) -> Result<()> {
    let hpas: Informer<HorizontalPodAutoscaler> =
        Informer::start(&ctx.client, "horizontalpodautoscalers", ctx.stopped());
    let state = Arc::new(State {
        recorder: ctx.recorder(COMPONENT),
        ctx: ctx.clone(),
        history: Mutex::default(),
    });
    run_controller(
        COMPONENT,
        hpas.store.clone(),
        vec![own_triggers(&hpas)],
        state,
        |hpa, state| Box::pin(reconcile(hpa, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

/// What one metric contributed.
struct MetricOutcome {
    replicas: i32,
    /// Upstream's description (`cpu resource utilization (percentage of request)`).
    name: String,
    status: MetricStatus,
}

async fn reconcile(hpa: Arc<HorizontalPodAutoscaler>, state: Arc<State>) -> Result<Action> {
    let period = state.ctx.options.hpa_sync_period;
    let Some(uid) = hpa.uid() else {
        return Ok(Action::await_change());
    };
    if hpa.metadata.deletion_timestamp.is_some() {
        if let Ok(mut h) = state.history.lock() {
            h.remove(&uid);
        }
        return Ok(Action::await_change());
    }
    let spec = &hpa.spec;
    let ns = hpa.namespace().unwrap_or_default();
    let client = &state.ctx.client;
    let now = Timestamp::now();
    let mut conditions = Conditions::new(&hpa, now);

    let target = &spec.scale_target_ref;
    let scale_api = match scale_api(client, &ns, target.api_version.as_deref(), &target.kind).await
    {
        Ok(api) => api,
        Err(message) => {
            return fail_get_scale(&state, &hpa, conditions, message, period).await;
        }
    };
    let scale = match scale_api.get_scale(&target.name).await {
        Ok(s) => s,
        Err(e) => {
            let message =
                format!("the HPA controller was unable to get the target's current scale: {e}");
            return fail_get_scale(&state, &hpa, conditions, message, period).await;
        }
    };
    conditions.set(
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    let current = scale.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    let mut metric_statuses = vec![];

    let (desired, reason) = if current == 0 && min != 0 {
        conditions.set(
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, String::new())
    } else if current > max {
        conditions.set(
            "ScalingLimited",
            true,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        );
        (
            max,
            "Current number of replicas above Spec.MaxReplicas".to_owned(),
        )
    } else if current < min {
        conditions.set(
            "ScalingLimited",
            true,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        );
        (
            min,
            "Current number of replicas below Spec.MinReplicas".to_owned(),
        )
    } else {
        let selector = scale
            .status
            .as_ref()
            .and_then(|s| s.selector.clone())
            .unwrap_or_default();
        let outcomes = evaluate_metrics(
            &state,
            &ns,
            current,
            spec.metrics.as_deref(),
            &selector,
            now,
        )
        .await;
        let mut best: Option<MetricOutcome> = None;
        let mut errors = vec![];
        for outcome in outcomes {
            match outcome {
                Ok(o) => {
                    metric_statuses.push(o.status.clone());
                    if best.as_ref().is_none_or(|b| o.replicas > b.replicas) {
                        best = Some(o);
                    }
                }
                Err((reason, message)) => errors.push((reason, message)),
            }
        }
        if let Some((reason, message)) = errors.first() {
            let total = errors.len() + metric_statuses.len();
            state
                .recorder
                .record(hpa.as_ref(), WARNING, reason, message.clone());
            state.recorder.record(
                hpa.as_ref(),
                WARNING,
                "FailedComputeMetricsReplicas",
                format!(
                    "invalid metrics ({} invalid out of {total}), first error is: {message}",
                    errors.len()
                ),
            );
            conditions.set(
                "ScalingActive",
                false,
                reason,
                &format!("the HPA was unable to compute the replica count: {message}"),
            );
        }
        // With some metrics failing, only scale up (upstream: an invalid metric must not cause
        // a scale-down it might have vetoed).
        let Some(best) = best.filter(|b| errors.is_empty() || b.replicas > current) else {
            return keep_scale(&state, &hpa, current, metric_statuses, conditions, period).await;
        };
        if errors.is_empty() {
            conditions.set(
                "ScalingActive",
                true,
                "ValidMetricFound",
                &format!(
                    "the HPA was able to successfully calculate a replica count from {}",
                    best.name
                ),
            );
        }
        let reason = if best.replicas > current {
            format!("{} above target", best.name)
        } else {
            "All metrics below target".to_owned()
        };
        let (up, down) = behavior::rules(spec.behavior.as_ref());
        let outcome = {
            let mut histories = state.history.lock().unwrap_or_else(|p| p.into_inner());
            let h = histories.entry(uid.clone()).or_default();
            behavior::normalize(
                h,
                now.as_second(),
                current,
                best.replicas,
                min..=max,
                &up,
                &down,
            )
        };
        conditions.set(
            "AbleToScale",
            true,
            outcome.stabilization.0,
            outcome.stabilization.1,
        );
        conditions.set(
            "ScalingLimited",
            outcome.limited(),
            outcome.limit.0,
            outcome.limit.1,
        );
        (outcome.replicas, reason)
    };

    let rescale = desired != current && !(current == 0 && min != 0);
    if rescale {
        let patch = json!({"spec": {"replicas": desired}});
        if let Err(e) = scale_api
            .patch_scale(&target.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            let message = format!("the HPA controller was unable to update the target scale: {e}");
            state.recorder.record(
                hpa.as_ref(),
                WARNING,
                "FailedRescale",
                format!("New size: {desired}; reason: {reason}; error: {e}"),
            );
            conditions.set("AbleToScale", false, "FailedUpdateScale", &message);
            return keep_scale(&state, &hpa, current, metric_statuses, conditions, period).await;
        }
        let (up, down) = behavior::rules(spec.behavior.as_ref());
        if let Ok(mut histories) = state.history.lock() {
            histories.entry(uid).or_default().record_scale(
                now.as_second(),
                current,
                desired,
                &up,
                &down,
            );
        }
        conditions.set(
            "AbleToScale",
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
        );
        state.recorder.record(
            hpa.as_ref(),
            NORMAL,
            "SuccessfulRescale",
            format!("New size: {desired}; reason: {reason}"),
        );
        tracing::info!(hpa = %format!("{ns}/{}", hpa.name_any()), from = current, to = desired, %reason, "rescaled");
    }
    let desired = if rescale { desired } else { current };
    write_status(
        &state,
        &hpa,
        current,
        desired,
        metric_statuses,
        conditions,
        rescale,
    )
    .await?;
    Ok(Action::requeue(period))
}

/// Reports the status without rescaling and waits for the next sync.
async fn keep_scale(
    state: &State,
    hpa: &HorizontalPodAutoscaler,
    current: i32,
    metrics: Vec<MetricStatus>,
    conditions: Conditions,
    period: std::time::Duration,
) -> Result<Action> {
    write_status(state, hpa, current, current, metrics, conditions, false).await?;
    Ok(Action::requeue(period))
}

async fn fail_get_scale(
    state: &State,
    hpa: &HorizontalPodAutoscaler,
    mut conditions: Conditions,
    message: String,
    period: std::time::Duration,
) -> Result<Action> {
    state
        .recorder
        .record(hpa, WARNING, "FailedGetScale", message.clone());
    conditions.set("AbleToScale", false, "FailedGetScale", &message);
    let current = hpa
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    keep_scale(state, hpa, current, vec![], conditions, period).await
}

/// The `scale` endpoint of the target kind, found through discovery (any kind with a `scale`
/// subresource works, custom resources included).
async fn scale_api(
    client: &kube::Client,
    ns: &str,
    api_version: Option<&str>,
    kind: &str,
) -> std::result::Result<Api<DynamicObject>, String> {
    let api_version = api_version.unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("the HPA controller was unable to get the target's current scale: no scale for {api_version} {kind}: {e}"))?;
    Ok(Api::namespaced_with(client.clone(), ns, &resource))
}

/// Evaluates every metric of the spec (CPU at 80% when none is given, as upstream defaults).
async fn evaluate_metrics(
    state: &State,
    ns: &str,
    current: i32,
    specs: Option<&[MetricSpec]>,
    selector: &str,
    now: Timestamp,
) -> Vec<std::result::Result<MetricOutcome, (&'static str, String)>> {
    let default_cpu = [default_metric()];
    let specs = match specs {
        Some(s) if !s.is_empty() => s,
        _ => &default_cpu,
    };
    let parsed = match LabelSelector::parse(selector) {
        Ok(s) if !selector.is_empty() => s,
        Ok(_) => {
            return vec![Err((
                "InvalidSelector",
                "the HPA target's scale is missing a selector".to_owned(),
            ))];
        }
        Err(e) => {
            return vec![Err((
                "InvalidSelector",
                format!(
                    "couldn't convert selector into a corresponding internal selector object: {e}"
                ),
            ))];
        }
    };
    let pods: Vec<Arc<Pod>> = state
        .ctx
        .pods_in(ns)
        .into_iter()
        .filter(|p| parsed.matches(&p.labels().clone()))
        .collect();
    let mut fetched: Option<std::result::Result<metrics::PodMetricsList, String>> = None;
    let mut out = vec![];
    for spec in specs {
        let (resource, container, target) = match (
            spec.type_.as_str(),
            &spec.resource,
            &spec.container_resource,
        ) {
            ("Resource", Some(r), _) => (r.name.clone(), None, &r.target),
            ("ContainerResource", _, Some(c)) => {
                (c.name.clone(), Some(c.container.clone()), &c.target)
            }
            (other, _, _) => {
                out.push(Err((
                    "FailedGetExternalMetric",
                    format!("metric type {other} is not served: rudder's HPA reads resource metrics (metrics.k8s.io) only"),
                )));
                continue;
            }
        };
        let target_value = match (
            target.type_.as_str(),
            target.average_utilization,
            target.average_value.as_ref(),
        ) {
            ("Utilization", Some(p), _) => Target::Utilization(p),
            ("AverageValue", _, Some(q)) => match rudder_machinery::quantity::to_milli(&q.0) {
                Some(m) => Target::AverageValue(i64::try_from(m).unwrap_or(i64::MAX)),
                None => {
                    out.push(Err((
                        "FailedGetResourceMetric",
                        format!("invalid averageValue {:?}", q.0),
                    )));
                    continue;
                }
            },
            (t, _, _) => {
                out.push(Err((
                    "FailedGetResourceMetric",
                    format!("invalid target type {t:?} for a {} metric", spec.type_),
                )));
                continue;
            }
        };
        let list = match fetched.get_or_insert(
            metrics::fetch(&state.ctx.client, ns, selector)
                .await
                .map_err(|e| e.to_string()),
        ) {
            Ok(list) => list,
            Err(e) => {
                out.push(Err((
                    failed_reason(container.is_some()),
                    format!("failed to get {resource} utilization: unable to get metrics for resource {resource}: {e}"),
                )));
                continue;
            }
        };
        let usage = metrics::usage_by_pod(list, &resource, container.as_deref());
        let infos: Vec<PodInfo> = pods
            .iter()
            .map(|p| pod_info(p, &resource, container.as_deref()))
            .collect();
        let cpu = resource == "cpu";
        match replicas::resource_replicas(
            current,
            target_value,
            &infos,
            &usage,
            cpu,
            now.as_second(),
        ) {
            Ok(rec) => {
                let kind = if container.is_some() {
                    "container resource"
                } else {
                    "resource"
                };
                let name = match target_value {
                    Target::Utilization(_) => {
                        format!("{resource} {kind} utilization (percentage of request)")
                    }
                    Target::AverageValue(_) => format!("{resource} {kind}"),
                };
                let current_value = MetricValueStatus {
                    average_utilization: rec.utilization,
                    average_value: Some(Quantity(format_milli(rec.average_milli))),
                    value: None,
                };
                let status = match container {
                    Some(c) => MetricStatus {
                        type_: "ContainerResource".into(),
                        container_resource: Some(
                            k8s_openapi::api::autoscaling::v2::ContainerResourceMetricStatus {
                                container: c,
                                name: resource.clone(),
                                current: current_value,
                            },
                        ),
                        ..Default::default()
                    },
                    None => MetricStatus {
                        type_: "Resource".into(),
                        resource: Some(k8s_openapi::api::autoscaling::v2::ResourceMetricStatus {
                            name: resource.clone(),
                            current: current_value,
                        }),
                        ..Default::default()
                    },
                };
                out.push(Ok(MetricOutcome {
                    replicas: rec.replicas,
                    name,
                    status,
                }));
            }
            Err(e) => out.push(Err((
                failed_reason(container.is_some()),
                format!("failed to get {resource} utilization: {e}"),
            ))),
        }
    }
    out
}

fn failed_reason(container: bool) -> &'static str {
    if container {
        "FailedGetContainerResourceMetric"
    } else {
        "FailedGetResourceMetric"
    }
}

fn default_metric() -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(k8s_openapi::api::autoscaling::v2::ResourceMetricSource {
            name: "cpu".into(),
            target: k8s_openapi::api::autoscaling::v2::MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(80),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

/// A quantity in milli-units as the API prints it (`250m`, `2`, `10485760`).
fn format_milli(milli: i64) -> String {
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// The calculator's view of a pod: phase, readiness and its requests for `resource`.
fn pod_info(pod: &Pod, resource: &str, container: Option<&str>) -> PodInfo {
    let status = pod.status.as_ref();
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let mut request = Some(0i64);
    if let Some(spec) = pod.spec.as_ref() {
        for c in spec
            .containers
            .iter()
            .filter(|c| container.is_none_or(|want| want == c.name))
        {
            let r = c
                .resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(resource))
                .and_then(|q| rudder_machinery::quantity::to_milli(&q.0));
            request = match (request, r) {
                (Some(total), Some(r)) => Some(total + i64::try_from(r).unwrap_or(i64::MAX)),
                _ => None,
            };
        }
    }
    PodInfo {
        name: pod.name_any(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        deleting: pod.metadata.deletion_timestamp.is_some(),
        ready: ready_condition.is_some_and(|c| c.status == "True"),
        ready_transition: ready_condition
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.as_second()),
        start_time: status
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.as_second()),
        request_milli: request,
    }
}

/// The status conditions being built, keeping a condition's transition time when its status did
/// not change.
struct Conditions {
    list: Vec<HorizontalPodAutoscalerCondition>,
    now: Timestamp,
}

impl Conditions {
    fn new(hpa: &HorizontalPodAutoscaler, now: Timestamp) -> Self {
        Conditions {
            list: hpa
                .status
                .as_ref()
                .and_then(|s| s.conditions.clone())
                .unwrap_or_default(),
            now,
        }
    }

    fn set(&mut self, type_: &str, status: bool, reason: &str, message: &str) {
        let status = if status { "True" } else { "False" }.to_owned();
        let now = Some(Time(self.now));
        match self.list.iter_mut().find(|c| c.type_ == type_) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = now;
                }
                c.status = status;
                c.reason = Some(reason.into());
                c.message = Some(message.into());
            }
            None => self.list.push(HorizontalPodAutoscalerCondition {
                type_: type_.into(),
                status,
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: now,
                ..Default::default()
            }),
        }
    }
}

async fn write_status(
    state: &State,
    hpa: &HorizontalPodAutoscaler,
    current: i32,
    desired: i32,
    metrics: Vec<MetricStatus>,
    conditions: Conditions,
    rescaled: bool,
) -> Result<()> {
    let previous = hpa.status.as_ref();
    let last_scale_time = if rescaled {
        Some(Time(conditions.now))
    } else {
        previous.and_then(|s| s.last_scale_time.clone())
    };
    let status = HorizontalPodAutoscalerStatus {
        current_replicas: Some(current),
        desired_replicas: desired,
        current_metrics: (!metrics.is_empty()).then_some(metrics),
        conditions: Some(conditions.list),
        observed_generation: hpa.metadata.generation,
        last_scale_time,
    };
    // An unchanged status is not written: the write would wake this controller again (it
    // watches its HPAs) and turn the sync period into a busy loop.
    if previous == Some(&status) {
        return Ok(());
    }
    let mut status = serde_json::to_value(&status)?;
    if status.get("currentMetrics").is_none() {
        status["currentMetrics"] = serde_json::Value::Null;
    }
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(
        state.ctx.client.clone(),
        &hpa.namespace().unwrap_or_default(),
    );
    api.patch_status(
        &hpa.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_requests_sum_and_missing() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [
                {"name": "a", "image": "x", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "b", "image": "x", "resources": {"requests": {"cpu": "0.2", "memory": "1Mi"}}}
            ]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap_or_default();
        let cpu = pod_info(&pod, "cpu", None);
        assert_eq!(cpu.request_milli, Some(300));
        assert!(cpu.ready);
        assert_eq!(cpu.phase, "Running");
        assert_eq!(
            pod_info(&pod, "memory", None).request_milli,
            None,
            "a has no memory request"
        );
        assert_eq!(
            pod_info(&pod, "memory", Some("b")).request_milli,
            Some(1024 * 1024 * 1000)
        );
    }

    #[test]
    fn quantities_print_like_the_api() {
        assert_eq!(format_milli(250), "250m");
        assert_eq!(format_milli(2000), "2");
    }

    #[test]
    fn conditions_keep_transition_time_when_unchanged() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut hpa = HorizontalPodAutoscaler::default();
        let mut c = Conditions::new(&hpa, t0);
        c.set("AbleToScale", true, "A", "a");
        hpa.status = Some(
            k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerStatus {
                conditions: Some(c.list),
                ..Default::default()
            },
        );
        let mut c = Conditions::new(&hpa, t1);
        c.set("AbleToScale", true, "B", "b");
        assert_eq!(c.list[0].last_transition_time, Some(Time(t0)));
        assert_eq!(c.list[0].reason.as_deref(), Some("B"));
        c.set("AbleToScale", false, "C", "c");
        assert_eq!(c.list[0].last_transition_time, Some(Time(t1)));
    }
}
