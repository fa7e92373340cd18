//! The crate's one error type. Every variant carries what an operator needs to act: the file,
//! serial, name or field at fault, and the underlying cause. No variant ever carries a secret.

use std::fmt;
use std::io;
use std::path::PathBuf;

use time::OffsetDateTime;

use crate::key::KeyAlgorithm;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What was being done to a file when an I/O error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Reading.
    Read,
    /// Creating.
    Create,
    /// Writing.
    Write,
    /// Changing owner or group.
    Chown,
    /// Changing mode.
    Chmod,
    /// Flushing to disk.
    Sync,
    /// Renaming into place.
    Rename,
    /// Creating a directory.
    CreateDir,
    /// Removing.
    Remove,
    /// Locking.
    Lock,
    /// Listening on a socket address (the path holds the address).
    Listen,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Read => "cannot read",
            Self::Create => "cannot create",
            Self::Write => "cannot write",
            Self::Chown => "cannot change owner of",
            Self::Chmod => "cannot change mode of",
            Self::Sync => "cannot flush to disk",
            Self::Rename => "cannot move into place",
            Self::CreateDir => "cannot create directory",
            Self::Remove => "cannot remove",
            Self::Lock => "cannot lock",
            Self::Listen => "cannot listen on",
        })
    }
}

/// Whether a path was to be read or written when it was found unsafe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Reading.
    Read,
    /// Writing into it.
    Write,
}

/// Why a path is not safe to use: another user could redirect or replace what is read or
/// written there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unsafe {
    /// It is a symbolic link.
    Symlink,
    /// It is not a directory.
    NotADirectory,
    /// It is not a regular file (a FIFO, a device, a socket, a directory).
    NotARegularFile,
    /// Another user owns it.
    Owner(u32),
    /// Group or others may write to it (mode bits).
    Writable(u32),
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Symlink => f.write_str("it is a symbolic link"),
            Self::NotADirectory => f.write_str("it is not a directory"),
            Self::NotARegularFile => f.write_str("it is not a regular file"),
            Self::Owner(uid) => write!(
                f,
                "it belongs to uid {uid}, who could redirect or replace it; keep it owned by \
                 root (or the user running pki)"
            ),
            Self::Writable(mode) => {
                write!(f, "its mode {mode:04o} lets other users write to it")
            }
        }
    }
}

/// Why a private key could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyProblem {
    /// The encoding is broken.
    Malformed(String),
    /// A valid key we do not accept (algorithm, size, encryption scheme).
    Unsupported(String),
    /// The key is encrypted and no passphrase was given.
    PassphraseRequired,
    /// Decryption failed.
    WrongPassphrase,
}

impl fmt::Display for KeyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(m) => write!(f, "malformed private key: {m}"),
            Self::Unsupported(m) => write!(f, "unsupported private key: {m}"),
            Self::PassphraseRequired => {
                f.write_str("the key is encrypted and no passphrase was given")
            }
            Self::WrongPassphrase => f.write_str("wrong passphrase or corrupt key file"),
        }
    }
}

