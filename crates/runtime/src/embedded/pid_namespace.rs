//! Which process's PID namespace a new embedded container joins: its own, the pod's holder
//! (`shareProcessNamespace`), or a running target container's (`kubectl debug --target`).

use super::Inner;
use super::state::{ProcRef, StartedRecord, read_json};
use crate::error::{Result, RuntimeError};
use crate::types::{ContainerState, PidNamespace, SandboxId};

impl Inner {
    /// The process whose PID namespace a new container of `sandbox` joins, by its config:
    /// none for a namespace of its own, the sandbox's holder for the pod's, a running target's
    /// main process for the target's.
    pub(super) fn pid_namespace_of(
        &self,
        sandbox: &SandboxId,
        holder: ProcRef,
        mode: &PidNamespace,
    ) -> Result<Option<ProcRef>> {
        match mode {
            PidNamespace::Container => Ok(None),
            PidNamespace::Pod => {
                // Without its own PID namespace the holder is in the host's: joining that would
                // put the container among the host's processes.
                if !self.sandbox_record(&sandbox.0)?.config.share_pid_namespace {
                    return Err(RuntimeError::InvalidConfig(format!(
                        "sandbox {sandbox} was not created with a shared PID namespace"
                    )));
                }
                Ok(Some(holder))
            }
            PidNamespace::Target(target) => {
                let st = self.status(&target.0)?;
                if st.sandbox_id != *sandbox {
                    return Err(RuntimeError::InvalidConfig(format!(
                        "target container {target} is not in sandbox {sandbox}"
                    )));
                }
                let started: Option<StartedRecord> =
                    read_json(&self.container_dir(&target.0).join("started.json"))?;
                match started {
                    Some(s) if st.state == ContainerState::Running && s.process.alive() => {
                        Ok(Some(s.process))
                    }
                    _ => Err(RuntimeError::InvalidState {
                        kind: "container",
                        id: target.0.clone(),
                        reason: "target container is not running".into(),
                    }),
                }
            }
        }
    }
}
