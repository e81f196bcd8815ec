//! End to end: the JavaScript client (`@kubernetes/client-node` on npm, installed by
//! `scripts/test` with `npm ci` in tests/clients/js) against `rudder server` — CRUD, list with
//! selectors and paging, watch and its resume from a resourceVersion, an informer, patch types,
//! the generic object API and server-side apply.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::Server;

#[test]
fn javascript_client() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/js");
    assert!(
        dir.join("node_modules/@kubernetes/client-node").exists(),
        "no node_modules in {} (scripts/test runs `npm ci` there)",
        dir.display()
    );
    let s = Server::start();
    let out = Command::new("node")
        .arg("client_suite.mjs")
        .current_dir(&dir)
        .env("KUBECONFIG", s.kubeconfig())
        .env("HOME", s.data_dir())
        .env("NAMESPACE", "js-client")
        .output()
        .expect("run node (is nodejs installed?)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = s.log();
    let lines: Vec<&str> = log.lines().collect();
    assert!(
        out.status.success(),
        "javascript client suite failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}\nserver log tail:\n{}",
        out.status,
        lines[lines.len().saturating_sub(60)..].join("\n")
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}
