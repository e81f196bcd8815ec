//! Real `etcd` servers for tests: one member ([`EtcdProcess`]) or a cluster ([`EtcdCluster`]).
//!
//! Each server runs from the `etcd` binary (Debian's `etcd-server`; `RUDDER_ETCD_BIN` overrides
//! the path) on free `127.0.0.1` ports, in a fresh temporary data directory, with fsync on, as in
//! production. Tests run in parallel processes (nextest), so nothing is shared: ports come from
//! the kernel and every cluster has its own token. Members are killed by PID with SIGKILL on
//! drop, and their directory removed.
//!
//! A missing binary is an error ([`TestingError::EtcdNotFound`]), never a silent skip: CI
//! installs etcd, and a test that quietly did nothing would hide a broken backend.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tempfile::TempDir;

/// Environment variable naming the etcd binary to run instead of `etcd` from `PATH`.
pub const ETCD_BIN_ENV: &str = "RUDDER_ETCD_BIN";

/// Requests up to this size are accepted by test servers: the store allows values of almost
/// 4 MiB (`rudder_store::MAX_VALUE_LEN`), and etcd's default limit is 1.5 MiB.
pub const MAX_REQUEST_BYTES: u64 = 8 * 1024 * 1024;

/// Backend quota of test servers (etcd refuses writes beyond it). 4 GiB: never reached by tests,
/// and only virtual memory is reserved for it.
const QUOTA_BACKEND_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// How long a new cluster may take to elect a leader and answer a linearizable read.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Attempts at starting a cluster when a port was taken between choosing it and etcd binding it.
const START_ATTEMPTS: usize = 3;

