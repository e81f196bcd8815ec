//! Probes and lifecycle hooks of running containers: each run's probe tallies, running the
//! due probes (a failed liveness or startup probe kills the container), `postStart`, and where
//! probes and hooks dial (the pod's network namespace, the container's named ports).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use rudder_runtime::{ContainerId, ContainerState, SandboxId};

use super::events::{NORMAL, WARNING, container_event};
use super::{Shared, Slot};
use crate::prober::{self, Kind, Tally, Timing, Verdict};

/// The probes of one container run.
pub(super) struct Probes {
    pub(super) for_container: ContainerId,
    startup: Option<(Timing, Tally)>,
    liveness: Option<(Timing, Tally)>,
    readiness: Option<(Timing, Tally)>,
}

impl Probes {
    pub(super) fn new(c: &Container, id: ContainerId, started: Instant) -> Self {
        let make = |p: &Option<k8s_openapi::api::core::v1::Probe>, passing: bool| {
            p.as_ref().map(|p| {
                let t = Timing::of(p);
                let tally = Tally::new(&t, started, passing);
                (t, tally)
            })
        };
        Self {
            for_container: id,
            startup: make(&c.startup_probe, false),
            liveness: make(&c.liveness_probe, true),
            readiness: make(&c.readiness_probe, false),
        }
    }

    /// Whether the container has any probe, so the worker must keep looking to run it.
    pub(super) fn any(&self) -> bool {
        self.startup.is_some() || self.liveness.is_some() || self.readiness.is_some()
    }

    pub(super) fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(|(_, t)| t.passing)
    }

    pub(super) fn ready(&self) -> bool {
        self.started() && self.readiness.as_ref().is_none_or(|(_, t)| t.passing)
    }
}

/// The pod's network namespace, where probes and hooks dial.
pub(super) async fn netns_of(shared: &Shared, sandbox: &SandboxId) -> Option<std::path::PathBuf> {
    let status = shared.runtime.pod_sandbox_status(sandbox).await.ok()?;
    status.netns_path
}

/// The container's named ports, for probes and hooks.
pub(super) fn ports_of(c: &Container) -> Vec<(String, i32)> {
    c.ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect()
}

/// Runs the container's `postStart` hook; a failing hook kills the container, as upstream.
pub(super) async fn post_start(
    shared: &Shared,
    pod: &Pod,
    c: &Container,
    sandbox: &SandboxId,
    id: &ContainerId,
) {
    let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.post_start.clone()) else {
        return;
    };
    let netns = netns_of(shared, sandbox).await;
    let timeout = Duration::from_secs(30);
    if !prober::run_hook(&hook, &*shared.runtime, id, netns, &ports_of(c), timeout).await {
        tracing::info!(pod = ?pod.metadata.name, container = %c.name, "postStart hook failed, killing the container");
        container_event(
            shared,
            pod,
            &c.name,
            WARNING,
            "FailedPostStartHook",
            "PostStartHook failed".into(),
        );
        let _ = shared.runtime.stop_container(id, Duration::ZERO).await;
    }
}

/// Runs the container's due probes; a failed liveness or startup probe kills it (the restart
/// policy then decides what follows).
pub(super) async fn probe(
    shared: &Shared,
    pod: &Pod,
    c: &Container,
    sandbox: &SandboxId,
    slot: &mut Slot,
) {
    let Some(id) = slot.id.clone() else {
        slot.probes = None;
        return;
    };
    if c.startup_probe.is_none() && c.liveness_probe.is_none() && c.readiness_probe.is_none() {
        return;
    }
    match shared.runtime.container_status(&id).await {
        Ok(st) if st.state == ContainerState::Running => {}
        _ => return,
    }
    if slot.probes.as_ref().is_none_or(|p| p.for_container != id) {
        slot.probes = Some(Probes::new(c, id.clone(), Instant::now()));
    }
    let Some(probes) = slot.probes.as_mut() else {
        return;
    };
    let netns = netns_of(shared, sandbox).await;
    let ports = ports_of(c);
    let started = probes.started();
    let specs = [
        (
            Kind::Startup,
            &c.startup_probe,
            &mut probes.startup,
            !started,
        ),
        (
            Kind::Liveness,
            &c.liveness_probe,
            &mut probes.liveness,
            started,
        ),
        (
            Kind::Readiness,
            &c.readiness_probe,
            &mut probes.readiness,
            started,
        ),
    ];
    let now = Instant::now();
    let mut kill = false;
    for (kind, spec, state, active) in specs {
        let (Some(spec), Some((timing, tally))) = (spec, state.as_mut()) else {
            continue;
        };
        if !active || now < tally.next_at {
            continue;
        }
        let ok = prober::run(
            spec,
            &*shared.runtime,
            &id,
            netns.clone(),
            &ports,
            timing.timeout,
        )
        .await;
        if !ok {
            container_event(
                shared,
                pod,
                &c.name,
                WARNING,
                "Unhealthy",
                format!("{} probe failed", kind_name(kind)),
            );
        }
        if prober::record(kind, timing, tally, ok, Instant::now()) == Verdict::Kill {
            tracing::info!(pod = ?pod.metadata.name, container = %c.name, ?kind, "probe failed, killing the container");
            container_event(
                shared,
                pod,
                &c.name,
                NORMAL,
                "Killing",
                format!(
                    "Container {} failed {} probe, will be restarted",
                    c.name,
                    kind_name(kind).to_lowercase()
                ),
            );
            kill = true;
        }
    }
    if kill {
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .and_then(|g| u64::try_from(g).ok())
            .unwrap_or(30);
        let _ = shared
            .runtime
            .stop_container(&id, Duration::from_secs(grace))
            .await;
    }
}

/// How upstream names a probe in events (`Liveness probe failed`).
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Startup => "Startup",
        Kind::Liveness => "Liveness",
        Kind::Readiness => "Readiness",
    }
}
