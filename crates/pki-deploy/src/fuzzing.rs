//! Entry points for the fuzz targets in `fuzz/` at the workspace root, built only with the
//! `fuzzing` feature: thin wrappers over the private code that reads what services answer, so
//! that the targets exercise the very code a rotation runs. Not a supported API.
//!
//! The config parser is public ([`crate::config::parse_with`]); only its [`Facts`] need a
//! constructor here.

use crate::config::Facts;
use crate::service::Failure;

/// Facts for [`crate::config::parse_with`]: the host name and the uid writing the files.
pub fn facts(host: &str, writer: u32) -> Facts {
    Facts {
        host: host.to_owned(),
        writer,
    }
}

/// How a replayed exchange with a service ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The service took the new certificate.
    Done,
    /// The exchange failed on the socket (or an answer was not text, or too long).
    Io(std::io::Error),
    /// The service refused: what it said, as the error message will show it.
    Refused(String),
}

impl From<Result<(), Failure>> for Outcome {
    fn from(result: Result<(), Failure>) -> Self {
        match result {
            Ok(()) => Self::Done,
            Err(Failure::Io(e)) => Self::Io(e),
            Err(Failure::Refused(r)) => Self::Refused(r),
        }
    }
}

/// The HAProxy runtime API (`set ssl cert`, `commit ssl cert`, `abort ssl cert`).
pub mod haproxy {
    use std::io::Read;

    use super::Outcome;
    use crate::service::haproxy as real;

    /// One answer read from the admin socket: at most 1 MiB, trimmed, UTF-8 or an error.
    pub fn read_answer(reader: impl Read) -> std::io::Result<String> {
        real::read_answer(reader)
    }

    /// The path of another certificate's open transaction that an answer names.
    pub fn other_transaction(answer: &str) -> Option<&str> {
        real::other_transaction(answer)
    }

    /// An answer on one line, as error messages quote it.
    pub fn one_line(answer: &str) -> String {
        real::one_line(answer)
    }

    /// The `set ssl cert` payload made of a PEM bundle.
    pub fn payload(pem: &str) -> String {
        real::payload(pem)
    }

    /// Replays the update of the certificate at `path` with `payload`: `send` gets every
    /// command in turn and returns the answer (as [`read_answer`] reads it).
    pub fn converse(
        send: &mut dyn FnMut(&str) -> std::io::Result<String>,
        path: &str,
        payload: &str,
    ) -> Outcome {
        real::converse(send, path, payload).into()
    }
}

/// Redis's RESP on the unix socket (`AUTH`, `CONFIG SET`).
pub mod redis {
    use std::io::BufRead;

    use super::Outcome;
    use crate::service::redis as real;

    /// A command as a RESP array of bulk strings.
    pub fn encode(args: &[&str]) -> Vec<u8> {
        real::encode(args)
    }

    /// One reply line (`+OK`, `-ERR …`), without its line end; a line longer than 64 KiB or
    /// cut short is an error.
    pub fn reply(reader: &mut impl BufRead) -> std::io::Result<String> {
        real::reply(reader)
    }

    /// Replays the exchange of a reload: `AUTH` with `password` when there is one, then the
    /// command `args`, with the replies read from `answers`. The outcome, and the bytes sent.
    pub fn exchange(answers: &[u8], password: Option<&str>, args: &[&str]) -> (Outcome, Vec<u8>) {
        let mut reader = std::io::Cursor::new(answers);
        let mut sent = Vec::new();
        let password = password.map(|p| pki::SecretString::new(p.to_owned()));
        let outcome = real::exchange(&mut reader, &mut sent, password.as_ref(), args).into();
        (outcome, sent)
    }
}
