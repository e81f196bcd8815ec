//! Streaming exec through a CRI runtime: CRI `Exec` only returns a URL on the runtime's
//! streaming server; this dials it the way kubectl's SPDY executor does (an HTTP/1.1 upgrade to
//! `SPDY/3.1`, stream protocol `v4.channel.k8s.io`: one SPDY stream each for the error/status
//! channel, stdin, stdout, stderr and resize) and hands the agent an [`ExecProcess`] like the
//! embedded runtime's, so `kubectl exec` (WebSocket or SPDY on the kubectl side) works unchanged.
//!
//! Why SPDY and not WebSocket: the streaming server containerd 1.6/1.7 vendors from the kubelet
//! offers WebSocket only up to `v4.channel.k8s.io`, which has no way to say "stdin ended"
//! (that is `v5`'s close channel, which it does not know). Over SPDY stdin is a stream of its
//! own: half-closing it (FIN) makes containerd close the process's stdin (it execs with
//! `StdinOnce`), so `kubectl exec -i … cat` ends and `kubectl cp` into a pod works.
//!
//! Left as a limit: dropping [`ExecProcess::wait`] closes the connection, but the runtime lets
//! the process run.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::convert::exec_exit_code;
use crate::error::{Result, RuntimeError};
use crate::spdy_frame::{self, Frame, HeaderCodec, Headers};
use crate::types::{ExecProcess, ExecRequest};

const PROTOCOL: &str = "v4.channel.k8s.io";
/// Largest HTTP response head accepted before the upgrade.
const MAX_HEAD: usize = 16 * 1024;

fn stream_err(message: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::Cri {
        op: "Exec stream",
        message: message.to_string(),
    }
}

/// `host:port` and the path of a streaming URL (`http://127.0.0.1:PORT/exec/TOKEN`).
fn target(url: &str) -> Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| stream_err(format!("unsupported streaming URL {url}")))?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if host.is_empty() {
        return Err(stream_err(format!("no host in streaming URL {url}")));
    }
    Ok((host.to_owned(), path.to_owned()))
}

/// Asks for the upgrade and reads the answer; returns what followed the response head (the
/// first SPDY bytes, if the server was quick).
async fn upgrade(tcp: &mut TcpStream, host: &str, path: &str) -> Result<BytesMut> {
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: {PROTOCOL}\r\nContent-Length: 0\r\n\r\n"
    );
    tcp.write_all(req.as_bytes())
        .await
        .map_err(|e| stream_err(format!("{host}: {e}")))?;
    let mut buf = BytesMut::with_capacity(4096);
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err(stream_err(
                "the streaming server's response head is too long",
            ));
        }
        match tcp.read_buf(&mut buf).await {
            Ok(0) => return Err(stream_err("the streaming server closed during the upgrade")),
            Ok(_) => {}
            Err(e) => return Err(stream_err(format!("{host}: {e}"))),
        }
    };
    let head = buf.split_to(end);
    check_upgrade(&String::from_utf8_lossy(&head))?;
    Ok(buf)
}

/// Accepts a `101 Switching Protocols` that kept our stream protocol; anything else is the
/// server's refusal, reported with its status line.
fn check_upgrade(head: &str) -> Result<()> {
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(stream_err(format!(
            "the streaming server refused the upgrade: {status}"
        )));
    }
    let protocol = lines.find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("x-stream-protocol-version")
            .then(|| v.trim().to_owned())
    });
    match protocol.as_deref() {
        Some(PROTOCOL) => Ok(()),
        other => Err(stream_err(format!(
            "the streaming server chose stream protocol {other:?}, not {PROTOCOL}"
        ))),
    }
}

/// What the writer task puts on the wire.
enum Out {
    Open(u32, &'static str),
    Data(u32, Bytes, bool),
    Ping(u32),
}

/// The ids of the streams opened for one exec (0: not opened). Client streams are odd and
/// increasing, opened in the order kubectl opens them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ids {
    error: u32,
    stdin: u32,
    stdout: u32,
    stderr: u32,
    resize: u32,
}

