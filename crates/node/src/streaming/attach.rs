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

use super::exec::{FromClient, Options, ToClient, apply, feed, pump, to_bytes};

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
    let mut attachment = match runtime.attach(&id, request).await {
        Ok(a) => a,
        Err(e) => {
            let status = status(&Err(e.to_string()));
            let _ = to.send(ToClient::Status(to_bytes(&status))).await;
            return;
        }
    };
    let mut stdin_tx = attachment.stdin.take().map(feed);
    let resize = attachment.resize.take();
    let stdout = pump(attachment.stdout, opts.stdout.then(|| to.clone()), true);
    let stderr = pump(attachment.stderr, opts.stderr.then(|| to.clone()), false);
    let done = attachment.done;
    let finished = async move {
        let (result, (), ()) = tokio::join!(done, stdout, stderr);
        result
    };
    tokio::pin!(finished);
    let result = loop {
        tokio::select! {
            result = &mut finished => break result,
            msg = from.recv() => match msg {
                Some(msg) => apply(msg, &mut stdin_tx, resize.as_ref()).await,
                // The client left: dropping the attachment detaches.
                None => return,
            },
        }
    };
    let status = status(&result.map_err(|e| e.to_string()));
    let _ = to.send(ToClient::Status(to_bytes(&status))).await;
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
