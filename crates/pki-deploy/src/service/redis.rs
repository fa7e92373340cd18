//! Redis: full chain, key (read by the redis user, so group-readable by default) and
//! optionally the CA for client certificates. `CONFIG SET tls-cert-file … tls-key-file …` over
//! the unix `socket` (with AUTH from `password_file`) makes Redis (7.0.1+) read the files again;
//! on any error it keeps the old TLS context and answers `-ERR`, which redis-cli would report
//! with exit status 0, so the reply is read here.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use pki::SecretString;
use serde::Deserialize;

use super::tls_files::{TlsFiles, tls_files};
use super::{Failure, Invalid, Kind, Ops, OutputFile, Paths, Step, StepFuture, Uses};
use crate::deadline::{Bounded, Deadline, connect_unix};
use crate::error::{Error, Result};

/// How long the whole exchange on the socket (AUTH, CONFIG SET) may take.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(10);
/// Longest reply line read: Redis answers `+OK` or a one-line error.
const MAX_REPLY: u64 = 64 * 1024;

/// A Redis target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Redis {
    /// The files.
    pub files: TlsFiles,
    /// The unix socket where CONFIG SET is sent.
    pub socket: PathBuf,
    /// A file holding the password for AUTH (mode 0600).
    pub password_file: Option<PathBuf>,
}

/// The keys of a Redis target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    socket: Option<String>,
    password_file: Option<String>,
}

impl Kind for Redis {
    const NAMES: &'static [&'static str] = &["redis"];
    type Raw = Raw;

    fn from_raw(raw: Raw, paths: &Paths<'_>) -> std::result::Result<Self, Invalid> {
        let socket = raw.socket.as_deref().map(|s| paths.path(s)).ok_or_else(|| {
            Invalid::new("socket", "required: the unix socket where CONFIG SET is sent")
        })?;
        Ok(Self {
            files: tls_files(paths, &raw.cert, &raw.key, &raw.ca)?,
            socket,
            password_file: raw.password_file.as_deref().map(|p| paths.path(p)),
        })
    }
}

impl Ops for Redis {
    fn uses(&self) -> Uses<'_> {
        Uses {
            commands: Vec::new(),
            secrets: self.password_file.iter().map(PathBuf::as_path).collect(),
        }
    }

    fn files(&self) -> Vec<OutputFile> {
        self.files.files()
    }

    fn reads_key_as(&self) -> Option<&'static str> {
        Some("Redis")
    }

    fn default_key_mode(&self, _owner: u32) -> u32 {
        0o640
    }

    fn load<'a>(&'a self, _step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(async move {
            let password = self
                .password_file
                .as_deref()
                .map(pki::fsio::read_secret_file)
                .transpose()?;
            reload(&self.socket, password, &self.files).await
        })
    }
}

/// A RESP array of bulk strings.
pub(crate) fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Reads one reply line: `+OK`, `-ERR …`, or anything else (an error for our purpose). A line
/// longer than [`MAX_REPLY`], or cut short, is refused: the peer is not talking Redis.
pub(crate) fn reply(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    reader.take(MAX_REPLY).read_line(&mut line)?;
    if !line.ends_with("\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("no complete reply line within {MAX_REPLY} bytes"),
        ));
    }
    Ok(line.trim_end().to_owned())
}

/// Tells Redis to load the certificate files again.
async fn reload(socket: &Path, password: Option<SecretString>, files: &TlsFiles) -> Result<()> {
    let socket: PathBuf = socket.to_path_buf();
    let mut args = vec![
        "CONFIG".to_owned(),
        "SET".to_owned(),
        "tls-cert-file".to_owned(),
        files.cert.display().to_string(),
        "tls-key-file".to_owned(),
        files.key.display().to_string(),
    ];
    if let Some(ca) = &files.ca {
        args.push("tls-ca-cert-file".to_owned());
        args.push(ca.display().to_string());
    }
    tokio::task::spawn_blocking(move || {
        let io_err = |e: std::io::Error| Error::Socket {
            service: "Redis",
            socket: socket.clone(),
            source: e,
        };
        let deadline = Deadline::after(EXCHANGE_LIMIT);
        let stream = connect_unix(&socket, deadline).map_err(io_err)?;
        let mut writer = Bounded::new(stream.try_clone().map_err(io_err)?, deadline);
        let mut reader = BufReader::new(Bounded::new(stream, deadline));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        exchange(&mut reader, &mut writer, password.as_ref(), &refs).map_err(|f| match f {
            Failure::Io(e) => io_err(e),
            Failure::Refused(r) => Error::ServiceRefused {
                service: format!("Redis {}", socket.display()),
                reply: r,
            },
        })
    })
    .await
    .map_err(|e| Error::Task {
        what: "Redis CONFIG SET",
        reason: e.to_string(),
    })?
}

