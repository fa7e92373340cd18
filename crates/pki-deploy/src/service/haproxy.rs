//! HAProxy: leaf, chain and key in one PEM file (no blank line: it ends a runtime API
//! payload), at the exact `crt` path of haproxy.cfg. A new version is loaded through the
//! runtime API on the admin `socket` (`set ssl cert` + `commit ssl cert`, `abort ssl cert` on any
//! error): the certificate changes in memory without a reload, and the file on disk, written
//! first, is what a later reload or restart reads. Without a socket, or when the runtime API
//! refuses, the `test_command` and `reload_command` run instead (the test only then: the
//! runtime API checks the payload itself).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{
    Content, Failure, Invalid, Kind, Ops, OutputFile, Paths, RawCommand, Step, StepFuture, Uses,
    command,
};
use crate::deadline::{Bounded, Deadline, connect_unix};
use crate::error::{Error, Result};
use crate::exec::CommandSpec;

/// How long a whole update on the admin socket may take (a handful of commands).
const UPDATE_LIMIT: Duration = Duration::from_secs(30);
/// Largest answer read from the admin socket.
const MAX_ANSWER: u64 = 1 << 20;

/// An HAProxy target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Haproxy {
    /// The combined PEM, as `crt` names it in haproxy.cfg.
    pub pem: PathBuf,
    /// How the new certificate is loaded.
    pub load: Load,
    /// Checks the configuration before a reload (`haproxy -c -f …`).
    pub test_command: Option<CommandSpec>,
}

/// How HAProxy loads a new certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Load {
    /// The runtime API only.
    Socket(PathBuf),
    /// A reload only.
    Reload(CommandSpec),
    /// The runtime API, with a reload when it refuses.
    SocketOrReload(PathBuf, CommandSpec),
}

/// The keys of an HAProxy target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    pem: Option<String>,
    socket: Option<String>,
    reload_command: Option<RawCommand>,
    test_command: Option<RawCommand>,
}

impl Kind for Haproxy {
    const NAMES: &'static [&'static str] = &["haproxy"];
    type Raw = Raw;

    fn from_raw(raw: Raw, paths: &Paths<'_>) -> std::result::Result<Self, Invalid> {
        let socket = raw.socket.as_deref().map(|s| paths.path(s));
        let reload = command("reload_command", raw.reload_command)?;
        let load = match (socket, reload) {
            (Some(s), Some(r)) => Load::SocketOrReload(s, r),
            (Some(s), None) => Load::Socket(s),
            (None, Some(r)) => Load::Reload(r),
            (None, None) => {
                return Err(Invalid::new(
                    "socket",
                    "give the admin socket (runtime API), a reload_command, or both",
                ));
            }
        };
        Ok(Self {
            pem: paths.required("pem", raw.pem)?,
            load,
            test_command: command("test_command", raw.test_command)?,
        })
    }
}

impl Ops for Haproxy {
    fn uses(&self) -> Uses<'_> {
        Uses {
            commands: self
                .test_command
                .iter()
                .chain(match &self.load {
                    Load::Reload(c) | Load::SocketOrReload(_, c) => Some(c),
                    Load::Socket(_) => None,
                })
                .collect(),
            secrets: Vec::new(),
        }
    }

    fn files(&self) -> Vec<OutputFile> {
        vec![OutputFile::new(&self.pem, Content::Combined)]
    }

    fn load<'a>(&'a self, step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(async move {
            let (socket, reload) = match &self.load {
                Load::Socket(s) => (Some(s), None),
                Load::Reload(r) => (None, Some(r)),
                Load::SocketOrReload(s, r) => (Some(s), Some(r)),
            };
            let hot = match socket {
                Some(socket) => Some(self.hot_update_from(step, socket).await),
                None => None,
            };
            match (hot, reload) {
                (Some(Ok(())), _) => Ok(()),
                (Some(Err(e)), None) => Err(e),
                // No runtime API, or it refused: a reload reads the new file from disk.
                (_, Some(reload)) => {
                    if let Some(test) = &self.test_command {
                        step.run(test).await?;
                    }
                    step.run(reload).await
                }
                (None, None) => Ok(()),
            }
        })
    }
}

