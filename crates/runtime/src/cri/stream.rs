//! Streaming exec through a CRI runtime: CRI `Exec` only returns a URL on the runtime's
//! streaming server; this dials it as a WebSocket client speaking Kubernetes' channel protocol
//! (`v4.channel.k8s.io`: each binary message starts with its channel, 0 stdin, 1 stdout,
//! 2 stderr, 3 status, 4 resize) and hands the agent an [`ExecProcess`] like the embedded
//! runtime's, so `kubectl exec` (WebSocket or SPDY on the kubectl side) works unchanged.
//!
//! Limits of the protocol containerd 1.6/1.7 serves: `v4` cannot say "stdin ended" (that is
//! `v5`'s close channel), so closing [`ExecProcess::stdin`] does not reach the process; and
//! dropping [`ExecProcess::wait`] closes the connection but the runtime lets the process run.

use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::convert::exec_exit_code;
use crate::error::{Result, RuntimeError};
use crate::types::{ExecProcess, ExecRequest};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
const PROTOCOL: &str = "v4.channel.k8s.io";

fn stream_err(message: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Cri {
        op: "Exec stream",
        message: message.to_string(),
    }
}

/// `host:port` and the `ws://` URL of a streaming URL (`http://127.0.0.1:PORT/exec/TOKEN`).
fn ws_target(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| stream_err(format!("unsupported streaming URL {url}")))?;
    let host = rest.split('/').next().unwrap_or_default().to_owned();
    if host.is_empty() {
        return Err(stream_err(format!("no host in streaming URL {url}")));
    }
    Ok((host, format!("ws://{rest}")))
}

/// Connects to the streaming URL of an `Exec` and returns the running process.
pub async fn exec(url: &str, request: &ExecRequest) -> Result<ExecProcess> {
    let (host, ws_url) = ws_target(url)?;
    let tcp = tokio::net::TcpStream::connect(&host)
        .await
        .map_err(|e| stream_err(format!("{host}: {e}")))?;
    let mut req = ws_url.into_client_request().map_err(stream_err)?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
    let (ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .map_err(stream_err)?;
    let (mut sink, mut incoming) = ws.split();

    // Everything sent to the server goes through one queue: stdin data and resizes.
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
    tokio::spawn(async move {
        while let Some(msg) = out_rx.recv().await {
            if sink.send(msg).await.is_err() {
                return;
            }
        }
        let _ = sink.close().await;
    });
    let framed = |channel: u8, data: &[u8]| {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(channel);
        v.extend_from_slice(data);
        Message::Binary(v.into())
    };
    let resize_msg = move |w: u16, h: u16| {
        framed(
            RESIZE,
            serde_json::json!({"Width": w, "Height": h})
                .to_string()
                .as_bytes(),
        )
    };
    if request.tty
        && let Some((w, h)) = request.terminal_size
    {
        let _ = out_tx.send(resize_msg(w, h));
    }

    let (stdout_w, stdout_r) = tokio::io::duplex(64 * 1024);
    let (stderr_w, stderr_r) = tokio::io::duplex(64 * 1024);
    let (code_tx, code_rx) = oneshot::channel::<Result<i32>>();
    // The reader task owns the write ends: when the connection ends they drop and the agent's
    // readers see EOF after the last byte.
    let reader = tokio::spawn(async move {
        let (mut stdout_w, mut stderr_w) = (stdout_w, stderr_w);
        let mut code = None;
        while let Some(msg) = incoming.next().await {
            let data = match msg {
                Ok(Message::Binary(d)) => d,
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => continue,
            };
            let Some((&channel, rest)) = data.split_first() else {
                continue;
            };
            match channel {
                // A reader that went away must not stop the status from arriving.
                STDOUT if !rest.is_empty() => {
                    let _ = stdout_w.write_all(rest).await;
                }
                STDERR if !rest.is_empty() => {
                    let _ = stderr_w.write_all(rest).await;
                }
                ERROR if !rest.is_empty() => {
                    code = Some(exec_exit_code(rest).map_err(RuntimeError::StartFailed));
                }
                _ => {}
            }
        }
        drop((stdout_w, stderr_w));
        let _ = code_tx.send(code.unwrap_or_else(|| {
            Err(stream_err(
                "the streaming server closed without an exit status",
            ))
        }));
    });
    let abort = reader.abort_handle();

    let stdin = request.stdin.then(|| {
        let (w, mut r) = tokio::io::duplex(64 * 1024);
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(framed(STDIN, &buf[..n])).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Box::pin(w) as crate::types::ExecWriter
    });
    let resize = request.tty.then(|| {
        let tx = Arc::new(out_tx.clone());
        Box::new(move |w: u16, h: u16| {
            tx.send(resize_msg(w, h))
                .map_err(|_| std::io::Error::other("the exec session ended"))
        }) as crate::types::ResizeFn
    });
    // Keeps the send queue open until the process ended, so that `wait` dropped early (or the
    // end) closes the connection.
    let wait = Box::pin(async move {
        struct AbortOnDrop(tokio::task::AbortHandle);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                self.0.abort();
            }
        }
        let _guard = AbortOnDrop(abort);
        let result = code_rx
            .await
            .unwrap_or_else(|_| Err(stream_err("the exec stream reader died")));
        drop(out_tx);
        result
    });
    Ok(ExecProcess {
        stdin,
        stdout: Box::pin(stdout_r),
        stderr: Box::pin(stderr_r),
        wait,
        resize,
    })
}

#[cfg(test)]
mod tests {
    use super::ws_target;

    #[test]
    fn streaming_urls() {
        assert_eq!(
            ws_target("http://127.0.0.1:35001/exec/abc").ok(),
            Some((
                "127.0.0.1:35001".to_owned(),
                "ws://127.0.0.1:35001/exec/abc".to_owned()
            ))
        );
        assert!(ws_target("https://127.0.0.1:1/exec/abc").is_err());
        assert!(ws_target("http:///exec").is_err());
    }
}
