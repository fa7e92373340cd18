//! Absolute deadlines for the blocking exchanges with peers (probes, the HAProxy runtime API,
//! Redis). A per-read timeout alone bounds nothing: a peer that sends one byte every few
//! seconds keeps a reader busy for hours. [`Bounded`] recomputes the socket timeout from one
//! deadline before every read and write, and fails once the deadline has passed, however
//! the bytes trickle in.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A point in time an exchange must be over by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    /// `limit` from now.
    pub(crate) fn after(limit: Duration) -> Self {
        Self(Instant::now() + limit)
    }

    /// The earlier of two deadlines.
    pub(crate) fn min(self, other: Self) -> Self {
        Self(self.0.min(other.0))
    }

    /// The time left, or a `TimedOut` error once there is none.
    pub(crate) fn remaining(self) -> io::Result<Duration> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the exchange ran past its deadline",
            ));
        }
        Ok(left)
    }

    /// Whether the deadline has passed.
    pub(crate) fn passed(self) -> bool {
        Instant::now() >= self.0
    }
}

/// Connects to the unix socket at `path` by `deadline`. A listener that never accepts and lets
/// its backlog fill would hold a plain `connect` forever: on Linux a unix `connect` waits at
/// most the socket's send timeout, which is set first.
pub(crate) fn connect_unix(path: &std::path::Path, deadline: Deadline) -> io::Result<UnixStream> {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, UnixAddr, sockopt};
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let left = nix::sys::time::TimeVal::from(libc_timeval(deadline.remaining()?));
    socket::setsockopt(&fd, sockopt::SendTimeout, &left)?;
    let addr = UnixAddr::new(path)?;
    match socket::connect(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr) {
        Ok(()) => Ok(UnixStream::from(fd)),
        Err(nix::errno::Errno::EAGAIN) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the socket accepted no connection before the deadline",
        )),
        Err(e) => Err(e.into()),
    }
}

fn libc_timeval(d: Duration) -> nix::libc::timeval {
    nix::libc::timeval {
        tv_sec: d.as_secs().try_into().unwrap_or(nix::libc::time_t::MAX),
        tv_usec: d.subsec_micros().into(),
    }
}

/// A socket whose read and write timeouts can be set.
pub(crate) trait Timeouts {
    /// Sets both timeouts.
    fn set_timeouts(&self, limit: Duration) -> io::Result<()>;
}

impl Timeouts for TcpStream {
    fn set_timeouts(&self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))?;
        self.set_write_timeout(Some(limit))
    }
}

impl Timeouts for UnixStream {
    fn set_timeouts(&self, limit: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(limit))?;
        self.set_write_timeout(Some(limit))
    }
}

/// A socket every read and write of which ends by the deadline.
#[derive(Debug)]
pub(crate) struct Bounded<S> {
    inner: S,
    deadline: Deadline,
}

impl<S: Timeouts> Bounded<S> {
    /// `inner`, bounded by `deadline`.
    pub(crate) fn new(inner: S, deadline: Deadline) -> Self {
        Self { inner, deadline }
    }

    fn arm(&self) -> io::Result<()> {
        self.inner.set_timeouts(self.deadline.remaining()?)
    }
}

impl<S: Timeouts + Read> Read for Bounded<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        self.inner.read(buf)
    }
}

impl<S: Timeouts + Write> Write for Bounded<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.arm()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_trickling_bytes_is_cut_at_the_deadline() {
        let (mut peer, ours) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            // One byte every 100 ms, for ever (until the reader hangs up).
            while peer.write_all(b"x").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let started = Instant::now();
        let mut bounded = Bounded::new(ours, Deadline::after(Duration::from_millis(500)));
        let mut sink = Vec::new();
        let e = bounded.read_to_end(&mut sink).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ),
            "{e}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        assert!(!sink.is_empty(), "bytes were read before the deadline");
    }

    #[test]
    fn a_listener_that_never_accepts_cannot_hold_a_connect() {
        use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("full.sock");
        let listener = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        socket::bind(
            std::os::fd::AsRawFd::as_raw_fd(&listener),
            &UnixAddr::new(&path).unwrap(),
        )
        .unwrap();
        // A backlog of one pending connection, and nobody accepting.
        socket::listen(&listener, Backlog::new(0).unwrap()).unwrap();
        let mut held = Vec::new();
        let started = Instant::now();
        let e = loop {
            match connect_unix(&path, Deadline::after(Duration::from_millis(300))) {
                Ok(s) => held.push(s),
                Err(e) => break e,
            }
            assert!(held.len() < 16, "the backlog never filled");
        };
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
