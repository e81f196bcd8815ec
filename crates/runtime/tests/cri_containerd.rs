//! The CRI backend against containerd + runc from Debian, through the same conformance suite the
//! embedded runtime passes (`rudder_runtime::testing::conformance`), plus its image calls.
//!
//! Each test starts its OWN containerd (`rudder_runtime::testing::containerd`: root, state,
//! sockets, runc root, CNI config and IPAM state in a temp dir, a bridge `rcri<n>` and a private
//! /24, an offline pause image), never the system's; its Drop removes every sandbox through CRI,
//! then kills what is left by PID and removes cgroups, the bridge, mounts and the dir, even when an
//! assertion failed.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rudder_runtime::cri::CriRuntime;
use rudder_runtime::testing::TestImage;
use rudder_runtime::testing::conformance::{self, Harness};
use rudder_runtime::testing::containerd::{self, alive};
use rudder_runtime::{ContainerFilter, ContainerRuntime, ImageService};

const IMAGE: &str = "docker.io/library/busybox:runtime-test";

/// A private containerd with the busybox image.
struct Containerd(containerd::Containerd);

impl Containerd {
    fn start() -> Containerd {
        let c = containerd::Containerd::start().expect("a private containerd");
        let busybox = TestImage::busybox().expect("busybox image (apt-get install busybox-static)");
        c.import(&busybox, IMAGE).expect("import busybox");
        Containerd(c)
    }

    async fn connect(&self) -> CriRuntime {
        CriRuntime::connect(self.0.options())
            .await
            .expect("connecting to containerd")
    }
}

#[async_trait::async_trait]
impl Harness for Containerd {
    async fn runtime(&self) -> Arc<dyn ContainerRuntime> {
        Arc::new(self.connect().await)
    }

    fn image(&self) -> &str {
        IMAGE
    }

    fn scratch(&self) -> &Path {
        self.0.root()
    }

