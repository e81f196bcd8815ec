//! `kubectl attach` on the embedded runtime, the agent's side: a connection to the container's
//! monitor (the shim, which owns the main process's stdin and output, see `stdio.rs`) over the
//! unix socket `attach.sock` in the container's state directory, and the little framing both
//! sides speak on it.
//!
//! Every message is `[kind: u8][length: u32 big-endian][payload]`:
//!
//! | kind | from | payload |
//! |---|---|---|
//! | [`HELLO`] | agent, first | three bytes: stdin, stdout, stderr wanted (0/1) |
//! | [`STDIN`] | agent | input for the process |
//! | [`STDIN_EOF`] | agent | none: the client's input ended |
//! | [`RESIZE`] | agent | columns and rows, `u16` big-endian each |
//! | [`STDOUT`], [`STDERR`] | shim | the process's output |
//!
//! The shim ends an attachment by closing the connection (the process exited, or the input
//! ended and the attachment with it); the agent detaches by closing it.

use std::os::fd::AsRawFd;
use std::path::Path;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::error::{Result, RuntimeError};
use crate::types::{AttachRequest, Attachment};

pub(crate) const STDIN: u8 = 0;
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;
pub(crate) const RESIZE: u8 = 4;
pub(crate) const HELLO: u8 = 5;
pub(crate) const STDIN_EOF: u8 = 6;

/// The socket's name in the container's directory.
pub(crate) const SOCKET: &str = "attach.sock";
/// Longest payload accepted; writers cut their data to this.
pub(crate) const MAX_PAYLOAD: usize = 64 * 1024;

/// One message of the attach protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Msg {
    Hello {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Stdin(Bytes),
    StdinEof,
    Resize {
        columns: u16,
        rows: u16,
    },
    Stdout(Bytes),
    Stderr(Bytes),
}

/// Appends `msg` to `out`.
pub(crate) fn encode(msg: &Msg, out: &mut BytesMut) {
    let (kind, payload): (u8, &[u8]) = match msg {
        Msg::Hello {
            stdin,
            stdout,
            stderr,
        } => {
            let flags = [u8::from(*stdin), u8::from(*stdout), u8::from(*stderr)];
            out.put_u8(HELLO);
            out.put_u32(3);
            out.put_slice(&flags);
            return;
        }
        Msg::Resize { columns, rows } => {
            out.put_u8(RESIZE);
            out.put_u32(4);
            out.put_u16(*columns);
            out.put_u16(*rows);
            return;
        }
        Msg::StdinEof => (STDIN_EOF, &[]),
        Msg::Stdin(d) => (STDIN, d),
        Msg::Stdout(d) => (STDOUT, d),
        Msg::Stderr(d) => (STDERR, d),
    };
    out.put_u8(kind);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
}

/// Takes one whole message off the front of `buf`: `Ok(None)` until one is there; an error for
/// an unknown kind, a payload over [`MAX_PAYLOAD`] or a malformed fixed-size one.
pub(crate) fn decode(buf: &mut BytesMut) -> std::result::Result<Option<Msg>, String> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let kind = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if len > MAX_PAYLOAD {
        return Err(format!("attach message of {len} bytes"));
    }
    if buf.len() < 5 + len {
        return Ok(None);
    }
    buf.advance(5);
    let mut payload = buf.split_to(len).freeze();
    let msg = match (kind, len) {
        (HELLO, 3) => Msg::Hello {
            stdin: payload[0] != 0,
            stdout: payload[1] != 0,
            stderr: payload[2] != 0,
        },
        (RESIZE, 4) => Msg::Resize {
            columns: payload.get_u16(),
            rows: payload.get_u16(),
        },
        (STDIN_EOF, 0) => Msg::StdinEof,
        (STDIN, _) => Msg::Stdin(payload),
        (STDOUT, _) => Msg::Stdout(payload),
        (STDERR, _) => Msg::Stderr(payload),
        _ => return Err(format!("bad attach message: kind {kind}, {len} bytes")),
    };
    Ok(Some(msg))
}

