//! Pseudo-terminals for `kubectl exec -it`: the agent keeps the master side, the exec'd process
//! gets the other side as its stdio and controlling terminal. The pair comes from the
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
    fn opens_and_resizes() {
        let pty = open(Path::new("/dev/ptmx")).expect("open a pty");
        resize(&pty.master, 120, 40).expect("resize");
        let size = rustix::termios::tcgetwinsize(&pty.slave).expect("size");
        assert_eq!((size.ws_col, size.ws_row), (120, 40));
    }
}
