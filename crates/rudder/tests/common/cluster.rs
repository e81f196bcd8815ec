//! Helpers for tests of several processes in one cluster: servers on one etcd sharing one
//! identity (`--pki-from`), a `rudder agent` process of its own, and reads that may fail while
//! a member is down.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::Server;

/// `N` servers started with `shared` arguments (a store they all use, say); every one after the
/// first with `--pki-from` the first's PKI, so that they are one cluster with one CA.
pub fn servers_sharing_pki<const N: usize>(shared: &[&str]) -> [Server; N] {
    let mut pki: Option<String> = None;
    std::array::from_fn(|_| {
        let Some(pki) = &pki else {
            let first = Server::start_with(shared);
            let dir = first.data_dir().join("pki");
            pki = Some(dir.to_str().expect("UTF-8 path").to_owned());
            return first;
        };
        let mut args = shared.to_vec();
        args.extend(["--pki-from", pki]);
        Server::start_with(&args)
    })
}

/// `kubectl ARGS -o json` through `s`, `None` when it fails (an etcd election, a server just
/// killed) or its output is not JSON.
pub fn try_get(s: &Server, kubectl: &str, args: &[&str]) -> Option<serde_json::Value> {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    let out = s.kubectl(kubectl, &all);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The `items` of a list.
pub fn items(list: &serde_json::Value) -> Vec<serde_json::Value> {
    list["items"].as_array().cloned().unwrap_or_default()
}

/// A `rudder agent` process, its stderr in `agent.log` of its working dir; killed by PID when
/// dropped.
pub struct Agent {
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    /// Starts `rudder agent ARGS` in `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> Agent {
        let log = dir.join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .arg("agent")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("spawn rudder agent");
        Agent {
            child: Some(child),
            log,
        }
    }

    /// What it logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crashed machine: no clean shutdown, the heartbeats just stop.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process ended by itself.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}
