//! Support for the integration tests: running the `pki` binary, checking its exit codes,
//! calling independent verifiers (openssl), and requiring external tools loudly under CI.
// Test helpers spell out what each server or request needs, argument by argument.
#![allow(clippy::too_many_arguments)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Test support writes configs and fixtures directly.
#![allow(clippy::disallowed_methods)]
#![allow(missing_docs)]

pub mod bao;
pub mod bao_cluster;
pub mod client_loop;
pub mod pebble;
pub mod servers;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `pki` binary built by cargo next to the test executables.
pub fn pki_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/integration-<hash> -> target/<profile>/pki
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("pki");
    assert!(
        bin.is_file(),
        "{} is missing: build it first with `cargo build -p pki-cli` (scripts/test does)",
        bin.display()
    );
    bin
}

/// The outcome of a command.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output, what: &str) -> Self {
        let run = Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        // A panic is a bug whatever the input: exit code 101 and "panicked" never pass.
        assert!(
            run.code != 101 && !run.stderr.contains("panicked"),
            "{what} panicked: {run:#?}"
        );
        run
    }

    /// Asserts success and returns self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    /// Asserts a failure with one of the given exit codes and a message on stderr.
    #[track_caller]
    pub fn fails_with(self, codes: &[i32]) -> Self {
        assert!(
            codes.contains(&self.code),
            "expected exit code in {codes:?}: {self:#?}"
        );
        assert!(
            self.stderr.starts_with("error: "),
            "expected an error message: {self:#?}"
        );
        self
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:#?}"))
    }
}

/// A `pki` invocation being built.
pub struct Pki {
    cmd: Command,
    label: String,
    input: Option<Vec<u8>>,
}

impl Pki {
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(pki_bin());
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let label = format!(
            "pki {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        cmd.args(args);
        cmd.env_remove("PKI_CA_DIR").env_remove("PKI_CA_PASSPHRASE");
        cmd.stdin(Stdio::null());
        Self {
            cmd,
            label,
            input: None,
        }
    }

    /// The same invocation run under `umask` (through `sh`, which sets it and execs `pki`).
    pub fn under_umask<I, S>(umask: u32, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut pki = Self::new(args);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask:03o}; exec \"$@\""))
            .arg("sh")
            .arg(pki.cmd.get_program())
            .args(pki.cmd.get_args());
        cmd.env_remove("PKI_CA_DIR").env_remove("PKI_CA_PASSPHRASE");
        cmd.stdin(Stdio::null());
        pki.label = format!("umask {umask:03o}; {}", pki.label);
        pki.cmd = cmd;
        pki
    }

    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn ca(self, dir: &Path) -> Self {
        self.env("PKI_CA_DIR", dir)
    }

    /// Gives `bytes` on the standard input (otherwise it is empty).
    pub fn input(mut self, bytes: &[u8]) -> Self {
        self.input = Some(bytes.to_vec());
        self
    }

    pub fn run(mut self) -> Run {
        let cannot = |e: std::io::Error| -> ! { panic!("cannot run {}: {e}", self.label) };
        let out = match self.input.take() {
            None => self.cmd.output().unwrap_or_else(|e| cannot(e)),
            Some(bytes) => {
                self.cmd
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = self.cmd.spawn().unwrap_or_else(|e| cannot(e));
                if let Some(mut stdin) = child.stdin.take() {
                    std::io::Write::write_all(&mut stdin, &bytes).unwrap_or_else(|e| cannot(e));
                }
                child.wait_with_output().unwrap_or_else(|e| cannot(e))
            }
        };
        Run::from(out, &self.label)
    }
}

/// Shorthand for `Pki::new(args).ca(ca).run()`.
pub fn pki_in<I, S>(ca: &Path, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Pki::new(args).ca(ca).run()
}

/// Whether we run under CI, where a missing tool or server is a failure, not a skip.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The path of an executable on PATH (or an absolute path that exists).
pub fn which(name: &str) -> Option<PathBuf> {
    let p = Path::new(name);
    if p.is_absolute() {
        return p.is_file().then(|| p.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    })
}

/// Returns true when every tool is present. Missing tools fail the test under `CI=true` and
/// skip it (with a note on stderr) elsewhere.
pub fn require(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|t| which(t).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let msg = format!(
        "missing {}: install the test dependencies with scripts/install-test-deps",
        missing.join(", ")
    );
    assert!(!under_ci(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

/// Whether the tests run as root. A test that needs root returns early when they do not,
/// saying so, and fails under CI, where they must.
pub fn require_root(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    let msg = format!("{what} needs root");
    assert!(!under_ci(), "{msg}");
    eprintln!("SKIPPED: {msg}");
    false
}

/// Runs openssl and returns its outcome (never asserts).
pub fn openssl<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    Run::from(out, "openssl")
}

/// The repository's fixtures directory.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

/// A CA made with `pki ca init --insecure-no-passphrase` in a temporary directory.
pub struct TestCa {
    pub tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl TestCa {
    pub fn new(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let mut args = vec![
            "ca",
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--insecure-no-passphrase",
        ];
        args.extend_from_slice(extra);
        Pki::new(args).run().ok();
        Self { tmp, dir }
    }

    /// A CA made with `--passphrase-file`, and that file (0600, beside the CA directory).
    pub fn encrypted(passphrase: &str) -> (Self, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ca");
        let pass = tmp.path().join("pass");
        std::fs::write(&pass, format!("{passphrase}\n")).unwrap();
        std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        Pki::new([
            "ca",
            "init",
            "--dir",
            dir.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ])
        .run()
        .ok();
        (Self { tmp, dir }, pass)
    }

    /// A path inside the CA's temporary directory (not inside the CA dir).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn pki<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        pki_in(&self.dir, args)
    }

    /// Issues `NAME.example.internal` into the directory `NAME` next to the CA (it must
    /// succeed) and returns that directory.
    pub fn issue(&self, name: &str) -> PathBuf {
        let out = self.path(name);
        self.pki([
            "issue",
            &format!("{name}.example.internal"),
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        out
    }
}

/// Names of the files in a directory (sorted), to check that nothing partial was left.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}
