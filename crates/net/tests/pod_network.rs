//! As root: two network namespaces made by the test get addresses on a bridge and reach each
//! other and the host; detaching removes their interfaces. Everything created is removed, also
//! when the test fails.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::time::Duration;

use rudder_net::{NetworkOptions, PodNetwork};

/// A network namespace held by a parked thread; dropping it lets the thread and the namespace
/// go.
struct Netns {
    path: PathBuf,
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Netns {
    fn new() -> Netns {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: a new network namespace for this thread only; it shares nothing whose
            // namespace matters with other threads.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
                .expect("unshare");
            let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get());
            let _ = wait.recv();
        });
        let tid = tid_rx.recv().expect("namespace thread");
        Netns {
            path: format!("/proc/{}/task/{tid}/ns/net", std::process::id()).into(),
            release: Some(release),
            thread: Some(thread),
        }
    }

    /// Runs `f` on a thread inside this namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path.clone();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            f()
        })
        .join()
        .expect("netns thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.release.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Removes the bridge even if the test fails.
struct Bridge(String);

impl Drop for Bridge {
    fn drop(&mut self) {
        // Its own thread and runtime: the test's runtime may be the one dropping this.
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Runtime::new() {
                let _ = rt.block_on(rudder_net::remove_bridge(&name));
            }
        })
        .join();
    }
}

fn exchange(listener_ns: &Netns, client_ns: Option<&Netns>, ip: Ipv4Addr) -> String {
    let addr = SocketAddr::from((ip, 7070));
    let server = {
        let (tx, rx) = std::sync::mpsc::channel();
        let path = listener_ns.path.clone();
        let handle = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns");
            let l = TcpListener::bind(addr).expect("bind in the pod");
            let _ = tx.send(());
            let (mut c, _) = l.accept().expect("accept");
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).expect("read");
            c.write_all(b"pong").expect("write");
            String::from_utf8_lossy(&buf).into_owned()
        });
        rx.recv().expect("listening");
        handle
    };
    let client = move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        s.write_all(b"ping!").expect("send");
        let mut out = String::new();
        s.read_to_string(&mut out).expect("answer");
        out
    };
    let answer = match client_ns {
        Some(ns) => ns.run(client),
        None => client(),
    };
    let got = server.join().expect("server");
    format!("{got}/{answer}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_reach_each_other_and_the_host() {
    let bridge = Bridge(format!("rt{}", std::process::id() % 100_000));
    let state = tempfile::tempdir().expect("tempdir");
    let subnet = "10.251.7.0/24".parse().expect("cidr");
    let net = PodNetwork::start(
        subnet,
        NetworkOptions {
            bridge: bridge.0.clone(),
            state_dir: state.path().to_owned(),
        },
    )
    .await
    .expect("bridge");
    let (a, b) = (Netns::new(), Netns::new());
    let ip_a = net.attach("pod-a", &a.path).await.expect("attach a");
    let ip_b = net.attach("pod-b", &b.path).await.expect("attach b");
    assert_eq!(ip_a, Ipv4Addr::new(10, 251, 7, 2));
    assert_eq!(ip_b, Ipv4Addr::new(10, 251, 7, 3));
    // Attaching again changes nothing.
    assert_eq!(net.attach("pod-a", &a.path).await.expect("again"), ip_a);

    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let (a2, b2) = (a.clone(), b.clone());
    let pod_to_pod = tokio::task::spawn_blocking(move || exchange(&b2, Some(&a2), ip_b))
        .await
        .expect("exchange");
    assert_eq!(pod_to_pod, "ping!/pong");
    let b3 = b.clone();
    let host_to_pod = tokio::task::spawn_blocking(move || exchange(&b3, None, ip_b))
        .await
        .expect("exchange");
    assert_eq!(host_to_pod, "ping!/pong");

    // A restarted agent finds the allocations again.
    let again = PodNetwork::start(
        subnet,
        NetworkOptions {
            bridge: bridge.0.clone(),
            state_dir: state.path().to_owned(),
        },
    )
    .await
    .expect("restart");
    assert_eq!(again.ip_of("pod-b").await, Some(ip_b));

    net.detach("pod-a").await.expect("detach a");
    net.detach("pod-b").await.expect("detach b");
    assert_eq!(net.ip_of("pod-a").await, None);
    let ends = [rudder_net::host_end("pod-a"), rudder_net::host_end("pod-b")];
    let links = std::fs::read_dir("/sys/class/net")
        .expect("links")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| ends.contains(n))
        .count();
    assert_eq!(links, 0, "host ends left behind");
}
