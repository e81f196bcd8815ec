//! [`CriRuntime`]: [`ContainerRuntime`] over CRI v1's `RuntimeService`, one gRPC call (or a
//! few) per trait method. What CRI leaves to the kubelet is done here: log directories exist
//! before containerd opens files in them, pod cgroups are removed with the sandbox, and logs kept
//! for sandboxes without a log directory go with their container.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use k8s_cri::v1 as cri;

use super::client::{self, CriClient, is_not_found};
use super::convert::{self, Layout};
use crate::error::{IoContext, Result, RuntimeError};
use crate::runtime::ContainerRuntime;
use crate::types::{
    AttachRequest, Attachment, ContainerConfig, ContainerFilter, ContainerId, ContainerState,
    ContainerStats, ContainerStatus, ExecProcess, ExecRequest, ExecResult, SandboxConfig,
    SandboxId, SandboxState, SandboxStatus,
};

/// How to reach the runtime and where rudder keeps what CRI does not.
#[derive(Clone, Debug)]
pub struct CriOptions {
    /// `unix:///run/containerd/containerd.sock`.
    pub endpoint: String,
    /// The cgroup every pod's cgroup goes under (cgroupfs driver): `rudder`.
    pub cgroup_root: String,
    /// Log directories of sandboxes created without one.
    pub log_root: PathBuf,
}

/// A container runtime reached over CRI (containerd + runc in rudder's tests).
pub struct CriRuntime {
    pub(super) client: CriClient,
    version: String,
    layout: Layout,
    /// Image references to config digests (`imageID`), which CRI before 1.29 does not report
    /// with a container.
    image_ids: Mutex<HashMap<String, String>>,
}

impl std::fmt::Debug for CriRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriRuntime")
            .field("version", &self.version)
            .field("layout", &self.layout)
            .finish_non_exhaustive()
    }
}

/// Seconds for CRI's whole-second timeouts, rounded up: 300 ms must not become 0 ("none").
fn ceil_secs(d: Duration) -> i64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(s.max(1)).unwrap_or(i64::MAX)
}

