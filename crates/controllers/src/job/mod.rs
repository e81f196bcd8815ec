//! The Job controller: runs pods to completion (NonIndexed or Indexed), counts finished pods
//! through `status.uncountedTerminatedPods` and the `batch.kubernetes.io/job-tracking` pod
//! finalizer, fails on backoffLimit, activeDeadlineSeconds, a podFailurePolicy rule or failed
//! indexes (`backoffLimitPerIndex`, `maxFailedIndexes`), succeeds by completions or a
//! `successPolicy`, holds replacements for failed pods back by the pod-failure back-off,
//! suspends, sets the Complete/Failed conditions (after SuccessCriteriaMet/FailureTarget, as
//! upstream) and deletes finished Jobs after `ttlSecondsAfterFinished` (upstream's
//! TTL-after-finished controller, folded in here). [`decide`] and [`policy`] hold the decisions.

pub mod decide;
pub mod policy;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, PropagationPolicy};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use rudder_machinery::LabelSelector;
use serde_json::json;

use self::decide::{COMPLETION_INDEX, FailureVerdict, Spec, TRACKING_FINALIZER};
use crate::context::run_controller;
use crate::events::{NORMAL, Recorder, WARNING};
use crate::informer::own_triggers;
use crate::{Context, Result, pods};

const COMPONENT: &str = "job-controller";

/// The `spec.managedBy` value (and the default) under which this controller syncs a Job.
pub const MANAGED_BY: &str = "kubernetes.io/job-controller";

struct State {
    ctx: Context,
    recorder: Recorder,
    /// Pods whose tracking finalizer this controller removed, per Job, until the pod cache
    /// shows it gone: a lagging cache must not make a pod count twice.
    released: std::sync::Mutex<BTreeMap<String, BTreeSet<String>>>,
    /// The resourceVersion of each Job's last status write: a cached Job older than that is
    /// stale, and deciding from it would count pods twice or start too many.
    written: std::sync::Mutex<BTreeMap<String, u64>>,
}

fn rv(job: &Job) -> u64 {
    job.metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl State {
    fn stale(&self, key: &str, job: &Job) -> bool {
        let map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).is_some_and(|w| rv(job) < *w)
    }
    fn wrote(&self, key: &str, job: &Job) {
        let mut map = self.written.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key.to_owned(), rv(job));
    }
}

