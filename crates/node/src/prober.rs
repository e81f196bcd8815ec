//! Liveness, readiness and startup probes: when each runs, what its results mean (thresholds,
//! initial delay, startup gating), and running them — `exec` in the container, `tcpSocket` and
//! `httpGet` from inside the pod's network namespace (pods have no routable address of their own
//! yet, so the agent dials the pod's loopback from within its namespace).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use rudder_runtime::{ContainerId, ContainerRuntime};

/// The three kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

/// Upstream's defaults: period 10 s, timeout 1 s, success 1, failure 3.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    /// The timing of `p`, zeros meaning the defaults (they are plain ints upstream).
    pub fn of(p: &Probe) -> Self {
        let secs = |v: Option<i32>, default: u64| {
            Duration::from_secs(
                v.and_then(|v| u64::try_from(v).ok())
                    .filter(|v| *v > 0)
                    .unwrap_or(default),
            )
        };
        let count = |v: Option<i32>, default: u32| {
            v.and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(default)
        };
        Self {
            initial_delay: Duration::from_secs(
                p.initial_delay_seconds
                    .and_then(|v| u64::try_from(v).ok())
                    .unwrap_or(0),
            ),
            period: secs(p.period_seconds, 10),
            timeout: secs(p.timeout_seconds, 1),
            success_threshold: count(p.success_threshold, 1),
            failure_threshold: count(p.failure_threshold, 3),
        }
    }
}

/// The running tally of one probe of one container run.
#[derive(Clone, Debug, PartialEq)]
pub struct Tally {
    pub next_at: Instant,
    pub successes: u32,
    pub failures: u32,
    /// The probe's verdict: passing (after `success_threshold` successes) or not.
    pub passing: bool,
}

impl Tally {
    /// A new tally for a container that started at `started`.
    pub fn new(timing: &Timing, started: Instant, passing: bool) -> Self {
        Self {
            next_at: started + timing.initial_delay,
            successes: 0,
            failures: 0,
            passing,
        }
    }
}

/// What a probe result means for the container.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing changes.
    Keep,
    /// The container must be killed (liveness or startup failed `failure_threshold` times).
    Kill,
}

/// Records one result in `tally` and says what follows.
pub fn record(kind: Kind, timing: &Timing, tally: &mut Tally, ok: bool, now: Instant) -> Verdict {
    tally.next_at = now + timing.period;
    if ok {
        tally.failures = 0;
        tally.successes = tally.successes.saturating_add(1);
        if tally.successes >= timing.success_threshold {
            tally.passing = true;
        }
        Verdict::Keep
    } else {
        tally.successes = 0;
        tally.failures = tally.failures.saturating_add(1);
        if tally.failures >= timing.failure_threshold {
            tally.passing = false;
            if matches!(kind, Kind::Liveness | Kind::Startup) {
                return Verdict::Kill;
            }
        }
        Verdict::Keep
    }
}

/// Where to dial a `tcpSocket` or `httpGet` probe: a port number, or a named container port.
pub fn resolve_port(port: &IntOrString, ports: &[(String, i32)]) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(name) => ports
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, p)| u16::try_from(*p).ok())
            .or_else(|| name.parse().ok()),
    }
}

/// Runs `probe` once against container `id` (whose sandbox's network namespace is `netns`).
pub async fn run(
    probe: &Probe,
    runtime: &dyn ContainerRuntime,
    id: &ContainerId,
    netns: Option<PathBuf>,
    ports: &[(String, i32)],
    timeout: Duration,
) -> bool {
    if let Some(exec) = &probe.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        return matches!(runtime.exec_sync(id, cmd, timeout).await, Ok(r) if r.exit_code == 0);
    }
    let Some(netns) = netns else { return false };
    if let Some(tcp) = &probe.tcp_socket {
        let Some(port) = resolve_port(&tcp.port, ports) else {
            return false;
        };
        return in_netns(netns, timeout, move |t| {
            std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), t).is_ok()
        })
        .await;
    }
    if let Some(http) = &probe.http_get {
        let Some(port) = resolve_port(&http.port, ports) else {
            return false;
        };
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        return in_netns(netns, timeout, move |t| http_ok(port, &path, t)).await;
    }
    false
}

