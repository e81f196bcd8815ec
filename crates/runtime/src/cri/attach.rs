//! `kubectl attach` through a CRI runtime: CRI `Attach` returns a URL on the runtime's
//! streaming server, which speaks the same stream protocol as exec (`v4.channel.k8s.io` over
//! SPDY: error, stdin, stdout, stderr and resize streams), so the exec client in `stream.rs`
//! dials it. The runtime decides the rest as containerd does: input only reaches a container
//! created with `stdin`, and a `stdinOnce` container's stdin closes when the first attachment
//! with stdin ends.

use k8s_cri::v1 as cri;

use super::client::{self, CriClient};
use super::convert;
use crate::error::Result;
use crate::types::{AttachRequest, Attachment, ContainerId, ExecRequest};

/// Attaches to container `id`'s main process.
pub(super) async fn attach(
    client: &CriClient,
    id: &ContainerId,
    request: AttachRequest,
) -> Result<Attachment> {
    // CRI wants the container's own terminal setting, which only rudder's annotation tells.
    let status = client
        .runtime
        .clone()
        .container_status(cri::ContainerStatusRequest {
            container_id: id.0.clone(),
            verbose: false,
        })
        .await
        .map_err(|e| client::error("ContainerStatus", "container", &id.0, e))?
        .into_inner()
        .status;
    let tty = status
        .as_ref()
        .and_then(|s| s.annotations.get(convert::TTY))
        .is_some_and(|v| v == "true");
    let url = client
        .runtime
        .clone()
        .attach(attach_request(id, request, tty))
        .await
        .map_err(|e| client::error("Attach", "container", &id.0, e))?
        .into_inner()
        .url;
    // The streams the server waits for are those of an exec of the same shape.
    let shape = ExecRequest {
        cmd: Vec::new(),
        stdin: request.stdin,
        tty,
        terminal_size: None,
    };
    let process = super::stream::exec(&url, &shape).await?;
    let wait = process.wait;
    Ok(Attachment {
        stdin: process.stdin,
        stdout: process.stdout,
        stderr: process.stderr,
        tty,
        resize: process.resize,
        // Success, or the runtime's error; dropping it closes the connection (a detach).
        done: Box::pin(async move { wait.await.map(|_| ()) }),
    })
}

/// The CRI request: stdout always and stderr unless on a terminal, as the exec client opens
/// those streams whatever the caller reads.
fn attach_request(id: &ContainerId, request: AttachRequest, tty: bool) -> cri::AttachRequest {
    cri::AttachRequest {
        container_id: id.0.clone(),
        stdin: request.stdin,
        tty,
        stdout: true,
        stderr: !tty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let id = ContainerId("c".into());
        let ask = |stdin, stdout, stderr| AttachRequest {
            stdin,
            stdout,
            stderr,
        };
        // (request, container on a terminal) → (stdin, tty, stdout, stderr) asked of CRI.
        let cases = [
            (ask(true, true, true), false, (true, false, true, true)),
            (ask(true, true, false), true, (true, true, true, false)),
            (ask(false, true, true), true, (false, true, true, false)),
            (ask(false, false, true), false, (false, false, true, true)),
        ];
        for (request, tty, want) in cases {
            let r = attach_request(&id, request, tty);
            assert_eq!(
                (r.stdin, r.tty, r.stdout, r.stderr),
                want,
                "{request:?} {tty}"
            );
            assert_eq!(r.container_id, "c");
        }
    }
}