impl Haproxy {
    /// Hands the combined PEM of the version being loaded to the runtime API.
    async fn hot_update_from(&self, step: &Step<'_>, socket: &Path) -> Result<()> {
        let name = super::layout::basename(&self.pem);
        let file = step.version.path().join(&name);
        let (bytes, _) = step.version.read_file(&name, pki::fsio::MAX_PEM_INPUT)?;
        let pem = std::str::from_utf8(&bytes).map_err(|_| Error::ServiceRefused {
            service: "HAProxy".to_owned(),
            reply: format!("{} is not text", file.display()),
        })?;
        hot_update(socket, &self.pem, pem).await
    }
}

/// Sends one command and returns HAProxy's whole answer (it closes the connection after
/// answering), by `deadline` and at most [`MAX_ANSWER`] bytes of it.
fn send(socket: &Path, command: &str, deadline: Deadline) -> std::io::Result<String> {
    let mut stream = Bounded::new(connect_unix(socket, deadline)?, deadline);
    stream.write_all(command.as_bytes())?;
    read_answer(stream)
}

/// Reads a whole answer, at most [`MAX_ANSWER`] bytes of it, without the surrounding white
/// space. An answer that is not UTF-8 is an `InvalidData` error.
pub(crate) fn read_answer(reader: impl Read) -> std::io::Result<String> {
    let mut answer = String::new();
    reader.take(MAX_ANSWER).read_to_string(&mut answer)?;
    Ok(answer.trim().to_owned())
}

fn refused(socket: &Path, reply: &str) -> Error {
    Error::ServiceRefused {
        service: format!("HAProxy runtime API {}", socket.display()),
        reply: one_line(reply),
    }
}

/// An answer on one line, its lines joined by ` | `, for an error message.
pub(crate) fn one_line(reply: &str) -> String {
    reply.lines().collect::<Vec<_>>().join(" | ")
}

