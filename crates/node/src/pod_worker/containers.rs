//! One container's way through its pod: pull its image by the pull policy, create and start it
//! (with upstream kubelet's events), notice its exit, and restart it after the crash back-off
//! when the restart policy says so.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use rudder_runtime::images::{PullDecision, PullPolicy, Reference};
use rudder_runtime::{ContainerId, ContainerState, SandboxId};

use super::events::{NORMAL, WARNING, container_event, pod_label};
use super::probing::post_start;
use super::{INITIAL_BACKOFF, MAX_BACKOFF, Prepared, Shared, Slot, dns_files, exit_of};
use crate::pod_spec::{self, PodContext};

/// Moves one container along: pull, create and start it, notice its exit, and restart it after
/// the back-off when the policy says so.
pub(super) async fn drive(
    shared: &Shared,
    pod: &Pod,
    c: &Container,
    sandbox: &SandboxId,
    slot: &mut Slot,
    policy: &str,
    prepared: &Prepared,
) {
    if let Some(id) = slot.id.clone() {
        match shared.runtime.container_status(&id).await {
            Ok(st) if st.state == ContainerState::Exited => {
                let exit = exit_of(&st, &shared.runtime.name());
                let restart = match policy {
                    "Always" => true,
                    "OnFailure" => exit.exit_code != 0,
                    _ => false,
                };
                if let Some(older) = slot.previous.replace(id) {
                    let _ = shared.runtime.remove_container(&older).await;
                }
                slot.id = None;
                slot.last_exit = Some(exit);
                if restart {
                    slot.backoff = if slot.backoff.is_zero() {
                        INITIAL_BACKOFF
                    } else {
                        (slot.backoff * 2).min(MAX_BACKOFF)
                    };
                    // A container that ran long enough resets the back-off, as upstream does.
                    if st
                        .started_at
                        .zip(st.finished_at)
                        .and_then(|(a, b)| b.duration_since(a).ok())
                        .is_some_and(|d| d > Duration::from_secs(600))
                    {
                        slot.backoff = INITIAL_BACKOFF;
                    }
                    slot.retry_at = Some(Instant::now() + slot.backoff);
                    container_event(
                        shared,
                        pod,
                        &c.name,
                        WARNING,
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}",
                            c.name,
                            pod_label(pod)
                        ),
                    );
                    slot.waiting = Some((
                        "CrashLoopBackOff".into(),
                        Some(format!(
                            "back-off {}s restarting failed container={} pod={}",
                            slot.backoff.as_secs(),
                            c.name,
                            pod.metadata.name.clone().unwrap_or_default()
                        )),
                    ));
                }
                return;
            }
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(container = %c.name, error = %e, "container status");
                return;
            }
        }
    }
    // Not running: start it unless it finished for good or is backing off.
    let finished_for_good = match (&slot.last_exit, policy) {
        (Some(_), "Never") => true,
        (Some(t), "OnFailure") => t.exit_code == 0,
        _ => false,
    };
    if finished_for_good {
        slot.waiting = None;
        return;
    }
    if slot.retry_at.is_some_and(|at| Instant::now() < at) {
        return;
    }
    let image = c.image.clone().unwrap_or_default();
    let event = |type_: &str, reason: &str, message: String| {
        container_event(shared, pod, &c.name, type_, reason, message);
    };
    if let Err(e) = ensure_image(shared, &image, c.image_pull_policy.as_deref(), &event).await {
        event(WARNING, "Failed", e.clone());
        event(WARNING, "Failed", "Error: ErrImagePull".into());
        slot.waiting = Some(("ErrImagePull".into(), Some(e)));
        slot.retry_at = Some(Instant::now() + INITIAL_BACKOFF);
        return;
    }
    let ctx = PodContext {
        host_ip: shared.host_ip.clone(),
        pod_ip: prepared.pod_ip.clone(),
    };
    if let Some(e) = &prepared.volumes {
        event(WARNING, "Failed", format!("Error: {e}"));
        slot.waiting = Some(("CreateContainerConfigError".into(), Some(e.clone())));
        return;
    }
    let attempt = slot.attempt;
    let target = pid_target(shared, pod, c, sandbox).await;
    let config = pod_spec::container_config(pod, c, attempt, &ctx, &prepared.env)
        .and_then(|mut cfg| {
            let target = target
                .as_ref()
                .map(|(name, id)| (name.as_str(), id.as_ref()));
            cfg.pid_namespace = pod_spec::pid_namespace(pod, target)?;
            Ok(cfg)
        })
        .map_err(|e| e.to_string())
        .and_then(|mut cfg| {
            if shared.simulated.is_none() {
                cfg.mounts =
                    crate::volumes::mounts(&shared.root, pod, c).map_err(|e| e.to_string())?;
                cfg.mounts.extend(dns_files::mounts(&shared.root, pod, c));
            }
            Ok(cfg)
        });
    let config = match config {
        Ok(cfg) => cfg,
        Err(e) => {
            event(WARNING, "Failed", format!("Error: {e}"));
            slot.waiting = Some(("CreateContainerConfigError".into(), Some(e)));
            return;
        }
    };
    let created = shared.runtime.create_container(sandbox, config).await;
    let id = match created {
        Ok(id) => id,
        Err(e) => {
            event(WARNING, "Failed", format!("Error: {e}"));
            slot.waiting = Some(("CreateContainerError".into(), Some(e.to_string())));
            slot.retry_at = Some(Instant::now() + INITIAL_BACKOFF);
            return;
        }
    };
    event(NORMAL, "Created", format!("Created container: {}", c.name));
    if let Err(e) = shared.runtime.start_container(&id).await {
        event(WARNING, "Failed", format!("Error: {e}"));
        slot.waiting = Some(("RunContainerError".into(), Some(e.to_string())));
    } else {
        event(NORMAL, "Started", format!("Started container {}", c.name));
        slot.waiting = None;
        post_start(shared, pod, c, sandbox, &id).await;
    }
    if slot.last_exit.is_some() {
        slot.restarts += 1;
    }
    slot.attempt += 1;
    slot.id = Some(id);
    slot.retry_at = None;
}

