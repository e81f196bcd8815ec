//! What a pod's status says, computed from what the agent knows of its containers: phase,
//! conditions and container statuses, by upstream's rules. Pure.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// Where one container is, as the agent sees it.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// Not running: being created, backing off (`CrashLoopBackOff`), pulling, misconfigured.
    Waiting {
        reason: String,
        message: Option<String>,
    },
    /// Its process runs.
    Running { started_at: Time },
    /// Its process exited.
    Terminated(Terminated),
}

/// An exit.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<Time>,
    pub finished_at: Option<Time>,
    pub container_id: Option<String>,
}

/// One container of the pod.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub container_id: Option<String>,
    pub state: State,
    /// The exit before the current run (what `kubectl logs --previous` shows).
    pub last_terminated: Option<Terminated>,
    pub restart_count: i32,
    /// Readiness from probes (a running container without a readiness probe is ready).
    pub ready: bool,
    /// Whether its startup probe (if any) has passed.
    pub started: bool,
}

fn terminated(t: &Terminated) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: t.exit_code,
        reason: Some(t.reason.clone()),
        message: t.message.clone(),
        started_at: t.started_at.clone(),
        finished_at: t.finished_at.clone(),
        container_id: t.container_id.clone(),
        signal: None,
    }
}

/// The API's status of one container.
pub fn to_status(v: &ContainerView) -> ContainerStatus {
    let state = match &v.state {
        State::Waiting { reason, message } => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(reason.clone()),
                message: message.clone(),
            }),
            ..Default::default()
        },
        State::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..Default::default()
        },
        State::Terminated(t) => ContainerState {
            terminated: Some(terminated(t)),
            ..Default::default()
        },
    };
    ContainerStatus {
        name: v.name.clone(),
        image: v.image.clone(),
        image_id: v.image_id.clone(),
        container_id: v.container_id.clone(),
        state: Some(state),
        last_state: Some(match &v.last_terminated {
            Some(t) => ContainerState {
                terminated: Some(terminated(t)),
                ..Default::default()
            },
            None => ContainerState::default(),
        }),
        ready: v.ready && matches!(v.state, State::Running { .. }),
        restart_count: v.restart_count,
        started: Some(matches!(v.state, State::Running { .. }) && v.started),
        ..Default::default()
    }
}

/// Upstream's pod phase: Pending until every init container succeeded and every app container
/// has started; Succeeded/Failed once all app containers exited and will not restart; Running
/// otherwise.
pub fn phase(restart_policy: &str, init: &[ContainerView], app: &[ContainerView]) -> &'static str {
    let init_done = init
        .iter()
        .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    if !init_done {
        let init_failed = init
            .iter()
            .any(|c| matches!(&c.state, State::Terminated(t) if t.exit_code != 0));
        return if init_failed && restart_policy == "Never" {
            "Failed"
        } else {
            "Pending"
        };
    }
    let (mut running, mut waiting, mut succeeded, mut failed) = (0, 0, 0, 0);
    for c in app {
        match &c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) if t.exit_code == 0 => succeeded += 1,
            State::Terminated(_) => failed += 1,
            // Waiting after having run (back-off) counts as its last exit.
            State::Waiting { .. } => match &c.last_terminated {
                Some(_) => running += 1,
                None => waiting += 1,
            },
        }
    }
    if waiting > 0 {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match restart_policy {
        "Always" => "Running",
        "OnFailure" if failed > 0 => "Running",
        _ if failed > 0 => "Failed",
        _ if succeeded > 0 => "Succeeded",
        _ => "Pending",
    }
}

fn condition(
    type_: &str,
    ok: bool,
    reason: Option<&str>,
    now: &Time,
    previous: &[PodCondition],
) -> PodCondition {
    let status = if ok { "True" } else { "False" };
    let transition = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    PodCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: if ok { None } else { reason.map(str::to_owned) },
        last_transition_time: Some(transition),
        ..Default::default()
    }
}

/// What the agent observed of a pod, to report.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    /// `spec.restartPolicy`.
    pub restart_policy: &'a str,
    /// Init containers, in spec order.
    pub init: &'a [ContainerView],
    /// App containers, in spec order.
    pub app: &'a [ContainerView],
    /// Whether the sandbox (the pod's namespaces) exists.
    pub sandbox_ready: bool,
    /// The node's address.
    pub host_ip: &'a str,
    /// The pod's address, once it has one.
    pub pod_ip: Option<&'a str>,
}

/// The whole status: phase, conditions (keeping `PodScheduled` as the scheduler wrote it and each
/// condition's transition time while it holds), container statuses, IPs and start time.
pub fn pod_status(previous: &PodStatus, o: &Observed<'_>, now: &Time) -> PodStatus {
    let Observed {
        restart_policy,
        init,
        app,
        sandbox_ready,
        host_ip,
        pod_ip,
    } = o.clone();
    let phase = phase(restart_policy, init, app);
    let prev = previous.conditions.clone().unwrap_or_default();
    let initialized = init
        .iter()
        .all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
    let all_ready = !app.is_empty()
        && app
            .iter()
            .all(|c| c.ready && matches!(c.state, State::Running { .. }));
    let finished = matches!(phase, "Succeeded" | "Failed");
    let reason = if finished {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let mut conditions: Vec<PodCondition> = prev
        .iter()
        .filter(|c| c.type_ == "PodScheduled")
        .cloned()
        .collect();
    conditions.push(condition(
        "PodReadyToStartContainers",
        sandbox_ready,
        None,
        now,
        &prev,
    ));
    conditions.push(condition(
        "Initialized",
        initialized,
        Some(if finished {
            "PodCompleted"
        } else {
            "ContainersNotInitialized"
        }),
        now,
        &prev,
    ));
    conditions.push(condition("Ready", all_ready, Some(reason), now, &prev));
    conditions.push(condition(
        "ContainersReady",
        all_ready,
        Some(reason),
        now,
        &prev,
    ));
    let ips = pod_ip.map(|ip| vec![k8s_openapi::api::core::v1::PodIP { ip: ip.to_owned() }]);
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        container_statuses: Some(app.iter().map(to_status).collect()),
        init_container_statuses: (!init.is_empty()).then(|| init.iter().map(to_status).collect()),
        host_ip: Some(host_ip.to_owned()).filter(|h| !h.is_empty()),
        host_ips: Some(host_ip.to_owned())
            .filter(|h| !h.is_empty())
            .map(|ip| vec![k8s_openapi::api::core::v1::HostIP { ip }]),
        pod_ip: pod_ip.map(str::to_owned),
        pod_ips: ips,
        start_time: previous.start_time.clone().or_else(|| Some(now.clone())),
        qos_class: previous.qos_class.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
