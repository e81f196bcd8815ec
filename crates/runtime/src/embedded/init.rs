//! The container's first process, between fork and exec: join cgroups, build the root
//! filesystem in a private mount namespace (overlayfs, `/proc`, `/dev`, `/sys`, bind mounts),
//! pivot_root into it, drop privileges, exec the user's program.
//!
//! It runs in the shim's child, already in the sandbox's net/IPC/UTS namespaces and either PID 1
//! of the container's fresh PID namespace or a process of a shared one (the pod's, or a target
//! container's: the `/proc` it mounts then shows that namespace's processes). Errors go back to
//! the shim as text on `sync`, a close-on-exec pipe: EOF without text means the exec succeeded.

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::{CapabilitySet, CapabilitySets};

use super::state::ContainerSpec;

type Step<T> = std::result::Result<T, String>;

fn at<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// The main process's stdio, as the monitor hands it over.
pub(crate) enum Stdio {
    /// Pipes: stdin (`None`: `/dev/null`), stdout and stderr.
    Pipes {
        stdin: Option<OwnedFd>,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A terminal from the container's own devpts, opened once it is mounted (so inside the
    /// container it is a `/dev/pts/N` that exists there); its master side goes back to the
    /// monitor over `console`, a unix socket.
    Terminal { console: OwnedFd },
}

/// Sets up and execs; returns only by exiting the process.
pub(crate) fn run(spec: &ContainerSpec, dir: &Path, stdio: Stdio, mut sync: fs::File) -> ! {
    let err = match setup_and_exec(spec, dir, stdio) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = sync.write_all(err.as_bytes());
    // _exit: this is a forked copy of the shim; running its atexit/destructors twice is wrong.
    exit_now(127)
}

/// `_exit(2)`: leaves without running the parent's atexit handlers or flushing its buffers.
pub(crate) fn exit_now(code: i32) -> ! {
    // SAFETY: _exit takes no pointers and never returns.
    unsafe { libc::_exit(code) }
}

fn setup_and_exec(
    spec: &ContainerSpec,
    dir: &Path,
    stdio: Stdio,
) -> Step<std::convert::Infallible> {
    rustix::process::umask(Mode::empty());
    // A terminal replaces the monitor's stdio once the container's /dev/pts exists.
    let console = match stdio {
        Stdio::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            let stdin = match stdin {
                Some(fd) => fd,
                None => fs::File::open("/dev/null")
                    .map_err(at("open /dev/null"))?
                    .into(),
            };
            rustix::stdio::dup2_stdin(stdin.as_fd()).map_err(at("dup2 stdin"))?;
            rustix::stdio::dup2_stdout(stdout.as_fd()).map_err(at("dup2 stdout"))?;
            rustix::stdio::dup2_stderr(stderr.as_fd()).map_err(at("dup2 stderr"))?;
            None
        }
        Stdio::Terminal { console } => Some(console),
    };

    // Join the cgroups first, while the host's /sys/fs/cgroup is still visible; "0" is "me".
    for cg in &spec.cgroup_dirs {
        let procs = cg.join("cgroup.procs");
        fs::write(&procs, "0").map_err(at(format!("join {}", procs.display())))?;
    }

    // SAFETY: this process has a single thread (forked from the single-threaded shim), so
    // unsharing the mount namespace cannot surprise another thread.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(at("unshare mount namespace"))?;
    // Nothing mounted from here on may propagate back to the host.
    rustix::mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(at("make / private"))?;

    let rootfs = dir.join("rootfs");
    mount_rootfs(spec, dir, &rootfs)?;
    for m in &spec.mounts {
        bind_mount(&rootfs, m)?;
    }

    std::env::set_current_dir(&rootfs).map_err(at("chdir rootfs"))?;
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
    // detaches the old root without needing a directory for it inside the container.
    rustix::process::pivot_root(".", ".").map_err(at("pivot_root"))?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).map_err(at("detach old root"))?;
    std::env::set_current_dir("/").map_err(at("chdir /"))?;
    if let Some(console) = console {
        terminal(&console, spec.uid, spec.gid)?;
    }

    for m in spec.mounts.iter().filter(|m| m.readonly) {
        rustix::mount::mount_remount(
            m.container_path.as_str(),
            MountFlags::BIND | MountFlags::RDONLY,
            "",
        )
        .map_err(at(format!("read-only {}", m.container_path)))?;
    }
    if !spec.privileged {
        mask_proc();
    }
    if spec.read_only_rootfs {
        rustix::mount::mount_remount("/", MountFlags::BIND | MountFlags::RDONLY, "")
            .map_err(at("read-only rootfs"))?;
    }

    let _ = fs::create_dir_all(&spec.cwd);
    std::env::set_current_dir(&spec.cwd).map_err(at(format!("working dir {}", spec.cwd)))?;
    let program = lookup(&spec.argv[0], &spec.env)?;
    let argv = cstrings(&spec.argv)?;
    let envp = cstrings(&spec.env)?;

    drop_to(
        spec.capabilities,
        spec.uid,
        spec.gid,
        &spec.groups,
        spec.no_new_privs,
    )?;

    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut envp_ptrs: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    envp_ptrs.push(std::ptr::null());
    // The shim, a Rust program, ignores SIGPIPE, and an ignored signal stays ignored across
    // exec: the user's program must start with the default (`yes | head` ends `yes`), as it
    // does under runc.
    // SAFETY: resetting a disposition to SIG_DFL installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // SAFETY: all three are NUL-terminated arrays of pointers into CStrings that outlive the
    // call; execve only returns on failure.
    unsafe { libc::execve(program.as_ptr(), argv_ptrs.as_ptr(), envp_ptrs.as_ptr()) };
    Err(format!(
        "exec {:?}: {}",
        spec.argv[0],
        std::io::Error::last_os_error()
    ))
}

