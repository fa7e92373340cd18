//! Running test and reload commands: no shell unless asked for, a scrubbed environment, a time
//! limit, and the end of their output kept for the error message.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::config::CommandSpec;
use crate::error::{Error, Result};

/// Most output kept from a command (the tail).
const OUTPUT_TAIL: usize = 2000;
/// Most output read from a command at all; the rest is discarded.
const OUTPUT_LIMIT: usize = 1 << 20;
/// How long output is still read after the command exited.
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `spec` with `env` added to a minimal environment; succeeds on exit status 0 within
/// `timeout`. The child is killed if the time runs out.
pub async fn run(spec: &CommandSpec, env: &[(&str, String)], timeout: Duration) -> Result<String> {
    let mut cmd = match spec {
        CommandSpec::Argv(argv) => {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
        CommandSpec::Shell(line) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
    };
    // Hooks get a known environment, not ours (which may hold VAULT_TOKEN or a passphrase).
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned()),
        )
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Ok(home) = std::env::var("HOME") {
        cmd.env("HOME", home);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let failed = |outcome: String, output: String| Error::Command {
        command: spec.display(),
        outcome,
        output,
    };
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(format!("could not start ({e})"), String::new()))?;
    // Both pipes are read at once, by tasks of their own (a child filling one while we wait on
    // the other would block forever); output past the limit is read and discarded so the child
    // never stalls.
    fn drain<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
        pipe: Option<R>,
        into: Arc<Mutex<Vec<u8>>>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let Some(mut p) = pipe else { return };
            let mut buf = [0u8; 4096];
            loop {
                match p.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut kept) = into.lock()
                            && kept.len() < OUTPUT_LIMIT
                        {
                            kept.extend_from_slice(&buf[..n]);
                        }
                    }
                }
            }
        })
    }
    let output = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        drain(child.stdout.take(), output.clone()),
        drain(child.stderr.take(), output.clone()),
    ];
    let limit = std::time::Duration::from_millis(
        u64::try_from(timeout.whole_milliseconds()).unwrap_or(u64::MAX),
    );
    // The command is done when it exits, not when its pipes close: a reload that starts a
    // daemon (`haproxy -D`, an init script) leaves them open in the daemon.
    let outcome = tokio::time::timeout(limit, child.wait()).await;
    for mut reader in readers {
        if tokio::time::timeout(OUTPUT_GRACE, &mut reader)
            .await
            .is_err()
        {
            // Still open after the command exited: a daemon holds it. Stop reading.
            reader.abort();
        }
    }
    let output = output.lock().map(|o| o.clone()).unwrap_or_default();
    let outcome = outcome.map(|status| (output, status));
    match outcome {
        Err(_) => {
            let _ = child.kill().await;
            Err(failed(
                format!("did not finish within {}", pki::duration::format(timeout)),
                String::new(),
            ))
        }
        Ok((output, Err(e))) => Err(failed(format!("failed ({e})"), tail(&output))),
        Ok((output, Ok(status))) if status.success() => Ok(tail(&output)),
        Ok((output, Ok(status))) => {
            let how = match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".to_owned(),
            };
            Err(failed(how, tail(&output)))
        }
    }
}

/// The last [`OUTPUT_TAIL`] bytes of output as one line of text.
fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    let start = text.len().saturating_sub(OUTPUT_TAIL);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(text.len());
    let cut = &text[start..];
    let joined = cut
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ");
    if start > 0 {
        format!("…{joined}")
    } else {
        joined
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn success_failure_timeout_and_env() {
        rt().block_on(async {
            let ok = run(
                &CommandSpec::Shell("echo $PKI_X".into()),
                &[("PKI_X", "hello".into())],
                Duration::seconds(5),
            )
            .await;
            assert_eq!(ok.unwrap(), "hello");
            let leaked = run(
                &CommandSpec::Shell("echo ${PKI_CA_PASSPHRASE:-none}".into()),
                &[],
                Duration::seconds(5),
            )
            .await;
            assert_eq!(leaked.unwrap(), "none");
            let bad = run(
                &CommandSpec::Argv(vec![
                    "sh".into(),
                    "-c".into(),
                    "echo oops >&2; exit 3".into(),
                ]),
                &[],
                Duration::seconds(5),
            )
            .await;
            let e = bad.unwrap_err().to_string();
            assert!(e.contains("status 3") && e.contains("oops"), "{e}");
            let slow = run(
                &CommandSpec::Argv(vec!["sleep".into(), "5".into()]),
                &[],
                Duration::milliseconds(200),
            )
            .await;
            assert!(slow.unwrap_err().to_string().contains("did not finish"));
            let missing = run(
                &CommandSpec::Argv(vec!["/nonexistent/reload".into()]),
                &[],
                Duration::seconds(1),
            )
            .await;
            assert!(missing.unwrap_err().to_string().contains("could not start"));
            // A reload that leaves a daemon holding its output open is done when it exits.
            let daemonizing = run(
                &CommandSpec::Shell("sleep 10 & echo started".into()),
                &[],
                Duration::seconds(3),
            )
            .await;
            assert_eq!(daemonizing.unwrap(), "started");
        });
    }
}
