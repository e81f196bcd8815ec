//! The attach cases of the runtime conformance suite (see [`super::conformance`]): live output
//! to several attachments, stdin that a `stdinOnce` container sees end, a terminal with the
//! client's size, and output still in the log.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::conformance::{
    Harness, container_config, cri_lines, remove_all, run, sandbox_config, wait_exited,
};
use crate::types::*;

/// How long any one step may take.
const STEP: Duration = Duration::from_secs(30);

/// Reads `r` to its end.
async fn read_all(r: &mut ExecReader) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(STEP, r.read_to_end(&mut out))
        .await
        .expect("output ends in time")
        .expect("read");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads `r` until what came contains `needle`; everything read.
async fn read_until(r: &mut ExecReader, needle: &str) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let found = tokio::time::timeout(STEP, async {
        loop {
            let n = r.read(&mut buf).await.expect("read");
            if n == 0 {
                return false;
            }
            out.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&out).contains(needle) {
                return true;
            }
        }
    })
    .await
    .unwrap_or(false);
    let text = String::from_utf8_lossy(&out).into_owned();
    assert!(found, "no {needle:?} in {text:?}");
    text
}

fn all(stdin: bool) -> AttachRequest {
    AttachRequest {
        stdin,
        stdout: true,
        stderr: true,
    }
}

/// Without stdin: output streams live to each attachment, one detaching leaves the container
/// running and the next one sees newer output. With `stdin` and `stdinOnce`: input reaches the
/// main process, the end of input closes its stdin (`cat` ends), stdout and stderr arrive
/// apart and the attachment ends when the process exits; both went to the log too.
pub async fn attach_streams_output_and_stdin(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("attach-pod"))
        .await
        .expect("sandbox");

    let ticker = run(
        rt,
        &sb,
        container_config(
            h.image(),
            "ticker",
            "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done",
        ),
    )
    .await;
    let mut first = rt.attach(&ticker, all(true)).await.expect("attach");
    assert!(!first.tty);
    let seen = read_until(&mut first.stdout, "\n").await;
    let n: u32 = seen
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("tick-"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a tick, not {seen:?}"));
    let mut second = rt.attach(&ticker, all(false)).await.expect("attach twice");
    drop(first);
    read_until(&mut second.stdout, &format!("tick-{}\n", n + 3)).await;
    drop(second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let st = rt.container_status(&ticker).await.expect("status");
    assert_eq!(st.state, ContainerState::Running, "a detach stops nothing");

    let mut cfg = container_config(
        h.image(),
        "reader",
        "read x; echo got-$x; echo err-$x >&2; cat; echo bye",
    );
    cfg.stdin = true;
    cfg.stdin_once = true;
    let reader = run(rt, &sb, cfg).await;
    let mut a = rt.attach(&reader, all(true)).await.expect("attach");
    let mut stdin = a.stdin.take().expect("the container has stdin");
    stdin
        .write_all(b"hello\nrest of it\n")
        .await
        .expect("write");
    stdin.shutdown().await.expect("end of input");
    let (out, err) = tokio::join!(read_all(&mut a.stdout), read_all(&mut a.stderr));
    assert_eq!(out, "got-hello\nrest of it\nbye\n");
    assert_eq!(err, "err-hello\n");
    tokio::time::timeout(STEP, a.done)
        .await
        .expect("the attachment ends")
        .expect("no runtime error");
    let st = wait_exited(rt, &reader, STEP).await;
    assert_eq!(st.exit_code, Some(0));
    let lines = cri_lines(&st.log_path);
    for want in [
        ("stdout", "got-hello"),
        ("stderr", "err-hello"),
        ("stdout", "bye"),
    ] {
        assert!(
            lines
                .iter()
                .any(|(s, _, t)| (s.as_str(), t.as_str()) == want),
            "{want:?} in {lines:?}"
        );
    }
    // A container that is not running cannot be attached to.
    assert!(rt.attach(&reader, all(false)).await.is_err());
    remove_all(h, rt, &sb).await;
}

/// A `tty` container runs on a terminal: an attachment resizes it, its input is echoed and
/// read, all output comes on stdout (and goes to the log), `TERM` is set, and SIGPIPE is not
/// ignored in the main process.
pub async fn attach_to_a_terminal(h: &dyn Harness) {
    let rt = h.runtime().await;
    let rt = &*rt;
    let sb = rt
        .run_pod_sandbox(sandbox_config("attach-tty"))
        .await
        .expect("sandbox");
    let mut cfg = container_config(
        h.image(),
        "term",
        "read x; stty size; echo got-$x term-$TERM; tty; grep SigIgn /proc/self/status; echo to-stderr >&2",
    );
    cfg.stdin = true;
    cfg.stdin_once = true;
    cfg.tty = true;
    let term = run(rt, &sb, cfg).await;
    let mut a = rt.attach(&term, all(true)).await.expect("attach");
    assert!(a.tty);
    let resize = a.resize.take().expect("a terminal can be resized");
    resize(100, 30).expect("resize");
    // Input and resizes may travel apart: the size must be in place before the shell reads.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut stdin = a.stdin.take().expect("stdin");
    stdin.write_all(b"hi\n").await.expect("write");
    let (out, err) = tokio::join!(read_all(&mut a.stdout), read_all(&mut a.stderr));
    for want in ["30 100", "got-hi term-xterm", "/dev/pts/", "to-stderr"] {
        assert!(out.contains(want), "{want:?} in {out:?}");
    }
    // SIGPIPE is not ignored (the monitor ignores it; that must not leak into the container).
    let ignored = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("SigIgn:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or_else(|| panic!("a SigIgn line in {out:?}"));
    assert_eq!(ignored & (1 << (libc::SIGPIPE - 1)), 0, "{out:?}");
    assert!(out.contains("\r\n"), "a terminal's newlines: {out:?}");
    assert_eq!(err, "");
    tokio::time::timeout(STEP, a.done)
        .await
        .expect("the attachment ends")
        .expect("no runtime error");
    drop(stdin);
    let st = wait_exited(rt, &term, STEP).await;
    assert_eq!(st.exit_code, Some(0));
    let lines = cri_lines(&st.log_path);
    assert!(
        lines
            .iter()
            .any(|(s, _, t)| s == "stdout" && t.contains("got-hi")),
        "{lines:?}"
    );
    remove_all(h, rt, &sb).await;
}
