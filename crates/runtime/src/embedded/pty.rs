//! Pseudo-terminals for `kubectl exec -it` and containers with `tty: true`: the agent (exec) or
//! the container's monitor (the main process) keeps the master side, the process gets the other
//! side as its stdio and controlling terminal. The pair comes from the
//! container's own devpts instance, so inside the container the terminal is a `/dev/pts/N`
//! that exists there (`tty` names it, programs can reopen it).

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;

/// Both ends of a new pseudo-terminal.
pub(crate) struct Pty {
    /// What the agent reads the process's output from and writes its input to.
    pub master: OwnedFd,
    /// The process's terminal.
    pub slave: OwnedFd,
}

/// Opens a pseudo-terminal pair through the multiplexer `ptmx` (a devpts instance's
/// `ptmx`). Neither end becomes the agent's controlling terminal.
pub(crate) fn open(ptmx: &Path) -> io::Result<Pty> {
    let master = rustix::fs::open(
        ptmx,
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::pty::unlockpt(&master)?;
    // The peer by the master itself, not by a path that only makes sense in the container.
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )?;
    Ok(Pty { master, slave })
}

/// Sets the window size of the terminal whose master is `master`; the process gets SIGWINCH.
pub(crate) fn resize(master: impl AsFd, columns: u16, rows: u16) -> io::Result<()> {
    rustix::termios::tcsetwinsize(
        master,
        rustix::termios::Winsize {
            ws_row: rows,
            ws_col: columns,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}

/// Sends `fd` over the unix socket `sock` (`SCM_RIGHTS`), with one byte of data.
pub(crate) fn send_fd(sock: impl AsFd, fd: &OwnedFd) -> io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    let fds = [fd.as_fd()];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        sock,
        &[io::IoSlice::new(b"T")],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    Ok(())
}

/// Receives a descriptor [`send_fd`] sent; `None` if the sender closed without sending one.
pub(crate) fn recv_fd(sock: impl AsFd) -> io::Result<Option<OwnedFd>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        sock,
        &mut [io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut received = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            for fd in fds {
                received.get_or_insert(fd);
            }
        }
    }
    Ok(received)
}

/// Reads a terminal's master side, where the end of output shows as `EIO` once every process
/// holding the other side has exited: that is end of file here.
pub(crate) struct TerminalReader<R> {
    inner: R,
}

impl<R> TerminalReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        TerminalReader { inner }
    }
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for TerminalReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.raw_os_error() == Some(libc::EIO) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_a_terminal_over_a_socket() {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .expect("socketpair");
        let pty = open(Path::new("/dev/ptmx")).expect("open a pty");
        send_fd(&a, &pty.master).expect("send");
        let got = recv_fd(&b).expect("recv").expect("a descriptor");
        resize(&got, 33, 11).expect("resize through the received master");
        let size = rustix::termios::tcgetwinsize(&pty.slave).expect("size");
        assert_eq!((size.ws_col, size.ws_row), (33, 11));
        drop(a);
        assert!(recv_fd(&b).expect("recv").is_none());
    }

    #[test]
    fn opens_and_resizes() {
        let pty = open(Path::new("/dev/ptmx")).expect("open a pty");
        resize(&pty.master, 120, 40).expect("resize");
        let size = rustix::termios::tcgetwinsize(&pty.slave).expect("size");
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
    }
}
