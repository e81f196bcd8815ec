//! An exec session, whatever carries it: starts the command in the container, moves stdin,
//! stdout, stderr and terminal resizes between the process and the client, and ends with the
//! `Status` Kubernetes clients read the exit code from.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rudder_runtime::{ContainerId, ContainerRuntime, ExecReader, ExecRequest};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::negotiate::{Io, Transport};
use super::spdy::{Connection, Stream};

/// The query of an exec (or attach) request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// An attach to the main process (`command` is then empty), not an exec.
    pub attach: bool,
    pub command: Vec<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl Options {
    /// Reads `command` (repeated), `stdin`, `stdout`, `stderr` and `tty`.
    pub fn from_query(query: &[(String, String)]) -> Result<Options, String> {
        let command: Vec<String> = query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        if command.is_empty() {
            return Err("you must specify at least 1 command".into());
        }
        Ok(Options {
            command,
            ..Options::streams(query)?
        })
    }

    /// Reads an attach request's `stdin`, `stdout`, `stderr` and `tty`.
    pub fn attach_from_query(query: &[(String, String)]) -> Result<Options, String> {
        Ok(Options {
            attach: true,
            ..Options::streams(query)?
        })
    }

    /// The streams asked for, without a command.
    fn streams(query: &[(String, String)]) -> Result<Options, String> {
        let flag = |name: &str| {
            query
                .iter()
                .any(|(k, v)| k == name && matches!(v.as_str(), "true" | "1" | "True"))
        };
        let (stdin, stdout, tty) = (flag("stdin"), flag("stdout"), flag("tty"));
        // A terminal has one output: stderr goes to it, as upstream does.
        let stderr = flag("stderr") && !tty;
        if !stdin && !stdout && !flag("stderr") {
            return Err("you must specify at least one of stdin, stdout, stderr".into());
        }
        Ok(Options {
            attach: false,
            command: Vec::new(),
            stdin,
            stdout,
            stderr,
            tty,
        })
    }
}

/// What goes to the client.
#[derive(Debug)]
pub enum ToClient {
    Stdout(Bytes),
    Stderr(Bytes),
    CloseStdout,
    CloseStderr,
    /// The final `Status` (JSON).
    Status(Bytes),
}

/// What comes from the client. The sender stays alive while the client is connected: when
/// every sender is gone the client is, and the process is killed.
#[derive(Debug)]
pub enum FromClient {
    Stdin(Bytes),
    StdinEof,
    Resize { width: u16, height: u16 },
}

/// The `Status` for an exit code: Success, or NonZeroExitCode with the code as a cause (which
/// kubectl turns into its own exit code).
pub fn exit_status(command: &[String], code: i32) -> serde_json::Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!(
            "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
            command.join(" ")
        ),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The `Status` for a command that could not run at all.
pub fn error_status(message: &str) -> serde_json::Value {
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: error executing command in container: {message}"),
        "reason": "InternalError",
        "code": 500,
    })
}

pub(super) fn to_bytes(v: &serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(v).unwrap_or_default())
}

/// Runs the session: returns once the status has been handed to `to`, or the client left.
pub async fn run(
    runtime: Arc<dyn ContainerRuntime>,
    id: ContainerId,
    opts: Options,
    mut from: mpsc::Receiver<FromClient>,
    to: mpsc::Sender<ToClient>,
) {
    if opts.attach {
        return super::attach::run(runtime, id, opts, from, to).await;
    }
    // Clients send the terminal's size right after connecting: the process should start
    // with it. What arrives before it is kept for afterwards.
    let mut early = Vec::new();
    let mut terminal_size = None;
    if opts.tty {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            match tokio::time::timeout_at(deadline, from.recv()).await {
                Ok(Some(FromClient::Resize { width, height })) => {
                    terminal_size = Some((width, height));
                    break;
                }
                Ok(Some(other)) => early.push(other),
                Ok(None) => return,
                Err(_) => break,
            }
        }
    }
    let request = ExecRequest {
        cmd: opts.command.clone(),
        stdin: opts.stdin,
        tty: opts.tty,
        terminal_size,
    };
    let started = runtime.exec(&id, request).await.map(|p| Process {
        stdin: p.stdin,
        stdout: p.stdout,
        stderr: p.stderr,
        resize: p.resize,
        done: p.wait,
    });
    let status = |outcome: Result<i32, String>| match outcome {
        Ok(code) => exit_status(&opts.command, code),
        Err(e) => error_status(&e),
    };
    drive(started, &opts, early, &mut from, &to, status).await;
}

/// A process a session talks to: an exec'd command, or the main process of an attachment.
pub(super) struct Process<T> {
    pub stdin: Option<rudder_runtime::ExecWriter>,
    pub stdout: ExecReader,
    pub stderr: ExecReader,
    pub resize: Option<rudder_runtime::ResizeFn>,
    /// Resolves once the process exited (or the attachment ended).
    pub done: futures::future::BoxFuture<'static, rudder_runtime::Result<T>>,
}