/// Opens a terminal in the container's devpts, makes it this process's stdio and controlling
/// terminal (job control and ^C work for the container's shell), owned by the container's user
/// as runc does, and sends its master side to the monitor.
fn terminal(console: &OwnedFd, uid: u32, gid: u32) -> Step<()> {
    let pty = super::pty::open(Path::new("/dev/pts/ptmx")).map_err(at("open /dev/pts/ptmx"))?;
    let _ = rustix::fs::fchown(
        &pty.slave,
        Some(rustix::process::Uid::from_raw(uid)),
        Some(rustix::process::Gid::from_raw(gid)),
    );
    rustix::process::setsid().map_err(at("setsid"))?;
    rustix::process::ioctl_tiocsctty(&pty.slave).map_err(at("set controlling terminal"))?;
    rustix::stdio::dup2_stdin(pty.slave.as_fd()).map_err(at("dup2 stdin"))?;
    rustix::stdio::dup2_stdout(pty.slave.as_fd()).map_err(at("dup2 stdout"))?;
    rustix::stdio::dup2_stderr(pty.slave.as_fd()).map_err(at("dup2 stderr"))?;
    drop(pty.slave);
    super::pty::send_fd(console, &pty.master).map_err(at("send the terminal to the monitor"))
}

fn cstrings(items: &[String]) -> Step<Vec<CString>> {
    items
        .iter()
        .map(|s| CString::new(s.as_str()).map_err(at("NUL in argument")))
        .collect()
}

/// `argv[0]` as execve needs it: itself if it has a `/`, else the first executable in `PATH`.
pub(super) fn lookup(arg0: &str, env: &[String]) -> Step<CString> {
    if arg0.contains('/') {
        return CString::new(arg0).map_err(at("NUL in command"));
    }
    let path = env
        .iter()
        .find_map(|kv| kv.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(arg0);
        if let Ok(md) = fs::metadata(&candidate)
            && md.is_file()
            && md.permissions().mode() & 0o111 != 0
        {
            return CString::new(candidate.into_os_string().into_encoded_bytes())
                .map_err(at("NUL in path"));
        }
    }
    Err(format!("exec {arg0:?}: executable file not found in $PATH"))
}

fn mount_rootfs(spec: &ContainerSpec, dir: &Path, rootfs: &Path) -> Step<()> {
    let lower: Vec<String> = spec
        .lower_dirs
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        dir.join("upper").display(),
        dir.join("work").display()
    );
    let data = CString::new(data).map_err(at("overlay options"))?;
    rustix::mount::mount("overlay", rootfs, "overlay", MountFlags::empty(), &*data)
        .map_err(at("mount overlay rootfs"))?;

    let sub = |p: &str| rootfs.join(p);
    let mkdir = |p: &Path| fs::create_dir_all(p).map_err(at(format!("mkdir {}", p.display())));
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;

    mkdir(&sub("proc"))?;
    rustix::mount::mount("proc", sub("proc"), "proc", nosuid_nodev_noexec, None)
        .map_err(at("mount /proc"))?;

    mkdir(&sub("dev"))?;
    rustix::mount::mount(
        "tmpfs",
        sub("dev"),
        "tmpfs",
        MountFlags::NOSUID | MountFlags::STRICTATIME,
        c"mode=755,size=65536k",
    )
    .map_err(at("mount /dev"))?;
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        let path = sub("dev").join(name);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o666),
            rustix::fs::makedev(major, minor),
        )
        .map_err(at(format!("mknod {name}")))?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        std::os::unix::fs::symlink(target, sub("dev").join(link))
            .map_err(at(format!("symlink /dev/{link}")))?;
    }
    mkdir(&sub("dev/pts"))?;
    rustix::mount::mount(
        "devpts",
        sub("dev/pts"),
        "devpts",
        MountFlags::NOSUID | MountFlags::NOEXEC,
        c"newinstance,ptmxmode=0666,mode=0620,gid=5",
    )
    .map_err(at("mount /dev/pts"))?;
    mkdir(&sub("dev/shm"))?;
    rustix::mount::mount(
        "shm",
        sub("dev/shm"),
        "tmpfs",
        nosuid_nodev_noexec,
        c"mode=1777,size=65536k",
    )
    .map_err(at("mount /dev/shm"))?;

    mkdir(&sub("sys"))?;
    let ro = if spec.privileged {
        MountFlags::empty()
    } else {
        MountFlags::RDONLY
    };
    rustix::mount::mount("sysfs", sub("sys"), "sysfs", nosuid_nodev_noexec | ro, None)
        .map_err(at("mount /sys"))?;
    Ok(())
}