/// What to do about a read-only file system: under the shipped `pki.service`
/// (`ProtectSystem=strict`) it means the path is outside the unit's `ReadWritePaths`.
fn read_only_hint(source: &io::Error) -> &'static str {
    if source.kind() == io::ErrorKind::ReadOnlyFilesystem {
        " (if pki.service runs this, it may write only the unit's ReadWritePaths: add the \
         directory with `systemctl edit pki.service`)"
    } else {
        ""
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed.
    #[error("{op} {}: {source}{}", path.display(), read_only_hint(source))]
    Io {
        /// What was being done.
        op: IoOp,
        /// The file.
        path: PathBuf,
        /// The system error.
        #[source]
        source: io::Error,
    },

    /// A path another user could redirect or replace.
    #[error("refusing to {} {}: {reason}", match access { Access::Read => "read", Access::Write => "write into" }, path.display())]
    UnsafePath {
        /// The path at fault (the component that failed the check).
        path: PathBuf,
        /// What was to be done.
        access: Access,
        /// What makes it unsafe.
        reason: Unsafe,
    },

    /// An input file exceeds the size limit.
    #[error("{} is larger than {limit} bytes; refusing to read it", path.display())]
    InputTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },

    /// A secret file (key, passphrase, token) can be read by group or others.
    #[error("{} has mode {mode:04o}: group and others must have no access (chmod 600)", path.display())]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// An output file exists and overwriting was not asked for.
    #[error("{} already exists", path.display())]
    OutputExists {
        /// The file.
        path: PathBuf,
    },

    /// A key file sits where a certificate signed from a CSR would go, and would not match it.
    #[error(
        "{} exists and would not match a certificate signed from a CSR; move it away first",
        path.display()
    )]
    StaleKey {
        /// The key file.
        path: PathBuf,
    },

    /// Text that should be PEM is not the PEM expected.
    #[error("{origin}: {problem}")]
    Pem {
        /// Where the text came from (usually a path).
        origin: String,
        /// What is wrong.
        problem: String,
    },

    /// A certificate cannot be parsed or is unusable.
    #[error("{origin}: {problem}")]
    Certificate {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        problem: String,
    },

    /// A private key cannot be used.
    #[error("{origin}: {problem}")]
    Key {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        problem: KeyProblem,
    },

    /// A certificate and a key do not belong together.
    #[error("the private key in {key} does not match the certificate in {certificate}")]
    KeyMismatch {
        /// The certificate's origin.
        certificate: String,
        /// The key's origin.
        key: String,
    },

    /// A certificate's key is of an algorithm this crate does not issue.
    #[error("{subject} has a key this tool does not issue ({key})")]
    UnsupportedKeyAlgorithm {
        /// The certificate's subject.
        subject: String,
        /// What its key is.
        key: String,
    },

    /// Key generation failed.
    #[error("cannot generate a {algorithm} key: {reason}")]
    KeyGeneration {
        /// The algorithm.
        algorithm: KeyAlgorithm,
        /// The library's reason.
        reason: String,
    },

    /// Encrypting a key failed.
    #[error("cannot encrypt the private key: {0}")]
    KeyEncryption(String),

    /// An empty passphrase was given for encryption.
    #[error("the passphrase is empty")]
    EmptyPassphrase,

    /// A passphrase file holds nothing.
    #[error("passphrase file {} is empty", path.display())]
    EmptyPassphraseFile {
        /// The file.
        path: PathBuf,
    },

    /// The async runtime shut down while work was handed to it.
    #[error("the async runtime shut down during the operation")]
    RuntimeShutDown,

    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// A CSR cannot be parsed or its signature does not verify.
    #[error("{origin}: {problem}")]
    Csr {
        /// Where it came from.
        origin: String,
        /// What is wrong.
        problem: String,
    },

    /// A CSR asks for something policy never grants.
    #[error("{origin}: refused: {problem}")]
    CsrPolicy {
        /// Where it came from.
        origin: String,
        /// What it asks for and why that is refused.
        problem: String,
    },

    /// A name is malformed.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name (control characters escaped).
        name: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// A name lies outside the CA's permitted domains.
    #[error("name {name} is outside the CA's permitted domains ({})", permitted.join(", "))]
    NameNotPermitted {
        /// The name.
        name: String,
        /// The permitted DNS domains.
        permitted: Vec<String>,
    },

    /// A request is incomplete or contradictory.
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),

    /// A duration is malformed.
    #[error("invalid duration {input:?}: {reason}")]
    InvalidDuration {
        /// The text given.
        input: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// An argument value is not one of the accepted ones.
    #[error("invalid {what} {value:?}: expected {expected}")]
    InvalidArgument {
        /// Which argument.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is accepted.
        expected: &'static str,
    },

    /// The requested lifetime ends after the issuing CA's.
    #[error(
        "requested validity ends {requested} but the issuing CA {ca} expires {ca_not_after}; \
         ask for a shorter TTL (at most {max_days} days) or renew the CA"
    )]
    TtlBeyondCa {
        /// The CA's subject.
        ca: String,
        /// The requested NotAfter.
        requested: Rfc3339,
        /// The CA's NotAfter.
        ca_not_after: Rfc3339,
        /// The longest TTL still possible, in whole days.
        max_days: i64,
    },

    /// The CA cannot sign now.
    #[error("the CA {ca} is not valid now ({now}): valid from {not_before} to {not_after}")]
    CaNotValid {
        /// The CA's subject.
        ca: String,
        /// The current time.
        now: Rfc3339,
        /// Its NotBefore.
        not_before: Rfc3339,
        /// Its NotAfter.
        not_after: Rfc3339,
    },

    /// A chain does not verify.
    #[error("chain verification failed: {reason}")]
    ChainInvalid {
        /// Why.
        reason: String,
    },

    /// Building a PKCS#12 keystore failed.
    #[error("cannot build the PKCS#12 keystore: {0}")]
    Pkcs12(String),

    /// Signing with rcgen failed.
    #[error("cannot sign: {0}")]
    Signing(#[from] rcgen::Error),

    /// A CA directory is missing files or does not exist.
    #[error("{} is not a CA directory: {missing} is missing", path.display())]
    NotACaDirectory {
        /// The directory.
        path: PathBuf,
        /// The missing file.
        missing: String,
    },

    /// `ca init` would overwrite an existing CA.
    #[error("{} already holds a CA; refusing to overwrite it", path.display())]
    CaExists {
        /// The directory.
        path: PathBuf,
    },

    /// The inventory database failed.
    #[error("inventory {}: {source}", path.display())]
    Inventory {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },

    /// Certificates were signed but their inventory records were not committed, so they were
    /// thrown away: nothing that is not recorded leaves the CA.
    #[error("not issued: recording it in the inventory failed ({reason})")]
    NotRecorded {
        /// Why the commit failed.
        reason: String,
    },

    /// A name the CA must not vouch for (its constraints, its policy).
    #[error("{name} is refused: {reason}")]
    NameRefused {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },

    /// A serial is not in the inventory.
    #[error("no certificate with serial {serial} in the inventory")]
    UnknownSerial {
        /// The serial, hex.
        serial: String,
    },

    /// The Vault backend is not configured well enough to be used (no address, no role, no
    /// credentials, an unusable setting).
    #[error("Vault configuration: {setting}: {problem}")]
    VaultConfig {
        /// The setting at fault (e.g. `address`, `role`, `ca_cert`).
        setting: &'static str,
        /// What is wrong.
        problem: String,
    },

    /// The backend does not do this (an ACME server keeps no inventory and signs no CRL).
    #[error("the {backend} backend cannot {what}")]
    NotSupported {
        /// The backend (`acme`).
        backend: &'static str,
        /// What was asked (`list certificates`, `sign a CRL`).
        what: &'static str,
    },

    /// The ACME backend is not configured well enough to be used (no directory, terms not
    /// agreed, an unusable account or EAB file).
    #[error("ACME configuration: {setting}: {problem}")]
    AcmeConfig {
        /// The setting at fault (e.g. `directory`, `terms_agreed`, `account_file`).
        setting: &'static str,
        /// What is wrong.
        problem: String,
    },

    /// An ACME server refused or failed an operation; `problem` carries its problem
    /// document's type and detail when it sent one.
    #[error("ACME {operation} at {directory}: {problem}")]
    Acme {
        /// What was being done (`account`, `order`, `challenge`, `finalize`, `revoke`).
        operation: &'static str,
        /// The directory URL.
        directory: String,
        /// What went wrong.
        problem: String,
    },

    /// The CAs to trust for an HTTPS peer cannot be used (a CA file without certificates, no
    /// system roots).
    #[error("TLS trust: {setting}: {problem}")]
    Trust {
        /// The setting at fault (`ca_cert`, `ca_path`).
        setting: &'static str,
        /// What is wrong.
        problem: String,
    },

    /// A settings file is malformed (the text of the line is not repeated: it may hold a
    /// secret).
    #[error("{}:{}: {message}", path.display(), line.map_or_else(String::new, |l| l.to_string()))]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },

    /// Vault / OpenBao could not be reached, or the exchange broke off (connection refused,
    /// TLS handshake failure, timeout).
    #[error("{problem} Vault at {address} ({method} /v1/{path})")]
    VaultTransport {
        /// The server's address.
        address: String,
        /// The HTTP method.
        method: String,
        /// The API path, below `/v1/`.
        path: String,
        /// What kind of failure.
        problem: crate::authority::vault::TransportProblem,
        /// The underlying error (its causes name the TLS or socket problem).
        #[source]
        source: reqwest::Error,
    },

    /// Every attempt failed in a way that passes (a node down or sealed, a leader being
    /// elected, an overloaded server) until the retry budget or the retry limit was spent.
    #[error(
        "no Vault node answered {method} /v1/{path} before the retry budget ran out ({attempts} attempts over {:.1} s, {nodes} node(s) configured); the last failure: {last}",
        elapsed.as_secs_f64()
    )]
    VaultUnavailable {
        /// The HTTP method.
        method: String,
        /// The API path, below `/v1/`.
        path: String,
        /// How many requests were sent.
        attempts: u32,
        /// How many nodes were configured.
        nodes: usize,
        /// How long it went on.
        elapsed: std::time::Duration,
        /// The last attempt's failure (in the message, so not also a source).
        last: Box<Self>,
    },

    /// Vault is sealed: nothing can be done until an operator unseals it.
    #[error(
        "Vault at {address} is sealed ({method} /v1/{path} answered \"Vault is sealed\"); an operator must unseal it"
    )]
    VaultSealed {
        /// The server's address.
        address: String,
        /// The HTTP method.
        method: String,
        /// The API path, below `/v1/`.
        path: String,
    },

    /// Vault answered with an error status; its own messages are kept.
    #[error(
        "Vault at {address} refused {method} /v1/{path}: HTTP {status}{}",
        vault_messages(errors)
    )]
    VaultApi {
        /// The server's address.
        address: String,
        /// The HTTP method.
        method: String,
        /// The API path, below `/v1/`.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Vault's `errors` messages (possibly none).
        errors: Vec<String>,
    },

    /// Nothing at a path (HTTP 404): the secret, certificate or mount does not exist, or the
    /// token may not see it.
    #[error(
        "Vault at {address}: nothing at /v1/{path} (HTTP 404: it does not exist or the token may not read it)"
    )]
    VaultNotFound {
        /// The server's address.
        address: String,
        /// The API path, below `/v1/`.
        path: String,
    },

    /// An AppRole login was refused.
    #[error(
        "AppRole login to Vault at {address} (auth/{mount}/login) failed: HTTP {status}{}",
        vault_messages(errors)
    )]
    VaultLogin {
        /// The server's address.
        address: String,
        /// The AppRole auth mount.
        mount: String,
        /// The HTTP status.
        status: u16,
        /// Vault's messages.
        errors: Vec<String>,
    },

    /// Vault's answer is unusable: not JSON, truncated, missing a field, or a certificate that
    /// does not match what was asked.
    #[error("Vault at {address}, /v1/{path}: {problem}")]
    VaultResponse {
        /// The server's address.
        address: String,
        /// The API path, below `/v1/`.
        path: String,
        /// What is wrong.
        problem: String,
    },
}