impl Ids {
    /// Exactly the streams the runtime expects for this request (it waits for each one it was
    /// told about in the CRI `ExecRequest`: stdout always, stderr unless on a terminal).
    fn for_request(request: &ExecRequest) -> Ids {
        let mut next = 1;
        let mut open = |yes: bool| {
            if !yes {
                return 0;
            }
            let id = next;
            next += 2;
            id
        };
        Ids {
            error: open(true),
            stdin: open(request.stdin),
            stdout: open(true),
            stderr: open(!request.tty),
            resize: open(request.tty),
        }
    }

    fn opened(&self) -> Vec<(u32, &'static str)> {
        [
            (self.error, "error"),
            (self.stdin, "stdin"),
            (self.stdout, "stdout"),
            (self.stderr, "stderr"),
            (self.resize, "resize"),
        ]
        .into_iter()
        .filter(|(id, _)| *id != 0)
        .collect()
    }
}

/// Connects to the streaming URL of an `Exec` and returns the running process.
pub async fn exec(url: &str, request: &ExecRequest) -> Result<ExecProcess> {
    let (host, path) = target(url)?;
    let mut tcp = TcpStream::connect(&host)
        .await
        .map_err(|e| stream_err(format!("{host}: {e}")))?;
    let leftover = upgrade(&mut tcp, &host, &path).await?;
    let (read, write) = tcp.into_split();
    let ids = Ids::for_request(request);

    let (out_tx, out_rx) = mpsc::channel::<Out>(64);
    for (id, kind) in ids.opened() {
        // The queue is new and larger than five entries.
        let _ = out_tx.try_send(Out::Open(id, kind));
    }
    let resize_msg =
        |w: u16, h: u16| Bytes::from(serde_json::json!({"Width": w, "Height": h}).to_string());
    // CRI has no field for the initial size: it goes first on the resize stream, in the same
    // write as the stream headers. containerd applies it once the process started (it resizes
    // only after `Start`), so the very first look at the window can still see none.
    if request.tty
        && let Some((w, h)) = request.terminal_size
    {
        let _ = out_tx.try_send(Out::Data(ids.resize, resize_msg(w, h), false));
    }
    let writer = tokio::spawn(write_loop(write, out_rx));

    let (stdout_w, stdout_r) = tokio::io::duplex(64 * 1024);
    let (stderr_w, stderr_r) = tokio::io::duplex(64 * 1024);
    let (code_tx, code_rx) = oneshot::channel::<Result<i32>>();
    let reader = tokio::spawn(read_loop(
        read,
        leftover,
        ids,
        out_tx.clone(),
        stdout_w,
        stderr_w,
        code_tx,
    ));

    let stdin = request.stdin.then(|| {
        let (w, mut r) = tokio::io::duplex(64 * 1024);
        let tx = out_tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(&buf[..n]);
                        if tx.send(Out::Data(ids.stdin, data, false)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            // The end of stdin: half-close the stream, the runtime closes the process's stdin.
            let _ = tx.send(Out::Data(ids.stdin, Bytes::new(), true)).await;
        });
        Box::pin(w) as crate::types::ExecWriter
    });
    let resize = request.tty.then(|| {
        let tx = out_tx.clone();
        Box::new(move |w: u16, h: u16| {
            tx.try_send(Out::Data(ids.resize, resize_msg(w, h), false))
                .map_err(|_| std::io::Error::other("the exec session ended"))
        }) as crate::types::ResizeFn
    });
    drop(out_tx);
    // The connection lives until the process ended or `wait` is dropped, whichever comes first.
    let tasks = [reader.abort_handle(), writer.abort_handle()];
    let wait = Box::pin(async move {
        struct AbortOnDrop([tokio::task::AbortHandle; 2]);
        impl Drop for AbortOnDrop {
            fn drop(&mut self) {
                for t in &self.0 {
                    t.abort();
                }
            }
        }
        let _guard = AbortOnDrop(tasks);
        code_rx
            .await
            .unwrap_or_else(|_| Err(stream_err("the exec stream reader died")))
    });
    Ok(ExecProcess {
        stdin,
        stdout: Box::pin(stdout_r),
        stderr: Box::pin(stderr_r),
        wait,
        resize,
    })
}