/// Opens (creating if missing) `container_path` inside `rootfs` with every path component
/// resolved as if `rootfs` were `/`: an image's symlink (`/data -> /etc`) must not make a
/// volume land on the host.
fn open_in_root(rootfs: &Path, container_path: &str, as_dir: bool) -> Step<OwnedFd> {
    let root = rustix::fs::open(rootfs, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
        .map_err(at("open rootfs"))?;
    let resolve = |p: &Path, flags: OFlags| {
        let p = if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        };
        rustix::fs::openat2(
            &root,
            p,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )
    };
    let rel: PathBuf = Path::new(container_path)
        .components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .collect();
    let mut prefix = PathBuf::new();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let parent = prefix.clone();
        prefix.push(part);
        let last = i + 1 == parts.len();
        if resolve(&prefix, OFlags::PATH).is_ok() {
            continue;
        }
        let parent_fd = resolve(&parent, OFlags::PATH | OFlags::DIRECTORY)
            .map_err(at(format!("resolve {}", parent.display())))?;
        if last && !as_dir {
            rustix::fs::openat(
                &parent_fd,
                part.as_os_str(),
                OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o644),
            )
            .map_err(at(format!("create {container_path}")))?;
        } else {
            rustix::fs::mkdirat(&parent_fd, part.as_os_str(), Mode::from_raw_mode(0o755))
                .map_err(at(format!("mkdir {}", prefix.display())))?;
        }
    }
    resolve(&prefix, OFlags::PATH).map_err(at(format!("resolve {container_path}")))
}

fn bind_mount(rootfs: &Path, m: &crate::types::Mount) -> Step<()> {
    let is_dir = fs::metadata(&m.host_path)
        .map_err(at(format!("mount source {}", m.host_path.display())))?
        .is_dir();
    let target = open_in_root(rootfs, &m.container_path, is_dir)?;
    // Mounting onto /proc/self/fd/N mounts on what the fd resolved to, never re-walking a path
    // an image could have planted symlinks in.
    let target_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
    rustix::mount::mount_bind_recursive(&m.host_path, target_path.as_str())
        .map_err(at(format!("bind mount {}", m.container_path)))?;
    Ok(())
}

/// Hides the /proc files that leak host information or control the host, as runc's default
/// masked and read-only paths do. Best effort: a kernel without one of them is fine.
fn mask_proc() {
    for p in [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/sched_debug",
    ] {
        if Path::new(p).exists() {
            let _ = rustix::mount::mount_bind("/dev/null", p);
        }
    }
    for p in ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"] {
        if Path::new(p).exists() && rustix::mount::mount_bind(p, p).is_ok() {
            let _ = rustix::mount::mount_remount(p, MountFlags::BIND | MountFlags::RDONLY, "");
        }
    }
}

/// Bounding set, groups, gid, uid, capability sets, no_new_privs, in the order that keeps the
/// capabilities each step needs until it is done.
pub(crate) fn drop_to(
    caps: u64,
    uid: u32,
    gid: u32,
    groups: &[u32],
    no_new_privs: bool,
) -> Step<()> {
    for bit in 0..64u32 {
        if caps & (1u64 << bit) != 0 {
            continue;
        }
        match rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
            1u64 << bit,
        )) {
            Ok(()) => {}
            // Past the kernel's last capability.
            Err(e) if e == rustix::io::Errno::INVAL => break,
            Err(e) => return Err(format!("drop capability {bit}: {e}")),
        }
    }
    let groups: Vec<rustix::process::Gid> = groups
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    rustix::thread::set_thread_groups(&groups).map_err(at("setgroups"))?;
    rustix::thread::set_thread_gid(rustix::process::Gid::from_raw(gid)).map_err(at("setgid"))?;
    rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(uid)).map_err(at("setuid"))?;
    if uid == 0 {
        let kept = CapabilitySet::from_bits_retain(caps);
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: kept,
                permitted: kept,
                inheritable: CapabilitySet::empty(),
            },
        )
        .map_err(at("capset"))?;
    }
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).map_err(at("no_new_privs"))?;
    }
    Ok(())
}
