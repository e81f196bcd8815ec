//! Test harness: starts the real `rudder server` binary on a free port in a temp data dir and
//! runs real kubectl binaries against it. Everything started is stopped by PID on drop.

#![allow(dead_code)]

pub mod attach;
pub mod backup;
pub mod cluster;
pub mod node;
pub mod pid_namespaces;
pub mod streams;
pub mod workloads;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// kubectl versions every e2e test runs with: the oldest and the newest supported, and the
/// machine's default.
pub const KUBECTLS: &[&str] = &[
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
    "/usr/bin/kubectl",
    "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
];

/// Work to do with the data dir once the server stopped.
type Cleanup = Box<dyn FnOnce(&Path)>;

/// A running `rudder server`.
pub struct Server {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// Port of the node agent's endpoint (free, so tests can run side by side).
    pub kubelet_port: u16,
    /// Ports of the Ingress controller's HTTP and HTTPS listeners (free, as above).
    pub ingress_http_port: u16,
    pub ingress_https_port: u16,
    /// Run with the data dir after the server stopped and before the dir is removed (cleaning up
    /// what outlives the server, such as containers).
    after_stop: Vec<Cleanup>,
    /// Extra `rudder server` arguments.
    extra_args: Vec<String>,
}

/// A port free on every address now, for a server to listen on a moment later. Not from the
/// kernel's ephemeral range (what binding port 0 gives): any outgoing connection on the machine
/// may take a port from there as its local port in that moment, and the server's bind then
/// fails (seen as an agent endpoint refusing connections when tests run side by side).
pub fn free_port() -> u16 {
    use std::hash::BuildHasher;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    // Above the well-known ports tests use (6443, 8080, 10250, …).
    const LOW: u16 = 20000;
    let span = u64::from(ephemeral_low.saturating_sub(LOW));
    let start = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    for i in 0..span {
        let port = LOW + u16::try_from((start.wrapping_add(i)) % span).unwrap_or(0);
        if TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Server {
    /// Starts a server in a new data dir.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server in a new data dir with extra `rudder server` arguments.
    pub fn start_with(extra_args: &[&str]) -> Self {
        Self::start_in(tempfile::tempdir().expect("tempdir"), extra_args)
    }

    /// Starts a server whose data dir, `<dir>/data`, may have been prepared beforehand (a
    /// store restored from a snapshot).
    pub fn start_in(dir: tempfile::TempDir, extra_args: &[&str]) -> Self {
        let mut s = Server {
            child: None,
            dir,
            port: free_port(),
            kubelet_port: free_port(),
            ingress_http_port: free_port(),
            ingress_https_port: free_port(),
            after_stop: Vec::new(),
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
        };
        // The node may leave sandboxes and containers behind (they outlive the agent by
        // design): remove them whatever the test did.
        s.after_stop(node::remove_containers);
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_rudder"))
            .args([
                "server",
                "--bind-address",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--kubelet-port",
                &self.kubelet_port.to_string(),
                // Servers of parallel tests share the machine: each gets its own bridge, named
                // after its (unique) port.
                "--pod-bridge",
                &self.pod_bridge(),
                "--proxy-table",
                &self.proxy_table(),
                "--ingress-http-port",
                &self.ingress_http_port.to_string(),
                "--ingress-https-port",
                &self.ingress_https_port.to_string(),
            ])
            .args(self.pod_range_args())
            .args(self.service_range_args())
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(&self.extra_args)
            .env("RUDDER_LOG", "info,rudder_apiserver=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn rudder server");
        self.child = Some(child);
        self.wait_ready();
    }

    /// The node's pod bridge.
    pub fn pod_bridge(&self) -> String {
        format!("rb{}", self.port)
    }

    /// The service proxy's nftables table (one per server, so parallel tests do not collide).
    pub fn proxy_table(&self) -> String {
        format!("rudder-{}", self.port)
    }

    /// The NetworkPolicy enforcer's nftables table (family `inet`): the default, named after
    /// the proxy table.
    pub fn network_policy_table(&self) -> String {
        format!("{}-netpol", self.proxy_table())
    }

    /// The server's Service range: a /26 of 100.64.0.0/10 named after its (unique) port, apart
    /// from every pod range (10.0.0.0/8) the harness hands out; or the one the test gave.
    pub fn service_range(&self) -> String {
        if let Some(i) = self
            .extra_args
            .iter()
            .position(|a| a == "--service-cluster-ip-range")
            && let Some(range) = self.extra_args.get(i + 1)
        {
            return range.clone();
        }
        let base = u32::from(std::net::Ipv4Addr::new(100, 64, 0, 0)) + u32::from(self.port) * 64;
        format!("{}/26", std::net::Ipv4Addr::from(base))
    }

    /// The `n`th address of the server's Service range (1: the `kubernetes` Service).
    pub fn service_ip(&self, n: u32) -> String {
        let range = self.service_range();
        let (net, _) = range.split_once('/').expect("a CIDR");
        let net: std::net::Ipv4Addr = net.parse().expect("an IPv4 network");
        std::net::Ipv4Addr::from(u32::from(net) + n).to_string()
    }

    /// Each server's own pod range, named after its port; or the test's (simulated nodes need
    /// one subnet per node).
    fn pod_range_args(&self) -> Vec<String> {
        if self.extra_args.iter().any(|a| a == "--cluster-cidr") {
            Vec::new()
        } else {
            vec![
                "--cluster-cidr".into(),
                format!("10.{}.{}.0/24", self.port >> 8, self.port & 0xff),
                "--node-cidr-mask-size".into(),
                "24".into(),
            ]
        }
    }

    fn service_range_args(&self) -> Vec<String> {
        if self
            .extra_args
            .iter()
            .any(|a| a == "--service-cluster-ip-range")
        {
            Vec::new()
        } else {
            vec!["--service-cluster-ip-range".into(), self.service_range()]
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("rudder server exited with {status}:\n{}", self.log());
            }
            if self.kubeconfig().exists() {
                let out = kubectl_raw(
                    "/usr/bin/kubectl",
                    &self.kubeconfig(),
                    &["get", "--raw", "/readyz"],
                    None,
                );
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "server not ready after 60s:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server with SIGTERM (SIGKILL if it does not exit in 15 s).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "server did not stop on SIGTERM within 15 s:\n{}",
                self.log()
            );
        }
    }

    /// Kills the server with SIGKILL.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same data dir and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs kubectl and returns its output.
    pub fn kubectl(&self, kubectl: &str, args: &[&str]) -> Output {
        kubectl_raw(kubectl, &self.kubeconfig(), args, None)
    }

    /// Runs kubectl with `stdin`, expecting success; returns stdout.
    pub fn kubectl_in(&self, kubectl: &str, args: &[&str], stdin: &str) -> String {
        let out = kubectl_raw(kubectl, &self.kubeconfig(), args, Some(stdin));
        self.ok(kubectl, args, out)
    }

    /// Creates an object from a manifest through `kubectl create -f -` (JSON on the wire for every
    /// kubectl version; the imperative `kubectl create <kind>` generators of kubectl >= 1.32 send
    /// protobuf).
    pub fn create(&self, kubectl: &str, ns: Option<&str>, manifest: &str) -> String {
        let mut args = vec!["create", "-f", "-"];
        if let Some(ns) = ns {
            args.extend(["-n", ns]);
        }
        self.kubectl_in(kubectl, &args, manifest)
    }

    /// Creates a namespace.
    pub fn namespace(&self, kubectl: &str, name: &str) {
        self.create(
            kubectl,
            None,
            &format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{name}"}}}}"#),
        );
    }

    /// Creates a ConfigMap with one key.
    pub fn configmap(&self, kubectl: &str, ns: &str, name: &str, key: &str, value: &str) {
        self.create(kubectl, Some(ns), &format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"{key}":"{value}"}}}}"#));
    }

    /// Runs kubectl expecting success; returns stdout.
    pub fn ok_kubectl(&self, kubectl: &str, args: &[&str]) -> String {
        let out = self.kubectl(kubectl, args);
        self.ok(kubectl, args, out)
    }

    fn ok(&self, kubectl: &str, args: &[&str], out: Output) -> String {
        if !out.status.success() {
            panic!(
                "{kubectl} {args:?} failed ({}):\nstdout: {}\nstderr: {}\nserver log tail:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                tail(&self.log(), 40)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn fail_kubectl(&self, kubectl: &str, args: &[&str], stdin: Option<&str>) -> String {
        let out = kubectl_raw(kubectl, &self.kubeconfig(), args, stdin);
        assert!(
            !out.status.success(),
            "{kubectl} {args:?} unexpectedly succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// GET of a raw path, parsed as JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let out = self.ok_kubectl("/usr/bin/kubectl", &["get", "--raw", path]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {out}"))
    }
}

