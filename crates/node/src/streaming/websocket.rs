//! The WebSocket side of streaming: Kubernetes' channel protocol for exec (each binary message
//! starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; `v5` adds 255 to
//! close a channel), and a byte pipe for SPDY tunnelled in binary messages.

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use rudder_runtime::{ContainerId, ContainerRuntime};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::exec::{self, FromClient, Options, ToClient};
use super::negotiate::Io;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// `v5`: `[255, channel]` says the sender closed that channel.
pub const CLOSE: u8 = 255;

/// The server side of a WebSocket on an upgraded connection.
pub async fn accept(io: Io) -> WebSocketStream<Io> {
    WebSocketStream::from_raw_socket(io, Role::Server, None).await
}

/// A close with status 1000: Go clients take anything else (even no status) as an error.
pub fn normal_close() -> Message {
    Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    }))
}

/// A message on `channel`.
pub fn framed(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// What a client message means for an exec session.
pub fn decode_exec(data: &[u8], v5: bool, resize_buf: &mut Vec<u8>) -> Vec<FromClient> {
    let Some((&channel, rest)) = data.split_first() else {
        return Vec::new();
    };
    match channel {
        STDIN if !rest.is_empty() => vec![FromClient::Stdin(Bytes::copy_from_slice(rest))],
        RESIZE => {
            resize_buf.extend_from_slice(rest);
            exec::parse_sizes(resize_buf)
                .into_iter()
                .map(|(width, height)| FromClient::Resize { width, height })
                .collect()
        }
        CLOSE if v5 && rest.first() == Some(&STDIN) => vec![FromClient::StdinEof],
        _ => Vec::new(),
    }
}

/// Serves exec over the channel protocol.
pub async fn serve_exec(
    io: Io,
    v5: bool,
    runtime: Arc<dyn ContainerRuntime>,
    id: ContainerId,
    opts: Options,
) {
    let ws = accept(io).await;
    let (mut sink, mut incoming) = ws.split();
    let (from_tx, from_rx) = mpsc::channel(16);
    let reader = tokio::spawn(async move {
        let mut resize_buf = Vec::new();
        while let Some(Ok(msg)) = incoming.next().await {
            match msg {
                Message::Binary(data) => {
                    for m in decode_exec(&data, v5, &mut resize_buf) {
                        if from_tx.send(m).await.is_err() {
                            return;
                        }
                    }
                }
                // The Python client sends stdin and resizes as text messages (the channel byte
                // then the data), which upstream's channel protocol reads alike.
                Message::Text(text) => {
                    for m in decode_exec(text.as_bytes(), v5, &mut resize_buf) {
                        if from_tx.send(m).await.is_err() {
                            return;
                        }
                    }
                }
                Message::Close(_) => return,
                _ => {}
            }
        }
        // Dropping `from_tx` tells the session the client is gone.
    });
    let (to_tx, mut to_rx) = mpsc::channel(16);
    tokio::spawn(exec::run(runtime, id, opts, from_rx, to_tx));
    while let Some(msg) = to_rx.recv().await {
        let sent = match msg {
            ToClient::Stdout(d) => sink.send(framed(STDOUT, &d)).await,
            ToClient::Stderr(d) => sink.send(framed(STDERR, &d)).await,
            ToClient::CloseStdout | ToClient::CloseStderr => Ok(()),
            ToClient::Status(body) => {
                let _ = sink.send(framed(ERROR, &body)).await;
                break;
            }
        };
        if sent.is_err() {
            break;
        }
    }
    let _ = sink.send(normal_close()).await;
    // The client answers the close; until then it may still be writing (stdin, resizes).
    let abort = reader.abort_handle();
    if tokio::time::timeout(std::time::Duration::from_secs(2), reader)
        .await
        .is_err()
    {
        abort.abort();
    }
    let _ = sink.close().await;
}

/// Bridges a WebSocket whose binary messages carry a byte stream (SPDY tunnelled by kubectl's
/// port-forward) to a local pipe: what the returned end reads is the client's bytes.
pub async fn byte_stream(io: Io) -> DuplexStream {
    let ws = accept(io).await;
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut pipe_read, mut pipe_write) = tokio::io::split(ours);
    let (mut sink, mut incoming) = ws.split();
    let up = tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            match msg {
                Message::Binary(d) if pipe_write.write_all(&d).await.is_err() => return,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = pipe_write.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        let _ = sink.send(normal_close()).await;
        let _ = sink.close().await;
        up.abort();
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_messages() {
        let mut buf = Vec::new();
        let got = |d: &[u8], v5: bool, buf: &mut Vec<u8>| {
            decode_exec(d, v5, buf)
                .into_iter()
                .map(|m| format!("{m:?}"))
                .collect::<Vec<_>>()
        };
        assert_eq!(got(b"\x00hi", true, &mut buf), ["Stdin(b\"hi\")"]);
        assert!(got(b"\x00", true, &mut buf).is_empty());
        assert_eq!(got(&[255, 0], true, &mut buf), ["StdinEof"]);
        assert!(got(&[255, 0], false, &mut buf).is_empty());
        assert_eq!(
            got(b"\x04{\"Width\":10,\"Height\":5}", true, &mut buf),
            ["Resize { width: 10, height: 5 }"]
        );
        assert!(got(b"", true, &mut buf).is_empty());
        assert!(got(b"\x09x", true, &mut buf).is_empty());
    }
}