/// Connects to the monitor of the container whose state directory is `dir`. `tty` and
/// `stdin` are the container's settings (from its record).
pub(crate) async fn connect(
    dir: &Path,
    request: AttachRequest,
    tty: bool,
    stdin: bool,
) -> Result<Attachment> {
    let io_err = |op: &'static str| {
        let path = dir.join(SOCKET);
        move |source| RuntimeError::Io { op, path, source }
    };
    // Through the directory's descriptor: a state directory deep enough makes the socket's
    // full path longer than a unix socket address can be (108 bytes).
    let dir_fd = std::fs::File::open(dir).map_err(io_err("open"))?;
    let short = format!("/proc/self/fd/{}/{SOCKET}", dir_fd.as_raw_fd());
    let sock = tokio::net::UnixStream::connect(&short)
        .await
        .map_err(io_err("connect"))?;
    drop(dir_fd);
    let stdin = request.stdin && stdin;
    let (stdout, stderr) = (request.stdout, request.stderr && !tty);
    let (mut read, mut write) = sock.into_split();

    let (to_shim, mut to_shim_rx) = mpsc::channel::<Msg>(16);
    let _ = to_shim.try_send(Msg::Hello {
        stdin,
        stdout,
        stderr,
    });
    let writer = tokio::spawn(async move {
        let mut buf = BytesMut::new();
        while let Some(msg) = to_shim_rx.recv().await {
            buf.clear();
            encode(&msg, &mut buf);
            if write.write_all(&buf).await.is_err() {
                return;
            }
        }
        // Nothing more to send, but the connection stays whole until the attachment is
        // dropped: the shim takes its end of file as a detach.
        std::future::pending::<()>().await;
        drop(write);
    });

    let (stdout_w, stdout_r) = tokio::io::duplex(64 * 1024);
    let (stderr_w, stderr_r) = tokio::io::duplex(64 * 1024);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Result<()>>();
    let reader = tokio::spawn(async move {
        let (mut out, mut err) = (Some(stdout_w), Some(stderr_w));
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let result = loop {
            match decode(&mut buf) {
                Ok(Some(Msg::Stdout(d))) => write_or_drop(&mut out, &d).await,
                Ok(Some(Msg::Stderr(d))) => write_or_drop(&mut err, &d).await,
                Ok(Some(_)) => {}
                Err(e) => break Err(RuntimeError::Shim(e)),
                Ok(None) => match read.read_buf(&mut buf).await {
                    Ok(0) => break Ok(()),
                    Ok(_) => {}
                    Err(e) => break Err(RuntimeError::Shim(format!("attach connection: {e}"))),
                },
            }
        };
        // Dropping the writers is the end of output for the caller.
        drop((out, err));
        let _ = done_tx.send(result);
    });

    let stdin_writer = stdin.then(|| {
        let (w, mut r) = tokio::io::duplex(64 * 1024);
        let tx = to_shim.clone();
        tokio::spawn(async move {
            let mut chunk = vec![0u8; MAX_PAYLOAD];
            loop {
                match r.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = Bytes::copy_from_slice(&chunk[..n]);
                        if tx.send(Msg::Stdin(data)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            let _ = tx.send(Msg::StdinEof).await;
        });
        Box::pin(w) as crate::types::ExecWriter
    });
    let resize = tty.then(|| {
        let tx = to_shim.clone();
        Box::new(move |columns: u16, rows: u16| {
            tx.try_send(Msg::Resize { columns, rows })
                .map_err(|_| std::io::Error::other("the attachment ended"))
        }) as crate::types::ResizeFn
    });
    drop(to_shim);
    let tasks = [reader.abort_handle(), writer.abort_handle()];
    let done = Box::pin(async move {
        let _guard = AbortOnDrop(tasks);
        done_rx
            .await
            .unwrap_or_else(|_| Err(RuntimeError::Shim("the attach reader died".into())))
    });
    Ok(Attachment {
        stdin: stdin_writer,
        stdout: Box::pin(stdout_r),
        stderr: Box::pin(stderr_r),
        tty,
        resize,
        done,
    })
}

/// Writes to an output the caller may have stopped reading; a gone reader is forgotten.
async fn write_or_drop(w: &mut Option<tokio::io::DuplexStream>, data: &[u8]) {
    if let Some(stream) = w.as_mut()
        && stream.write_all(data).await.is_err()
    {
        *w = None;
    }
}

/// Ends the connection's tasks when the attachment is dropped (detach).
struct AbortOnDrop([tokio::task::AbortHandle; 2]);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_split() {
        let msgs = vec![
            Msg::Hello {
                stdin: true,
                stdout: true,
                stderr: false,
            },
            Msg::Stdin(Bytes::from_static(b"hello\n")),
            Msg::StdinEof,
            Msg::Resize {
                columns: 91,
                rows: 17,
            },
            Msg::Stdout(Bytes::from_static(b"out")),
            Msg::Stderr(Bytes::new()),
        ];
        let mut wire = BytesMut::new();
        for m in &msgs {
            encode(m, &mut wire);
        }
        // Byte by byte: nothing comes out before a message is whole.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(m) = decode(&mut buf).expect("valid") {
                got.push(m);
            }
        }
        assert_eq!(got, msgs);
        assert!(buf.is_empty());
    }

    #[test]
    fn bad_frames_are_errors() {
        let cases: &[&[u8]] = &[
            &[9, 0, 0, 0, 0],
            &[HELLO, 0, 0, 0, 2, 1, 1],
            &[RESIZE, 0, 0, 0, 1, 0],
            &[STDIN_EOF, 0, 0, 0, 1, 0],
            &[STDIN, 0, 2, 0, 1],
        ];
        for c in cases {
            let mut buf = BytesMut::from(*c);
            assert!(decode(&mut buf).is_err(), "{c:?}");
        }
    }
}
