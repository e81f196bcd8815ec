//! The container's stdio in its monitor (the shim): copies the main process's output (two
//! pipes, or a terminal's master side) to the CRI log, and serves `kubectl attach` on the unix
//! socket `attach.sock` — every attached client gets the live output, clients that asked for
//! stdin feed the process's stdin (a pipe the monitor holds open, or the terminal), and resizes
//! go to the terminal. The framing is in `attach.rs`.
//!
//! One thread with `poll`: the monitor runs after `unshare(CLONE_NEWPID)`, and the kernel refuses
//! to create threads in a process whose children go to another PID namespace. Nothing here
//! blocks on a client: sockets and the stdin pipe are non-blocking, a client that does not read
//! is dropped once too much is queued for it, and clients are not read while the process is
//! not reading its stdin.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::net::{RecvFlags, SendFlags};

use super::attach::{self, Msg};
use super::logs::{LogFile, Splitter};
use super::pty;

/// Output queued for one client before it counts as gone.
const MAX_QUEUED: usize = 4 * 1024 * 1024;
/// Input queued for the process before clients are no longer read.
const MAX_PENDING_STDIN: usize = 256 * 1024;

/// What the monitor holds of the container's stdio.
pub(crate) struct Setup {
    /// Output sources and the log stream each goes to: the stdout and stderr pipes, or the
    /// terminal's master alone (as `stdout`).
    pub outputs: Vec<(OwnedFd, &'static str)>,
    /// The write end of the process's stdin (with `stdin: true`), or the terminal's master.
    pub stdin: Option<OwnedFd>,
    /// The terminal's master, for resizes.
    pub terminal: Option<OwnedFd>,
    /// Close the process's stdin when the first client with stdin leaves.
    pub stdin_once: bool,
    /// In a PID namespace the container shares, its main process's end does not end the
    /// processes it started, which may hold the outputs open: run this once it has exited.
    pub main_exit: Option<MainExit>,
}

/// What to do when the main process exits (see [`Setup::main_exit`]).
pub(crate) struct MainExit {
    /// A pidfd of the main process: readable once it has exited.
    pub pidfd: OwnedFd,
    /// Ends the container's remaining processes.
    pub then: Box<dyn FnOnce()>,
}

/// What a client's end of input, or its leaving, does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InputEnd {
    /// The process's stdin is closed (it reads end of file); the client goes on receiving
    /// output until the process exits.
    CloseStdin,
    /// The client's attachment ends; the process's stdin stays open for the next one.
    Detach,
    /// Nothing changes (a client that never sent input).
    Nothing,
}

/// containerd's rules: a client with stdin whose input ends closes the process's stdin when
/// the container is `stdinOnce` and not on a terminal (a terminal's input cannot end without
/// hanging it up); otherwise that client is detached. A client that left altogether is gone
/// either way; its stdin still closes a `stdinOnce` container's.
pub(crate) fn input_end(stdin_once: bool, tty: bool, client_stdin: bool) -> InputEnd {
    match (client_stdin, stdin_once && !tty) {
        (false, _) => InputEnd::Nothing,
        (true, true) => InputEnd::CloseStdin,
        (true, false) => InputEnd::Detach,
    }
}

/// One attached client.
struct Client {
    sock: UnixStream,
    input: BytesMut,
    queued: BytesMut,
    /// stdin, stdout, stderr, once its hello arrived.
    wants: Option<(bool, bool, bool)>,
    /// Close once `queued` is out.
    ending: bool,
}

enum Slot {
    Output(usize),
    Listener,
    Client(usize),
    Stdin,
    MainExit,
}

struct State {
    outputs: Vec<(File, Splitter)>,
    stdin: Option<File>,
    pending: Vec<u8>,
    close_stdin: bool,
    terminal: Option<OwnedFd>,
    stdin_once: bool,
    clients: Vec<Client>,
    main_exit: Option<MainExit>,
}

/// Binds the attach socket in `dir` (through the directory's descriptor: a deep state
/// directory makes the full path too long for a socket address).
pub(crate) fn listen(dir: &Path) -> io::Result<(UnixListener, PathBuf)> {
    let path = dir.join(attach::SOCKET);
    let _ = std::fs::remove_file(&path);
    let dir_fd = File::open(dir)?;
    let short = format!(
        "/proc/self/fd/{}/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir_fd),
        attach::SOCKET
    );
    let listener = UnixListener::bind(short)?;
    listener.set_nonblocking(true)?;
    Ok((listener, path))
}