/// Runs a session on the process the runtime `started`: moves the client's input and resizes
/// (`early` first, what arrived before the process started) to it and its outputs to the
/// client until it is done and both outputs ended, then hands the client the `Status` that
/// `status` makes of the outcome (the runtime's error, or what the process ended with). If the
/// client leaves first, returns at once: dropping the process kills an exec'd command and
/// detaches an attachment.
pub(super) async fn drive<T>(
    started: rudder_runtime::Result<Process<T>>,
    opts: &Options,
    early: Vec<FromClient>,
    from: &mut mpsc::Receiver<FromClient>,
    to: &mpsc::Sender<ToClient>,
    status: impl FnOnce(Result<T, String>) -> serde_json::Value,
) {
    let process = match started {
        Ok(p) => p,
        Err(e) => {
            let _ = to
                .send(ToClient::Status(to_bytes(&status(Err(e.to_string())))))
                .await;
            return;
        }
    };
    let mut stdin_tx = process.stdin.map(feed);
    let resize = process.resize;
    let stdout = pump(process.stdout, opts.stdout.then(|| to.clone()), true);
    let stderr = pump(process.stderr, opts.stderr.then(|| to.clone()), false);
    let done = process.done;
    // The outputs are read while the process runs (a full pipe would stall it) and until
    // they end, which can be after it exited.
    let finished = async move {
        let (result, (), ()) = tokio::join!(done, stdout, stderr);
        result
    };
    tokio::pin!(finished);
    let mut early = early.into_iter();
    let result = loop {
        if let Some(msg) = early.next() {
            apply(msg, &mut stdin_tx, resize.as_ref()).await;
            continue;
        }
        tokio::select! {
            result = &mut finished => break result,
            msg = from.recv() => match msg {
                Some(msg) => apply(msg, &mut stdin_tx, resize.as_ref()).await,
                None => return,
            },
        }
    };
    let status = status(result.map_err(|e| e.to_string()));
    let _ = to.send(ToClient::Status(to_bytes(&status))).await;
}

/// A sender whose messages a task writes to `w`: a process that does not read its stdin must
/// not stall the session. Dropping the sender ends the input.
fn feed(mut w: rudder_runtime::ExecWriter) -> mpsc::Sender<Bytes> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            if w.write_all(&d).await.is_err() || w.flush().await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    tx
}

/// Passes one client message to the process.
async fn apply(
    msg: FromClient,
    stdin: &mut Option<mpsc::Sender<Bytes>>,
    resize: Option<&rudder_runtime::ResizeFn>,
) {
    match msg {
        FromClient::Stdin(d) => {
            if let Some(tx) = stdin
                && tx.send(d).await.is_err()
            {
                *stdin = None;
            }
        }
        FromClient::StdinEof => *stdin = None,
        FromClient::Resize { width, height } => {
            if let Some(r) = resize {
                let _ = r(width, height);
            }
        }
    }
}

/// Copies one output of the process to the client (or drains it if the client did not ask for
/// it), then closes the client's side.
async fn pump(mut reader: ExecReader, to: Option<mpsc::Sender<ToClient>>, stdout: bool) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(to) = &to {
                    let data = Bytes::copy_from_slice(&buf[..n]);
                    let msg = if stdout {
                        ToClient::Stdout(data)
                    } else {
                        ToClient::Stderr(data)
                    };
                    if to.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
    if let Some(to) = to {
        let _ = to
            .send(if stdout {
                ToClient::CloseStdout
            } else {
                ToClient::CloseStderr
            })
            .await;
    }
}