/// Why a test server could not be started or queried.
#[derive(Debug, thiserror::Error)]
pub enum TestingError {
    /// The etcd binary is not installed.
    #[error(
        "etcd binary {0:?} not found: install it (Debian: `apt-get install etcd-server`) or set \
         {ETCD_BIN_ENV} to its path"
    )]
    EtcdNotFound(String),
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A member exited before the cluster became healthy.
    #[error("etcd member {name} exited during start-up ({status}); its log ends with:\n{log}")]
    Exited {
        /// The member's name.
        name: String,
        /// How it exited.
        status: String,
        /// The end of its log.
        log: String,
    },
    /// The cluster did not become healthy in time.
    #[error(
        "etcd member {name} not healthy after {timeout:?}: {last_error}; its log ends with:\n{log}"
    )]
    NotHealthy {
        /// The member's name.
        name: String,
        /// How long it was given.
        timeout: Duration,
        /// The last error of the health check.
        last_error: String,
        /// The end of its log.
        log: String,
    },
    /// A request to a member failed.
    #[error("etcd request failed: {0}")]
    Client(#[from] etcd_client::Error),
    /// The member index is out of range.
    #[error("no member {0}")]
    NoSuchMember(usize),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> TestingError {
    let what = what.into();
    move |source| TestingError::Io { what, source }
}

/// One member of a test cluster.
#[derive(Debug)]
struct Member {
    name: String,
    client_url: String,
    log: PathBuf,
    /// `None` once the member has been killed.
    child: Option<Child>,
}

impl Member {
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL by PID, then reap it so no zombie or half-dead server outlives the test.
            // Errors mean the process is already gone, which is what we want.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A running etcd cluster of one or more members on 127.0.0.1.
///
/// Dropping it kills every member and deletes the data.
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    // Declared after `members` so that it is dropped (deleted) after they were killed.
    dir: TempDir,
}

impl EtcdCluster {
    /// Starts a cluster of `size` members and waits until every member serves linearizable
    /// reads.
    pub async fn start(size: usize) -> Result<Self, TestingError> {
        let size = size.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match Self::try_start(size).await {
                // A port picked from the kernel can be taken by someone else before etcd binds
                // it; then the member exits at once and a new set of ports is worth a try.
                Err(TestingError::Exited { log, .. })
                    if attempt < START_ATTEMPTS && log.contains("address already in use") =>
                {
                    continue;
                }
                other => return other,
            }
        }
    }

    async fn try_start(size: usize) -> Result<Self, TestingError> {
        let bin = etcd_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("rudder-etcd-")
            .tempdir()
            .map_err(io("creating the etcd data directory"))?;
        let ports = free_ports(2 * size)?;
        let names: Vec<String> = (0..size).map(|i| format!("m{i}")).collect();
        let peer_urls: Vec<String> = (0..size)
            .map(|i| format!("http://127.0.0.1:{}", ports[2 * i + 1]))
            .collect();
        let initial_cluster = names
            .iter()
            .zip(&peer_urls)
            .map(|(n, u)| format!("{n}={u}"))
            .collect::<Vec<_>>()
            .join(",");
        let token = cluster_token();
        let mut cluster = Self {
            members: Vec::with_capacity(size),
            dir,
        };
        for (i, name) in names.iter().enumerate() {
            let client_url = format!("http://127.0.0.1:{}", ports[2 * i]);
            let log = cluster.dir.path().join(format!("{name}.log"));
            let log_file = std::fs::File::create(&log).map_err(io("creating the etcd log"))?;
            let log_err = log_file
                .try_clone()
                .map_err(io("duplicating the etcd log handle"))?;
            let mut cmd = Command::new(&bin);
            cmd.arg("--name")
                .arg(name)
                .arg("--data-dir")
                .arg(cluster.dir.path().join(format!("{name}.etcd")))
                .arg("--listen-client-urls")
                .arg(&client_url)
                .arg("--advertise-client-urls")
                .arg(&client_url)
                .arg("--listen-peer-urls")
                .arg(&peer_urls[i])
                .arg("--initial-advertise-peer-urls")
                .arg(&peer_urls[i])
                .arg("--initial-cluster")
                .arg(&initial_cluster)
                .arg("--initial-cluster-state")
                .arg("new")
                .arg("--initial-cluster-token")
                .arg(&token)
                .arg("--max-request-bytes")
                .arg(MAX_REQUEST_BYTES.to_string())
                .arg("--quota-backend-bytes")
                .arg(QUOTA_BACKEND_BYTES.to_string())
                .arg("--logger")
                .arg("zap")
                .arg("--log-outputs")
                .arg("stderr")
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(log_err);
            // etcd reads its flags from ETCD_* variables too; a developer's environment must
            // not change how tests run.
            for (key, _) in std::env::vars_os() {
                if key.to_string_lossy().starts_with("ETCD_") {
                    cmd.env_remove(key);
                }
            }
            let child = cmd.spawn().map_err(|e| spawn_error(&bin, e))?;
            cluster.members.push(Member {
                name: name.clone(),
                client_url,
                log,
                child: Some(child),
            });
        }
        // Members can only answer once a quorum is up, so all are started before any is asked.
        for i in 0..size {
            cluster.wait_healthy(i).await?;
        }
        Ok(cluster)
    }

    /// Polls member `index` until it answers a linearizable read (which needs a leader).
    async fn wait_healthy(&mut self, index: usize) -> Result<(), TestingError> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            // Any member dying (a port taken, a bad flag) means no quorum: fail now rather
            // than at the deadline.
            self.check_running()?;
            let member = self.member(index)?;
            let last_error = match probe(&member.client_url).await {
                Ok(()) => return Ok(()),
                Err(e) => e.to_string(),
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(TestingError::NotHealthy {
                    name: member.name.clone(),
                    timeout: START_TIMEOUT,
                    last_error,
                    log: log_tail(&member.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails if a member that should be running has exited.
    fn check_running(&mut self) -> Result<(), TestingError> {
        for member in &mut self.members {
            if let Some(child) = member.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                member.child = None;
                return Err(TestingError::Exited {
                    name: member.name.clone(),
                    status: status.to_string(),
                    log: log_tail(&member.log),
                });
            }
        }
        Ok(())
    }

    /// Number of members (running or killed).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never true for a started cluster).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Client URLs of all members, including killed ones, as a store would be configured.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_url.clone()).collect()
    }

    /// Client URL of member `index`.
    pub fn endpoint(&self, index: usize) -> Result<&str, TestingError> {
        Ok(&self.member(index)?.client_url)
    }

    /// Whether member `index` is still running.
    pub fn is_running(&self, index: usize) -> bool {
        self.members.get(index).is_some_and(|m| m.child.is_some())
    }

    /// Kills member `index` with SIGKILL and waits for it to exit, like a crashed machine.
    pub fn kill(&mut self, index: usize) -> Result<(), TestingError> {
        self.members
            .get_mut(index)
            .ok_or(TestingError::NoSuchMember(index))?
            .kill();
        Ok(())
    }

    /// Index of the current leader, asked of the running members; `None` during an election.
    pub async fn leader_index(&self) -> Result<Option<usize>, TestingError> {
        for (i, m) in self.members.iter().enumerate() {
            if m.child.is_none() {
                continue;
            }
            let mut client = connect_one(&m.client_url).await?;
            let status = client.status().await?;
            let member_id = status.header().map(|h| h.member_id());
            if member_id.is_some() && member_id == Some(status.leader()) {
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    /// Sum of the Prometheus metric `name` (over all its label sets) on member `index`, read
    /// from its `/metrics` endpoint; `None` if the member does not report it.
    ///
    /// Useful to see which member serves what, e.g. `etcd_debugging_mvcc_watcher_total`.
    pub fn metric(&self, index: usize, name: &str) -> Result<Option<f64>, TestingError> {
        let body = http_get(&self.member(index)?.client_url, "/metrics")?;
        let mut total = None;
        for line in body.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            // The name must end here: `name value` or `name{labels} value`.
            if !(rest.starts_with(' ') || rest.starts_with('{')) {
                continue;
            }
            if let Some(value) = rest.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) {
                total = Some(total.unwrap_or(0.0) + value);
            }
        }
        Ok(total)
    }

    /// The last lines of member `index`'s log, for failure messages.
    pub fn log_tail(&self, index: usize) -> String {
        self.members
            .get(index)
            .map(|m| log_tail(&m.log))
            .unwrap_or_default()
    }

    /// The directory holding the members' data and logs.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn member(&self, index: usize) -> Result<&Member, TestingError> {
        self.members
            .get(index)
            .ok_or(TestingError::NoSuchMember(index))
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
    }
}

/// A single-member etcd server: the usual fixture of a backend test.
#[derive(Debug)]
pub struct EtcdProcess {
    cluster: EtcdCluster,
}

impl EtcdProcess {
    /// Starts one member and waits until it is healthy.
    pub async fn start() -> Result<Self, TestingError> {
        Ok(Self {
            cluster: EtcdCluster::start(1).await?,
        })
    }

    /// The member's client URL.
    pub fn endpoint(&self) -> String {
        self.cluster
            .endpoints()
            .into_iter()
            .next()
            .unwrap_or_default()
    }

    /// The member's client URL as a list, the shape [`crate::EtcdStore::connect`] takes.
    pub fn endpoints(&self) -> Vec<String> {
        self.cluster.endpoints()
    }

    /// Kills the server (SIGKILL); dropping does this too.
    pub fn kill(&mut self) {
        let _ = self.cluster.kill(0);
    }
}

/// The etcd binary to run: `$RUDDER_ETCD_BIN`, else `etcd` found on `PATH`.
fn etcd_binary() -> Result<PathBuf, TestingError> {
    if let Some(bin) = std::env::var_os(ETCD_BIN_ENV) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(TestingError::EtcdNotFound(bin.display().to_string()))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| TestingError::EtcdNotFound("etcd".into()))
}

fn spawn_error(bin: &Path, e: std::io::Error) -> TestingError {
    if e.kind() == std::io::ErrorKind::NotFound {
        TestingError::EtcdNotFound(bin.display().to_string())
    } else {
        TestingError::Io {
            what: format!("starting {}", bin.display()),
            source: e,
        }
    }
}

/// `n` distinct ports that were free a moment ago. All listeners are held until every port is
/// chosen, so the kernel cannot hand out the same one twice within the set.
fn free_ports(n: usize) -> Result<Vec<u16>, TestingError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("binding a free port"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io("reading a bound port"))
}

/// A token no other cluster on this machine uses, so members of different tests never join
/// each other even if a port is reused.
fn cluster_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "rudder-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn connect_one(url: &str) -> Result<Client, TestingError> {
    let opts = ConnectOptions::new()
        .with_timeout(Duration::from_secs(2))
        .with_connect_timeout(Duration::from_secs(1));
    Ok(Client::connect([url], Some(opts)).await?)
}

/// One linearizable read through member `url`: succeeds only when the cluster has a leader and
/// this member is part of it.
async fn probe(url: &str) -> Result<(), TestingError> {
    let mut client = connect_one(url).await?;
    client
        .get("/health-probe", Some(GetOptions::new().with_count_only()))
        .await?;
    Ok(())
}

/// A minimal HTTP/1.0 GET (the response ends when the server closes the connection), enough for
/// etcd's plain-text `/metrics` without an HTTP client dependency.
fn http_get(base_url: &str, path: &str) -> Result<String, TestingError> {
    let addr = base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).map_err(io(format!("connecting to {addr}")))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io("setting a read timeout"))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")
        .map_err(io(format!("sending GET {path}")))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(io(format!("reading GET {path}")))?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