    async fn pids(&self, rt: &dyn ContainerRuntime) -> Vec<u32> {
        let mut pids: Vec<u32> = rt
            .list_pod_sandboxes()
            .await
            .expect("list sandboxes")
            .iter()
            .filter_map(|s| s.pid)
            .collect();
        for c in rt
            .list_containers(ContainerFilter::default())
            .await
            .expect("list containers")
        {
            pids.extend(c.pid);
        }
        pids.extend(self.0.cgroup_pids());
        // The shims outlive a stopped sandbox and must go with its removal.
        pids.extend(self.0.shim_pids());
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    async fn assert_clean(&self, rt: &dyn ContainerRuntime, pids: &[u32]) {
        // Shims and reaped processes go a moment after RemovePodSandbox returns.
        let deadline = Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|p| alive(*p)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for pid in pids {
            assert!(!alive(*pid), "process {pid} survived removal");
        }
        assert!(rt.list_pod_sandboxes().await.expect("list").is_empty());
        let containers = rt
            .list_containers(ContainerFilter::default())
            .await
            .expect("list");
        assert!(containers.is_empty(), "{containers:?}");
        let procs = self.0.cgroup_pids();
        assert!(procs.is_empty(), "processes left in our cgroups: {procs:?}");
        // The pod cgroups (`<root>/pod<uid>`) are gone; the root itself may stay.
        let left: Vec<PathBuf> = self.0.cgroups_left();
        assert!(left.is_empty(), "cgroups left: {left:?}");
        let mounts: Vec<String> = self
            .0
            .mounts()
            .into_iter()
            .filter(|m| {
                !m.contains("/io.containerd.snapshotter.v1.overlayfs/snapshots/")
                    || m.ends_with("/rootfs")
            })
            .collect();
        assert!(mounts.is_empty(), "mounts left: {mounts:?}");
        let logs = fs::read_dir(self.0.root().join("logs"))
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(logs, 0, "log directories left");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_logs_env_workdir_and_args() {
    conformance::echo_logs_env_workdir_and_args(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_the_sandbox_namespaces_and_exec_works() {
    conformance::containers_share_the_sandbox_namespaces_and_exec_works(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_ends_in_oom_kill() {
    conformance::memory_limit_ends_in_oom_kill(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_kills_after_the_grace_period() {
    conformance::stop_kills_after_the_grace_period(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_users_capabilities_and_read_only_root() {
    conformance::mounts_users_capabilities_and_read_only_root(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_adopts_running_sandboxes_and_containers() {
    conformance::a_new_runtime_adopts_running_sandboxes_and_containers(&Containerd::start()).await;
}

/// The CRI image calls against containerd's store, and the sandbox's CNI address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_pod_addresses() {
    let c = Containerd::start();
    let rt = c.connect().await;
    assert!(rt.name().starts_with("containerd://"), "{}", rt.name());
    assert!(rt.image_present(IMAGE).await.expect("status"));
    assert!(
        !rt.image_present("docker.io/library/nothere:1")
            .await
            .expect("status")
    );
    let status = rt
        .image_status(IMAGE)
        .await
        .expect("status")
        .expect("present");
    assert!(status.id.starts_with("sha256:"), "{status:?}");
    assert!(status.repo_tags.iter().any(|t| t == IMAGE), "{status:?}");
    let all = rt.list_images().await.expect("list");
    assert!(all.iter().any(|i| i.id == status.id));
    // containerd refreshes the figure every 10 s, so a fresh one may still say 0.
    rt.image_fs_used_bytes().await.expect("fs info");
    // No registry here: a pull fails with the runtime's error, not a hang or a panic.
    let err = rt
        .pull("127.0.0.1:1/none:1")
        .await
        .expect_err("no registry");
    assert!(err.to_string().contains("PullImage"), "{err}");

    let sb = rt
        .run_pod_sandbox(conformance::sandbox_config("addr"))
        .await
        .expect("sandbox");
    // Asked again for the same pod and attempt (an agent that lost the answer), the runtime
    // adopts the sandbox holding the name instead of failing on it forever.
    let again = rt
        .run_pod_sandbox(conformance::sandbox_config("addr"))
        .await
        .expect("the same sandbox again");
    assert_eq!(again, sb);
    let st = rt.pod_sandbox_status(&sb).await.expect("status");
    let ip = st.ip.expect("CNI gave the pod an address");
    assert!(ip.starts_with("10.251."), "{ip}");
    let id = conformance::run(
        &rt,
        &sb,
        conformance::container_config(IMAGE, "c", "exec sleep 100"),
    )
    .await;
    assert_eq!(
        rt.container_status(&id).await.expect("status").image_id,
        status.id
    );
    rt.remove_pod_sandbox(&sb).await.expect("remove");

    // A host-network sandbox has no namespace of its own and no pod address.
    let mut cfg = conformance::sandbox_config("hostnet");
    cfg.host_network = true;
    let sb = rt.run_pod_sandbox(cfg).await.expect("sandbox");
    let st = rt.pod_sandbox_status(&sb).await.expect("status");
    assert_eq!((st.netns_path, st.ip), (None, None));
    let id = conformance::run(
        &rt,
        &sb,
        conformance::container_config(IMAGE, "h", "exec sleep 100"),
    )
    .await;
    let pid = rt
        .container_status(&id)
        .await
        .expect("status")
        .pid
        .expect("pid");
    let ino = |p: String| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).expect("ns"));
    assert_eq!(
        ino(format!("/proc/{pid}/ns/net")),
        ino("/proc/self/ns/net".into())
    );
    rt.remove_pod_sandbox(&sb).await.expect("remove");

    rt.remove_image(IMAGE).await.expect("remove image");
    assert!(!rt.image_present(IMAGE).await.expect("status"));
    rt.remove_image(IMAGE)
        .await
        .expect("removing twice is fine");
}

/// Before containerd has a CNI config, a pod sandbox is refused up front (containerd would
/// leave a failed one holding the pod's name); a host-network one needs no CNI and runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pod_sandbox_before_the_network_is_ready() {
    let c = containerd::Containerd::start_bare().expect("a private containerd");
    let rt = CriRuntime::connect(c.options()).await.expect("connect");
    let err = rt
        .run_pod_sandbox(conformance::sandbox_config("early"))
        .await
        .expect_err("no CNI config yet");
    assert!(err.to_string().contains("not ready"), "{err}");
    assert!(rt.list_pod_sandboxes().await.expect("list").is_empty());
    let mut cfg = conformance::sandbox_config("early-host");
    cfg.host_network = true;
    let sb = rt.run_pod_sandbox(cfg).await.expect("host-network sandbox");
    rt.remove_pod_sandbox(&sb).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_on_a_terminal_has_the_clients_size() {
    conformance::exec_on_a_terminal_has_the_clients_size(
        &Containerd::start(),
        conformance::InitialSize::AfterStart,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_streams_output_and_stdin() {
    rudder_runtime::testing::conformance_attach::attach_streams_output_and_stdin(
        &Containerd::start(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_terminal() {
    rudder_runtime::testing::conformance_attach::attach_to_a_terminal(&Containerd::start()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_container_sees_its_targets_processes() {
    rudder_runtime::testing::conformance_pid::a_debug_container_sees_its_targets_processes(
        &Containerd::start(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_of_a_pod_share_one_process_namespace() {
    rudder_runtime::testing::conformance_pid::containers_of_a_pod_share_one_process_namespace(
        &Containerd::start(),
    )
    .await;
}