/// Serves until every output has reached end of file (the process and whatever inherited its
/// stdio are gone), then lets clients drain what is queued for them and closes them.
pub(crate) fn serve(
    setup: Setup,
    listener: Option<(UnixListener, PathBuf)>,
    log: &mut LogFile,
) -> io::Result<()> {
    let mut st = State {
        outputs: setup
            .outputs
            .into_iter()
            .map(|(fd, stream)| (File::from(fd), Splitter::new(stream)))
            .collect(),
        stdin: match setup.stdin {
            Some(fd) => {
                rustix::io::ioctl_fionbio(&fd, true)?;
                Some(File::from(fd))
            }
            None => None,
        },
        pending: Vec::new(),
        close_stdin: false,
        terminal: setup.terminal,
        stdin_once: setup.stdin_once,
        clients: Vec::new(),
        main_exit: setup.main_exit,
    };
    let (listener, socket_path) = match listener {
        Some((l, p)) => (Some(l), Some(p)),
        None => (None, None),
    };
    let result = run(&mut st, listener.as_ref(), log);
    drop(listener);
    if let Some(p) = socket_path {
        let _ = std::fs::remove_file(p);
    }
    drain_clients(&mut st.clients);
    result
}

fn run(st: &mut State, listener: Option<&UnixListener>, log: &mut LogFile) -> io::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    while !st.outputs.is_empty() {
        let mut slots: Vec<(Slot, BorrowedFd<'_>, PollFlags)> = Vec::new();
        for (i, (f, _)) in st.outputs.iter().enumerate() {
            slots.push((Slot::Output(i), f.as_fd(), PollFlags::IN));
        }
        if let Some(l) = listener {
            slots.push((Slot::Listener, l.as_fd(), PollFlags::IN));
        }
        let read_clients = st.pending.len() < MAX_PENDING_STDIN;
        for (i, c) in st.clients.iter().enumerate() {
            let mut flags = PollFlags::empty();
            if read_clients {
                flags |= PollFlags::IN;
            }
            if !c.queued.is_empty() {
                flags |= PollFlags::OUT;
            }
            slots.push((Slot::Client(i), c.sock.as_fd(), flags));
        }
        if let Some(s) = &st.stdin
            && !st.pending.is_empty()
        {
            slots.push((Slot::Stdin, s.as_fd(), PollFlags::OUT));
        }
        if let Some(m) = &st.main_exit {
            slots.push((Slot::MainExit, m.pidfd.as_fd(), PollFlags::IN));
        }
        let mut fds: Vec<PollFd<'_>> = slots
            .iter()
            .map(|(_, fd, flags)| PollFd::from_borrowed_fd(*fd, *flags))
            .collect();
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let ready: Vec<(Slot, PollFlags)> = slots
            .into_iter()
            .zip(fds.iter().map(PollFd::revents))
            .filter(|(_, r)| !r.is_empty())
            .map(|((slot, _, _), r)| (slot, r))
            .collect();
        drop(fds);
        // Outputs first, removals last (indices stay valid within one round).
        let mut closed_outputs = Vec::new();
        let mut gone = vec![false; st.clients.len()];
        for (slot, revents) in ready {
            match slot {
                Slot::Output(i) => {
                    if !read_output(st, i, &mut buf, log, &mut gone)? {
                        closed_outputs.push(i);
                    }
                }
                Slot::Listener => {
                    if let Some(l) = listener {
                        accept_all(l, &mut st.clients);
                        gone.resize(st.clients.len(), false);
                    }
                }
                Slot::Client(i) => {
                    if revents.intersects(PollFlags::OUT) && !flush(&mut st.clients[i]) {
                        gone[i] = true;
                    }
                    if revents.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR)
                        && !gone[i]
                        && !read_client(st, i, &mut buf)
                    {
                        gone[i] = true;
                    }
                    let c = &st.clients[i];
                    if c.ending && c.queued.is_empty() {
                        gone[i] = true;
                    }
                }
                Slot::Stdin => write_stdin(st),
                Slot::MainExit => {
                    if let Some(m) = st.main_exit.take() {
                        (m.then)();
                    }
                }
            }
        }
        for i in closed_outputs.into_iter().rev() {
            let (_, mut splitter) = st.outputs.remove(i);
            splitter.finish(log)?;
        }
        for i in (0..gone.len()).rev() {
            if gone[i] {
                st.clients.remove(i);
            }
        }
        if st.close_stdin && st.pending.is_empty() {
            st.stdin = None;
        }
    }
    Ok(())
}

