//! Running test and reload commands: no shell unless asked for, a scrubbed environment, a time
//! limit, and the end of their output kept for the error message.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use time::Duration;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::error::{CommandOutcome, Error, Result};

/// A command to run: a program and its arguments, or a shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandSpec {
    /// Executed directly, without a shell.
    Argv {
        /// The program (a path, or a name looked up in `PATH`).
        program: String,
        /// Its arguments.
        args: Vec<String>,
    },
    /// Run with `/bin/sh -c`.
    Shell(String),
}

impl CommandSpec {
    /// An argv list; `None` when it is empty.
    pub fn from_argv(argv: Vec<String>) -> Option<Self> {
        let mut argv = argv.into_iter();
        let program = argv.next().filter(|p| !p.is_empty())?;
        Some(Self::Argv {
            program,
            args: argv.collect(),
        })
    }

    /// A shell line; `None` when it is blank.
    pub fn from_shell(line: String) -> Option<Self> {
        (!line.trim().is_empty()).then_some(Self::Shell(line))
    }

    /// An argv list of string literals (the services' defaults).
    pub(crate) fn of(argv: &[&str]) -> Self {
        let (program, args) = argv.split_first().unwrap_or((&"true", &[]));
        Self::Argv {
            program: (*program).to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    /// How the command reads in messages.
    pub fn display(&self) -> String {
        match self {
            Self::Argv { program, args } if args.is_empty() => program.clone(),
            Self::Argv { program, args } => format!("{program} {}", args.join(" ")),
            Self::Shell(s) => s.clone(),
        }
    }
}

/// Most output kept from a command (the tail).
const OUTPUT_TAIL: usize = 2000;
/// Most output read from a command at all; the rest is discarded.
const OUTPUT_LIMIT: usize = 1 << 20;
/// How long output is still read after the command exited.
const OUTPUT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The `PATH` commands get (and are looked up in): the caller's, else a default.
pub(crate) fn search_path() -> String {
    std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.to_owned())
}

/// The process for `spec`: no shell unless it is a shell line, and a known environment (ours
/// may hold VAULT_TOKEN or a passphrase) with `env` added.
fn command(spec: &CommandSpec, env: &[(&str, String)]) -> Command {
    let mut cmd = match spec {
        CommandSpec::Argv { program, args } => {
            let mut c = Command::new(program);
            c.args(args);
            c
        }
        CommandSpec::Shell(line) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
    };
    cmd.env_clear()
        .env("PATH", search_path())
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so that a timeout kills what a shell line started too.
        .process_group(0)
        .kill_on_drop(true);
    if let Ok(home) = std::env::var("HOME") {
        cmd.env("HOME", home);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Reads a pipe to its end into `into`, keeping at most [`OUTPUT_LIMIT`] bytes: output past the
/// limit is read and dropped, so the child never stalls on a full pipe.
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

/// Runs `spec` with `env` added to a minimal environment; succeeds on exit status 0 within
/// `timeout`. The child and its process group are killed if the time runs out.
pub async fn run(spec: &CommandSpec, env: &[(&str, String)], timeout: Duration) -> Result<String> {
    let failed = |outcome: CommandOutcome, output: String| Error::Command {
        command: spec.display(),
        outcome,
        output,
    };
    let mut child = command(spec, env)
        .spawn()
        .map_err(|e| failed(CommandOutcome::NotStarted(e.kind()), String::new()))?;
    // Both pipes are read at once, by tasks of their own: a child filling one while we wait on
    // the other would block forever.
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
    if outcome.is_err() {
        if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = child.kill().await;
    }
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
    match outcome {
        Err(_) => Err(failed(CommandOutcome::TimedOut(timeout), String::new())),
        Ok(Err(e)) => Err(failed(CommandOutcome::WaitFailed(e.kind()), tail(&output))),
        Ok(Ok(status)) if status.success() => Ok(tail(&output)),
        Ok(Ok(status)) => {
            let how = match status.code() {
                Some(code) => CommandOutcome::Exited(code),
                None => CommandOutcome::Killed,
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

    fn run_now(spec: &CommandSpec, env: &[(&str, String)], secs: i64) -> Result<String> {
        rt().block_on(run(spec, env, Duration::seconds(secs)))
    }

    #[test]
    fn a_timeout_kills_what_a_shell_line_started() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let line = format!("sleep 60 & echo $! > {}; wait", pidfile.display());
        let e = run_now(&CommandSpec::Shell(line), &[], 1).unwrap_err();
        assert!(
            e.to_string().contains("timed out") || e.to_string().contains("1s"),
            "{e}"
        );
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed, then reaped by whoever inherited it: gone within moments.
        let gone = (0..50).any(|_| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let dead = stat.is_empty() || stat.contains(") Z ");
            if !dead {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            dead
        });
        assert!(gone, "the grandchild {pid} survived the timeout");
    }

    #[test]
    fn output_and_the_variables_given_reach_the_caller() {
        let ok = run_now(
            &CommandSpec::Shell("echo $PKI_X".into()),
            &[("PKI_X", "hello".into())],
            5,
        );
        assert_eq!(ok.unwrap(), "hello");
    }

    #[test]
    fn the_callers_environment_does_not_reach_the_command() {
        // cargo runs tests with CARGO_MANIFEST_DIR set: it must not reach the child.
        assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
        let leaked = run_now(
            &CommandSpec::Shell("echo ${CARGO_MANIFEST_DIR:-none}".into()),
            &[],
            5,
        );
        assert_eq!(leaked.unwrap(), "none");
    }

    #[test]
    fn a_failure_names_the_status_and_keeps_the_output() {
        let e = run_now(
            &CommandSpec::of(&["sh", "-c", "echo oops >&2; exit 3"]),
            &[],
            5,
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::Command { outcome: CommandOutcome::Exited(3), output, .. } if output == "oops"),
            "{e}"
        );
    }

    #[test]
    fn a_command_past_its_time_is_stopped() {
        let e = rt()
            .block_on(run(
                &CommandSpec::of(&["sleep", "5"]),
                &[],
                Duration::milliseconds(200),
            ))
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Command {
                    outcome: CommandOutcome::TimedOut(_),
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn a_missing_program_is_named() {
        let e = run_now(&CommandSpec::of(&["/nonexistent/reload"]), &[], 1).unwrap_err();
        assert!(
            e.to_string()
                .contains("/nonexistent/reload could not start"),
            "{e}"
        );
    }

    #[test]
    fn a_reload_that_leaves_a_daemon_behind_is_done_when_it_exits() {
        let out = run_now(
            &CommandSpec::Shell("sleep 10 & echo started".into()),
            &[],
            3,
        );
        assert_eq!(out.unwrap(), "started");
    }

    #[test]
    fn empty_commands_cannot_be_made() {
        assert_eq!(CommandSpec::from_argv(Vec::new()), None);
        assert_eq!(CommandSpec::from_argv(vec![String::new()]), None);
        assert_eq!(CommandSpec::from_shell("  ".into()), None);
        assert_eq!(
            CommandSpec::from_argv(vec!["nginx".into(), "-t".into()]).map(|c| c.display()),
            Some("nginx -t".to_owned())
        );
    }
}
