//! Running a bit of blocking work inside a pod's network namespace (probes, hooks, port
//! forwarding) on a thread of its own: a thread's namespace is its own, so the agent's other
//! threads stay in the host's.

use std::path::PathBuf;

/// Runs `f` on a new thread that joined the network namespace at `netns`.
pub async fn run<T: Send + 'static>(
    netns: PathBuf,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns".into())
        .spawn(move || {
            let joined = std::fs::File::open(&netns).and_then(|ns| {
                rustix::thread::move_into_link_name_space(
                    std::os::fd::AsFd::as_fd(&ns),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .map_err(std::io::Error::from)
            });
            let _ = tx.send(joined.map(|()| f()));
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the namespace thread died"))?
}

/// Connects to `port` on the loopback of the network namespace at `netns` (IPv4, then IPv6).
/// The socket stays in that namespace; the caller uses it from anywhere.
pub async fn connect_loopback(
    netns: PathBuf,
    port: u16,
    timeout: std::time::Duration,
) -> std::io::Result<tokio::net::TcpStream> {
    let stream = run(netns, move || {
        std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), timeout).or_else(
            |v4| {
                std::net::TcpStream::connect_timeout(
                    &(std::net::Ipv6Addr::LOCALHOST, port).into(),
                    timeout,
                )
                .map_err(|_| v4)
            },
        )
    })
    .await??;
    stream.set_nonblocking(true)?;
    let _ = stream.set_nodelay(true);
    tokio::net::TcpStream::from_std(stream)
}