/// Reads one output: to the log and to every client that wants it. False at its end.
fn read_output(
    st: &mut State,
    i: usize,
    buf: &mut [u8],
    log: &mut LogFile,
    gone: &mut [bool],
) -> io::Result<bool> {
    let (file, splitter) = &mut st.outputs[i];
    let n = match file.read(buf) {
        Ok(0) => return Ok(false),
        Ok(n) => n,
        // A terminal's master reads EIO once nothing holds its other side.
        Err(e) if e.raw_os_error() == Some(libc::EIO) => return Ok(false),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
            ) =>
        {
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    splitter.feed(&buf[..n], log)?;
    let stderr = splitter.stream() == "stderr";
    let data = Bytes::copy_from_slice(&buf[..n]);
    let msg = if stderr {
        Msg::Stderr(data)
    } else {
        Msg::Stdout(data)
    };
    for (k, c) in st.clients.iter_mut().enumerate() {
        let wanted = match c.wants {
            Some((_, out, err)) => (out && !stderr) || (err && stderr),
            None => false,
        };
        if !wanted || c.ending {
            continue;
        }
        attach::encode(&msg, &mut c.queued);
        if c.queued.len() > MAX_QUEUED {
            eprintln!("attach: dropping a client that does not read its output");
            gone[k] = true;
            continue;
        }
        if !flush(c) {
            gone[k] = true;
        }
    }
    Ok(true)
}

fn accept_all(listener: &UnixListener, clients: &mut Vec<Client>) {
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                if sock.set_nonblocking(true).is_ok() {
                    clients.push(Client {
                        sock,
                        input: BytesMut::new(),
                        queued: BytesMut::new(),
                        wants: None,
                        ending: false,
                    });
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Sends what is queued for a client, as far as it goes without blocking. False if it is gone.
fn flush(c: &mut Client) -> bool {
    while !c.queued.is_empty() {
        match rustix::net::send(
            &c.sock,
            &c.queued,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        ) {
            Ok(n) => {
                let _ = c.queued.split_to(n);
            }
            Err(Errno::AGAIN) => return true,
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

/// Reads a client's messages. False if it is gone or spoke nonsense.
fn read_client(st: &mut State, i: usize, buf: &mut [u8]) -> bool {
    let n = match rustix::net::recv(&st.clients[i].sock, &mut *buf, RecvFlags::DONTWAIT) {
        Ok((n, _)) => n,
        Err(Errno::AGAIN | Errno::INTR) => return true,
        Err(_) => 0,
    };
    let tty = st.terminal.is_some();
    if n == 0 {
        // The agent closed the connection: a detach.
        let client_stdin = st.clients[i].wants.is_some_and(|w| w.0);
        if input_end(st.stdin_once, tty, client_stdin) == InputEnd::CloseStdin {
            st.close_stdin = true;
        }
        return false;
    }
    st.clients[i].input.extend_from_slice(&buf[..n]);
    loop {
        let msg = match attach::decode(&mut st.clients[i].input) {
            Ok(Some(m)) => m,
            Ok(None) => return true,
            Err(e) => {
                eprintln!("attach: {e}");
                return false;
            }
        };
        let client_stdin = st.clients[i].wants.is_some_and(|w| w.0);
        match msg {
            Msg::Hello {
                stdin,
                stdout,
                stderr,
            } => st.clients[i].wants = Some((stdin, stdout, stderr)),
            Msg::Stdin(d) => {
                if client_stdin && st.stdin.is_some() && !st.close_stdin {
                    st.pending.extend_from_slice(&d);
                }
            }
            Msg::StdinEof => match input_end(st.stdin_once, tty, client_stdin) {
                InputEnd::CloseStdin => st.close_stdin = true,
                InputEnd::Detach => st.clients[i].ending = true,
                InputEnd::Nothing => {}
            },
            Msg::Resize { columns, rows } => {
                if let Some(t) = &st.terminal {
                    let _ = pty::resize(t, columns, rows);
                }
            }
            Msg::Stdout(_) | Msg::Stderr(_) => {}
        }
    }
}

/// Writes queued input to the process, as far as its pipe takes it.
fn write_stdin(st: &mut State) {
    let Some(f) = &st.stdin else {
        st.pending.clear();
        return;
    };
    while !st.pending.is_empty() {
        match rustix::io::write(f, &st.pending) {
            Ok(n) => {
                st.pending.drain(..n);
            }
            Err(Errno::AGAIN) => return,
            Err(Errno::INTR) => {}
            // The process closed its stdin (EPIPE): nothing will read it again.
            Err(_) => {
                st.pending.clear();
                st.stdin = None;
                return;
            }
        }
    }
}

/// Gives clients up to two seconds to take what is queued for them, then closes them.
fn drain_clients(clients: &mut Vec<Client>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while clients.iter().any(|c| !c.queued.is_empty()) && Instant::now() < deadline {
        clients.retain_mut(flush);
        if clients.iter().any(|c| !c.queued.is_empty()) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    clients.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_a_clients_input() {
        use InputEnd::*;
        // (stdin_once, tty, client had stdin) → what happens.
        let cases = [
            ((true, false, true), CloseStdin),
            ((true, true, true), Detach),
            ((false, false, true), Detach),
            ((false, true, true), Detach),
            ((true, false, false), Nothing),
            ((false, false, false), Nothing),
        ];
        for ((once, tty, stdin), want) in cases {
            assert_eq!(input_end(once, tty, stdin), want, "{once} {tty} {stdin}");
        }
    }
}
