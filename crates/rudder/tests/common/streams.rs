//! The stream checks every node agent must pass whatever runs its containers (the embedded
//! runtime, containerd): exec output, error output and exit code, stdin through to its end, a
//! terminal and its size (at start and after a resize), `kubectl cp` both ways and `kubectl
//! port-forward` — against a pod `web` whose httpd on 8080 answers "hello from the pod".

use std::io::{Read, Write};
use std::net::ToSocketAddrs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::node::wait_for;
use super::{Server, free_port};

/// Runs kubectl with `stdin` written to it, then closed (from a thread, so large inputs cannot
/// deadlock against its output).
pub fn kubectl(s: &Server, k: &str, args: &[&str], stdin: &[u8]) -> Output {
    kubectl_piped(s, k, args, stdin, false)
}

/// Runs kubectl with `stdin` written to it, which then stays open until kubectl exits: a tty
/// container's attachment would end at the end of input (as upstream's does), before the
/// container answered.
pub fn kubectl_stdin_open(s: &Server, k: &str, args: &[&str], stdin: &[u8]) -> Output {
    kubectl_piped(s, k, args, stdin, true)
}

fn kubectl_piped(s: &Server, k: &str, args: &[&str], stdin: &[u8], keep_open: bool) -> Output {
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
        // Handed back to be closed once kubectl exited.
        keep_open.then_some(input)
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

/// A script (for `sh -c`) that waits up to 10 s for its terminal to be `rows cols`, then prints
/// `label: ` and what `stty size` says.
fn await_size(label: &str, rows: u16, cols: u16) -> String {
    format!(
        "i=0; until [ \"$(stty size 2>/dev/null)\" = \"{rows} {cols}\" ] || [ $i -ge 100 ]; \
         do i=$((i+1)); sleep 0.1; done; echo \"{label}: $(stty size 2>&1)\""
    )
}

/// `stty size` under `kubectl exec -it`, in a terminal of 91×17 (`script` gives kubectl one)
/// that becomes 120×40 while the exec runs: the initial size reaches the process (from its
/// first look if `first_look`; containerd applies it only right after the process started,
/// see `rudder_runtime::testing::conformance::InitialSize`), and so does the resize, which
/// kubectl sends on SIGWINCH.
pub fn check_terminal_size(s: &Server, k: &str, first_look: bool) {
    let name = k.rsplit('/').next().unwrap_or("k");
    let marker = format!("/tmp/sized-{name}");
    // In the pod: report the first look, wait for the initial size, tell the test (a file it
    // polls for) and wait for the resize.
    let pod = format!(
        "echo \"first: $(stty size 2>&1)\"; {}; touch {marker}; {}",
        await_size("sized", 17, 91),
        await_size("resized", 40, 120)
    );
    let kc = s.kubeconfig();
    let kc = kc.display();
    // Outside: kubectl in the background (its stdin the terminal again: sh gives background
    // jobs /dev/null), then the window grows once the pod has its initial size; the kernel
    // signals SIGWINCH to kubectl, which sends the new size.
    let outer = format!(
        "stty cols 91 rows 17\n\
         {k} --kubeconfig {kc} exec web -- rm -f {marker}\n\
         {k} --kubeconfig {kc} exec -it web -- sh -c '{pod}' </dev/tty &\n\
         i=0\n\
         until {k} --kubeconfig {kc} exec web -- test -e {marker} 2>/dev/null || [ $i -ge 100 ]; do\n\
         \x20 i=$((i+1)); sleep 0.2\n\
         done\n\
         stty cols 120 rows 40\n\
         wait\n"
    );
    let path = s.dir.path().join(format!("tty-{name}.sh"));
    std::fs::write(&path, outer).expect("write the script");
    let out = Command::new("script")
        .args(["-qec", &format!("sh {}", path.display()), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    if first_look {
        assert!(text.contains("first: 17 91"), "{k}: {text}");
    }
    assert!(text.contains("sized: 17 91"), "{k}: {text}");
    assert!(text.contains("resized: 40 120"), "{k}: {text}");
}
