//! The shim: a small process the runtime spawns (`rudder-shim`, or `rudder` in shim mode) so
//! that sandboxes and containers outlive the agent and their exits are still recorded.
//!
//! ```text
//! rudder-shim sandbox   <sandbox-dir>          hold the pod's net/IPC/UTS (and shared PID) namespaces
//! rudder-shim container <container-dir>        start a container and monitor it
//! rudder-shim exec      <container-dir> -- cmd run cmd in a running container (stdio inherited)
//! ```
//!
//! `sandbox` and `container` daemonize: the process the runtime started forks a monitor, waits
//! for it to report over a pipe ("OK <pid>" or "ERR <message>"), prints that and exits, so the
//! runtime reaps it at once; the monitor, in its own session with stdio on /dev/null, is
//! reparented to init and keeps running when the agent dies. The container monitor forks the
//! container's init (see `init.rs`), holds its stdio (pipes, or a terminal; with `stdin: true`
//! its stdin too), copies its output to the CRI log and serves `kubectl attach` (`stdio.rs`),
//! waits for it and writes `exit.json`. The shim is single-threaded whenever it forks or
//! changes namespaces.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rustix::pipe::PipeFlags;
use rustix::process::{Pid, WaitOptions};
use rustix::thread::{LinkNameSpaceType, UnshareFlags};

use super::cgroups::{kill_all_in, oom_kills_at};
use super::init::{self, exit_now};
use super::logs::LogFile;
use super::state::{
    ContainerRecord, ExitRecord, ProcRef, SandboxRecord, StartedRecord, read_json, write_atomic,
    write_json,
};
use super::stdio;
use crate::types::ExitReason;

type Step<T> = std::result::Result<T, String>;

fn at<E: std::fmt::Display>(what: impl std::fmt::Display) -> impl FnOnce(E) -> String {
    move |e| format!("{what}: {e}")
}

/// The shim's entry point: `args` without the program name. Returns the exit code.
pub fn shim_main(args: Vec<OsString>) -> i32 {
    let args: Vec<String> = args
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sandbox", dir] => daemonize(Path::new(dir), |r| sandbox(Path::new(dir), r)),
        ["container", dir] => daemonize(Path::new(dir), |r| container(Path::new(dir), r)),
        ["exec", dir, "--", cmd @ ..] if !cmd.is_empty() => exec_main(dir, cmd, false),
        ["exec", dir, "--tty", "--", cmd @ ..] if !cmd.is_empty() => exec_main(dir, cmd, true),
        _ => {
            eprintln!("usage: rudder-shim sandbox|container DIR | exec DIR [--tty] -- CMD...");
            2
        }
    }
}

/// fork(2) of a single-threaded process; `None` in the child.
fn fork() -> Step<Option<u32>> {
    // SAFETY: every caller is single-threaded at this point (the shim starts no threads before
    // its forks), so the child may run arbitrary code, not only async-signal-safe calls.
    match unsafe { libc::fork() } {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => Ok(None),
        pid => Ok(Some(pid as u32)),
    }
}

/// The monitor's channel back to the process the runtime waits for.
type Report = Option<File>;

fn report(r: &mut Report, msg: &str) {
    if let Some(mut f) = r.take() {
        let _ = f.write_all(msg.as_bytes());
    }
}

fn daemonize(dir: &Path, body: impl FnOnce(&mut Report) -> Step<()>) -> i32 {
    let (rd, wr) = match rustix::pipe::pipe_with(PipeFlags::CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("pipe: {e}");
            return 1;
        }
    };
    match fork() {
        Err(e) => {
            eprintln!("{e}");
            1
        }
        Ok(None) => {
            drop(rd);
            let mut rep: Report = Some(File::from(wr));
            let result = detach(&dir.join("shim.log")).and_then(|()| body(&mut rep));
            if let Err(e) = result {
                report(&mut rep, &format!("ERR {e}"));
                exit_now(1);
            }
            exit_now(0)
        }
        Ok(Some(_)) => {
            drop(wr);
            let mut msg = String::new();
            let _ = File::from(rd).read_to_string(&mut msg);
            match msg.strip_prefix("OK ") {
                Some(rest) => {
                    println!("{rest}");
                    0
                }
                None => {
                    let msg = msg.strip_prefix("ERR ").unwrap_or(&msg);
                    eprintln!("{}", if msg.is_empty() { "monitor died" } else { msg });
                    1
                }
            }
        }
    }
}

