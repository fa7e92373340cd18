//! How an order's challenges are answered, and cleaned up once it is validated: http-01 from
//! the built-in responder, from the web server itself (stateless, from the account
//! thumbprint), or from files in a webroot; dns-01 through an operator's hook command.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{ChallengeType, KeyAuthorization};

use super::responder::{CHALLENGE_PATH, Responder};
use crate::error::{Error, Result};
use crate::fsio::FileMode;
use crate::fsio::dir::{Dir, Owners};

/// How long a dns-01 hook may run.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of a failed hook's stderr is kept for its error.
const HOOK_STDERR_KEPT: usize = 500;

/// How challenges are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Challenge {
    /// http-01 from a responder listening here while an order is validated; the proxy on
    /// port 80 routes `/.well-known/acme-challenge/` to it.
    Http01Responder {
        /// Where it listens (a loopback address and port).
        listen: SocketAddr,
    },
    /// http-01 answered by the proxy itself from the account thumbprint (HAProxy's
    /// `http-request return`, see `pki acme thumbprint`): nothing to publish here.
    Http01Stateless,
    /// http-01 from files written under `dir/.well-known/acme-challenge/` (Nginx webroot).
    Http01Webroot {
        /// The webroot.
        dir: PathBuf,
    },
    /// dns-01 through a command (argv, no shell), run with a clean environment holding
    /// `PKI_ACME_ACTION` (`set` or `clear`), `PKI_ACME_NAME` (`_acme-challenge.` and the
    /// domain) and `PKI_ACME_VALUE` (the TXT value). The only way to wildcard names.
    Dns01Hook {
        /// The program and its arguments.
        command: Vec<String>,
    },
}

impl Challenge {
    /// The ACME challenge type it answers.
    pub(crate) fn kind(&self) -> ChallengeType {
        match self {
            Self::Dns01Hook { .. } => ChallengeType::Dns01,
            _ => ChallengeType::Http01,
        }
    }
}

/// What an order published, to be taken down when it is done.
#[derive(Debug)]
pub(crate) struct Solver<'a> {
    challenge: &'a Challenge,
    responder: Option<Responder>,
    files: Vec<PathBuf>,
    records: Vec<(String, String)>,
}

impl<'a> Solver<'a> {
    /// A solver that has published nothing yet.
    pub(crate) fn new(challenge: &'a Challenge) -> Self {
        Self {
            challenge,
            responder: None,
            files: Vec::new(),
            records: Vec::new(),
        }
    }

    /// Publishes the answer to one challenge for `domain` (without a wildcard's `*.`).
    pub(crate) async fn publish(
        &mut self,
        domain: &str,
        token: &str,
        key_authorization: &KeyAuthorization,
    ) -> Result<()> {
        match self.challenge {
            Challenge::Http01Responder { listen } => {
                check_token(token)?;
                if self.responder.is_none() {
                    self.responder = Some(Responder::start(*listen).await?);
                }
                if let Some(r) = &self.responder {
                    r.publish(token, key_authorization.as_str());
                }
            }
            Challenge::Http01Stateless => {}
            Challenge::Http01Webroot { dir } => {
                check_token(token)?;
                let challenges = challenge_dir(dir)?;
                challenges.rewrite(
                    token,
                    key_authorization.as_str().as_bytes(),
                    FileMode::PUBLIC,
                )?;
                self.files.push(challenges.path().join(token));
            }
            Challenge::Dns01Hook { command } => {
                let name = format!("_acme-challenge.{domain}");
                let value = key_authorization.dns_value();
                run_hook(command, "set", &name, &value).await?;
                self.records.push((name, value));
            }
        }
        Ok(())
    }