/// Runs a lifecycle hook (`postStart`/`preStop`): `exec`, `httpGet`, `tcpSocket` as a probe
/// would, or `sleep`. Returns whether it succeeded within `timeout`.
pub async fn run_hook(
    hook: &k8s_openapi::api::core::v1::LifecycleHandler,
    runtime: &dyn ContainerRuntime,
    id: &ContainerId,
    netns: Option<PathBuf>,
    ports: &[(String, i32)],
    timeout: Duration,
) -> bool {
    if let Some(sleep) = &hook.sleep {
        let secs = u64::try_from(sleep.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs).min(timeout)).await;
        return true;
    }
    let as_probe = Probe {
        exec: hook.exec.clone(),
        http_get: hook.http_get.clone(),
        tcp_socket: hook.tcp_socket.clone(),
        ..Default::default()
    };
    run(&as_probe, runtime, id, netns, ports, timeout).await
}

/// An HTTP/1.1 GET to the pod's loopback: 200–399 is success, as upstream.
fn http_ok(port: u16, path: &str, timeout: Duration) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout)
    else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.34\r\nConnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 32];
    let Ok(n) = s.read(&mut head) else {
        return false;
    };
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .is_some_and(|c| (200..400).contains(&c))
}

/// Runs `f` in the network namespace at `netns`, giving up after `timeout` (plus a second for
/// the thread to start).
async fn in_netns(
    netns: PathBuf,
    timeout: Duration,
    f: impl FnOnce(Duration) -> bool + Send + 'static,
) -> bool {
    tokio::time::timeout(
        timeout + Duration::from_secs(1),
        crate::netns::run(netns, move || f(timeout)),
    )
    .await
    .is_ok_and(|r| r.unwrap_or(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn thresholds() {
        let now = Instant::now();
        // (kind, thresholds, results, passing after, last verdict)
        let cases = [
            (Kind::Readiness, (1, 3), vec![true], true, Verdict::Keep),
            (Kind::Readiness, (2, 3), vec![true], false, Verdict::Keep),
            (
                Kind::Readiness,
                (2, 3),
                vec![true, true],
                true,
                Verdict::Keep,
            ),
            (
                Kind::Readiness,
                (1, 3),
                vec![true, false, false, false],
                false,
                Verdict::Keep,
            ),
            (
                Kind::Readiness,
                (1, 3),
                vec![true, false, false],
                true,
                Verdict::Keep,
            ),
            (
                Kind::Liveness,
                (1, 3),
                vec![false, false, false],
                false,
                Verdict::Kill,
            ),
            (
                Kind::Liveness,
                (1, 3),
                vec![false, false, true, false, false],
                true,
                Verdict::Keep,
            ),
            (
                Kind::Startup,
                (1, 2),
                vec![false, false],
                false,
                Verdict::Kill,
            ),
        ];
        for (kind, (s, f), results, passing, verdict) in cases {
            let t = timing(s, f);
            let mut tally = Tally::new(&t, now, kind == Kind::Liveness);
            let mut last = Verdict::Keep;
            for ok in &results {
                last = record(kind, &t, &mut tally, *ok, now);
            }
            assert_eq!(
                (tally.passing, last),
                (passing, verdict),
                "{kind:?} {results:?}"
            );
        }
    }

    #[test]
    fn defaults_and_ports() {
        let t = Timing::of(&Probe::default());
        assert_eq!(
            (
                t.period,
                t.timeout,
                t.success_threshold,
                t.failure_threshold
            ),
            (Duration::from_secs(10), Duration::from_secs(1), 1, 3)
        );
        let ports = vec![("http".to_owned(), 8080)];
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &ports),
            Some(8080)
        );
        assert_eq!(resolve_port(&IntOrString::Int(81), &ports), Some(81));
        assert_eq!(
            resolve_port(&IntOrString::String("nope".into()), &ports),
            None
        );
    }
}