/// New session, stdin on /dev/null, stdout and stderr to `log` (panics and late errors of
/// the monitor end up there for an operator): nothing ties the monitor to the agent's pipes.
fn detach(log: &Path) -> Step<()> {
    rustix::process::setsid().map_err(at("setsid"))?;
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(at("open /dev/null"))?;
    rustix::stdio::dup2_stdin(null.as_fd()).map_err(at("dup2"))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(at(format!("open {}", log.display())))?;
    rustix::stdio::dup2_stdout(log.as_fd()).map_err(at("dup2"))?;
    rustix::stdio::dup2_stderr(log.as_fd()).map_err(at("dup2"))?;
    Ok(())
}

fn sandbox(dir: &Path, rep: &mut Report) -> Step<()> {
    let record: SandboxRecord = read_json(&dir.join("sandbox.json"))
        .map_err(|e| e.to_string())?
        .ok_or("sandbox.json missing")?;
    let shared_pid = record.config.share_pid_namespace;
    let mut flags = UnshareFlags::NEWNET | UnshareFlags::NEWIPC | UnshareFlags::NEWUTS;
    if shared_pid {
        flags |= UnshareFlags::NEWPID;
    }
    // SAFETY: single-threaded (see `fork`), so no other thread is left in the old namespaces.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(at("unshare"))?;
    rustix::system::sethostname(record.config.hostname.as_bytes()).map_err(at("sethostname"))?;
    loopback_up()?;
    // A new PID namespace takes effect for children only: its holder is a child, the pod's
    // PID 1 (as the kubelet's pause is), and this process leaves once it is recorded.
    let holder = match shared_pid {
        false => std::process::id(),
        true => match fork()? {
            None => {
                report_drop(rep);
                hold_pid_namespace()
            }
            Some(pid) => pid,
        },
    };
    let holder = ProcRef::of(holder).ok_or("the namespace holder's /proc/<pid>/stat unreadable")?;
    write_atomic(&dir.join("pid"), holder.format().as_bytes()).map_err(|e| e.to_string())?;
    report(rep, &format!("OK {}", holder.pid));
    if shared_pid {
        return Ok(());
    }
    // Hold the namespaces until killed; SIGTERM and SIGKILL keep their default (exit).
    loop {
        std::thread::park();
    }
}

/// PID 1 of a pod's shared PID namespace, until killed from outside (inside the namespace,
/// signals it has no handler for do not reach it). Processes orphaned in the namespace are
/// reparented to it: ignoring SIGCHLD makes the kernel reap them, so none stays a zombie.
fn hold_pid_namespace() -> ! {
    // SAFETY: SIG_IGN installs no handler.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    loop {
        std::thread::park();
    }
}

