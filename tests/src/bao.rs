//! OpenBao servers for the Vault tests, started in temporary directories on free loopback
//! ports and stopped on drop:
//!
//! - [`Bao::dev`]: `bao server -dev` (in memory, unsealed, root token known, KV v2 at `secret/`);
//! - [`Bao::tls`]: a config-file server (in-memory storage) with a TLS listener whose certificate
//!   our own offline CA issued (`pki ca init` + `pki issue`), initialised and unsealed through
//!   the HTTP API.
//!
//! A small blocking HTTP/1.1 client over rustls ([`http`]) talks to them without going through
//! the code under test.

// Test support writes configs directly and reads the clock.
#![allow(clippy::disallowed_methods)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Pki, Run, TestCa, require};

/// Variables that would leak the host's Vault configuration into a test.
pub const VAULT_ENV: &[&str] = &[
    "VAULT_ADDR",
    "BAO_ADDR",
    "VAULT_TOKEN",
    "BAO_TOKEN",
    "VAULT_CACERT",
    "BAO_CACERT",
    "VAULT_CAPATH",
    "BAO_CAPATH",
    "VAULT_NAMESPACE",
    "BAO_NAMESPACE",
    "VAULT_CLIENT_TIMEOUT",
    "VAULT_MAX_RETRIES",
    "PKI_BACKEND",
    "PKI_VAULT_CONFIG",
    "PKI_VAULT_MOUNT",
    "PKI_VAULT_ROLE",
    "PKI_VAULT_KV_MOUNT",
    "PKI_VAULT_TOKEN_FILE",
    "PKI_VAULT_ROLE_ID",
    "PKI_VAULT_SECRET_ID",
    "PKI_VAULT_ROLE_ID_FILE",
    "PKI_VAULT_SECRET_ID_FILE",
    "PKI_VAULT_APPROLE_MOUNT",
    "PKI_VAULT_CONNECT_TIMEOUT",
    "PKI_VAULT_NODES",
    "PKI_VAULT_RETRY_BUDGET",
];

/// `pki vault bootstrap` with the role the tests issue from: `services`, for
/// `example.internal`.
pub const BOOTSTRAP: [&str; 6] = [
    "vault",
    "bootstrap",
    "--role",
    "services",
    "--allowed-domains",
    "example.internal",
];

/// A `pki` invocation with no Vault variables from the host and `HOME` pointing at `home` (so
/// `~/.vault-token` is under the test's control).
pub fn pki_clean<I, S>(args: I, home: &Path) -> Pki
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut p = Pki::new(args);
    for v in VAULT_ENV {
        p.cmd.env_remove(v);
    }
    p.cmd.env("HOME", home);
    p
}

/// A free TCP port on 127.0.0.1 (bound and released; the race is harmless in practice and the
/// start is retried).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running OpenBao server.
pub struct Bao {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub addr: String,
    /// A root token.
    pub token: String,
    /// The server's temporary directory (config, storage, logs, HOME).
    pub dir: tempfile::TempDir,
    /// The CA file that trusts the TLS listener (TLS servers only).
    pub ca_file: Option<PathBuf>,
    /// The offline CA that issued the listener's certificate (TLS servers only).
    pub tls_ca: Option<TestCa>,
    unseal_key: Option<String>,
}

impl Drop for Bao {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Bao {
    /// A dev server, or `None` when `bao` is missing outside CI (under CI it fails).
    pub fn dev() -> Option<Self> {
        if !require(&["bao"]) {
            return None;
        }
        let mut dir = tempfile::tempdir().expect("tempdir");
        let token = "root-test-token".to_owned();
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new("bao");
            cmd.args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("BAO_LOG_LEVEL", "warn");
            let mut bao = Self::spawn(
                cmd,
                dir,
                format!("http://127.0.0.1:{port}"),
                token.clone(),
                None,
            );
            if bao.wait_healthy(Duration::from_secs(30)) {
                return Some(bao);
            }
            // The port was taken in between, or the start failed: try another port.
            bao.stop();
            dir = bao.take_dir();
        }
        panic!("bao server -dev did not become healthy");
    }

