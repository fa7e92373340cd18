//! HAProxy's runtime API: replace a certificate in memory without a reload
//! (`set ssl cert` + `commit ssl cert`, `abort ssl cert` on any error). The file on disk is
//! written first, so a later reload or restart loads the same certificate.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Sends one command and returns HAProxy's whole answer (it closes the connection after
/// answering).
fn send(socket: &Path, command: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(command.as_bytes())?;
    let mut answer = String::new();
    stream.take(1 << 20).read_to_string(&mut answer)?;
    Ok(answer.trim().to_owned())
}

fn refused(socket: &Path, reply: &str) -> Error {
    Error::ServiceRefused {
        service: format!("HAProxy runtime API {}", socket.display()),
        reply: reply.lines().collect::<Vec<_>>().join(" | "),
    }
}

/// Replaces the certificate HAProxy loaded from `crt_path` (exactly as written in its config)
/// with `pem` (leaf, chain and key).
pub async fn hot_update(socket: &Path, crt_path: &Path, pem: &str) -> Result<()> {
    let socket: PathBuf = socket.to_path_buf();
    let path = crt_path.display().to_string();
    // A blank line ends a payload; the bundle has none, but be certain.
    let payload: String = pem
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect();
    tokio::task::spawn_blocking(move || {
        let io_err = |e: std::io::Error| Error::Io {
            what: "cannot talk to the HAProxy runtime API at",
            path: socket.clone(),
            source: e,
        };
        // A run killed between `set` and `commit` leaves a transaction open, and HAProxy
        // allows only one: clear it first ("No ongoing transaction" is the usual answer).
        let _ = send(&socket, &format!("abort ssl cert {path}\n"));
        let set_command = format!("set ssl cert {path} <<\n{payload}\n");
        let commit_command = format!("commit ssl cert {path}\n");
        // The open transaction may be another certificate's, left by a run killed mid-update
        // of another target (HAProxy names it when we set or commit): abort that one and try
        // once more.
        let mut retried = false;
        loop {
            let set = send(&socket, &set_command).map_err(io_err)?;
            if let Some(other) = other_transaction(&set).filter(|_| !retried) {
                let _ = send(&socket, &format!("abort ssl cert {other}\n"));
                retried = true;
                continue;
            }
            if !set.contains("Transaction created") && !set.contains("Transaction updated") {
                let _ = send(&socket, &format!("abort ssl cert {path}\n"));
                let hint = if set.contains("not referenced by the configuration") {
                    " (the pem path must be the crt path exactly as in haproxy.cfg)"
                } else {
                    ""
                };
                return Err(refused(&socket, &format!("{set}{hint}")));
            }
            let commit = send(&socket, &commit_command).map_err(io_err)?;
            if let Some(other) = other_transaction(&commit).filter(|_| !retried) {
                let _ = send(&socket, &format!("abort ssl cert {other}\n"));
                retried = true;
                continue;
            }
            if !commit.contains("Success!") {
                let _ = send(&socket, &format!("abort ssl cert {path}\n"));
                return Err(refused(&socket, &commit));
            }
            break;
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::ServiceRefused {
        service: "HAProxy runtime API".to_owned(),
        reply: format!("task failed: {e}"),
    })?
}

/// The path of the transaction HAProxy says is open, from "The ongoing transaction is about
/// '<path>' but you are trying to set '<ours>'".
fn other_transaction(reply: &str) -> Option<&str> {
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
}