    /// Takes down everything published; failures are returned as warnings (the order's
    /// outcome does not depend on them).
    pub(crate) async fn clear(mut self) -> Vec<String> {
        let mut warnings = Vec::new();
        self.responder = None;
        for f in self.files.drain(..) {
            let removed = match (f.parent(), f.file_name().and_then(|n| n.to_str())) {
                (Some(dir), Some(name)) => {
                    Dir::open(dir, Owners::running()).and_then(|d| d.remove_file(name))
                }
                _ => Ok(()),
            };
            if let Err(e) = removed {
                warnings.push(format!("cannot remove {}: {e}", f.display()));
            }
        }
        if let Challenge::Dns01Hook { command } = self.challenge {
            for (name, value) in std::mem::take(&mut self.records) {
                if let Err(e) = run_hook(command, "clear", &name, &value).await {
                    warnings.push(format!("the dns-01 hook could not clear {name}: {e}"));
                }
            }
        }
        warnings
    }
}

/// A token is base64url (RFC 8555 §8.1): anything else could name another path.
fn check_token(token: &str) -> Result<()> {
    let ok = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::Acme {
            operation: "challenge",
            directory: String::new(),
            problem: format!("the server sent a token that is not base64url: {token:?}"),
        })
    }
}

/// The challenge directory under a webroot, reached through checked handles (no link
/// followed, nothing writable by another user on the way) and made (0755) where missing.
fn challenge_dir(webroot: &Path) -> Result<Dir> {
    let mut dir = Dir::open(webroot, Owners::running())?;
    for part in CHALLENGE_PATH.trim_matches('/').split('/') {
        dir = dir.create_sub(part, 0o755)?;
    }
    Ok(dir)
}

/// Runs the dns-01 hook for one record, bounded in time, its process group killed past it.
async fn run_hook(command: &[String], action: &str, name: &str, value: &str) -> Result<()> {
    let fail = |problem: String| Error::Acme {
        operation: "dns-01 hook",
        directory: String::new(),
        problem,
    };
    let (program, args) = command
        .split_first()
        .ok_or_else(|| fail("no command configured".to_owned()))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("PKI_ACME_ACTION", action)
        .env("PKI_ACME_NAME", name)
        .env("PKI_ACME_VALUE", value)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start {program}: {e}")))?;
    let pid = child.id();
    // Its stderr is drained as it comes, keeping the last bytes only: a chatty hook never
    // blocks on a full pipe, and a long one costs no memory.
    let reader = child.stderr.take().map(|mut err| {
        tokio::spawn(async move {
            let mut tail = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = tokio::io::AsyncReadExt::read(&mut err, &mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                let excess = tail.len().saturating_sub(HOOK_STDERR_KEPT);
                tail.drain(..excess);
            }
            tail
        })
    });
    let waited = tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await;
    let stderr = async {
        // A child of the hook may keep the pipe open: its tail is awaited briefly only.
        match reader {
            Some(r) => tokio::time::timeout(Duration::from_secs(1), r)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    };
    match waited {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => {
            let stderr = stderr.await;
            let text = String::from_utf8_lossy(&stderr);
            Err(fail(format!(
                "{program} {action} {name} failed ({status}): {}",
                text.trim()
            )))
        }
        Ok(Err(e)) => Err(fail(format!("{program}: {e}"))),
        Err(_) => {
            if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Err(fail(format!(
                "{program} {action} {name} took longer than {}s",
                HOOK_TIMEOUT.as_secs()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failing_hook_is_reported_with_the_tail_of_its_stderr() {
        // 200 kB on stderr: more than a pipe holds, drained without blocking the hook.
        let command: Vec<String> = [
            "sh",
            "-c",
            "head -c 200000 /dev/zero | tr '\\0' x >&2; echo last words >&2; exit 3",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        let e = run_hook(&command, "set", "_acme-challenge.example.com", "v")
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("failed") && e.contains("last words"), "{e}");
        assert!(e.len() < 1000, "{} bytes", e.len());
    }

    #[test]
    fn tokens_that_could_name_a_path_are_refused() {
        assert!(check_token("abc-DEF_123").is_ok());
        for bad in ["", "../x", "a/b", "a.b", "a b"] {
            assert!(check_token(bad).is_err(), "{bad:?}");
        }
    }
}