/// The payload of `set ssl cert`: the PEM without blank lines (a blank line ends a payload).
pub(crate) fn payload(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Replaces the certificate HAProxy loaded from `crt_path` (exactly as written in its config)
/// with `pem` (leaf, chain and key).
pub async fn hot_update(socket: &Path, crt_path: &Path, pem: &str) -> Result<()> {
    let socket: PathBuf = socket.to_path_buf();
    let path = crt_path.display().to_string();
    // A blank line ends a payload; the bundle has none, but be certain.
    let payload = payload(pem);
    let deadline = Deadline::after(UPDATE_LIMIT);
    tokio::task::spawn_blocking(move || {
        let mut send = |command: &str| send(&socket, command, deadline);
        converse(&mut send, &path, &payload).map_err(|failure| match failure {
            Failure::Io(e) => Error::Socket {
                service: "the HAProxy runtime API",
                socket: socket.clone(),
                source: e,
            },
            Failure::Refused(reply) => refused(&socket, &reply),
        })
    })
    .await
    .map_err(|e| Error::Task {
        what: "HAProxy runtime API",
        reason: e.to_string(),
    })?
}

/// The runtime-API exchange of one update of the certificate at `path` with `payload`:
/// `send` sends one command and returns the answer (trimmed, as [`read_answer`] gives it).
/// Every command goes through `send`, so the exchange can be replayed without a socket.
pub(crate) fn converse(
    send: &mut dyn FnMut(&str) -> std::io::Result<String>,
    path: &str,
    payload: &str,
) -> std::result::Result<(), Failure> {
    // A run killed between `set` and `commit` leaves a transaction open, and HAProxy
    // allows only one: clear it first ("No ongoing transaction" is the usual answer).
    let _ = send(&format!("abort ssl cert {path}\n"));
    let set_command = format!("set ssl cert {path} <<\n{payload}\n");
    let commit_command = format!("commit ssl cert {path}\n");
    // The open transaction may be another certificate's, left by a run killed mid-update
    // of another target (HAProxy names it when we set or commit): abort that one and try
    // once more.
    let mut retried = false;
    loop {
        let set = send(&set_command).map_err(Failure::Io)?;
        if let Some(other) = other_transaction(&set).filter(|_| !retried) {
            let _ = send(&format!("abort ssl cert {other}\n"));
            retried = true;
            continue;
        }
        if !set.contains("Transaction created") && !set.contains("Transaction updated") {
            let _ = send(&format!("abort ssl cert {path}\n"));
            let hint = if set.contains("not referenced by the configuration") {
                " (the pem path must be the crt path exactly as in haproxy.cfg)"
            } else {
                ""
            };
            return Err(Failure::Refused(format!("{set}{hint}")));
        }
        let commit = send(&commit_command).map_err(Failure::Io)?;
        if let Some(other) = other_transaction(&commit).filter(|_| !retried) {
            let _ = send(&format!("abort ssl cert {other}\n"));
            retried = true;
            continue;
        }
        if !commit.contains("Success!") {
            let _ = send(&format!("abort ssl cert {path}\n"));
            return Err(Failure::Refused(commit));
        }
        break;
    }
    Ok(())
}

/// The path of the transaction HAProxy says is open, from "The ongoing transaction is about
/// '<path>' but you are trying to set '<ours>'".
pub(crate) fn other_transaction(reply: &str) -> Option<&str> {
    let rest = reply.split("transaction is about '").nth(1)?;
    let end = rest.find('\'')?;
    Some(&rest[..end]).filter(|p| !p.is_empty() && !p.contains('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_of_another_open_transaction_is_found() {
        assert_eq!(
            other_transaction(
                "The ongoing transaction is about '/etc/haproxy/a.pem' but you are trying to \
                 set '/etc/haproxy/b.pem'"
            ),
            Some("/etc/haproxy/a.pem")
        );
        assert_eq!(
            other_transaction("Transaction created for certificate x!"),
            None
        );
    }

    /// Replays `converse` against scripted answers; the commands it sent and how it ended.
    fn replay(answers: &[&str]) -> (Vec<String>, std::result::Result<(), Failure>) {
        let mut script = answers.iter();
        let mut sent = Vec::new();
        let mut send = |command: &str| {
            sent.push(command.to_owned());
            script.next().map(|a| (*a).to_owned()).ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "no more answers")
            })
        };
        let outcome = converse(&mut send, "/etc/haproxy/a.pem", "PEM\n");
        (sent, outcome)
    }

    #[test]
    fn an_update_is_set_then_committed() {
        let (sent, outcome) = replay(&[
            "No ongoing transaction!",
            "Transaction created for certificate /etc/haproxy/a.pem!",
            "Committing /etc/haproxy/a.pem\nSuccess!",
        ]);
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(
            sent,
            [
                "abort ssl cert /etc/haproxy/a.pem\n",
                "set ssl cert /etc/haproxy/a.pem <<\nPEM\n\n",
                "commit ssl cert /etc/haproxy/a.pem\n",
            ]
        );
    }

    #[test]
    fn a_refusal_is_aborted_and_quoted() {
        let (sent, outcome) = replay(&[
            "",
            "Can't replace a certificate which is not referenced by the configuration!",
            "Transaction aborted",
        ]);
        let Err(Failure::Refused(reply)) = outcome else {
            panic!("{outcome:?}");
        };
        assert!(reply.contains("crt path exactly as in haproxy.cfg"), "{reply}");
        assert_eq!(sent.last().unwrap(), "abort ssl cert /etc/haproxy/a.pem\n");

        let (sent, outcome) = replay(&["", "Transaction created", "Unknown command", ""]);
        assert!(matches!(outcome, Err(Failure::Refused(r)) if r == "Unknown command"));
        assert_eq!(sent.len(), 4);
        let (_, outcome) = replay(&["", "Transaction created"]);
        assert!(matches!(outcome, Err(Failure::Io(_))));
    }

    #[test]
    fn another_open_transaction_is_aborted_once() {
        let other = "The ongoing transaction is about '/etc/haproxy/b.pem' but you are trying \
                     to set '/etc/haproxy/a.pem'";
        let (sent, outcome) = replay(&["", other, "Transaction aborted", other, ""]);
        assert!(matches!(outcome, Err(Failure::Refused(_))), "{outcome:?}");
        assert_eq!(sent[2], "abort ssl cert /etc/haproxy/b.pem\n");
        assert_eq!(sent.len(), 5);
    }

    #[test]
    fn answers_are_trimmed_text_and_payloads_have_no_blank_line() {
        let answer = read_answer(&b"  Success!\n\n"[..]).unwrap();
        assert_eq!(answer, "Success!");
        let e = read_answer(&b"\xff\xfe"[..]).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let long = read_answer(std::io::repeat(b'a')).unwrap();
        assert_eq!(long.len() as u64, MAX_ANSWER);
        assert_eq!(payload("A\n\n  \r\nB\r\n"), "A\nB\n");
        assert_eq!(one_line("a\nb\r\nc"), "a | b | c");
    }
}