/// Writes status guarded by the resourceVersion the decision was based on. `None`: the Job
/// changed meanwhile (or is gone); decide again from the newer Job.
async fn write_status(
    state: &State,
    api: &Api<Job>,
    key: &str,
    name: &str,
    base_rv: &Option<String>,
    status: serde_json::Value,
) -> Result<Option<String>> {
    let patch = json!({"metadata": {"resourceVersion": base_rv}, "status": status});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(j) => {
            state.wrote(key, &j);
            Ok(j.metadata.resource_version)
        }
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Runs the Job controller.
pub async fn run(ctx: Context) -> Result<()> {
    let pod_triggers =
        ctx.pods.triggers(
            ctx.jobs.store.clone(),
            |pod: &Pod| match pods::controller_ref(&pod.metadata) {
                Some(r) if r.kind == "Job" => vec![
                    ObjectRef::new(&r.name).within(pod.metadata.namespace.as_deref().unwrap_or("")),
                ],
                _ => vec![],
            },
        );
    let state = Arc::new(State {
        recorder: ctx.recorder(COMPONENT),
        ctx: ctx.clone(),
        released: Default::default(),
        written: Default::default(),
    });
    run_controller(
        COMPONENT,
        ctx.jobs.store.clone(),
        vec![own_triggers(&ctx.jobs), pod_triggers],
        state,
        |job, state| Box::pin(reconcile(job, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

fn spec_of(job: &Job) -> Spec {
    let s = job.spec.clone().unwrap_or_default();
    Spec {
        completions: s.completions,
        parallelism: s.parallelism.unwrap_or(1),
        backoff_limit: s.backoff_limit.unwrap_or(6),
        indexed: s.completion_mode.as_deref() == Some("Indexed"),
        active_deadline: s.active_deadline_seconds,
        suspended: s.suspend.unwrap_or(false),
        backoff_limit_per_index: s.backoff_limit_per_index,
        max_failed_indexes: s.max_failed_indexes,
    }
}

/// What the failed and succeeded pods say about retrying: the global back-off (seconds left),
/// and for `backoffLimitPerIndex` the failed indexes, the indexes backing off (seconds left)
/// and each index's failure count.
#[derive(Default)]
struct Retries {
    backoff_left: i64,
    per_index: bool,
    failed_indexes: BTreeSet<i32>,
    backing_off: BTreeMap<i32, i64>,
    index_failures: BTreeMap<i32, i32>,
}

fn retries(
    job: &Job,
    spec: &Spec,
    mine: &[Arc<Pod>],
    completed: &BTreeSet<i32>,
    now: i64,
) -> Retries {
    let rules = job
        .spec
        .as_ref()
        .and_then(|s| s.pod_failure_policy.as_ref());
    let finished =
        |ph: &str| -> Vec<&Arc<Pod>> { mine.iter().filter(|p| phase(p) == ph).collect() };
    let verdicts: Vec<(&Arc<Pod>, FailureVerdict)> = finished("Failed")
        .into_iter()
        .map(|p| (p, decide::failure_verdict(rules, p)))
        .collect();
    let mut r = Retries::default();
    if let (true, Some(limit)) = (spec.indexed, spec.backoff_limit_per_index) {
        let failed: Vec<policy::FailedPod> = verdicts
            .iter()
            .filter_map(|(p, v)| {
                Some(policy::FailedPod {
                    index: decide::pod_index(p)?,
                    prior_failures: policy::index_failure_count(p),
                    counts: *v != FailureVerdict::Ignore,
                    fail_index: *v == FailureVerdict::FailIndex,
                    finished: policy::finished_time(p),
                })
            })
            .collect();
        let recorded = job
            .status
            .as_ref()
            .and_then(|s| s.failed_indexes.as_deref())
            .unwrap_or("");
        let mut gone = policy::failed_indexes(recorded, &failed, limit);
        gone.retain(|i| !completed.contains(i));
        r.backing_off = policy::indexes_backing_off(&failed, &gone, now);
        r.index_failures = policy::index_failures(&failed)
            .into_iter()
            .map(|(i, (n, _))| (i, n))
            .collect();
        r.failed_indexes = gone;
        r.per_index = true;
        return r;
    }
    let ok: Vec<i64> = finished("Succeeded")
        .into_iter()
        .map(|p| policy::finished_time(p))
        .collect();
    let failed: Vec<i64> = verdicts
        .iter()
        .filter(|(_, v)| *v != FailureVerdict::Ignore)
        .map(|(p, _)| policy::finished_time(p))
        .collect();
    r.backoff_left = policy::backoff_remaining(&ok, &failed, now);
    r
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

fn has_tracking(p: &Pod) -> bool {
    p.metadata
        .finalizers
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|f| f == TRACKING_FINALIZER)
}

fn condition(type_: &str, reason: &str, message: &str, now: Timestamp) -> JobCondition {
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

fn finished_at(status: &JobStatus) -> Option<i64> {
    status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0.as_second())
}

async fn reconcile(job: Arc<Job>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let Some(uid) = job.uid() else {
        return Ok(Action::await_change());
    };
    // `spec.managedBy` hands the Job to another controller (upstream's default name is ours).
    if job
        .spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != MANAGED_BY)
    {
        return Ok(Action::await_change());
    }
    let key = format!("Job/{ns}/{name}");
    if state.stale(&key, &job) {
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    let mut base_rv = job.metadata.resource_version.clone();
    let now_ts = Timestamp::now();
    let now = now_ts.as_second();
    let spec = spec_of(&job);
    let old_status = job.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let pods_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);

    // Our pods: controlled by the Job (the API server does not generate Job selectors yet, so
    // ownership decides; a manual selector is still honoured for matching).
    let selector = job
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| LabelSelector::from_api(Some(s)).ok());
    let mine: Vec<Arc<Pod>> = ctx
        .controlled_pods(&ns, &uid)
        .into_iter()
        .filter(|p| selector.as_ref().is_none_or(|s| s.matches(p.labels())))
        .collect();

    // 1. Finished pods still carrying our finalizer are recorded as uncounted first.
    let mut uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let (mut u_ok, mut u_failed) = (
        uncounted.succeeded.clone().unwrap_or_default(),
        uncounted.failed.clone().unwrap_or_default(),
    );
    let mut completed: BTreeSet<i32> =
        decide::parse_indexes(status.completed_indexes.as_deref().unwrap_or(""));
    let mut fail_job: Option<String> = None;
    let mut release: Vec<Arc<Pod>> = Vec::new();
    let already_released: BTreeSet<String> = {
        let mut map = state.released.lock().unwrap_or_else(|p| p.into_inner());
        let set = map.entry(key.clone()).or_default();
        // Forget pods the cache now shows without the finalizer (or not at all).
        set.retain(|u| {
            mine.iter()
                .any(|p| p.metadata.uid.as_deref() == Some(u.as_str()) && has_tracking(p))
        });
        set.clone()
    };
    for p in &mine {
        let pod_uid = p.metadata.uid.clone().unwrap_or_default();
        let finished = matches!(phase(p), "Succeeded" | "Failed");
        if !finished || !has_tracking(p) || already_released.contains(&pod_uid) {
            continue;
        }
        release.push(p.clone());
        if u_ok.contains(&pod_uid) || u_failed.contains(&pod_uid) {
            continue;
        }
        if phase(p) == "Succeeded" {
            u_ok.push(pod_uid);
            if spec.indexed
                && let Some(i) = decide::pod_index(p)
            {
                completed.insert(i);
            }
        } else {
            match decide::failure_verdict(
                job.spec
                    .as_ref()
                    .and_then(|s| s.pod_failure_policy.as_ref()),
                p,
            ) {
                FailureVerdict::Ignore => {}
                FailureVerdict::Count | FailureVerdict::FailIndex => u_failed.push(pod_uid),
                FailureVerdict::FailJob(m) => {
                    u_failed.push(pod_uid);
                    fail_job.get_or_insert(m);
                }
            }
        }
    }
    let recorded_new =
        Some(&u_ok) != uncounted.succeeded.as_ref() || Some(&u_failed) != uncounted.failed.as_ref();
    if recorded_new {
        uncounted.succeeded = Some(u_ok.clone());
        uncounted.failed = Some(u_failed.clone());
        let status = json!({
            "uncountedTerminatedPods": uncounted,
            "completedIndexes": if spec.indexed { Some(decide::format_indexes(&completed)) } else { None },
        });
        match write_status(&state, &jobs_api, &key, &name, &base_rv, status).await? {
            Some(v) => base_rv = Some(v),
            None => return Ok(Action::requeue(Duration::from_millis(100))),
        }
    }
    // 2. Then the finalizers go; 3. then the counters move.
    for p in &release {
        let rest: Vec<String> = p
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != TRACKING_FINALIZER)
            .collect();
        let patch = json!({"metadata": {"finalizers": rest, "uid": p.metadata.uid}});
        match pods_api
            .patch(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                let mut map = state.released.lock().unwrap_or_else(|p| p.into_inner());
                map.entry(key.clone())
                    .or_default()
                    .insert(p.metadata.uid.clone().unwrap_or_default());
            }
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    let succeeded = status.succeeded.unwrap_or(0) + i32::try_from(u_ok.len()).unwrap_or(0);
    let failed = status.failed.unwrap_or(0) + i32::try_from(u_failed.len()).unwrap_or(0);
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    // Empty lists, not absent ones: a merge patch leaves absent fields as they are.
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
        succeeded: Some(vec![]),
        failed: Some(vec![]),
    });
    if spec.indexed {
        status.completed_indexes = Some(decide::format_indexes(&completed));
    }
    let retry = retries(&job, &spec, &mine, &completed, now);
    if retry.per_index {
        status.failed_indexes = Some(decide::format_indexes(&retry.failed_indexes));
    }
    let mut wake: Option<i64> = None;

    let active: Vec<&Arc<Pod>> = mine.iter().filter(|p| pods::is_active(p)).collect();
    // Pods being deleted that have not stopped yet; under `podReplacementPolicy: Failed` they
    // still hold their place, so no replacement starts before they are gone.
    let terminating: Vec<&Arc<Pod>> = mine
        .iter()
        .filter(|p| pods::is_terminating(p) && !matches!(pods::phase(p), "Succeeded" | "Failed"))
        .collect();
    let occupying: Vec<&Arc<Pod>> = if decide::replace_only_failed(job.spec.as_ref()) {
        active.iter().chain(&terminating).copied().collect()
    } else {
        active.clone()
    };
    let mut conds = status.conditions.clone().unwrap_or_default();
    let finished = finished_at(&status).is_some();
    if status.start_time.is_none() && !spec.suspended {
        status.start_time = Some(Time(now_ts));
    }
    let started = status.start_time.as_ref().map(|t| t.0.as_second());

    if !finished {
        let verdict =
            decide::failure(&spec, failed, fail_job.as_deref(), started, now).or_else(|| {
                retry.per_index.then(|| {
                    policy::index_failure(
                        spec.completions.unwrap_or(0),
                        spec.max_failed_indexes,
                        &retry.failed_indexes,
                        &completed,
                    )
                })?
            });
        let success_rule = job
            .spec
            .as_ref()
            .and_then(|s| s.success_policy.as_ref())
            .filter(|_| spec.indexed)
            .and_then(|p| policy::success_rule(p, &completed));
        if let Some(f) = verdict {
            delete_pods(&state, &job, &pods_api, &active).await?;
            conds.push(condition("FailureTarget", f.reason, &f.message, now_ts));
            conds.push(condition("Failed", f.reason, &f.message, now_ts));
            state
                .recorder
                .record(job.as_ref(), WARNING, f.reason, f.message.clone());
        } else if let Some(rule) = success_rule {
            // The rest of the pods are no longer needed.
            delete_pods(&state, &job, &pods_api, &active).await?;
            let message = format!("Matched rules at index {rule}");
            conds.push(condition(
                "SuccessCriteriaMet",
                "SuccessPolicy",
                &message,
                now_ts,
            ));
            conds.push(condition("Complete", "SuccessPolicy", &message, now_ts));
            status.completion_time = Some(Time(now_ts));
            state
                .recorder
                .record(job.as_ref(), NORMAL, "Completed", "Job completed".into());
        } else if decide::complete(&spec, succeeded, &completed, active.len()) {
            conds.push(condition(
                "SuccessCriteriaMet",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now_ts,
            ));
            conds.push(condition(
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now_ts,
            ));
            status.completion_time = Some(Time(now_ts));
            state
                .recorder
                .record(job.as_ref(), NORMAL, "Completed", "Job completed".into());
        } else {
            let pending_ok = ctx.expectations.satisfied(
                &key,
                |n| mine.iter().any(|p| p.metadata.name.as_deref() == Some(n)),
                |u| active.iter().any(|p| p.metadata.uid.as_deref() == Some(u)),
            );
            if pending_ok {
                wake = manage(
                    &state, &job, &uid, &spec, succeeded, &completed, &occupying, &pods_api, &key,
                    &retry,
                )
                .await?;
            }
            set_suspended(&mut conds, spec.suspended, now_ts);
        }
    }
    status.conditions = Some(conds);
    status.active = Some(i32::try_from(active.len()).unwrap_or(0));
    status.terminating = Some(i32::try_from(terminating.len()).unwrap_or(0));
    status.ready =
        Some(i32::try_from(active.iter().filter(|p| pods::is_ready(p)).count()).unwrap_or(0));
    if status != old_status || recorded_new {
        let body = serde_json::to_value(&status)?;
        if write_status(&state, &jobs_api, &key, &name, &base_rv, body)
            .await?
            .is_none()
        {
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
    }

    // Time-driven transitions: the deadline and the TTL after finishing.
    if let Some(done) = finished_at(&status) {
        if let Some(ttl) = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished) {
            let left = done + i64::from(ttl) - now;
            if left <= 0 {
                let dp = DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Foreground),
                    ..Default::default()
                };
                match jobs_api.delete(&name, &dp).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(e.into()),
                }
                return Ok(Action::await_change());
            }
            return Ok(Action::requeue(Duration::from_secs(
                u64::try_from(left).unwrap_or(1),
            )));
        }
        return Ok(Action::await_change());
    }
    if let (Some(d), Some(s)) = (spec.active_deadline, started) {
        let left = (s + d - now).max(1);
        wake = Some(wake.map_or(left, |w| w.min(left)));
    }
    // A pod whose start waits for its back-off, or the deadline.
    Ok(wake.map_or_else(Action::await_change, |left| {
        Action::requeue(Duration::from_secs(u64::try_from(left.max(1)).unwrap_or(1)))
    }))
}

