//! `pki`: the command line over the `pki` and `pki-deploy` libraries. It parses arguments,
//! gathers secrets from files, the environment or a prompt, calls the libraries and prints the
//! outcome; it holds no certificate, Vault or rotation logic of its own.

// Functions stay short enough to read at once.
#![warn(clippy::too_many_lines)]

mod args;
mod cmd;
mod hints;
mod output;
mod passphrase;

use std::process::ExitCode;

use clap::Parser;

use crate::output::Format;

// A `pki` run allocates many small strings and paths (a rotation config of ten thousand
// certificates, its state file) and frees them soon after: mimalloc does this faster than
// glibc's allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Keeps the secret variables' values in memory (where the library finds them) and removes
/// them from the environment. `/proc/PID/environ` shows the environment block the process
/// started with, which removing a variable leaves as it was: the variable's bytes there are
/// wiped too.
#[allow(unsafe_code)]
fn forget_secret_variables() {
    for name in pki::process::keep_env_secrets(pki::process::SECRET_VARIABLES) {
        let entry = environment_entry(name);
        if let Some((start, len)) = entry {
            // SAFETY: `start` points at the `len` bytes of this variable's `NAME=value`
            // string in the process's own, writable environment (found through `environ` just
            // above); nothing else runs yet to read it.
            unsafe { std::ptr::write_bytes(start.add(name.len() + 1), 0, len - name.len() - 1) };
        }
        // SAFETY: called first thing in `main`, before the runtime or any other thread
        // exists, so nothing reads or writes the environment at the same time.
        unsafe { std::env::remove_var(name) };
        if let Some((start, len)) = entry {
            // SAFETY: as above; removing the variable took the pointer out of `environ` but
            // left the string where it was.
            unsafe { std::ptr::write_bytes(start, 0, len) };
        }
    }
}

/// Where `NAME=value` lies in the environment: its first byte and its length.
#[allow(unsafe_code)]
fn environment_entry(name: &str) -> Option<(*mut libc::c_char, usize)> {
    let prefix = format!("{name}=");
    // SAFETY: single-threaded start of `main` (see `forget_secret_variables`). `environ` is a
    // null-terminated array of pointers to NUL-terminated strings, read only up to the first
    // null pointer.
    unsafe {
        let mut at = libc::environ;
        while !at.is_null() && !(*at).is_null() {
            let entry = std::ffi::CStr::from_ptr(*at).to_bytes();
            if entry.starts_with(prefix.as_bytes()) {
                return Some((*at, entry.len()));
            }
            at = at.add(1);
        }
    }
    None
}

/// Exit code for success.
const EXIT_OK: u8 = 0;
/// Exit code when the operation failed.
const EXIT_FAILED: u8 = 1;
/// Exit code for a usage or configuration error.
const EXIT_USAGE: u8 = 2;

/// An error in how the command was invoked (bad flag combination, unusable value): exit 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn exit_code_of(err: &anyhow::Error) -> u8 {
    let usage = err.chain().any(|cause| {
        cause.downcast_ref::<UsageError>().is_some()
            || cause
                .downcast_ref::<pki::Error>()
                .is_some_and(pki::Error::is_invalid_argument)
    });
    if usage { EXIT_USAGE } else { EXIT_FAILED }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn main() -> ExitCode {
    // Before anything is read or any thread starts (see pki::process).
    if let Err(e) = pki::process::harden() {
        eprintln!("warning: cannot keep secrets out of core dumps: {e}");
    }
    forget_secret_variables();
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let format = if cli.json { Format::Json } else { Format::Text };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::print_error(
                &anyhow::Error::new(e).context("cannot start the runtime"),
                format,
            );
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let result = runtime.block_on(cmd::run(cli));
    // A blocking task still stuck in a system call must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        // A closed pipe (`pki list | head`) is the reader's choice, not our failure.
        Err(err) if is_broken_pipe(&err) => ExitCode::from(EXIT_OK),
        Err(err) => {
            output::print_error(&err, format);
            ExitCode::from(exit_code_of(&err))
        }
    }
}