/// Parses terminal sizes as clients send them: JSON objects `{"Width":80,"Height":24}`, one
/// after another.
pub fn parse_sizes(buf: &mut Vec<u8>) -> Vec<(u16, u16)> {
    let dim = |v: &serde_json::Value, k: &str| {
        v.get(k)
            .and_then(serde_json::Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
    };
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    loop {
        match it.next() {
            Some(Ok(v)) => {
                if let (Some(w), Some(h)) = (dim(&v, "Width"), dim(&v, "Height")) {
                    out.push((w, h));
                }
                consumed = it.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            // Garbage: drop what there is.
            Some(Err(_)) => {
                consumed = buf.len();
                break;
            }
            None => {
                consumed = buf.len();
                break;
            }
        }
    }
    buf.drain(..consumed);
    out
}

/// Serves an exec session on an upgraded connection.
pub async fn serve(
    transport: Transport,
    io: Io,
    runtime: Arc<dyn ContainerRuntime>,
    id: ContainerId,
    opts: Options,
) {
    match transport {
        Transport::Spdy => serve_spdy(io, runtime, id, opts).await,
        Transport::ChannelV5 | Transport::ChannelV4 => {
            super::websocket::serve_exec(io, transport == Transport::ChannelV5, runtime, id, opts)
                .await
        }
        Transport::SpdyOverWebSocket => {}
    }
}

/// The streams of an exec session over SPDY, by their `streamType`.
#[derive(Default)]
struct SpdyStreams {
    error: Option<Stream>,
    stdin: Option<Stream>,
    stdout: Option<Stream>,
    stderr: Option<Stream>,
    resize: Option<Stream>,
}

impl SpdyStreams {
    fn complete(&self, opts: &Options) -> bool {
        self.error.is_some()
            && (!opts.stdin || self.stdin.is_some())
            && (!opts.stdout || self.stdout.is_some())
            && (!opts.stderr || self.stderr.is_some())
            && (!opts.tty || self.resize.is_some())
    }
}

async fn serve_spdy(io: Io, runtime: Arc<dyn ContainerRuntime>, id: ContainerId, opts: Options) {
    let Connection {
        mut streams,
        control,
    } = Connection::serve(io);
    let mut got = SpdyStreams::default();
    // The client opens its streams right after the upgrade.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !got.complete(&opts) {
        let Ok(Some(s)) = tokio::time::timeout_at(deadline, streams.recv()).await else {
            tracing::debug!("exec: the client did not open its streams");
            control.close().await;
            return;
        };
        let slot = match s.header("streamtype") {
            Some("error") => &mut got.error,
            Some("stdin") => &mut got.stdin,
            Some("stdout") => &mut got.stdout,
            Some("stderr") => &mut got.stderr,
            Some("resize") => &mut got.resize,
            _ => {
                s.out.reset().await;
                continue;
            }
        };
        *slot = Some(s);
    }
    let (from_tx, from_rx) = mpsc::channel(16);
    if let Some(mut s) = got.stdin.take() {
        let tx = from_tx.clone();
        tokio::spawn(async move {
            while let Some(d) = s.incoming.recv().await {
                if tx.send(FromClient::Stdin(d)).await.is_err() {
                    return;
                }
            }
            let _ = tx.send(FromClient::StdinEof).await;
        });
    }
    if let Some(mut s) = got.resize.take() {
        let tx = from_tx.clone();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(d) = s.incoming.recv().await {
                buf.extend_from_slice(&d);
                for (width, height) in parse_sizes(&mut buf) {
                    if tx.send(FromClient::Resize { width, height }).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
    // The connection's life is the client's: when it ends, this sender goes.
    tokio::spawn(async move {
        let alive = from_tx;
        while streams.recv().await.is_some() {}
        drop(alive);
    });
    let (to_tx, mut to_rx) = mpsc::channel(16);
    tokio::spawn(run(runtime, id, opts, from_rx, to_tx));
    let out = |s: &Option<Stream>| s.as_ref().map(|s| s.out.clone());
    let (stdout, stderr, error) = (out(&got.stdout), out(&got.stderr), out(&got.error));
    while let Some(msg) = to_rx.recv().await {
        match msg {
            ToClient::Stdout(d) => {
                if let Some(s) = &stdout {
                    s.write(d).await;
                }
            }
            ToClient::Stderr(d) => {
                if let Some(s) = &stderr {
                    s.write(d).await;
                }
            }
            ToClient::CloseStdout => {
                if let Some(s) = &stdout {
                    s.close().await;
                }
            }
            ToClient::CloseStderr => {
                if let Some(s) = &stderr {
                    s.close().await;
                }
            }
            ToClient::Status(body) => {
                if let Some(s) = &error {
                    s.write(body).await;
                    s.close().await;
                }
                break;
            }
        }
    }
    control.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Vec<(String, String)> {
        rudder_machinery::query::parse_multi(Some(s))
    }

    #[test]
    fn options() {
        let o = Options::from_query(&q(
            "command=sh&command=-c&command=ls&stdin=true&stdout=true&stderr=true&tty=true",
        ))
        .expect("valid");
        assert_eq!(o.command, ["sh", "-c", "ls"]);
        assert!(o.stdin && o.stdout && o.tty && !o.stderr);
        assert!(Options::from_query(&q("stdout=true")).is_err());
        assert!(Options::from_query(&q("command=ls")).is_err());
        let o = Options::from_query(&q("command=ls&stderr=1")).expect("valid");
        assert!(o.stderr && !o.stdout && !o.attach);
        let a = Options::attach_from_query(&q("stdin=true&stdout=true&stderr=true&tty=true"))
            .expect("valid");
        assert!(a.attach && a.command.is_empty() && a.stdin && a.stdout && a.tty && !a.stderr);
        assert!(Options::attach_from_query(&q("tty=true")).is_err());
    }

    #[test]
    fn statuses() {
        let cmd = vec!["sh".to_owned(), "-c".to_owned(), "exit 3".to_owned()];
        assert_eq!(exit_status(&cmd, 0)["status"], "Success");
        let s = exit_status(&cmd, 3);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
    }

    #[test]
    fn sizes() {
        let mut buf = br#"{"Width":80,"Height":24}{"Width":120,"Height":40}{"Wid"#.to_vec();
        assert_eq!(parse_sizes(&mut buf), [(80, 24), (120, 40)]);
        assert_eq!(buf, br#"{"Wid"#);
        buf.extend_from_slice(br#"th":1,"Height":2}"#);
        assert_eq!(parse_sizes(&mut buf), [(1, 2)]);
        assert!(buf.is_empty());
    }
}