/// The status of each item of a listing, in its order, through `status`. An item removed
/// between the listing and its status call (`NotFound`) is left out: the listing is a snapshot
/// and the removal won. Any other error fails the whole listing.
async fn statuses_of<I, S, F, Fut>(items: Vec<I>, mut status: F) -> Result<Vec<S>>
where
    F: FnMut(I) -> Fut,
    Fut: std::future::Future<Output = Result<S>>,
{
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match status(item).await {
            Ok(s) => out.push(s),
            Err(RuntimeError::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

impl CriRuntime {
    /// Connects to the runtime at `options.endpoint` and checks that it speaks CRI v1.
    pub async fn connect(options: CriOptions) -> Result<CriRuntime> {
        let (client, version) = client::connect(&options.endpoint).await?;
        Ok(CriRuntime {
            client,
            version,
            layout: Layout {
                cgroup_root: options.cgroup_root,
                log_root: options.log_root,
            },
            image_ids: Mutex::new(HashMap::new()),
        })
    }

    /// `containerd/1.6.20~ds1`: the runtime's own name and version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Fails unless the runtime says its pod network is ready (`NetworkReady`): containerd
    /// loads the agent's CNI config a moment after it is written, and a sandbox started before
    /// fails in a way containerd cannot clean up (ADR 0021).
    async fn network_ready(&self) -> Result<()> {
        let status = self
            .client
            .runtime
            .clone()
            .status(cri::StatusRequest { verbose: false })
            .await
            .map_err(|e| client::error("Status", "runtime", "", e))?
            .into_inner()
            .status
            .unwrap_or_default();
        match status
            .conditions
            .iter()
            .find(|c| c.r#type == "NetworkReady")
        {
            Some(c) if !c.status => Err(RuntimeError::Cri {
                op: "RunPodSandbox",
                message: format!(
                    "the runtime's pod network is not ready yet ({}: {})",
                    c.reason, c.message
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Every sandbox the runtime lists, unfiltered.
    async fn sandbox_items(&self) -> Result<Vec<cri::PodSandbox>> {
        Ok(self
            .client
            .runtime
            .clone()
            .list_pod_sandbox(cri::ListPodSandboxRequest { filter: None })
            .await
            .map_err(|e| client::error("ListPodSandbox", "sandbox", "", e))?
            .into_inner()
            .items)
    }

    /// The sandbox holding `config`'s name (pod name, namespace, uid, attempt), and whether it
    /// is ready.
    async fn sandbox_named(&self, config: &SandboxConfig) -> Result<Option<(SandboxId, bool)>> {
        let items = self.sandbox_items().await?;
        let want = &config.metadata;
        Ok(items.into_iter().find_map(|sb| {
            let m = sb.metadata.as_ref()?;
            (m.name == want.name
                && m.namespace == want.namespace
                && m.uid == want.uid
                && m.attempt == want.attempt)
                .then(|| {
                    let ready = sb.state == cri::PodSandboxState::SandboxReady as i32;
                    (SandboxId(sb.id), ready)
                })
        }))
    }

    async fn raw_sandbox_status(&self, id: &SandboxId) -> Result<cri::PodSandboxStatusResponse> {
        let resp = self
            .client
            .runtime
            .clone()
            .pod_sandbox_status(cri::PodSandboxStatusRequest {
                pod_sandbox_id: id.0.clone(),
                verbose: true,
            })
            .await
            .map_err(|e| client::error("PodSandboxStatus", "sandbox", &id.0, e))?;
        Ok(resp.into_inner())
    }

    fn to_sandbox_status(
        resp: &cri::PodSandboxStatusResponse,
        id: &SandboxId,
    ) -> Result<SandboxStatus> {
        let status = resp.status.as_ref().ok_or_else(|| RuntimeError::NotFound {
            kind: "sandbox",
            id: id.0.clone(),
        })?;
        Ok(convert::sandbox_status(
            status,
            &convert::verbose_info(&resp.info),
        ))
    }

    /// The config digest of an image reference, asked once per reference.
    async fn image_id(&self, reference: &str) -> Option<String> {
        if reference.is_empty() {
            return None;
        }
        if let Ok(ids) = self.image_ids.lock()
            && let Some(id) = ids.get(reference)
        {
            return Some(id.clone());
        }
        let id = self
            .client
            .images
            .clone()
            .image_status(cri::ImageStatusRequest {
                image: Some(cri::ImageSpec {
                    image: reference.to_owned(),
                    ..Default::default()
                }),
                verbose: false,
            })
            .await
            .ok()?
            .into_inner()
            .image?
            .id;
        if let Ok(mut ids) = self.image_ids.lock() {
            ids.insert(reference.to_owned(), id.clone());
        }
        Some(id)
    }

    /// Removes the pod's cgroup (`/<root>/pod<uid>`) in every hierarchy: containerd removes the
    /// sandbox's and containers' own cgroups below it, the kubelet's part is this parent.
    async fn remove_pod_cgroups(&self, uid: &str) {
        let rel = self.layout.cgroup_parent(uid);
        let _ = tokio::task::spawn_blocking(move || {
            let base = Path::new("/sys/fs/cgroup");
            let roots: Vec<PathBuf> = if base.join("cgroup.controllers").exists() {
                vec![base.to_owned()]
            } else {
                std::fs::read_dir(base)
                    .map(|d| d.flatten().map(|e| e.path()).collect())
                    .unwrap_or_default()
            };
            for root in roots {
                let dir = root.join(rel.trim_start_matches('/'));
                // Emptied cgroups can stay busy for a moment while their last tasks are reaped.
                for _ in 0..20 {
                    match std::fs::remove_dir(&dir) {
                        Ok(()) => break,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            }
        })
        .await;
    }
}

#[async_trait]
impl ContainerRuntime for CriRuntime {
    fn name(&self) -> String {
        match self.version.split_once('/') {
            Some((name, version)) => format!("{name}://{version}"),
            None => self.version.clone(),
        }
    }

    async fn run_pod_sandbox(&self, config: SandboxConfig) -> Result<SandboxId> {
        let log_dir = self.layout.log_directory(&config);
        tokio::fs::create_dir_all(&log_dir)
            .await
            .ctx("create log directory", &log_dir)?;
        if !config.host_network {
            self.network_ready().await?;
        }
        let request = cri::RunPodSandboxRequest {
            config: Some(convert::pod_sandbox_config(&config, &self.layout)),
            runtime_handler: String::new(),
        };
        let err = match self
            .client
            .runtime
            .clone()
            .run_pod_sandbox(request.clone())
            .await
        {
            Ok(resp) => return Ok(SandboxId(resp.into_inner().pod_sandbox_id)),
            Err(e) => e,
        };
        // The name (pod + attempt) is taken: an earlier call for this sandbox got far enough to
        // reserve it (containerd keeps a sandbox whose failed set-up it could not undo, and a
        // call the agent gave up on may have succeeded). A ready one is adopted; anything else
        // is removed and the call made once more.
        if !err.message().contains("is reserved for") {
            return Err(client::error("RunPodSandbox", "sandbox", "", err));
        }
        let Some((id, ready)) = self.sandbox_named(&config).await? else {
            return Err(client::error("RunPodSandbox", "sandbox", "", err));
        };
        if ready {
            return Ok(id);
        }
        tracing::info!(sandbox = %id.0, "removing a failed sandbox that holds the pod's name");
        self.remove_pod_sandbox(&id).await?;
        let resp = self
            .client
            .runtime
            .clone()
            .run_pod_sandbox(request)
            .await
            .map_err(|e| client::error("RunPodSandbox", "sandbox", "", e))?;
        Ok(SandboxId(resp.into_inner().pod_sandbox_id))
    }

    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        self.client
            .runtime
            .clone()
            .stop_pod_sandbox(cri::StopPodSandboxRequest {
                pod_sandbox_id: id.0.clone(),
            })
            .await
            .map_err(|e| client::error("StopPodSandbox", "sandbox", &id.0, e))?;
        Ok(())
    }

    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<()> {
        let status = match self.raw_sandbox_status(id).await {
            Ok(resp) => Self::to_sandbox_status(&resp, id)?,
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        // containerd refuses to remove a sandbox that still runs; stopping also stops its
        // containers, which RemovePodSandbox then removes.
        if status.state == SandboxState::Ready {
            self.stop_pod_sandbox(id).await?;
        }
        match self
            .client
            .runtime
            .clone()
            .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                pod_sandbox_id: id.0.clone(),
            })
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(client::error("RemovePodSandbox", "sandbox", &id.0, e)),
        }
        self.remove_pod_cgroups(&status.metadata.uid).await;
        if status.log_directory.is_none() {
            let dir = self
                .layout
                .log_directory(&convert::sandbox_config_of(&status, &Default::default()));
            match tokio::fs::remove_dir_all(&dir).await {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).ctx("remove log directory", dir);
                }
                _ => {}
            }
        }
        Ok(())
    }

    async fn pod_sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus> {
        let resp = self.raw_sandbox_status(id).await?;
        Self::to_sandbox_status(&resp, id)
    }

    async fn list_pod_sandboxes(&self) -> Result<Vec<SandboxStatus>> {
        let items = self.sandbox_items().await?;
        statuses_of(items, |item| async move {
            self.pod_sandbox_status(&SandboxId(item.id)).await
        })
        .await
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: ContainerConfig,
    ) -> Result<ContainerId> {
        let resp = self.raw_sandbox_status(sandbox).await?;
        let status = Self::to_sandbox_status(&resp, sandbox)?;
        if status.state != SandboxState::Ready {
            return Err(RuntimeError::InvalidState {
                kind: "sandbox",
                id: sandbox.0.clone(),
                reason: "not ready".into(),
            });
        }
        let annotations = resp
            .status
            .as_ref()
            .map(|s| s.annotations.clone())
            .unwrap_or_default();
        let sandbox_config = convert::sandbox_config_of(&status, &annotations);
        let log_file = self
            .layout
            .log_directory(&sandbox_config)
            .join(convert::log_path(&config));
        if let Some(parent) = log_file.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .ctx("create log directory", parent)?;
        }
        let resp = self
            .client
            .runtime
            .clone()
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox.0.clone(),
                config: Some(convert::container_config(&config, sandbox)),
                sandbox_config: Some(convert::pod_sandbox_config(&sandbox_config, &self.layout)),
            })
            .await
            // A missing image is "not found" too, but not a missing container.
            .map_err(|e| RuntimeError::Cri {
                op: "CreateContainer",
                message: format!("{:?}: {}", e.code(), e.message()),
            })?;
        Ok(ContainerId(resp.into_inner().container_id))
    }

    async fn start_container(&self, id: &ContainerId) -> Result<()> {
        self.client
            .runtime
            .clone()
            .start_container(cri::StartContainerRequest {
                container_id: id.0.clone(),
            })
            .await
            .map_err(
                |e| match client::error("StartContainer", "container", &id.0, e) {
                    RuntimeError::Cri { message, .. } => RuntimeError::StartFailed(message),
                    other => other,
                },
            )?;
        Ok(())
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<()> {
        let mut req = tonic::Request::new(cri::StopContainerRequest {
            container_id: id.0.clone(),
            timeout: ceil_secs(grace),
        });
        req.set_timeout(grace + Duration::from_secs(30));
        self.client
            .runtime
            .clone()
            .stop_container(req)
            .await
            .map_err(|e| client::error("StopContainer", "container", &id.0, e))?;
        Ok(())
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<()> {
        let log = match self.container_status(id).await {
            Ok(s) => Some(s.log_path),
            Err(RuntimeError::NotFound { .. }) => return Ok(()),
            Err(_) => None,
        };
        match self
            .client
            .runtime
            .clone()
            .remove_container(cri::RemoveContainerRequest {
                container_id: id.0.clone(),
            })
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(()),
            Err(e) => return Err(client::error("RemoveContainer", "container", &id.0, e)),
        }
        // Logs the runtime keeps (no sandbox log directory) go with the container.
        if let Some(log) = log.filter(|l| convert::under(l, &self.layout.log_root)) {
            let _ = tokio::fs::remove_file(&log).await;
        }
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let resp = self
            .client
            .runtime
            .clone()
            .container_status(cri::ContainerStatusRequest {
                container_id: id.0.clone(),
                verbose: true,
            })
            .await
            .map_err(|e| client::error("ContainerStatus", "container", &id.0, e))?
            .into_inner();
        let status = resp.status.as_ref().ok_or_else(|| RuntimeError::NotFound {
            kind: "container",
            id: id.0.clone(),
        })?;
        let image_id = if status.image_id.is_empty() {
            self.image_id(&status.image_ref).await
        } else {
            None
        };
        Ok(convert::container_status(
            status,
            &convert::verbose_info(&resp.info),
            image_id,
        ))
    }

    async fn list_containers(&self, filter: ContainerFilter) -> Result<Vec<ContainerStatus>> {
        let state = filter.state.map(|s| cri::ContainerStateValue {
            state: match s {
                ContainerState::Created => cri::ContainerState::ContainerCreated,
                ContainerState::Running => cri::ContainerState::ContainerRunning,
                ContainerState::Exited => cri::ContainerState::ContainerExited,
            } as i32,
        });
        let items = self
            .client
            .runtime
            .clone()
            .list_containers(cri::ListContainersRequest {
                filter: Some(cri::ContainerFilter {
                    id: String::new(),
                    state,
                    pod_sandbox_id: filter.sandbox_id.map(|s| s.0).unwrap_or_default(),
                    label_selector: filter.labels.into_iter().collect(),
                }),
            })
            .await
            .map_err(|e| client::error("ListContainers", "container", "", e))?
            .into_inner()
            .containers;
        statuses_of(items, |c| async move {
            self.container_status(&ContainerId(c.id)).await
        })
        .await
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        cmd: Vec<String>,
        timeout: Duration,
    ) -> Result<ExecResult> {
        // CRI's timeout is in whole seconds; the exact one is enforced here, and the runtime
        // kills the process at its own (rounded-up) deadline.
        let mut rt = self.client.runtime.clone();
        let call = rt.exec_sync(cri::ExecSyncRequest {
            container_id: id.0.clone(),
            cmd,
            timeout: ceil_secs(timeout),
        });
        let resp = match tokio::time::timeout(timeout, call).await {
            Err(_) => {
                return Err(RuntimeError::Timeout(format!(
                    "exec in {id} did not finish within {timeout:?}"
                )));
            }
            Ok(r) => r.map_err(|e| client::error("ExecSync", "container", &id.0, e))?,
        }
        .into_inner();
        Ok(ExecResult {
            exit_code: resp.exit_code,
            stdout: resp.stdout,
            stderr: resp.stderr,
        })
    }

    async fn exec(&self, id: &ContainerId, request: ExecRequest) -> Result<ExecProcess> {
        let url = self
            .client
            .runtime
            .clone()
            .exec(cri::ExecRequest {
                container_id: id.0.clone(),
                cmd: request.cmd.clone(),
                tty: request.tty,
                stdin: request.stdin,
                stdout: true,
                // On a terminal stderr is the same stream as stdout.
                stderr: !request.tty,
            })
            .await
            .map_err(|e| client::error("Exec", "container", &id.0, e))?
            .into_inner()
            .url;
        super::stream::exec(&url, &request).await
    }

    async fn attach(&self, id: &ContainerId, request: AttachRequest) -> Result<Attachment> {
        super::attach::attach(&self.client, id, request).await
    }

    async fn container_stats(&self, id: &ContainerId) -> Result<ContainerStats> {
        let stats = self
            .client
            .runtime
            .clone()
            .container_stats(cri::ContainerStatsRequest {
                container_id: id.0.clone(),
            })
            .await
            .map_err(|e| client::error("ContainerStats", "container", &id.0, e))?
            .into_inner()
            .stats;
        stats
            .as_ref()
            .and_then(|s| convert::container_stats(id, s))
            .ok_or_else(|| RuntimeError::Cri {
                op: "ContainerStats",
                message: format!("no CPU or memory figures for {id}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::{ceil_secs, statuses_of};
    use crate::error::RuntimeError;
    use std::time::Duration;

    #[tokio::test]
    async fn listings_skip_what_was_removed_meanwhile() {
        let gone = |id: &str| RuntimeError::NotFound {
            kind: "container",
            id: id.into(),
        };
        let other = || RuntimeError::Cri {
            op: "ContainerStatus",
            message: "unavailable".into(),
        };
        type Answers = Vec<(&'static str, Result<u32, RuntimeError>)>;
        let cases: Vec<(Answers, Result<Vec<u32>, &str>)> = vec![
            (vec![], Ok(vec![])),
            (vec![("a", Ok(1)), ("b", Ok(2))], Ok(vec![1, 2])),
            (
                vec![("a", Ok(1)), ("b", Err(gone("b"))), ("c", Ok(3))],
                Ok(vec![1, 3]),
            ),
            (vec![("a", Err(gone("a")))], Ok(vec![])),
            (
                vec![("a", Ok(1)), ("b", Err(other())), ("c", Ok(3))],
                Err("unavailable"),
            ),
        ];
        for (answers, want) in cases {
            let names: Vec<_> = answers.iter().map(|(n, _)| *n).collect();
            let mut by_name: std::collections::HashMap<_, _> = answers.into_iter().collect();
            let got = statuses_of(names.clone(), |n| {
                let answer = by_name.remove(n).expect("asked once");
                async move { answer }
            })
            .await;
            match (got, want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{names:?}"),
                (Err(e), Err(want)) => assert!(e.to_string().contains(want), "{names:?}: {e}"),
                (got, want) => panic!("{names:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn cri_timeouts_round_up() {
        for (d, want) in [
            (Duration::from_millis(300), 1),
            (Duration::ZERO, 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(30), 30),
        ] {
            assert_eq!(ceil_secs(d), want, "{d:?}");
        }
    }
}
