//! The rotation hook's error type. Errors name the config file, line and key, the certificate
//! and target, the command and what it printed; never a secret. They state facts: the front end
//! (`pki rotate`) adds hints of its own.

use std::fmt;
use std::path::PathBuf;

use pki::error::IoOp;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How a test or reload command ended when it did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandOutcome {
    /// It could not be started (no such program, not executable).
    NotStarted(std::io::ErrorKind),
    /// Waiting for it failed.
    WaitFailed(std::io::ErrorKind),
    /// It ran past its time limit and was killed.
    TimedOut(time::Duration),
    /// It exited with this non-zero status.
    Exited(i32),
    /// A signal ended it.
    Killed,
}

impl fmt::Display for CommandOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotStarted(kind) => write!(f, "could not start ({kind})"),
            Self::WaitFailed(kind) => write!(f, "failed ({kind})"),
            Self::TimedOut(limit) => {
                write!(f, "did not finish within {}", pki::duration::format(*limit))
            }
            Self::Exited(code) => write!(f, "exited with status {code}"),
            Self::Killed => f.write_str("was killed by a signal"),
        }
    }
}

/// What a probe found instead of the certificate it expected.
#[derive(Debug)]
#[non_exhaustive]
pub enum Found {
    /// Another certificate (serial and fingerprint).
    Other(String),
    /// The expected one, but only in the last probe: it was not served steadily in time.
    OnlyJustNow,
    /// Nothing: every probe failed, the last one for this reason.
    Nothing(Box<Error>),
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(described) => f.write_str(described),
            Self::OnlyJustNow => {
                f.write_str("it only now, after serving another one moments before")
            }
            Self::Nothing(e) => write!(f, "nothing ({e})"),
        }
    }
}

/// `file:line`, or the file alone.
fn located(file: &std::path::Path, line: Option<usize>) -> String {
    match line {
        Some(l) => format!("{}:{l}", file.display()),
        None => file.display().to_string(),
    }
}

/// Everything that can stop a run or fail a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("{}: {message}", located(file, *line))]
    Config {
        /// The config file.
        file: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        message: String,
    },

    /// Another run holds the lock.
    #[error("another rotation run holds the lock {}; this run does nothing", path.display())]
    LockHeld {
        /// The lock file.
        path: PathBuf,
    },

    /// Another run has held the lock for longer than any run may take: it hangs.
    #[error(
        "the lock {} has been held by process {pid} since {}: that run is stuck (kill it, or \
         find what it waits for); this run does nothing",
        path.display(),
        pki::error::Rfc3339(*since)
    )]
    LockStuck {
        /// The lock file.
        path: PathBuf,
        /// The process that took it.
        pid: u32,
        /// When.
        since: time::OffsetDateTime,
    },

    /// The run did not finish within its time limit (`run_timeout`).
    #[error("the run did not finish within {}; it was stopped", pki::duration::format(*limit))]
    Watchdog {
        /// The limit.
        limit: time::Duration,
    },

    /// An error from the core library.
    #[error(transparent)]
    Pki(#[from] pki::Error),

    /// A file operation failed outside the core library.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: IoOp,
        /// The path.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },

    /// A service's control socket could not be used (HAProxy runtime API, Redis).
    #[error("cannot talk to {service} at {}: {source}", socket.display())]
    Socket {
        /// The service.
        service: &'static str,
        /// The socket.
        socket: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },

    /// A command (test or reload) failed.
    #[error("{command} {outcome}{}", if output.is_empty() { String::new() } else { format!(": {output}") })]
    Command {
        /// The command as configured.
        command: String,
        /// How it ended.
        outcome: CommandOutcome,
        /// The end of what it printed.
        output: String,
    },

    /// A service refused the new certificate (HAProxy runtime API, Redis CONFIG SET).
    #[error("{service} refused the update: {reply}")]
    ServiceRefused {
        /// The service and endpoint.
        service: String,
        /// What it answered.
        reply: String,
    },

    /// The live service does not serve the expected certificate.
    #[error("{address} serves {found} instead of {expected}")]
    WrongCertificateServed {
        /// The probed address.
        address: String,
        /// What we expected (serial and fingerprint).
        expected: String,
        /// What it serves.
        found: Found,
    },

    /// A probe could not complete a handshake.
    #[error("probe of {address} failed: {reason}")]
    Probe {
        /// The probed address.
        address: String,
        /// Why.
        reason: String,
    },

    /// A store opened for reading (a dry run) was asked to write.
    #[error("the store {} was opened for reading only", path.display())]
    StoreReadOnly {
        /// The store.
        path: PathBuf,
    },

    /// A certificate was due but the run has no authority to issue it (a dry run that would
    /// have created the CA).
    #[error("no authority to issue with")]
    NoAuthority,

    /// An ACME certificate is not ordered again yet: its last orders failed, and the server's
    /// rate limits count failures.
    #[error(
        "not ordering again before {}: {failures} failed order(s) in a row (last: {last}); \
         `pki rotate --force` orders now",
        pki::error::Rfc3339(*until)
    )]
    BackingOff {
        /// Failed orders in a row.
        failures: u32,
        /// When the next order may be placed.
        until: time::OffsetDateTime,
        /// The last failure.
        last: String,
    },

    /// A task handed to the runtime did not finish (the runtime shut down).
    #[error("{what}: the task did not finish ({reason})")]
    Task {
        /// What the task was doing.
        what: &'static str,
        /// Why.
        reason: String,
    },

    /// A report could not be delivered.
    #[error("report to {destination} failed: {reason}")]
    Report {
        /// Where (URL without credentials, or file).
        destination: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether this is a configuration error (exit code 2).
    pub fn is_config(&self) -> bool {
        matches!(self, Self::Config { .. })
    }

    /// An I/O error on a path.
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { op, path, source }
    }
}