    /// Starts `cmd` (a `bao server`) with `dir` as its HOME, where the dev server writes
    /// `~/.vault-token`, and its output in `dir/bao.out` and `dir/bao.err`; `addr` is where it
    /// is to listen, `ca_file` what trusts its TLS listener.
    fn spawn(
        mut cmd: Command,
        dir: tempfile::TempDir,
        addr: String,
        token: String,
        ca_file: Option<PathBuf>,
    ) -> Self {
        let child = cmd
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log(dir.path(), "bao.out"))
            .stderr(log(dir.path(), "bao.err"))
            .spawn()
            .expect("start bao");
        Self {
            child: Some(child),
            addr,
            token,
            dir,
            ca_file,
            tls_ca: None,
            unseal_key: None,
        }
    }

    fn take_dir(&mut self) -> tempfile::TempDir {
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"))
    }

    /// A config-file server with a TLS listener (certificate from our offline CA), in-memory storage,
    /// initialised and unsealed through the API.
    pub fn tls() -> Option<Self> {
        if !require(&["bao"]) {
            return None;
        }
        let tls_ca = TestCa::new(&[]);
        let tls_dir = tls_ca.path("listener");
        tls_ca
            .pki([
                "issue",
                "localhost",
                "--san",
                "127.0.0.1",
                "--ttl",
                "2d",
                "--out",
                tls_dir.to_str().unwrap(),
            ])
            .ok();
        let ca_file = tls_ca.path("trust.pem");
        std::fs::copy(tls_ca.dir.join("root.pem"), &ca_file).unwrap();
        let mut dir = tempfile::tempdir().expect("tempdir");
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("bao.hcl");
            std::fs::write(
                &config,
                // OpenBao 2.x has no `file` storage backend any more, and raft spends seconds
                // electing itself at every start: `inmem` keeps the suite fast, and the TLS
                // listener, init and unseal are those of a production server.
                format!(
                    "storage \"inmem\" {{}}\n\
                     listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  \
                     tls_cert_file = \"{cert}\"\n  tls_key_file = \"{key}\"\n}}\n\
                     api_addr = \"https://127.0.0.1:{port}\"\n\
                     ui = false\nlog_level = \"warn\"\n",
                    cert = tls_dir.join("fullchain.pem").display(),
                    key = tls_dir.join("key.pem").display(),
                ),
            )
            .unwrap();
            let mut cmd = Command::new("bao");
            cmd.args(["server", &format!("-config={}", config.display())]);
            let mut bao = Self::spawn(
                cmd,
                dir,
                format!("https://127.0.0.1:{port}"),
                String::new(),
                Some(ca_file.clone()),
            );
            // Uninitialised servers answer /sys/health with 501: wait for any answer.
            if bao.wait_health(Duration::from_secs(30), Result::is_ok) {
                bao.init_and_unseal();
                bao.tls_ca = Some(tls_ca);
                return Some(bao);
            }
            bao.stop();
            dir = bao.take_dir();
        }
        panic!("bao server (TLS) did not start");
    }

    fn init_and_unseal(&mut self) {
        let (status, body) = self.api(
            "PUT",
            "/v1/sys/init",
            None,
            Some(r#"{"secret_shares":1,"secret_threshold":1}"#),
        );
        assert_eq!(status, 200, "init: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        self.token = v["root_token"].as_str().unwrap().to_owned();
        self.unseal_key = Some(v["keys"][0].as_str().unwrap().to_owned());
        self.unseal();
    }

    /// Unseals a config-file server with its one key share.
    pub fn unseal(&mut self) {
        let key = self.unseal_key.as_deref().expect("a config-file server");
        let (status, body) = self.api(
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(&serde_json::json!({ "key": key }).to_string()),
        );
        assert_eq!(status, 200, "unseal: {body}");
        assert!(
            self.wait_healthy(Duration::from_secs(30)),
            "not healthy after unseal"
        );
    }

    fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Polls `/v1/sys/health` until `done` accepts the outcome; false once `limit` has passed
    /// or the process has exited.
    fn wait_health(
        &mut self,
        limit: Duration,
        done: impl Fn(&std::io::Result<(u16, String)>) -> bool,
    ) -> bool {
        let start = Instant::now();
        while start.elapsed() < limit && self.alive() {
            let outcome = http(
                &self.addr,
                self.ca_file.as_deref(),
                "GET",
                "/v1/sys/health",
                None,
                None,
            );
            if done(&outcome) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// Polls `/v1/sys/health` until it answers 200 (active, unsealed).
    pub fn wait_healthy(&mut self, limit: Duration) -> bool {
        self.wait_health(limit, |outcome| matches!(outcome, Ok((200, _))))
    }

    /// One API request with an optional token; panics on a transport failure.
    pub fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        http(
            &self.addr,
            self.ca_file.as_deref(),
            method,
            path,
            token,
            body,
        )
        .unwrap_or_else(|e| panic!("{method} {path} on {}: {e}", self.addr))
    }

    /// An API request with the root token that must succeed (2xx); returns the body.
    pub fn root(&self, method: &str, path: &str, body: Option<&str>) -> String {
        let (status, text) = self.api(method, path, Some(&self.token), body);
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {text}"
        );
        text
    }

    /// The `bao` CLI against this server with the root token.
    pub fn bao<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new("bao");
        cmd.args(args)
            .env("BAO_ADDR", &self.addr)
            .env("BAO_TOKEN", &self.token)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null());
        if let Some(ca) = &self.ca_file {
            cmd.env("BAO_CACERT", ca);
        }
        Run::from(cmd.output().expect("run bao"), "bao")
    }

    /// `pki` with this server's address, trust and root token, and `--backend vault` by
    /// environment.
    pub fn pki<I, S>(&self, args: I) -> Pki
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut p = pki_clean(args, self.dir.path())
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .env("PKI_BACKEND", "vault");
        if let Some(ca) = &self.ca_file {
            p = p.env("VAULT_CACERT", ca);
        }
        p
    }

    /// `pki issue CN --role ROLE --out OUT` against this server, as [`Bao::pki`] sets it up.
    pub fn issue(&self, cn: &str, role: &str, out: &Path) -> Pki {
        self.pki(["issue", cn, "--role", role, "--out", out.to_str().unwrap()])
    }

    /// `pki vault bootstrap` with a role `services` for `example.internal` (root in Vault).
    pub fn bootstrap(&self) {
        self.bootstrap_with(&[]);
    }

    /// [`Bao::bootstrap`] with `extra` arguments (another root, say); must succeed.
    pub fn bootstrap_with(&self, extra: &[&str]) -> Run {
        let mut args = BOOTSTRAP.to_vec();
        args.extend_from_slice(extra);
        self.pki(args).run().ok()
    }

    /// Kills the server and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's log, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("bao.err")).unwrap_or_default()
    }
}