impl Server {
    /// Registers cleanup to run once the server has stopped (also when the test fails).
    pub fn after_stop(&mut self, f: impl FnOnce(&Path) + 'static) {
        self.after_stop.push(Box::new(f));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let data = self.data_dir();
        for f in self.after_stop.drain(..) {
            f(&data);
        }
        // The bridge outlives the server by design (a restarted agent keeps using it).
        remove_pod_network(&self.pod_bridge());
        // A killed server leaves its proxy table behind.
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &self.proxy_table()])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.network_policy_table()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Removes a node's pod bridge and the veth pairs a killed agent left half made (on a thread
/// and runtime of its own: the caller may be a test's async runtime).
pub fn remove_pod_network(bridge: &str) {
    let bridge = bridge.to_owned();
    let _ = std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Runtime::new() {
            let _ = rt.block_on(rudder_net::remove_bridge(&bridge));
            rt.block_on(rudder_net::remove_stale_pairs());
        }
    })
    .join();
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs a kubectl binary with a kubeconfig.
pub fn kubectl_raw(kubectl: &str, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(kubectl);
    cmd.args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap_or(Path::new("/tmp")))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("running {kubectl}: {e} (is kubectl installed?)"));
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// Parses kubectl JSON output.
pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A kubectl that keeps running (`get -w`), its stdout lines collected as they come; killed (by
/// PID) when dropped, also when the test fails.
pub struct Streaming {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Starts `kubectl args` and streams its output lines.
    pub fn kubectl_stream(&self, kubectl: &str, args: &[&str]) -> Streaming {
        use std::io::BufRead;
        let mut child = Command::new(kubectl)
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.data_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kubectl");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Streaming {
            child,
            lines,
            seen: Vec::new(),
        }
    }
}

impl Streaming {
    /// Collects lines until `done` holds for all seen so far (panics after 20 s); returns them.
    pub fn until(&mut self, what: &str, done: impl Fn(&[String]) -> bool) -> &[String] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(&self.seen) {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("{what}: not seen in time; saw {:?}", self.seen),
            }
        }
        &self.seen
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