/// For an ephemeral container with a `targetContainerName`: that name and the target's latest
/// container in `sandbox` (as the kubelet takes the target's from the pod's status), if any.
async fn pid_target(
    shared: &Shared,
    pod: &Pod,
    c: &Container,
    sandbox: &SandboxId,
) -> Option<(String, Option<ContainerId>)> {
    let name = pod
        .spec
        .as_ref()?
        .ephemeral_containers
        .iter()
        .flatten()
        .find(|e| e.name == c.name)?
        .target_container_name
        .clone()
        .filter(|t| !t.is_empty())?;
    let filter = pod_spec::labels::container_filter(
        pod.metadata.namespace.as_deref().unwrap_or_default(),
        pod.metadata.name.as_deref().unwrap_or_default(),
        &name,
    );
    let latest = match shared.runtime.list_containers(filter).await {
        Ok(list) => list
            .into_iter()
            .filter(|st| st.sandbox_id == *sandbox)
            .max_by_key(|st| st.metadata.attempt)
            .map(|st| st.id),
        Err(e) => {
            tracing::warn!(container = %c.name, error = %e, "listing the debug target");
            None
        }
    };
    Some((name, latest))
}

/// Pulls the image when the pull policy asks for it, telling `event` what it does (upstream's
/// `Pulling`/`Pulled` events); a failure is the message of upstream's `Failed` event.
async fn ensure_image(
    shared: &Shared,
    image: &str,
    policy: Option<&str>,
    event: &(dyn Fn(&str, &str, String) + Sync),
) -> Result<(), String> {
    let reference: Reference = image
        .parse()
        .map_err(|e: rudder_runtime::images::ImageError| e.to_string())?;
    let policy = PullPolicy::from_spec(policy, &reference).map_err(|e| e.to_string())?;
    let Some(images) = &shared.images else {
        return Ok(());
    };
    let present = images
        .image_present(image)
        .await
        .map_err(|e| e.to_string())?;
    match rudder_runtime::images::decide(policy, present) {
        PullDecision::UseLocal => {
            event(
                NORMAL,
                "Pulled",
                format!("Container image \"{image}\" already present on machine"),
            );
            Ok(())
        }
        PullDecision::Pull => {
            tracing::info!(image, "pulling image");
            event(NORMAL, "Pulling", format!("Pulling image \"{image}\""));
            let started = Instant::now();
            images
                .pull_image(image)
                .await
                .map_err(|e| format!("Failed to pull image \"{image}\": {e}"))?;
            tracing::info!(image, "pulled image");
            event(
                NORMAL,
                "Pulled",
                format!(
                    "Successfully pulled image \"{image}\" in {:.3}s",
                    started.elapsed().as_secs_f64()
                ),
            );
            Ok(())
        }
        PullDecision::NeverPullMissing => Err(format!(
            "Container image \"{image}\" is not present with pull policy of Never"
        )),
    }
}
