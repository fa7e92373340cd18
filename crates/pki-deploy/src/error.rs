//! The rotation hook's error type. Errors name the config file, line and key, the certificate
//! and target, the command and what it printed; never a secret.

use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop a run or fail a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("{}:{}: {message}", file.display(), line.map_or_else(String::new, |l| l.to_string()))]
    Config {
        /// The config file.
        file: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong, naming the key.
        message: String,
    },

    /// Another run holds the lock.
    #[error("another `pki rotate` is running (lock {} is held); this run does nothing", path.display())]
    LockHeld {
        /// The lock file.
        path: PathBuf,
    },

    /// An error from the core library.
    #[error(transparent)]
    Pki(#[from] pki::Error),

    /// A file operation failed outside the core library.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },

    /// A command (test or reload) failed.
    #[error("{command} {outcome}{}", if output.is_empty() { String::new() } else { format!(": {output}") })]
    Command {
        /// The command as configured.
        command: String,
        /// How it ended (exit status, timeout, could not start).
        outcome: String,
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
        /// What it serves (or why none could be read).
        found: String,
    },

    /// A probe could not complete a handshake.
    #[error("probe of {address} failed: {reason}")]
    Probe {
        /// The probed address.
        address: String,
        /// Why.
        reason: String,
    },

    /// A directory the hook would write keys into could be redirected by another user.
    #[error("refusing to write into {}: {reason}", path.display())]
    UnsafeDirectory {
        /// The directory.
        path: PathBuf,
        /// What makes it unsafe.
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
}