fn set_suspended(conds: &mut Vec<JobCondition>, suspended: bool, now: Timestamp) {
    let cur = conds.iter().position(|c| c.type_ == "Suspended");
    match (suspended, cur) {
        (true, None) => conds.push(condition("Suspended", "JobSuspended", "Job suspended", now)),
        (false, Some(i)) if conds[i].status == "True" => {
            conds[i].status = "False".into();
            conds[i].reason = Some("JobResumed".into());
            conds[i].message = Some("Job resumed".into());
            conds[i].last_transition_time = Some(Time(now));
        }
        (true, Some(i)) if conds[i].status != "True" => {
            conds[i] = condition("Suspended", "JobSuspended", "Job suspended", now);
        }
        _ => {}
    }
}

#[allow(clippy::too_many_arguments)]
async fn manage(
    state: &State,
    job: &Job,
    uid: &str,
    spec: &Spec,
    succeeded: i32,
    completed: &BTreeSet<i32>,
    active: &[&Arc<Pod>],
    api: &Api<Pod>,
    key: &str,
    retry: &Retries,
) -> Result<Option<i64>> {
    let mut to_create: Vec<Option<i32>> = Vec::new();
    // Seconds until a pod held back by its back-off may start.
    let mut wake = None;
    let mut to_delete: Vec<&Arc<Pod>> = Vec::new();
    if spec.indexed {
        let running: BTreeSet<i32> = active.iter().filter_map(|p| decide::pod_index(p)).collect();
        let mut skip = retry.failed_indexes.clone();
        skip.extend(retry.backing_off.keys());
        to_create = decide::indexes_to_start(spec, completed, &running, &skip)
            .into_iter()
            .map(Some)
            .collect();
        let held = decide::indexes_to_start(spec, completed, &running, &retry.failed_indexes);
        wake = held
            .iter()
            .filter_map(|i| retry.backing_off.get(i))
            .min()
            .copied();
        if spec.suspended {
            to_delete = active
                .iter()
                .filter(|p| !pods::is_terminating(p))
                .copied()
                .collect();
        }
    } else {
        let want = usize::try_from(decide::want_active(spec, succeeded)).unwrap_or(0);
        if active.len() < want {
            to_create = vec![None; want - active.len()];
        } else if active.len() > want {
            // Pods already going are not deleted again.
            let mut victims: Vec<&Arc<Pod>> = active
                .iter()
                .filter(|p| !pods::is_terminating(p))
                .copied()
                .collect();
            victims.sort_by(|a, b| pods::deletion_order(a, b));
            to_delete = victims.into_iter().take(active.len() - want).collect();
        }
    }
    if retry.backoff_left > 0 && !to_create.is_empty() {
        to_create.clear();
        wake = Some(retry.backoff_left);
    }
    let mut created = Vec::new();
    for index in to_create {
        let mut pod = job_pod(job, uid, index);
        if let (true, Some(i)) = (retry.per_index, index) {
            let n = retry.index_failures.get(&i).copied().unwrap_or(0);
            pod.metadata
                .annotations
                .get_or_insert_default()
                .insert(policy::INDEX_FAILURE_COUNT.into(), n.to_string());
        }
        match api.create(&PostParams::default(), &pod).await {
            Ok(p) => {
                let n = p.name_any();
                state
                    .recorder
                    .record(job, NORMAL, "SuccessfulCreate", format!("Created pod: {n}"));
                created.push(n);
            }
            Err(e) => {
                state
                    .recorder
                    .record(job, WARNING, "FailedCreate", format!("Error creating: {e}"));
                state.ctx.expectations.expect(key, created, vec![]);
                return Err(e.into());
            }
        }
    }
    state.ctx.expectations.expect(key, created, vec![]);
    delete_pods(state, job, api, &to_delete).await?;
    Ok(wake)
}