impl Error {
    /// Whether the error comes from a malformed argument (as opposed to a failed operation):
    /// command lines map these to the usage exit code.
    pub fn is_invalid_argument(&self) -> bool {
        matches!(
            self,
            Self::InvalidArgument { .. }
                | Self::InvalidDuration { .. }
                | Self::InvalidName { .. }
                | Self::InvalidRequest(_)
                | Self::VaultConfig { .. }
                | Self::ConfigFile { .. }
                | Self::Trust { .. }
                | Self::UnsupportedKeyAlgorithm { .. }
        )
    }
}

/// Vault's messages after a status: `: msg; msg`, or nothing when Vault gave none.
fn vault_messages(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// A timestamp that displays as RFC 3339, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// A display wrapper around one value: there is nothing to add to it.
#[allow(clippy::exhaustive_structs)]
pub struct Rfc3339(pub OffsetDateTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self
            .0
            .format(&time::format_description::well_known::Rfc3339)
        {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0.unix_timestamp()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_only_file_system_names_the_units_write_list() {
        let io_error = |kind| Error::Io {
            op: IoOp::CreateDir,
            path: "/etc/ssl".into(),
            source: io::Error::from(kind),
        };
        let message = io_error(io::ErrorKind::ReadOnlyFilesystem).to_string();
        assert!(
            message.starts_with("cannot create directory /etc/ssl: "),
            "{message}"
        );
        assert!(
            message.contains("`systemctl edit pki.service`"),
            "{message}"
        );
        let message = io_error(io::ErrorKind::PermissionDenied).to_string();
        assert!(!message.contains("pki.service"), "{message}");
    }
}
