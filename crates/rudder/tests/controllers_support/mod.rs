//! Helpers shared by the controller tests (`controllers_*.rs`): polling with the server's log on
//! timeout, and kubectl reads and writes that tolerate absence and conflicts.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use crate::common::{Server, json};

/// The kubectl the controller tests drive.
pub const K: &str = "/usr/bin/kubectl";

/// Polls `f` every 200 ms until it returns a value; panics with the server's log tail after
/// `secs`.
pub fn wait_for<T>(what: &str, secs: u64, s: &Server, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            let log = s.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(30)..].join("\n");
            panic!("timed out waiting for {what}; server log tail:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `kubectl get ARGS -o json --ignore-not-found`: `None` when absent (or an empty list).
pub fn get(s: &Server, args: &[&str]) -> Option<serde_json::Value> {
    let mut a = vec!["get"];
    a.extend_from_slice(args);
    a.extend(["-o", "json", "--ignore-not-found"]);
    let out = s.ok_kubectl(K, &a);
    (!out.trim().is_empty()).then(|| json(&out))
}

/// The items of `kubectl get ARGS -o json` (a list).
pub fn items(s: &Server, args: &[&str]) -> Vec<serde_json::Value> {
    get(s, args)
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

/// Runs a mutating kubectl command, retrying when the object changed between kubectl's read
/// and its write (controllers write the same objects).
pub fn mutate(s: &Server, args: &[&str]) -> String {
    for _ in 0..10 {
        let out = s.kubectl(K, args);
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("the object has been modified"),
            "kubectl {args:?}: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("kubectl {args:?}: conflicts did not stop");
}