/// `ip link set lo up` in the current network namespace.
fn loopback_up() -> Step<()> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(at("socket"))?;
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);
    // SAFETY: ifreq is plain old data; the name is NUL-terminated within its 16 bytes and the
    // ioctls only read/write the struct we pass.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(format!(
                "SIOCGIFFLAGS lo: {}",
                std::io::Error::last_os_error()
            ));
        }
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(format!(
                "SIOCSIFFLAGS lo: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Joins `pid`'s namespaces of the given kinds (`"net"`, ...), checking that `pid` is still
/// the process we mean after opening them (so a recycled pid cannot hand us foreign ones).
fn join_namespaces(target: ProcRef, kinds: &[(&str, LinkNameSpaceType)]) -> Step<()> {
    let mut fds: Vec<(OwnedFd, LinkNameSpaceType, &str)> = Vec::new();
    for (name, kind) in kinds {
        let path = format!("/proc/{}/ns/{name}", target.pid);
        let f = File::open(&path).map_err(at(&path))?;
        fds.push((OwnedFd::from(f), *kind, name));
    }
    if !target.alive() {
        return Err(format!("process {} is gone", target.pid));
    }
    for (fd, kind, name) in fds {
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(kind))
            .map_err(at(format!("setns {name}")))?;
    }
    Ok(())
}

fn exit_code(status: rustix::process::WaitStatus) -> i32 {
    status
        .exit_status()
        .or_else(|| status.terminating_signal().map(|s| 128 + s))
        .unwrap_or(255)
}

fn container(dir: &Path, rep: &mut Report) -> Step<()> {
    let record: ContainerRecord = read_json(&dir.join("container.json"))
        .map_err(|e| e.to_string())?
        .ok_or("container.json missing")?;
    let spec = &record.spec;
    if let Some(parent) = spec.log_path.parent() {
        fs::create_dir_all(parent).map_err(at(format!("mkdir {}", parent.display())))?;
    }
    let log = LogFile::open(&spec.log_path)
        .map_err(at(format!("open log {}", spec.log_path.display())))?;
    let (ours, theirs) = stdio_pair(&record.config)?;
    let (sync_r, sync_w) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(at("pipe"))?;

    join_namespaces(
        spec.sandbox,
        &[
            ("net", LinkNameSpaceType::Network),
            ("ipc", LinkNameSpaceType::InterProcessCommunication),
            ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
        ],
    )?;
    // Either way only children forked after this are in the namespace, not the monitor.
    match spec.pid_namespace_of {
        Some(owner) => join_namespaces(owner, &[("pid", LinkNameSpaceType::ProcessID)])?,
        // SAFETY: single-threaded.
        None => unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWPID) }
            .map_err(at("unshare pid"))?,
    }

    let child = match fork()? {
        None => {
            drop((ours, sync_r, log));
            report_drop(rep);
            init::run(spec, dir, theirs, File::from(sync_w))
        }
        Some(pid) => pid,
    };
    drop((theirs, sync_w));
    let mut start_error = String::new();
    let _ = File::from(sync_r).read_to_string(&mut start_error);
    let child_pid = Pid::from_raw(child as i32).ok_or("fork returned pid 0")?;
    if !start_error.is_empty() {
        let _ = rustix::process::waitpid(Some(child_pid), WaitOptions::empty());
        write_exit(dir, 128, ExitReason::StartError, Some(start_error.clone()))?;
        return Err(start_error);
    }

    let started = StartedRecord {
        process: ProcRef::of(child).ok_or("container process vanished")?,
        monitor: ProcRef::of(std::process::id()).ok_or("own stat unreadable")?,
        started_at: SystemTime::now(),
    };
    let setup = ours.into_setup(&record.config).and_then(|mut s| {
        if spec.pid_namespace_of.is_some() {
            s.main_exit = Some(main_exit(child_pid, spec.cgroup_dirs.clone())?);
        }
        Ok(s)
    });
    let setup = match setup {
        Ok(s) => s,
        Err(e) => {
            let _ = rustix::process::kill_process(child_pid, rustix::process::Signal::KILL);
            let _ = rustix::process::waitpid(Some(child_pid), WaitOptions::empty());
            write_exit(dir, 128, ExitReason::StartError, Some(e.clone()))?;
            return Err(e);
        }
    };
    // Without the socket the container still runs and logs; only attach is refused.
    let listener = stdio::listen(dir)
        .map_err(|e| eprintln!("attach socket in {}: {e}", dir.display()))
        .ok();
    write_json(&dir.join("started.json"), &started).map_err(|e| e.to_string())?;
    report(rep, &format!("OK {child}"));

    // Serve until the outputs close, which happens when the container's init (and with it its
    // whole PID namespace) is gone, unless a process handed its stdio elsewhere; then reap.
    let mut log = log;
    if let Err(e) = stdio::serve(setup, listener, &mut log) {
        eprintln!("copying output of {}: {e}", dir.display());
    }
    let status = loop {
        match rustix::process::waitpid(Some(child_pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => break Some(status),
            Err(e) if e == rustix::io::Errno::INTR => continue,
            _ => break None,
        }
    };
    let code = status.map_or(255, exit_code);
    let oom = spec
        .memory_cgroup
        .as_deref()
        .is_some_and(|d| oom_kills_at(d, spec.cgroup_v2) > 0);
    let reason = match (oom, code) {
        (true, _) => ExitReason::OomKilled,
        (false, 0) => ExitReason::Completed,
        _ => ExitReason::Error,
    };
    let result = write_exit(dir, code, reason, None);
    if let Err(e) = &result {
        eprintln!("recording the exit of {}: {e}", dir.display());
    }
    result
}

/// In a PID namespace the container does not own, its processes outlive its main process (they
/// are reparented to the namespace's PID 1): once it exits, the rest of the container's cgroup is
/// killed, as runc does for such containers.
fn main_exit(child: Pid, cgroup_dirs: Vec<PathBuf>) -> Step<stdio::MainExit> {
    let pidfd = rustix::process::pidfd_open(child, rustix::process::PidfdFlags::empty())
        .map_err(at("pidfd_open"))?;
    Ok(stdio::MainExit {
        pidfd,
        then: Box::new(move || kill_all_in(&cgroup_dirs)),
    })
}

/// The monitor's ends of the main process's stdio, before the process has started.
enum Ours {
    Pipes {
        stdout: OwnedFd,
        stderr: OwnedFd,
        stdin: Option<OwnedFd>,
    },
    /// Where the container's init sends the terminal's master.
    Console(OwnedFd),
}

/// Both ends of the main process's stdio, by the container's `stdin` and `tty`.
fn stdio_pair(config: &crate::types::ContainerConfig) -> Step<(Ours, init::Stdio)> {
    if config.tty {
        let (ours, theirs) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::STREAM,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .map_err(at("socketpair"))?;
        return Ok((
            Ours::Console(ours),
            init::Stdio::Terminal { console: theirs },
        ));
    }
    let pipe = || rustix::pipe::pipe_with(PipeFlags::CLOEXEC).map_err(at("pipe"));
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_r, stdin_w) = match config.stdin {
        true => pipe().map(|(r, w)| (Some(r), Some(w)))?,
        false => (None, None),
    };
    Ok((
        Ours::Pipes {
            stdout: out_r,
            stderr: err_r,
            stdin: stdin_w,
        },
        init::Stdio::Pipes {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        },
    ))
}

