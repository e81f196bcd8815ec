//! End to end, as root: the streams kubectl opens through the API server to the node agent —
//! `kubectl exec` (exit codes, stdin, a terminal with its size), `kubectl cp` both ways and
//! `kubectl port-forward` — with the oldest kubectl (SPDY) and the newer ones (WebSocket).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::node::{node_with_busybox, wait_for};
use common::{KUBECTLS, Server, free_port, json};

fn web_pod(node: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": "busybox:1.36", "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "mkdir -p /www && echo hello from the pod > /www/index.html && exec httpd -f -p 8080 -h /www"],
            }],
        },
    })
    .to_string()
}

fn kubectl(s: &Server, k: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
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

fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn exec_cp_and_port_forward() {
    let (s, node) = node_with_busybox();
    let newest = KUBECTLS[KUBECTLS.len() - 1];
    s.create(newest, None, &web_pod(&node));
    wait_for("the pod to run", 60, || {
        let pod = json(&s.ok_kubectl(newest, &["get", "pod", "web", "-o", "json"]));
        (pod["status"]["phase"] == "Running").then_some(())
    });
    let payload: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = s.dir.path().join("payload.bin");
    std::fs::write(&local, &payload).expect("write payload");

    for k in KUBECTLS {
        // Output, error output and the exit code.
        let out = kubectl(
            &s,
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

        // stdin reaches the process and its end ends `cat`; large output is not cut.
        let out = kubectl(&s, k, &["exec", "-i", "web", "--", "cat"], &payload);
        assert!(
            out.status.success(),
            "{k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout.len(), payload.len(), "{k}");
        assert!(out.stdout == payload, "{k}: stdin came back altered");

        // A program that does not exist.
        let out = kubectl(&s, k, &["exec", "web", "--", "no-such-program"], b"");
        assert_eq!(out.status.code(), Some(126), "{k}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("executable file not found"),
            "{k}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // A terminal (through `script`, which gives kubectl one): the process sees a tty of
        // the size kubectl's terminal has.
        let script = format!(
            "stty cols 91 rows 17; {k} --kubeconfig {} exec -it web -- sh -c 'tty; stty size'",
            s.kubeconfig().display()
        );
        let out = Command::new("script")
            .args(["-qec", &script, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .expect("script");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("/dev/pts/"), "{k}: {text}");
        assert!(text.contains("17 91"), "{k}: {text}");

        // kubectl cp in and out.
        let remote = format!("web:/tmp/{}.bin", k.rsplit('/').next().unwrap_or("k"));
        let out = kubectl(&s, k, &["cp", local.to_str().expect("path"), &remote], b"");
        assert!(out.status.success(), "{k}: {out:?}");
        let back = s.dir.path().join("back.bin");
        let _ = std::fs::remove_file(&back);
        let out = kubectl(&s, k, &["cp", &remote, back.to_str().expect("path")], b"");
        assert!(out.status.success(), "{k}: {out:?}");
        assert!(std::fs::read(&back).expect("copied back") == payload, "{k}");

        // Port forwarding: two connections in a row through one kubectl.
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
            http_get(port).filter(|r| r.contains("hello from the pod"))
        });
        assert!(first.starts_with("HTTP/1."), "{k}: {first}");
        let second = http_get(port).unwrap_or_default();
        let _ = pf.kill();
        let _ = pf.wait();
        assert!(second.contains("hello from the pod"), "{k}: {second}");
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