async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::Receiver<Out>) {
    let mut codec = HeaderCodec::new();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        // Batch what is queued into one write.
        while let Some(out) = next.take() {
            match out {
                Out::Open(id, kind) => {
                    let headers: Headers = spdy_frame::h(&[("streamtype", kind)]);
                    spdy_frame::syn_stream(&mut buf, &mut codec, id, &headers);
                }
                Out::Data(id, data, fin) => spdy_frame::data(&mut buf, id, &data, fin),
                Out::Ping(id) => spdy_frame::ping(&mut buf, id),
            }
            if buf.len() > 256 * 1024 {
                break;
            }
            next = rx.try_recv().ok();
        }
        if write.write_all(&buf).await.is_err() || write.flush().await.is_err() {
            return;
        }
        buf.clear();
    }
}

/// Reads the server's frames until it goes away (after the status, once the process ended):
/// stdout and stderr to the agent's readers, the status into the exit code.
async fn read_loop(
    mut read: OwnedReadHalf,
    mut buf: BytesMut,
    ids: Ids,
    out: mpsc::Sender<Out>,
    stdout_w: tokio::io::DuplexStream,
    stderr_w: tokio::io::DuplexStream,
    code_tx: oneshot::Sender<Result<i32>>,
) {
    let mut codec = HeaderCodec::new();
    // Dropped (EOF for the agent's reader) when their stream ends.
    let (mut stdout_w, mut stderr_w) = (Some(stdout_w), Some(stderr_w));
    let mut status = Vec::new();
    let mut failure = None;
    'conn: loop {
        loop {
            let frame = match spdy_frame::decode(&mut buf, &mut codec) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e.to_string());
                    break 'conn;
                }
            };
            match frame {
                Frame::Data {
                    stream_id,
                    data,
                    fin,
                } => {
                    let target = if stream_id == ids.stdout {
                        &mut stdout_w
                    } else if stream_id == ids.stderr {
                        &mut stderr_w
                    } else {
                        if stream_id == ids.error {
                            status.extend_from_slice(&data);
                        }
                        continue;
                    };
                    // A reader that went away must not stop the status from arriving.
                    if let Some(w) = target.as_mut()
                        && !data.is_empty()
                        && w.write_all(&data).await.is_err()
                    {
                        *target = None;
                    }
                    if fin {
                        *target = None;
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    if stream_id == ids.stdout {
                        stdout_w = None;
                    } else if stream_id == ids.stderr {
                        stderr_w = None;
                    }
                }
                Frame::Ping { id } => {
                    let _ = out.send(Out::Ping(id)).await;
                }
                // The server writes the status, then goes away: the session is over.
                Frame::GoAway { .. } => break 'conn,
                Frame::SynStream { .. }
                | Frame::SynReply { .. }
                | Frame::Settings
                | Frame::Headers { .. }
                | Frame::WindowUpdate { .. }
                | Frame::Unknown => {}
            }
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                failure = Some(e.to_string());
                break;
            }
        }
    }
    drop((stdout_w, stderr_w));
    let code = if status.is_empty() {
        Err(stream_err(format!(
            "the streaming server closed without an exit status{}",
            failure.map(|f| format!(" ({f})")).unwrap_or_default()
        )))
    } else {
        exec_exit_code(&status).map_err(RuntimeError::StartFailed)
    };
    let _ = code_tx.send(code);
}

#[cfg(test)]
mod tests;