impl Ours {
    /// What the monitor serves once the process runs: for a terminal, the master its init sent
    /// (before exec, so it is there once the start succeeded).
    fn into_setup(self, config: &crate::types::ContainerConfig) -> Step<stdio::Setup> {
        match self {
            Ours::Pipes {
                stdout,
                stderr,
                stdin,
            } => Ok(stdio::Setup {
                outputs: vec![(stdout, "stdout"), (stderr, "stderr")],
                stdin,
                terminal: None,
                stdin_once: config.stdin_once,
                main_exit: None,
            }),
            Ours::Console(sock) => {
                let master = super::pty::recv_fd(&sock)
                    .map_err(at("receive the terminal"))?
                    .ok_or("the container's init sent no terminal")?;
                let dup = |fd: &OwnedFd| fd.try_clone().map_err(at("dup terminal"));
                Ok(stdio::Setup {
                    outputs: vec![(dup(&master)?, "stdout")],
                    stdin: if config.stdin {
                        Some(dup(&master)?)
                    } else {
                        None
                    },
                    terminal: Some(master),
                    stdin_once: config.stdin_once,
                    main_exit: None,
                })
            }
        }
    }
}

/// Closes the report pipe in the container's process, so only the monitor holds it.
fn report_drop(rep: &mut Report) {
    rep.take();
}

fn write_exit(dir: &Path, code: i32, reason: ExitReason, message: Option<String>) -> Step<()> {
    let record = ExitRecord {
        exit_code: code,
        reason,
        message,
        finished_at: SystemTime::now(),
    };
    write_json(&dir.join("exit.json"), &record).map_err(|e| e.to_string())
}

fn exec_main(dir: &str, cmd: &[&str], tty: bool) -> i32 {
    match exec(Path::new(dir), cmd, tty) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rudder-shim exec: {e}");
            126
        }
    }
}

/// Runs `cmd` in the container; with `tty`, stdin is a terminal that becomes the command's
/// controlling terminal (job control and ^C work in `kubectl exec -it`).
fn exec(dir: &Path, cmd: &[&str], tty: bool) -> Step<i32> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;

    let record: ContainerRecord = read_json(&dir.join("container.json"))
        .map_err(|e| e.to_string())?
        .ok_or("container.json missing")?;
    let started: StartedRecord = read_json(&dir.join("started.json"))
        .map_err(|e| e.to_string())?
        .ok_or("container not started")?;
    let spec = record.spec;
    for cg in &spec.cgroup_dirs {
        let procs: PathBuf = cg.join("cgroup.procs");
        fs::write(&procs, "0").map_err(at(format!("join {}", procs.display())))?;
    }
    join_namespaces(
        started.process,
        &[
            ("ipc", LinkNameSpaceType::InterProcessCommunication),
            ("uts", LinkNameSpaceType::HostNameAndNISDomainName),
            ("net", LinkNameSpaceType::Network),
            ("pid", LinkNameSpaceType::ProcessID),
            ("mnt", LinkNameSpaceType::Mount),
        ],
    )?;
    // Looked up in the container's PATH (its mount namespace and environment), with the
    // message runc gives for a missing program.
    let program = init::lookup(cmd[0], &spec.env)?;
    let program = std::ffi::OsStr::from_bytes(program.as_bytes());
    let mut command = std::process::Command::new(program);
    command
        .arg0(cmd[0])
        .args(&cmd[1..])
        .env_clear()
        .envs(
            spec.env
                .iter()
                .map(|kv| kv.split_once('=').unwrap_or((kv, ""))),
        )
        .current_dir(&spec.cwd);
    if tty && !spec.env.iter().any(|kv| kv.starts_with("TERM=")) {
        command.env("TERM", "xterm");
    }
    let caps = spec.capabilities;
    let (uid, gid, groups, nnp) = (spec.uid, spec.gid, spec.groups.clone(), spec.no_new_privs);
    // SAFETY: the closure runs in the forked child of this single-threaded process; it only
    // makes syscalls on data it owns.
    unsafe {
        command.pre_exec(move || {
            if tty {
                rustix::process::setsid()?;
                rustix::process::ioctl_tiocsctty(std::io::stdin())?;
            }
            init::drop_to(caps, uid, gid, &groups, nnp).map_err(std::io::Error::other)?;
            // If this helper dies (the runtime killed it on a timeout), so does the command.
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        })
    };
    let status = command.status().map_err(at(format!("exec {:?}", cmd[0])))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(255))
}