async fn delete_pods(
    state: &State,
    job: &Job,
    api: &Api<Pod>,
    victims: &[&Arc<Pod>],
) -> Result<()> {
    for p in victims {
        match api.delete(&p.name_any(), &DeleteParams::background()).await {
            Ok(_) => state.recorder.record(
                job,
                NORMAL,
                "SuccessfulDelete",
                format!("Deleted pod: {}", p.name_any()),
            ),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A pod of the Job: the template plus upstream's Job labels, the tracking finalizer, and for
/// Indexed Jobs the completion index (annotation, label, `JOB_COMPLETION_INDEX`, hostname).
fn job_pod(job: &Job, uid: &str, index: Option<i32>) -> Pod {
    let name = job.name_any();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = crate::replicaset::pod_from_template(job, uid, &template);
    let mut labels: BTreeMap<String, String> = pod.metadata.labels.take().unwrap_or_default();
    for (k, v) in [
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name.as_str()),
        ("controller-uid", uid),
        ("job-name", name.as_str()),
    ] {
        labels.entry(k.into()).or_insert_with(|| v.into());
    }
    pod.metadata
        .finalizers
        .get_or_insert_default()
        .push(TRACKING_FINALIZER.into());
    if let Some(i) = index {
        labels.insert(COMPLETION_INDEX.into(), i.to_string());
        pod.metadata
            .annotations
            .get_or_insert_default()
            .insert(COMPLETION_INDEX.into(), i.to_string());
        pod.metadata.generate_name = Some(format!("{name}-{i}-"));
        if let Some(spec) = pod.spec.as_mut() {
            if spec.hostname.is_none() {
                spec.hostname = Some(format!("{name}-{i}"));
            }
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: None,
                        field_path: format!("metadata.annotations['{COMPLETION_INDEX}']"),
                    }),
                    ..Default::default()
                }),
            };
            for c in spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten())
            {
                c.env.get_or_insert_default().push(env.clone());
            }
        }
    }
    pod.metadata.labels = Some(labels);
    pod
}