/// The exchange on the socket: `AUTH` with `password` when there is one, then the command
/// `args`; each must be answered `+OK`. Generic over the streams, so that it can be replayed
/// without a socket.
pub(crate) fn exchange(
    reader: &mut impl BufRead,
    writer: &mut impl Write,
    password: Option<&SecretString>,
    args: &[&str],
) -> std::result::Result<(), Failure> {
    if let Some(p) = password {
        let mut auth = zeroize::Zeroizing::new(encode(&["AUTH", p.expose()]));
        writer.write_all(&auth).map_err(Failure::Io)?;
        zeroize::Zeroize::zeroize(&mut *auth);
        let r = reply(reader).map_err(Failure::Io)?;
        if r != "+OK" {
            // Never echo what was sent; Redis's answer carries no secret.
            return Err(Failure::Refused(format!("AUTH: {r}")));
        }
    }
    writer.write_all(&encode(args)).map_err(Failure::Io)?;
    let r = reply(reader).map_err(Failure::Io)?;
    if r == "+OK" {
        Ok(())
    } else {
        Err(Failure::Refused(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resp_encoding() {
        assert_eq!(encode(&["PING"]), b"*1\r\n$4\r\nPING\r\n");
        // Lengths are bytes, not characters; empty and spaced arguments stay one argument.
        assert_eq!(
            encode(&["CONFIG", "SET", "tls-cert-file", "/etc/rédis/a b.crt", ""]),
            b"*5\r\n$6\r\nCONFIG\r\n$3\r\nSET\r\n$13\r\ntls-cert-file\r\n$19\r\n/etc/r\xc3\xa9dis/a b.crt\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn replies_are_one_line() {
        let mut r = std::io::Cursor::new(b"-ERR no\r\n+OK\r\n".to_vec());
        assert_eq!(reply(&mut r).unwrap(), "-ERR no");
        assert_eq!(reply(&mut r).unwrap(), "+OK");
    }

    #[test]
    fn finding_4_an_endless_reply_is_cut_at_its_bound() {
        // What a hostile socket owner sends: letters without end, never a line break.
        let endless = std::io::repeat(b'A');
        let mut reader = BufReader::new(endless);
        let e = reply(&mut reader).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let mut cut = std::io::Cursor::new(b"+OK".to_vec());
        assert!(reply(&mut cut).is_err());
    }

    /// Replays `exchange` against scripted replies; how it ended and the bytes sent.
    fn replay(
        replies: &[u8],
        password: Option<&str>,
    ) -> (std::result::Result<(), Failure>, Vec<u8>) {
        let mut reader = std::io::Cursor::new(replies);
        let mut sent = Vec::new();
        let password = password.map(|p| SecretString::new(p.to_owned()));
        let outcome = exchange(&mut reader, &mut sent, password.as_ref(), &["CONFIG", "SET"]);
        (outcome, sent)
    }

    #[test]
    fn auth_then_config_set_each_answered_ok() {
        let (outcome, sent) = replay(b"+OK\r\n+OK\r\n", Some("pw"));
        assert!(outcome.is_ok(), "{outcome:?}");
        let mut expected = encode(&["AUTH", "pw"]);
        expected.extend(encode(&["CONFIG", "SET"]));
        assert_eq!(sent, expected);
        let (outcome, sent) = replay(b"+OK\r\n", None);
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(sent, encode(&["CONFIG", "SET"]));
    }

    #[test]
    fn a_refused_auth_stops_before_the_command_and_errors_are_quoted() {
        let (outcome, sent) = replay(b"-WRONGPASS invalid password\r\n", Some("pw"));
        assert!(
            matches!(&outcome, Err(Failure::Refused(r)) if r == "AUTH: -WRONGPASS invalid password"),
            "{outcome:?}"
        );
        assert_eq!(sent, encode(&["AUTH", "pw"]));
        let (outcome, _) = replay(b"-ERR Unable to update TLS configuration\r\n", None);
        assert!(matches!(&outcome, Err(Failure::Refused(r)) if r.starts_with("-ERR")));
        let (outcome, _) = replay(b"+OK\r\n", Some("pw"));
        assert!(matches!(outcome, Err(Failure::Io(_))), "{outcome:?}");
    }
}
