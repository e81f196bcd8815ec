//! The CronJob controller: creates a Job (`<cronjob>-<scheduled time in minutes>`) at each
//! scheduled time in the CronJob's time zone, honouring `suspend`, `startingDeadlineSeconds` and
//! `concurrencyPolicy` (Allow, Forbid, Replace); tracks active Jobs and the last schedule and
//! success times; keeps `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` finished Jobs.
//! [`schedule`] parses and evaluates schedules.

pub mod schedule;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{Timestamp, ToSpan};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;

use self::schedule::Schedule;
use crate::context::run_controller;
use crate::events::{NORMAL, Recorder, WARNING};
use crate::informer::{Informer, own_triggers};
use crate::{Context, Result, pods};

const COMPONENT: &str = "cronjob-controller";
/// Annotation: when the Job was scheduled for.
const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Missed times beyond which upstream warns (and still runs only the latest).
const TOO_MANY_MISSED: usize = 100;

struct State {
    ctx: Context,
    recorder: Recorder,
}

/// Runs the CronJob controller.
pub async fn run(ctx: Context) -> Result<()> {
    let cronjobs: Informer<CronJob> = Informer::start(&ctx.client, "cronjobs", ctx.stopped());
    let job_triggers =
        ctx.jobs.triggers(
            cronjobs.store.clone(),
            |job: &Job| match pods::controller_ref(&job.metadata) {
                Some(r) if r.kind == "CronJob" => {
                    vec![ObjectRef::new(&r.name).within(&job.namespace().unwrap_or_default())]
                }
                _ => vec![],
            },
        );
    let state = Arc::new(State {
        recorder: ctx.recorder(COMPONENT),
        ctx: ctx.clone(),
    });
    run_controller(
        COMPONENT,
        cronjobs.store.clone(),
        vec![own_triggers(&cronjobs), job_triggers],
        state,
        |cj, state| Box::pin(reconcile(cj, state)) as BoxFuture<'static, Result<Action>>,
        ctx.stopped(),
    )
    .await;
    Ok(())
}

