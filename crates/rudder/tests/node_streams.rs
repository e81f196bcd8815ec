//! End to end, as root: the streams kubectl opens through the API server to the node agent —
//! `kubectl exec` (exit codes, stdin, a terminal with its size), `kubectl cp` both ways,
//! `kubectl port-forward`, and `kubectl attach` (also under `kubectl run -i`/`-it` and
//! `kubectl debug -it`) — with the oldest kubectl (SPDY) and the newer ones (WebSocket).

mod common;

use common::KUBECTLS;
use common::attach;
use common::node::{busybox_pod, node_with_busybox, running};
use common::streams::{
    check_cp_round_trip, check_exec_output, check_exec_stdin, check_port_forward,
    check_terminal_size, exec_in_terminal, kubectl,
};

/// The pod `web` the stream checks run against: httpd on 8080 answers "hello from the pod".
fn web_pod(node: &str) -> String {
    let script = "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www";
    busybox_pod(node, "web", script).to_string()
}

#[test]
fn exec_cp_and_port_forward() {
    let (s, node) = node_with_busybox();
    let newest = KUBECTLS[KUBECTLS.len() - 1];
    s.create(newest, None, &web_pod(&node));
    running(&s, newest, "web", 60);
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = s.dir.path().join("payload.bin");
    std::fs::write(&local, &payload).expect("write payload");

    for k in KUBECTLS {
        check_exec_output(&s, k);
        check_exec_stdin(&s, k, &payload);

        // A program that does not exist.
        let out = kubectl(&s, k, &["exec", "web", "--", "no-such-program"], b"");
        assert_eq!(out.status.code(), Some(126), "{k}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("executable file not found"),
            "{k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // A terminal: the process sees a tty of the size kubectl's terminal has, from its
        // first look, and follows a resize.
        let text = exec_in_terminal(&s, k, "tty; stty size");
        assert!(text.contains("/dev/pts/"), "{k}: {text}");
        assert!(text.contains("17 91"), "{k}: {text}");
        check_terminal_size(&s, k, true);

        check_cp_round_trip(&s, k, &local, &payload);
        check_port_forward(&s, k);
    }

    // Errors come back as Status: an unknown container, a missing upgrade.
    let err = s.fail_kubectl(newest, &["exec", "web", "-c", "nope", "--", "true"], None);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "{err}"
    );
    let err = s.fail_kubectl(
        newest,
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/web/exec?command=true&stdout=true",
        ],
        None,
    );
    assert!(err.contains("Upgrade request required"), "{err}");
}

#[test]
fn attach_run_and_debug() {
    let (s, node) = node_with_busybox();
    let newest = KUBECTLS[KUBECTLS.len() - 1];
    attach::start_ticker(&s, newest, &node, "ticker");
    for (i, k) in KUBECTLS.iter().enumerate() {
        attach::check_attach_output(&s, k, "ticker");
        attach::check_run_interactive(&s, k, &format!("run-i-{i}"));
        attach::check_run_terminal(&s, k, &format!("run-it-{i}"));
        attach::check_debug_interactive(&s, k, "ticker", &format!("debugger-{i}"));
        attach::check_attach_terminal(&s, k, &node, &format!("shell-{i}"));
    }
    attach::check_attach_errors(&s, newest, "ticker");
}
