//! The attach checks every node agent must pass whatever runs its containers (the embedded
//! runtime, containerd), with real kubectl: `kubectl attach` to a running pod's live output,
//! `kubectl run -i`/`-it --rm --restart=Never` with stdin piped through to the container and
//! its exit code back, `kubectl debug -it` with an ephemeral container, and an unknown container
//! refused with a Status.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use super::node::{busybox_container, busybox_pod, pod_on, running, wait_for};
use super::{Server, streams};

/// A pod `name` on `node` whose container prints `tick-N` five times a second.
pub fn ticker_pod(node: &str, name: &str) -> String {
    let ticks = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.2; done";
    busybox_pod(node, name, ticks).to_string()
}

/// Creates [`ticker_pod`] and waits for it to run.
pub fn start_ticker(s: &Server, k: &str, node: &str, name: &str) {
    s.create(k, None, &ticker_pod(node, name));
    running(s, k, name, 90);
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `kubectl attach` to the running `pod` (a [`ticker_pod`]): output arrives live, counting on
/// while attached; the pod runs on after kubectl left.
pub fn check_attach_output(s: &Server, k: &str, pod: &str) {
    let mut attach = s.kubectl_stream(k, &["attach", pod]);
    let seen = attach.until("three ticks", |lines| {
        lines.iter().filter(|l| l.starts_with("tick-")).count() >= 3
    });
    let numbers: Vec<u64> = seen
        .iter()
        .filter_map(|l| l.strip_prefix("tick-")?.parse().ok())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[1] == w[0] + 1),
        "{k}: live, in order: {seen:?}"
    );
    drop(attach);
    let p = super::json(&s.ok_kubectl(k, &["get", "pod", pod, "-o", "json"]));
    assert_eq!(
        p["status"]["phase"], "Running",
        "{k}: detaching stops nothing"
    );
}

/// An unknown container and a request without an upgrade are refused with a Status.
pub fn check_attach_errors(s: &Server, k: &str, pod: &str) {
    let err = s.fail_kubectl(
        k,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{pod}/attach?container=nope&stdout=true"),
        ],
        None,
    );
    assert!(
        err.contains(&format!("container nope is not valid for pod {pod}")),
        "{k}: {err}"
    );
    let err = s.fail_kubectl(
        k,
        &[
            "get",
            "--raw",
            &format!("/api/v1/namespaces/default/pods/{pod}/attach?stdout=true"),
        ],
        None,
    );
    assert!(err.contains("Upgrade request required"), "{k}: {err}");
    let err = s.fail_kubectl(
        k,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/no-such-pod/attach?stdout=true",
        ],
        None,
    );
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{k}: {err}"
    );
}

/// The arguments of `kubectl run NAME FLAG --rm --restart=Never` of busybox running `sh -c
/// script` (FLAG: `-i`, or `-it` for a terminal).
fn run_args<'a>(name: &'a str, flag: &'a str, script: &'a str) -> [&'a str; 11] {
    [
        "run",
        name,
        flag,
        "--rm",
        "--restart=Never",
        "--image=busybox:1.36",
        "--image-pull-policy=IfNotPresent",
        "--",
        "sh",
        "-c",
        script,
    ]
}

/// What every `kubectl run --rm` of pod `name` must show: kubectl attached, its output holds
/// `want`, its exit code is the container's `code`, and the pod was deleted.
fn check_ran(k: &str, name: &str, out: &Output, want: &str, code: i32) {
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains(want), "{k}: {stdout}\n{stderr}");
    assert!(!stderr.contains("couldn't attach"), "{k}: {stderr}");
    assert_eq!(out.status.code(), Some(code), "{k}: {stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("pod \"{name}\" deleted")),
        "{k}: {stdout}"
    );
}

/// `kubectl run -i --rm --restart=Never` (stdin, stdinOnce): piped input reaches the
/// container, its end closes the container's stdin so `cat` ends, the output comes back and the
/// container's exit code is kubectl's; the pod is deleted.
pub fn check_run_interactive(s: &Server, k: &str, name: &str) {
    let args = run_args(name, "-i", "cat; echo done; exit 3");
    let out = streams::kubectl(s, k, &args, b"line one\nline two\n");
    check_ran(k, name, &out, "line one\nline two\ndone\n", 3);
}

/// `kubectl run -it --rm --restart=Never` (a tty container): piped input is read through the
/// container's terminal and the answer comes back; the pod is deleted.
pub fn check_run_terminal(s: &Server, k: &str, name: &str) {
    let args = run_args(name, "-it", "read x; echo got-$x term-$TERM");
    let out = streams::kubectl_stdin_open(s, k, &args, b"hello\n");
    check_ran(k, name, &out, "got-hello term-xterm", 0);
}

/// `kubectl debug -it`: an ephemeral container with stdin and a terminal joins the running
/// `pod`, kubectl attaches to it, piped input reaches it and its answer comes back.
pub fn check_debug_interactive(s: &Server, k: &str, pod: &str, container: &str) {
    let out = streams::kubectl_stdin_open(
        s,
        k,
        &[
            "debug",
            pod,
            "-it",
            "--image=busybox:1.36",
            "--image-pull-policy=IfNotPresent",
            "-c",
            container,
            "--",
            "sh",
            "-c",
            "read x; echo debugged-$x; tty",
        ],
        b"it\n",
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(stdout.contains("debugged-it"), "{k}: {stdout}\n{stderr}");
    assert!(stdout.contains("/dev/pts/"), "{k}: {stdout}\n{stderr}");
    assert!(!stderr.contains("couldn't attach"), "{k}: {stderr}");
    assert!(out.status.success(), "{k}: {stdout}\n{stderr}");
    let p = super::json(&s.ok_kubectl(k, &["get", "pod", pod, "-o", "json"]));
    let spec = p["spec"]["ephemeralContainers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == container)
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (spec["stdin"].as_bool(), spec["tty"].as_bool()),
        (Some(true), Some(true)),
        "{k}: {spec}"
    );
}

/// `kubectl attach -it` from a terminal of 91×17 (`script` gives kubectl one) to pod `name`,
/// whose shell runs on a terminal with stdin: the shell sees the client's size and runs what
/// was typed; what the terminal showed.
pub fn check_attach_terminal(s: &Server, k: &str, node: &str, name: &str) {
    let mut shell = busybox_container("main", &["sh"]);
    shell["stdin"] = true.into();
    shell["tty"] = true.into();
    let mut pod = pod_on(node, name, &[shell]);
    pod["spec"]["restartPolicy"] = "Never".into();
    s.create(k, None, &pod.to_string());
    running(s, k, name, 90);
    let command = format!(
        "stty cols 91 rows 17; {k} --kubeconfig {} attach -it {name}",
        s.kubeconfig().display()
    );
    let mut script = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut typed = script.stdin.take().expect("stdin");
    // Typed once kubectl is attached: the shell has the terminal's size by then.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let _ = typed.write_all(b"echo size-$(stty size); exit 7\r");
        std::thread::sleep(std::time::Duration::from_secs(20));
    });
    let out = script.wait_with_output().expect("script output");
    let shown = text(&out.stdout);
    assert!(shown.contains("size-17 91"), "{k}: {shown}");
    let exit = wait_for(&format!("{name} to exit"), 30, || {
        let p = super::json(&s.ok_kubectl(k, &["get", "pod", name, "-o", "json"]));
        p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"].as_i64()
    });
    assert_eq!(exit, 7, "{k}: the shell ran what was typed");
    drop(writer);
}