/// `Complete` or `Failed`, once the Job has finished.
fn finished(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_deref()?;
    for c in conds {
        if c.status == "True" {
            match c.type_.as_str() {
                "Complete" => return Some("Complete"),
                "Failed" => return Some("Failed"),
                _ => {}
            }
        }
    }
    None
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn created(job: &Job) -> Timestamp {
    job.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

async fn reconcile(cj: Arc<CronJob>, state: Arc<State>) -> Result<Action> {
    let ctx = &state.ctx;
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let Some(uid) = cj.uid() else {
        return Ok(Action::await_change());
    };
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let now = Timestamp::now();
    let jobs_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let cj_api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
    let mut jobs: Vec<Arc<Job>> = ctx
        .jobs
        .store
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| pods::controller_ref(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();
    jobs.sort_by_key(|j| created(j));

    let old_status = cj.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let mut active: Vec<Arc<Job>> = Vec::new();
    for j in &jobs {
        match finished(j) {
            None if j.metadata.deletion_timestamp.is_none() => active.push(j.clone()),
            None => {}
            Some(how) => {
                let was_active = old_status
                    .active
                    .as_deref()
                    .unwrap_or_default()
                    .iter()
                    .any(|r| r.uid == j.metadata.uid);
                if was_active {
                    state.recorder.record(
                        cj.as_ref(),
                        NORMAL,
                        "SawCompletedJob",
                        format!("Saw completed job: {}, status: {how}", j.name_any()),
                    );
                }
                if how == "Complete" {
                    let done = j.status.as_ref().and_then(|s| s.completion_time.clone());
                    if done.is_some()
                        && status.last_successful_time.as_ref().map(|t| t.0)
                            < done.as_ref().map(|t| t.0)
                    {
                        status.last_successful_time = done;
                    }
                }
            }
        }
    }

    // History: the oldest finished Jobs beyond the limits go.
    for (how, limit) in [
        (
            "Complete",
            cj.spec.successful_jobs_history_limit.unwrap_or(3),
        ),
        ("Failed", cj.spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished(j) == Some(how) && j.metadata.deletion_timestamp.is_none())
            .collect();
        let extra = done
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        for j in done.into_iter().take(extra) {
            delete_job(&state, &cj, &jobs_api, j).await?;
        }
    }

    let sched = match Schedule::parse(&cj.spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            state.recorder.record(
                cj.as_ref(),
                WARNING,
                "UnparseableSchedule",
                format!("unparseable schedule: {:?} : {e}", cj.spec.schedule),
            );
            return finish(&cj_api, &name, &old_status, status, active, None).await;
        }
    };
    let tz = match schedule::time_zone(cj.spec.time_zone.as_deref()) {
        Ok(tz) => tz,
        Err(e) => {
            state
                .recorder
                .record(cj.as_ref(), WARNING, "UnknownTimeZone", e);
            return finish(&cj_api, &name, &old_status, status, active, None).await;
        }
    };
    let next = sched.next(now, &tz);
    if cj.spec.suspend.unwrap_or(false) {
        return finish(&cj_api, &name, &old_status, status, active, None).await;
    }

    // The most recent unmet time since the last schedule (or creation), within the deadline.
    let mut earliest = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| cj.metadata.creation_timestamp.as_ref().map(|t| t.0))
        .unwrap_or(now);
    if let Some(d) = cj.spec.starting_deadline_seconds {
        let floor = now.checked_sub(d.seconds()).unwrap_or(now);
        earliest = earliest.max(floor);
    }
    let (missed, count) = sched.last_between(earliest, now, &tz, TOO_MANY_MISSED);
    let Some(scheduled) = missed else {
        return finish(&cj_api, &name, &old_status, status, active, next).await;
    };
    if count >= TOO_MANY_MISSED {
        state
            .recorder
            .record(cj.as_ref(), WARNING, "TooManyMissedTimes", "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into());
    }
    let job_name = format!("{name}-{}", scheduled.as_second() / 60);
    let exists = jobs.iter().any(|j| j.name_any() == job_name);
    if !exists {
        match cj.spec.concurrency_policy.as_deref().unwrap_or("Allow") {
            "Forbid" if !active.is_empty() => {
                state
                    .recorder
                    .record(cj.as_ref(), NORMAL, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid".into());
                return finish(&cj_api, &name, &old_status, status, active, next).await;
            }
            "Replace" => {
                for j in active.drain(..) {
                    delete_job(&state, &cj, &jobs_api, &j).await?;
                }
            }
            _ => {}
        }
        let template = cj.spec.job_template.clone();
        let mut meta: ObjectMeta = template.metadata.unwrap_or_default();
        meta.name = Some(job_name.clone());
        meta.namespace = Some(ns.clone());
        meta.annotations
            .get_or_insert_default()
            .insert(SCHEDULED_AT.into(), rfc3339_in(scheduled, &tz));
        meta.owner_references = Some(vec![pods::new_controller_ref(
            "batch/v1", "CronJob", &name, &uid,
        )]);
        let job = Job {
            metadata: meta,
            spec: template.spec,
            status: None,
        };
        match jobs_api.create(&PostParams::default(), &job).await {
            Ok(j) => {
                state.recorder.record(
                    cj.as_ref(),
                    NORMAL,
                    "SuccessfulCreate",
                    format!("Created job {job_name}"),
                );
                active.push(Arc::new(j));
            }
            // Created by an earlier sync whose status write was lost.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => {
                state.recorder.record(
                    cj.as_ref(),
                    WARNING,
                    "FailedCreate",
                    format!("Error creating job: {e}"),
                );
                return Err(e.into());
            }
        }
    }
    status.last_schedule_time = Some(Time(scheduled));
    finish(&cj_api, &name, &old_status, status, active, next).await
}

/// Deletes one of the CronJob's Jobs (its pods follow by garbage collection).
async fn delete_job(state: &State, cj: &CronJob, api: &Api<Job>, job: &Job) -> Result<()> {
    match api
        .delete(&job.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => {
            let message = format!("Deleted job {}", job.name_any());
            state
                .recorder
                .record(cj, NORMAL, "SuccessfulDelete", message);
            Ok(())
        }
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// RFC 3339 in the CronJob's zone, as upstream writes the scheduled-timestamp annotation.
fn rfc3339_in(t: Timestamp, tz: &k8s_openapi::jiff::tz::TimeZone) -> String {
    let offset = tz.to_offset(t);
    if offset.seconds() == 0 {
        return t.to_string();
    }
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Writes status (if changed) and wakes up at the next scheduled time.
async fn finish(
    api: &Api<CronJob>,
    name: &str,
    old: &k8s_openapi::api::batch::v1::CronJobStatus,
    mut status: k8s_openapi::api::batch::v1::CronJobStatus,
    active: Vec<Arc<Job>>,
    next: Option<Timestamp>,
) -> Result<Action> {
    let refs: Vec<ObjectReference> = active.iter().map(|j| job_ref(j)).collect();
    // Compare by UID: resourceVersions change with every Job status write.
    let same_active = old
        .active
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|r| &r.uid)
        .eq(refs.iter().map(|r| &r.uid));
    status.active = if same_active {
        old.active.clone()
    } else {
        (!refs.is_empty()).then_some(refs)
    };
    if &status != old {
        // `active: null` clears the list in a merge patch.
        let patch = json!({"status": {
            "active": status.active,
            "lastScheduleTime": status.last_schedule_time,
            "lastSuccessfulTime": status.last_successful_time,
        }});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(match next {
        Some(t) => {
            let wait = t.as_second() - Timestamp::now().as_second();
            Action::requeue(Duration::from_secs(
                u64::try_from(wait.max(0)).unwrap_or(0) + 1,
            ))
        }
        None => Action::await_change(),
    })
}
