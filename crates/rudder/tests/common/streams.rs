//! The stream checks every node agent must pass whatever runs its containers (the embedded
//! runtime, containerd): exec output, error output and exit code, stdin through to its end, a
//! terminal, `kubectl cp` both ways and `kubectl port-forward` — against a pod `web` whose
//! httpd on 8080 answers "hello from the pod".

use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::node::wait_for;
use super::{Server, free_port};

/// Runs kubectl with `stdin` written to it (from a thread, so large inputs cannot deadlock
/// against its output).
pub fn kubectl(s: &Server, k: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(k)
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("kubectl output");
    let _ = writer.join();
    out
}

/// One HTTP/1.0 GET of `/index.html`, the whole answer.
pub fn http_get(addr: impl ToSocketAddrs) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// Output, error output and the exit code of an exec.
pub fn check_exec_output(s: &Server, k: &str) {
    let out = kubectl(
        s,
        k,
        &[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{k}: {out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n", "{k}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"), "{k}");
}

/// stdin reaches `cat` and its end ends it; the output is neither cut nor altered.
pub fn check_exec_stdin(s: &Server, k: &str, payload: &[u8]) {
    let out = kubectl(s, k, &["exec", "-i", "web", "--", "cat"], payload);
    assert!(
        out.status.success(),
        "{k}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), payload.len(), "{k}");
    assert!(out.stdout == payload, "{k}: stdin came back altered");
}

/// `kubectl exec -it web -- sh -c SCRIPT` in a terminal of 91×17 (`script` gives kubectl one);
/// what the terminal showed.
pub fn exec_in_terminal(s: &Server, k: &str, script: &str) -> String {
    let command = format!(
        "stty cols 91 rows 17; {k} --kubeconfig {} exec -it web -- sh -c '{script}'",
        s.kubeconfig().display()
    );
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl cp` of `local` (holding `payload`) into the pod and back out, unchanged.
pub fn check_cp_round_trip(s: &Server, k: &str, local: &Path, payload: &[u8]) {
    let remote = format!("web:/tmp/{}.bin", k.rsplit('/').next().unwrap_or("k"));
    let out = kubectl(s, k, &["cp", local.to_str().expect("path"), &remote], b"");
    assert!(out.status.success(), "{k}: {out:?}");
    let back = s.dir.path().join("back.bin");
    let _ = std::fs::remove_file(&back);
    let out = kubectl(s, k, &["cp", &remote, back.to_str().expect("path")], b"");
    assert!(out.status.success(), "{k}: {out:?}");
    assert!(std::fs::read(&back).expect("copied back") == payload, "{k}");
}

/// Two connections in a row through one `kubectl port-forward pod/web`: both are answered by
/// the pod's httpd.
pub fn check_port_forward(s: &Server, k: &str) {
    let port = free_port();
    let mut pf = Command::new(k)
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .args(["port-forward", "pod/web", &format!("{port}:8080")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("port-forward");
    let first = wait_for("the forwarded port", 20, || {
        http_get(("127.0.0.1", port)).filter(|r| r.contains("hello from the pod"))
    });
    let second = http_get(("127.0.0.1", port)).unwrap_or_default();
    let _ = pf.kill();
    let _ = pf.wait();
    assert!(first.starts_with("HTTP/1."), "{k}: {first}");
    assert!(second.contains("hello from the pod"), "{k}: {second}");
}