fn log(dir: &Path, name: &str) -> Stdio {
    std::fs::File::create(dir.join(name))
        .map(Stdio::from)
        .unwrap_or_else(|_| Stdio::null())
}

/// A blocking HTTP/1.1 request (`Connection: close`) to `addr` (`http://` or `https://`
/// trusting only `ca`), returning the status and body.
pub fn http(
    addr: &str,
    ca: Option<&Path>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let (tls, hostport) = match addr.split_once("://") {
        Some(("https", rest)) => (true, rest),
        Some((_, rest)) => (false, rest),
        None => (false, addr),
    };
    let sock: SocketAddr = hostport
        .parse()
        .map_err(|_| std::io::Error::other("address must be IP:PORT"))?;
    let tcp = TcpStream::connect_timeout(&sock, Duration::from_secs(2))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let body = body.unwrap_or("");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = token {
        request.push_str(&format!("X-Vault-Token: {t}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut raw = Vec::new();
    if tls {
        let mut roots = rustls::RootCertStore::empty();
        let pem = std::fs::read(ca.ok_or_else(|| std::io::Error::other("https needs a CA"))?)?;
        for block in pki::pemfile::parse_blocks(&pem, "ca").map_err(std::io::Error::other)? {
            roots
                .add(rustls_pki_types::CertificateDer::from(block.der))
                .map_err(std::io::Error::other)?;
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let name = rustls_pki_types::ServerName::IpAddress(sock.ip().into());
        let conn =
            rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        stream.write_all(request.as_bytes())?;
        read_all(&mut stream, &mut raw)?;
    } else {
        let mut tcp = tcp;
        tcp.write_all(request.as_bytes())?;
        read_all(&mut tcp, &mut raw)?;
    }
    parse_response(&raw)
}

/// Reads until EOF; a TLS peer closing without close_notify still gave us the whole answer.
fn read_all(r: &mut impl Read, out: &mut Vec<u8>) -> std::io::Result<()> {
    match r.read_to_end(out) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(()),
        Err(e) => Err(e),
    }
}

fn parse_response(raw: &[u8]) -> std::io::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    if !chunked {
        return Ok((status, body.to_owned()));
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    Ok((status, out))
}

/// A `pki` process started in the background.
pub struct Spawned {
    child: Child,
    label: String,
}

impl Pki {
    /// Starts the command without waiting (stdout and stderr captured).
    pub fn spawn(mut self) -> Spawned {
        let child = self
            .cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.label));
        Spawned {
            child,
            label: self.label,
        }
    }
}

impl Spawned {
    /// Waits for the process and returns its outcome.
    pub fn wait(self) -> Run {
        let out = self.child.wait_with_output().expect("wait for pki");
        Run::from(out, &self.label)
    }
}
