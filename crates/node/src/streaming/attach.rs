//! An attach session (`kubectl attach`, `kubectl run -it`, `kubectl debug -it`), whatever
//! carries it: connects to the container's main process through the runtime, moves input,
//! live output and terminal resizes as an exec session does, and ends with the `Status` the
//! kubelet sends: Success once the attachment ended (the process exited, or the input ended
//! and with it the attachment), an InternalError if the runtime failed. A client that leaves
//! only detaches: the process runs on.

use std::sync::Arc;

use rudder_runtime::{AttachRequest, ContainerId, ContainerRuntime};
use serde_json::json;
use tokio::sync::mpsc;

use super::exec::{FromClient, Options, Process, ToClient, drive};

/// The final `Status` of an attach session.
pub fn status(result: &Result<(), String>) -> serde_json::Value {
    match result {
        Ok(()) => json!({"metadata": {}, "status": "Success"}),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: error attaching to container: {e}"),
            "reason": "InternalError",
            "details": {"causes": [{"message": format!("error attaching to container: {e}")}]},
            "code": 500,
        }),
    }
}

/// Runs the session: returns once the status has been handed to `to`, or the client left.
pub async fn run(
    runtime: Arc<dyn ContainerRuntime>,
    id: ContainerId,
    opts: Options,
    mut from: mpsc::Receiver<FromClient>,
    to: mpsc::Sender<ToClient>,
) {
    let request = AttachRequest {
        stdin: opts.stdin,
        stdout: opts.stdout,
        stderr: opts.stderr,
    };
    let started = runtime.attach(&id, request).await.map(|a| Process {
        stdin: a.stdin,
        stdout: a.stdout,
        stderr: a.stderr,
        resize: a.resize,
        done: a.done,
    });
    drive(started, &opts, Vec::new(), &mut from, &to, |outcome| {
        status(&outcome)
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(status(&Ok(()))["status"], "Success");
        let s = status(&Err("container c not running".into()));
        assert_eq!(
            (s["reason"].as_str(), s["code"].as_u64()),
            (Some("InternalError"), Some(500))
        );
        assert_eq!(
            s["message"],
            "Internal error occurred: error attaching to container: container c not running"
        );
    }
}
