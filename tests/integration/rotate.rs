//! `pki rotate` against real services started on 127.0.0.1: first deployment, forced rotation,
//! failures and rollback, kill -9, concurrent runs, reports. What a service serves is read with
//! `openssl s_client`, independently of the tool's own probe.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pki::{Certificate, Serial};
use pki_tests::servers::{self, Server};
use pki_tests::{Pki, Run, require};

/// A test CA, a state directory and a config file in one short temporary directory.
pub(crate) struct Rig {
    tmp: tempfile::TempDir,
}

impl Rig {
    pub(crate) fn new() -> Self {
        let tmp = servers::short_tempdir();
        let ca = tmp.path().join("ca");
        Pki::new([
            "ca",
            "init",
            "--dir",
            ca.to_str().unwrap(),
            "--insecure-no-passphrase",
        ])
        .run()
        .ok();
        Self { tmp }
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub(crate) fn config_path(&self) -> PathBuf {
        self.path("rotate.toml")
    }

    /// Writes the config: state dir, offline backend, then `body` (certificates, reports).
    pub(crate) fn config(&self, body: &str) {
        let text = format!(
            "state_dir = \"{}\"\n[backend]\ntype = \"offline\"\nca_dir = \"{}\"\n\n{body}",
            self.path("state").display(),
            self.path("ca").display()
        );
        std::fs::write(self.config_path(), text).unwrap();
        // As README asks of a real one: some configs hold a push URL's token.
        std::fs::set_permissions(
            self.config_path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .unwrap();
    }

    pub(crate) fn rotate(&self, extra: &[&str]) -> Run {
        let config = self.config_path();
        let mut args = vec!["rotate", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        Pki::new(args).run()
    }

    /// The store's current certificate of `name`.
    pub(crate) fn current(&self, name: &str) -> Certificate {
        let p = self.path(&format!("state/certs/{name}/current"));
        Certificate::from_pem(&std::fs::read(&p).unwrap(), "store").unwrap()
    }

    /// Issues a bootstrap certificate and writes it as regular files (what a service runs with
    /// before the tool manages it): (cert, key) or a combined PEM.
    pub(crate) fn bootstrap(
        &self,
        cn: &str,
        cert: Option<&Path>,
        key: Option<&Path>,
        combined: Option<&Path>,
    ) -> Certificate {
        let out = self.path(&format!("boot-{}", servers::free_port()));
        Pki::new([
            "issue",
            cn,
            "--san",
            "127.0.0.1",
            "--out",
            out.to_str().unwrap(),
            "--ca-dir",
            self.path("ca").to_str().unwrap(),
        ])
        .run()
        .ok();
        let full = std::fs::read(out.join("fullchain.pem")).unwrap();
        let k = std::fs::read(out.join("key.pem")).unwrap();
        if let Some(c) = cert {
            std::fs::write(c, &full).unwrap();
        }
        if let Some(p) = key {
            std::fs::write(p, &k).unwrap();
        }
        if let Some(p) = combined {
            let mut all = full.clone();
            all.extend_from_slice(&k);
            std::fs::write(p, all).unwrap();
        }
        Certificate::from_pem(&full, "bootstrap").unwrap()
    }

    /// A service running on a bootstrap certificate for localhost: the certificate and key are
    /// written as `cert` and `key` in a short temporary directory, then `start` gets the
    /// directory and both paths. Returns the server and the two paths.
    pub(crate) fn service(
        &self,
        cert: &str,
        key: &str,
        start: impl FnOnce(tempfile::TempDir, &Path, &Path) -> Server,
    ) -> (Server, PathBuf, PathBuf) {
        let dir = servers::short_tempdir();
        let (cert, key) = (dir.path().join(cert), dir.path().join(key));
        self.bootstrap("localhost", Some(&cert), Some(&key), None);
        (start(dir, &cert, &key), cert, key)
    }

    /// HAProxy on a bootstrap `site.pem` for localhost (its default certificate), plus a
    /// `NAME.pem` for `NAME.example.internal` on the same bind for each of `others` (read them
    /// with [`Server::path`]). Returns the server and the path of `site.pem`.
    pub(crate) fn haproxy(&self, others: &[&str]) -> (Server, PathBuf) {
        let dir = servers::short_tempdir();
        let pem = dir.path().join("site.pem");
        self.bootstrap("localhost", None, None, Some(&pem));
        let mut pems = vec![pem.clone()];
        for name in others {
            let other = dir.path().join(format!("{name}.pem"));
            self.bootstrap(
                &format!("{name}.example.internal"),
                None,
                None,
                Some(&other),
            );
            pems.push(other);
        }
        let pems: Vec<&Path> = pems.iter().map(PathBuf::as_path).collect();
        (servers::haproxy_with(dir, &pems), pem)
    }
}

/// The serial a service presents, read with `openssl s_client`.
pub(crate) fn served(port: u16, starttls: Option<&str>) -> Serial {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-servername",
        "localhost",
    ]);
    if let Some(proto) = starttls {
        cmd.args(["-starttls", proto]);
    }
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let cert = Certificate::from_pem(&out.stdout, "s_client output").unwrap_or_else(|e| {
        panic!(
            "no certificate from port {port}: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    cert.info().serial.clone()
}

pub(crate) fn chown_postgres(path: &Path) {
    assert!(
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(path)
            .status()
            .unwrap()
            .success()
    );
}

pub(crate) fn cert_section(name: &str, target: &str) -> String {
    format!(
        "[[certificate]]\nname = \"{name}\"\ncommon_name = \"localhost\"\nsans = [\"127.0.0.1\"]\n\n[[certificate.target]]\n{target}\n"
    )
}

/// A target's probe: a TLS connection to 127.0.0.1:`port`, with the default timeout or
/// `timeout`.
pub(crate) fn probe(port: u16, timeout: Option<&str>) -> String {
    match timeout {
        Some(t) => format!("probe = {{ address = \"127.0.0.1:{port}\", timeout = \"{t}\" }}"),
        None => format!("probe = {{ address = \"127.0.0.1:{port}\" }}"),
    }
}

/// The first lines of a target that writes a certificate and a key file: its type and paths.
pub(crate) fn cert_key(kind: &str, cert: &Path, key: &Path) -> String {
    format!(
        "type = \"{kind}\"\ncert = \"{}\"\nkey = \"{}\"",
        cert.display(),
        key.display()
    )
}

/// An HAProxy target: `pem` on disk, swapped through the admin `socket`, probed on `port`.
pub(crate) fn haproxy_target(
    pem: &Path,
    socket: &Path,
    port: u16,
    timeout: Option<&str>,
) -> String {
    format!(
        "type = \"haproxy\"\npem = \"{}\"\nsocket = \"{}\"\n{}",
        pem.display(),
        socket.display(),
        probe(port, timeout)
    )
}

/// A Redis target for the server `r`, updated through its unix socket.
fn redis_target(r: &Server, cert: &Path, key: &Path, timeout: Option<&str>) -> String {
    format!(
        "{}\ngroup = \"root\"\nsocket = \"{}\"\n{}",
        cert_key("redis", cert, key),
        r.path("redis.sock").display(),
        probe(r.port, timeout)
    )
}

/// The `test_command` and `reload_command` lines for the nginx `ngx` (its prefix and config).
pub(crate) fn nginx_commands(ngx: &Server) -> (String, String) {
    let conf = ngx.path("nginx.conf");
    let (d, c) = (ngx.dir.path().display(), conf.display());
    (
        format!("test_command = [\"nginx\", \"-q\", \"-t\", \"-p\", \"{d}\", \"-c\", \"{c}\"]"),
        format!(
            "reload_command = [\"nginx\", \"-p\", \"{d}\", \"-c\", \"{c}\", \"-s\", \"reload\"]"
        ),
    )
}

/// First deployment onto a running service, then a forced rotation: each time the service
/// serves the store's current certificate, and the tool's exit code is 0.
fn first_then_forced(rig: &Rig, name: &str, port: u16, starttls: Option<&str>) -> (Serial, Serial) {
    rig.rotate(&[]).ok();
    let first = rig.current(name).info().serial.clone();
    assert_eq!(served(port, starttls), first, "first deployment");
    // Nothing due: nothing changes.
    rig.rotate(&[]).ok();
    assert_eq!(rig.current(name).info().serial, first);
    rig.rotate(&["--force"]).ok();
    let second = rig.current(name).info().serial.clone();
    assert_ne!(first, second);
    assert_eq!(served(port, starttls), second, "forced rotation");
    (first, second)
}

/// An HTTP/1.1 keep-alive request over an established TLS connection; returns the body.
fn https_get(tls: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> String {
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let start = Instant::now();
    while !String::from_utf8_lossy(&buf).contains("conn-cert-serial=") || !buf.ends_with(b"\n") {
        let n = tls.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed");
        buf.extend_from_slice(&chunk[..n]);
        assert!(start.elapsed() < Duration::from_secs(5));
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn open_tls(port: u16, root: &Path) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = Certificate::from_pem(&std::fs::read(root).unwrap(), "root").unwrap();
    roots
        .add(rustls::pki_types::CertificateDer::from(ca.der().to_vec()))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let conn =
        rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

#[test]
fn haproxy_hot_swap_keeps_the_process_and_open_connections() {
    if !require(&["haproxy", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (mut hap, pem) = rig.haproxy(&[]);
    let pid = hap.pid();
    rig.config(&cert_section(
        "hap",
        &haproxy_target(&pem, &hap.path("admin.sock"), hap.port, None),
    ));
    rig.rotate(&[]).ok();
    let first = rig.current("hap").info().serial.clone();
    assert_eq!(served(hap.port, None), first);
    // A client connected before the swap...
    let mut tls = open_tls(hap.port, &rig.path("ca/root.pem"));
    let before = https_get(&mut tls);
    assert!(before.to_lowercase().contains(&first.to_hex()), "{before}");
    rig.rotate(&["--force"]).ok();
    let second = rig.current("hap").info().serial.clone();
    assert_ne!(first, second);
    // ...keeps its connection (and its certificate); new connections get the new one.
    let after = https_get(&mut tls);
    assert!(after.contains("200"), "{after}");
    assert!(after.to_lowercase().contains(&first.to_hex()), "{after}");
    assert_eq!(served(hap.port, None), second);
    assert!(hap.alive(), "haproxy was not restarted");
    assert_eq!(hap.pid(), pid);
    // The file on disk holds the new certificate too (a restart serves it).
    let on_disk = Certificate::from_pem(&std::fs::read(&pem).unwrap(), "site.pem").unwrap();
    assert_eq!(on_disk.info().serial, second);
}

#[test]
fn nginx_first_deployment_and_forced_rotation() {
    if !require(&["nginx", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (ngx, cert, key) = rig.service("site.crt", "site.key", servers::nginx);
    let (test, reload) = nginx_commands(&ngx);
    rig.config(&cert_section(
        "web",
        &format!(
            "{}\n{test}\n{reload}\n{}",
            cert_key("nginx", &cert, &key),
            probe(ngx.port, None)
        ),
    ));
    first_then_forced(&rig, "web", ngx.port, None);
}

#[test]
fn mariadb_flush_ssl() {
    if !require(&["mariadbd", "mariadb", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (db, cert, key) = rig.service("server.crt", "server.key", servers::mariadb);
    rig.config(&cert_section(
        "db",
        &format!(
            "{}\ngroup = \"root\"\n\
             reload_command = [\"mariadb\", \"--defaults-file={}\", \"-e\", \"FLUSH SSL\"]\n{}",
            cert_key("mariadb", &cert, &key),
            db.path("my.cnf").display(),
            probe(db.port, None)
        ),
    ));
    first_then_forced(&rig, "db", db.port, Some("mysql"));
}

#[test]
fn postgres_reload_with_the_key_rules() {
    if !require(&["setpriv", "pg_isready", "psql", "openssl"])
        || !Path::new("/usr/lib/postgresql/15/bin/postgres").exists()
    {
        assert!(!pki_tests::under_ci(), "PostgreSQL 15 is missing");
        return;
    }
    let rig = Rig::new();
    let (pg, cert, key) = rig.service("server.crt", "server.key", |dir, cert, key| {
        chown_postgres(key);
        std::fs::set_permissions(key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        servers::postgres(dir, cert, key)
    });
    rig.config(&cert_section(
        "pg",
        &format!(
            "{}\nowner = \"postgres\"\n\
             reload_command = [\"psql\", \"-h\", \"{}\", \"-p\", \"{}\", \"-U\", \"postgres\", \"-Atc\", \"SELECT pg_reload_conf()\"]\n{}",
            cert_key("postgres", &cert, &key),
            pg.path("sock").display(),
            pg.port,
            probe(pg.port, None)
        ),
    ));
    first_then_forced(&rig, "pg", pg.port, Some("postgres"));
    // The key PostgreSQL reads is owned by postgres with mode 0600.
    let meta = std::fs::metadata(&key).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let pg_uid = nix::unistd::User::from_name("postgres")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), pg_uid);
}

#[test]
fn redis_config_set() {
    if !require(&["redis-server", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (r, cert, key) = rig.service("redis.crt", "redis.key", servers::redis);
    rig.config(&cert_section("cache", &redis_target(&r, &cert, &key, None)));
    first_then_forced(&rig, "cache", r.port, None);
}

/// Redis answers `-ERR` (here to an AUTH it does not expect): the deployment fails with
/// Redis's reply, without echoing the password, and Redis keeps serving the previous
/// certificate.
#[test]
fn redis_refusal_rolls_back_and_keeps_the_password_out() {
    if !require(&["redis-server", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (r, cert, key) = rig.service("redis.crt", "redis.key", servers::redis);
    let target = redis_target(&r, &cert, &key, Some("2s"));
    rig.config(&cert_section("cache", &target));
    rig.rotate(&[]).ok();
    let good = rig.current("cache").info().serial.clone();
    let password = rig.path("redis.pass");
    std::fs::write(&password, "hunter2-not-configured\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    rig.config(&cert_section(
        "cache",
        &format!("{target}\npassword_file = \"{}\"", password.display()),
    ));
    let run = rig.rotate(&["--force"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("refused the update: AUTH: -ERR"),
        "{run:#?}"
    );
    assert!(run.stderr.contains("rollback: previous"), "{run:#?}");
    assert!(!run.stderr.contains("hunter2"), "{run:#?}");
    assert_eq!(served(r.port, None), good);
    check_pair(&cert, &key);
}

/// A transaction left open on HAProxy for another certificate (a run killed mid-update of
/// another target) does not block this one.
#[test]
fn haproxy_clears_a_stale_transaction_of_another_certificate() {
    if !require(&["haproxy", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (hap, pem) = rig.haproxy(&["other"]);
    let other = hap.path("other.pem");
    let sock = hap.path("admin.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    let payload = String::from_utf8(std::fs::read(&other).unwrap()).unwrap();
    write!(stream, "set ssl cert {} <<\n{payload}\n", other.display()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.contains("Transaction created"), "{answer}");
    rig.config(&cert_section(
        "hap",
        &haproxy_target(&pem, &sock, hap.port, None),
    ));
    rig.rotate(&[]).ok();
    assert_eq!(served(hap.port, None), rig.current("hap").info().serial);
}

/// HAProxy's runtime API is unreachable and the fallback reload fails: the files are switched
/// back, the second load fails as well, and the probe, seeing the previous certificate still
/// served, decides the rollback worked. The process is never restarted.
#[test]
fn haproxy_failed_load_rolls_back_files_and_keeps_serving() {
    if !require(&["haproxy", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (mut hap, pem) = rig.haproxy(&[]);
    let pid = hap.pid();
    let target = |socket: &Path, extra: &str| {
        format!(
            "{}\n{extra}",
            haproxy_target(&pem, socket, hap.port, Some("2s"))
        )
    };
    rig.config(&cert_section("hap", &target(&hap.path("admin.sock"), "")));
    rig.rotate(&[]).ok();
    let good = rig.current("hap").info().serial.clone();
    let good_file = std::fs::read(&pem).unwrap();
    rig.config(&cert_section(
        "hap",
        &target(
            &rig.path("no-such.sock"),
            "reload_command = [\"false\"]\ntest_command = [\"true\"]",
        ),
    ));
    let run = rig.rotate(&["--force"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("reloading them failed too")
            && run.stderr.contains("still serves the previous certificate"),
        "{run:#?}"
    );
    assert_eq!(served(hap.port, None), good);
    assert_eq!(std::fs::read(&pem).unwrap(), good_file);
    assert!(hap.alive());
    assert_eq!(hap.pid(), pid);
}

/// An nginx target whose deployment is made to fail by `mutate`; the rotation must exit 1,
/// roll back, keep the old certificate served, and report the failure in the textfile.
fn nginx_failure(target_extra: &str, mutate: impl FnOnce(&Server), expect_in_error: &str) {
    let rig = Rig::new();
    let (ngx, cert, key) = rig.service("site.crt", "site.key", servers::nginx);
    let (test, reload) = nginx_commands(&ngx);
    let body = |extra: &str| {
        let mut lines = vec![cert_key("nginx", &cert, &key), probe(ngx.port, Some("2s"))];
        if !extra.contains("test_command") {
            lines.push(test.clone());
        }
        if !extra.contains("reload_command") {
            lines.push(reload.clone());
        }
        if !extra.is_empty() {
            lines.push(extra.to_owned());
        }
        format!(
            "[report]\ntextfile = \"{}\"\n\n{}",
            rig.path("pki.prom").display(),
            cert_section("web", &lines.join("\n"))
        )
    };
    rig.config(&body(""));
    rig.rotate(&[]).ok();
    let good = rig.current("web").info().serial.clone();
    assert_eq!(served(ngx.port, None), good);
    let good_files = std::fs::read(&cert).unwrap();
    rig.config(&body(target_extra));
    mutate(&ngx);
    let run = rig.rotate(&["--force"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains(expect_in_error), "{run:#?}");
    assert!(run.stderr.contains("rollback: previous"), "{run:#?}");
    assert!(!run.stderr.contains("rollback: FAILED"), "{run:#?}");
    // The old certificate is still served, and the files on disk are the old ones again.
    assert_eq!(served(ngx.port, None), good);
    assert_eq!(std::fs::read(&cert).unwrap(), good_files);
    let prom = std::fs::read_to_string(rig.path("pki.prom")).unwrap();
    assert!(
        prom.contains("pki_rotation_success{name=\"web\"} 0"),
        "{prom}"
    );
    assert!(
        prom.contains("pki_rotation_targets_failed{name=\"web\"} 1"),
        "{prom}"
    );
}

#[test]
fn broken_reload_command_rolls_back() {
    if !require(&["nginx", "openssl"]) {
        return;
    }
    nginx_failure(
        "reload_command = [\"/bin/false\"]",
        |_| {},
        "/bin/false exited with status 1",
    );
}

#[test]
fn configuration_failing_its_test_rolls_back() {
    if !require(&["nginx", "openssl"]) {
        return;
    }
    nginx_failure(
        "",
        |ngx| {
            // Someone broke nginx.conf: `nginx -t` now fails, so no reload may happen.
            let conf = ngx.path("nginx.conf");
            let mut text = std::fs::read_to_string(&conf).unwrap();
            text.push_str("\nthis is not nginx syntax;\n");
            std::fs::write(&conf, text).unwrap();
        },
        "nginx -q -t",
    );
}

#[test]
fn probe_seeing_the_wrong_certificate_rolls_back() {
    if !require(&["nginx", "openssl"]) {
        return;
    }
    // The "reload" does nothing: nginx keeps serving the old certificate, the probe notices.
    nginx_failure("reload_command = [\"true\"]", |_| {}, "instead of");
}

#[test]
fn keystore_pkcs12_and_pem_variant() {
    if !require(&["keytool", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let pass = rig.path("ks.pass");
    std::fs::write(&pass, "changeit-not\n").unwrap();
    std::fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let p12 = rig.path("java/svc.p12");
    rig.config(&cert_section(
        "svc",
        &format!(
            "type = \"keystore\"\npkcs12 = \"{}\"\npassword_file = \"{}\"\nalias = \"svc\"\ncert = \"{}\"\nkey = \"{}\"\ngroup = 0",
            p12.display(),
            pass.display(),
            rig.path("es/svc.crt").display(),
            rig.path("es/svc.key").display()
        ),
    ));
    rig.rotate(&[]).ok();
    let keytool = Command::new("keytool")
        .args([
            "-list",
            "-v",
            "-storetype",
            "PKCS12",
            "-storepass",
            "changeit-not",
            "-keystore",
        ])
        .arg(&p12)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&keytool.stdout);
    assert!(
        keytool.status.success(),
        "{listing}{}",
        String::from_utf8_lossy(&keytool.stderr)
    );
    assert!(listing.contains("PrivateKeyEntry"), "{listing}");
    assert!(listing.contains("Certificate chain length: 3"), "{listing}");
    let serial = rig.current("svc").info().serial.to_hex();
    assert!(
        listing.to_lowercase().contains(&format!(
            "serial number: {}",
            serial.trim_start_matches('0')
        )),
        "{listing}"
    );
    let info = pki_tests::openssl([
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        "pass:changeit-not",
        "-noout",
        "-info",
    ]);
    assert_eq!(info.code, 0, "{info:#?}");
    let certs = pki_tests::openssl([
        "pkcs12",
        "-in",
        p12.to_str().unwrap(),
        "-passin",
        "pass:changeit-not",
        "-nokeys",
    ]);
    assert_eq!(
        Certificate::all_from_pem(certs.stdout.as_bytes(), "p12")
            .unwrap()
            .len(),
        3
    );
    let key = std::fs::read_to_string(rig.path("es/svc.key")).unwrap();
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----"),
        "PKCS#8: {key}"
    );
    let pkey = pki_tests::openssl([
        "pkey",
        "-in",
        rig.path("es/svc.key").to_str().unwrap(),
        "-noout",
    ]);
    assert_eq!(pkey.code, 0);
    let mode = std::fs::metadata(rig.path("es/svc.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o640
    );
}

/// Every managed pair: the store's current version, and each target's files through its links.
fn assert_pairs_match(rig: &Rig, names: &[&str]) {
    for name in names {
        let current = rig.path(&format!("state/certs/{name}/current"));
        if !current.exists() {
            continue;
        }
        check_pair(&current, &current);
        let out = rig.path(&format!("out/{name}"));
        if out.join("cert.pem").exists() || out.join("key.pem").exists() {
            check_pair(&out.join("cert.pem"), &out.join("key.pem"));
        }
        let combined = rig.path(&format!("out/{name}-combined/all.pem"));
        if combined.exists() {
            let text = std::fs::read(&combined).unwrap();
            let cert = Certificate::from_pem(&text, "combined").unwrap();
            let key = pki::PrivateKey::from_pem(&text, "combined").unwrap();
            assert!(cert.matches_key(&key), "{}", combined.display());
        }
    }
}

pub(crate) fn check_pair(cert: &Path, key: &Path) {
    let c = Certificate::from_pem(&std::fs::read(cert).unwrap(), "cert").unwrap();
    let k = pki::PrivateKey::from_pem(&std::fs::read(key).unwrap(), "key").unwrap();
    assert!(
        c.matches_key(&k),
        "{} and {} do not match",
        cert.display(),
        key.display()
    );
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_name()
                .to_string_lossy()
                .starts_with(pki::fsio::TEMP_PREFIX)
            {
                found.push(p.clone());
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
        }
    }
    found
}

/// A small xorshift generator: reproducible kill points from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Four certificates with two targets each: 12 items, a deferred-durability batch (one
/// `syncfs` per phase).
#[test]
fn kill_nine_at_random_points_leaves_matching_pairs_and_converges() {
    kill_nine(&["a", "b", "c", "d"]);
}

/// Two certificates with two targets each: 6 items, every write fsync'd as it is made.
#[test]
fn kill_nine_with_immediate_durability_leaves_matching_pairs_and_converges() {
    kill_nine(&["a", "d"]);
}

fn kill_nine(names: &[&str]) {
    let rig = Rig::new();
    let body: String = names
        .iter()
        .map(|n| {
            format!(
                "[[certificate]]\nname = \"{n}\"\ncommon_name = \"{n}.example.internal\"\nkey = \"{}\"\n\n\
                 [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n\
                 [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nfiles = [\"combined\"]\ncombined = \"all.pem\"\n\n",
                if *n == "d" { "rsa-2048" } else { "ecdsa-p256" },
                rig.path(&format!("out/{n}")).display(),
                rig.path(&format!("out/{n}-combined")).display()
            )
        })
        .collect();
    rig.config(&body);
    rig.rotate(&[]).ok();
    // How long a forced run takes decides where kills land: the shortest of three, so that
    // nearly every kill lands inside a run.
    let span = (0..3)
        .map(|_| {
            let t = Instant::now();
            rig.rotate(&["--force"]).ok();
            t.elapsed().as_micros() as u64
        })
        .min()
        .unwrap_or(1000)
        .max(1000);
    let seed = std::env::var("PKI_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| 0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    eprintln!("kill points seed {seed} (set PKI_KILL_SEED to replay), run takes {span} us");
    let mut rng = Rng(seed | 1);
    let mut killed_mid_run = 0;
    let mut i = 0;
    while killed_mid_run < 50 && i < 150 {
        i += 1;
        let delay = rng.next() % span;
        let mut child = Command::new(pki_tests::pki_bin())
            .args([
                "rotate",
                "--force",
                "--config",
                rig.config_path().to_str().unwrap(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(delay));
        if matches!(child.try_wait(), Ok(None)) {
            killed_mid_run += 1;
        }
        let _ = child.kill();
        let _ = child.wait();
        // Right after the kill: every pair anyone can read still matches.
        assert_pairs_match(&rig, names);
        if i % 5 == 0 {
            // The next run converges: exit 0, nothing left to deploy, no temporary files.
            rig.rotate(&[]).ok();
            assert!(
                temp_files(rig.tmp.path()).is_empty(),
                "{:?}",
                temp_files(rig.tmp.path())
            );
            let plan = rig.rotate(&["--dry-run"]).ok();
            assert!(
                !plan.stdout.contains("issue") && !plan.stdout.contains("redeploy"),
                "{}",
                plan.stdout
            );
            assert_pairs_match(&rig, names);
        }
    }
    assert!(
        killed_mid_run >= 50,
        "only {killed_mid_run} kills landed during a run"
    );
}

#[test]
fn a_second_concurrent_run_exits_with_the_lock_code() {
    let rig = Rig::new();
    rig.config(&format!(
        "[[certificate]]\nname = \"slow\"\ncommon_name = \"slow.example.internal\"\n\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nreload_command = [\"sleep\", \"2\"]\n",
        rig.path("out/slow").display()
    ));
    let first = Command::new(pki_tests::pki_bin())
        .args(["rotate", "--config", rig.config_path().to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first run is in its reload (it holds the lock).
    let start = Instant::now();
    while !rig.path("out/slow/.pki").exists() {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    let second = rig.rotate(&[]);
    assert_eq!(second.code, 75, "{second:#?}");
    assert!(second.stderr.contains("lock"), "{second:#?}");
    // The first run sleeps 2 s in its reload: a second run that waited would take that long.
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "the second run must not wait"
    );
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_pair(
        &rig.path("out/slow/cert.pem"),
        &rig.path("out/slow/key.pem"),
    );
    let plan = rig.rotate(&["--dry-run"]).ok();
    assert!(plan.stdout.starts_with("slow: keep"), "{}", plan.stdout);
}

#[test]
fn config_errors_name_file_line_and_key_and_exit_2() {
    let rig = Rig::new();
    rig.config(
        "[[certificate]]\nname = \"x\"\ncommon_name = \"x.example.internal\"\ncolour = \"blue\"\n",
    );
    let run = rig.rotate(&[]).fails_with(&[2]);
    assert!(
        run.stderr.contains("rotate.toml:9") && run.stderr.contains("colour"),
        "{run:#?}"
    );
    rig.config("[[certificate]]\nname = \"x\"\ncommon_name = \"x.example.internal\"\nttl = 30\n[[certificate.target]]\ntype = \"files\"\ndir = \"o\"\n");
    let run = rig.rotate(&[]).fails_with(&[2]);
    assert!(run.stderr.contains("rotate.toml:9"), "{run:#?}");
    let run = Pki::new(["rotate", "--config", "/nonexistent/rotate.toml"])
        .run()
        .fails_with(&[2]);
    assert!(run.stderr.contains("/nonexistent/rotate.toml"), "{run:#?}");
}

/// A tiny HTTP server recording requests (method, path with query, headers, body).
#[derive(Debug, Clone)]
struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: String,
}

fn listener() -> (u16, Arc<Mutex<Vec<Request>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in l.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            let mut len = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                let h = h.trim_end().to_owned();
                if h.is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    if k.eq_ignore_ascii_case("content-length") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            log.lock().unwrap().push(Request {
                line: line.trim_end().to_owned(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let mut s = stream;
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nConnection: close\r\n\r\n{\"ok\":true}",
            );
        }
    });
    (port, seen)
}

#[test]
fn reports_reach_ntfy_uptime_kuma_and_the_textfile() {
    let rig = Rig::new();
    let (port, seen) = listener();
    let token = rig.path("ntfy.token");
    std::fs::write(&token, "tk_secret_token\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let prom = rig.path("metrics/pki.prom");
    let report = format!(
        "[report]\ntextfile = \"{}\"\nexpiry_warning = \"1d\"\n\
         [report.ntfy]\nurl = \"http://127.0.0.1:{port}/pki-alerts\"\ntoken_file = \"{}\"\npriority = \"urgent\"\ntags = [\"rotating_light\", \"lock\"]\n\
         [report.uptime_kuma]\npush_url = \"http://127.0.0.1:{port}/api/push/KumaToken?status=up&msg=OK&ping=\"\n\n",
        prom.display(),
        token.display()
    );
    let good = format!(
        "[[certificate]]\nname = \"ok\"\ncommon_name = \"ok.example.internal\"\n[[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n",
        rig.path("out/ok").display()
    );
    let bad = format!(
        "[[certificate]]\nname = \"bad\"\ncommon_name = \"bad.example.internal\"\n[[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nreload_command = \"exit 3\"\n",
        rig.path("out/bad").display()
    );
    rig.config(&format!("{report}{good}{bad}"));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let requests = seen.lock().unwrap().clone();
    let ntfy = requests
        .iter()
        .find(|r| r.line.starts_with("POST /pki-alerts"))
        .expect("ntfy was called");
    let header = |r: &Request, k: &str| {
        r.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(
        header(ntfy, "authorization").as_deref(),
        Some("Bearer tk_secret_token")
    );
    assert_eq!(header(ntfy, "priority").as_deref(), Some("urgent"));
    assert_eq!(header(ntfy, "tags").as_deref(), Some("rotating_light,lock"));
    assert!(
        header(ntfy, "title").unwrap().contains("failed"),
        "{ntfy:?}"
    );
    assert!(
        ntfy.body.contains("FAILED bad") && ntfy.body.contains("exit 3"),
        "{ntfy:?}"
    );
    let kuma = requests
        .iter()
        .find(|r| r.line.contains("/api/push/KumaToken"))
        .expect("kuma was called");
    assert!(
        kuma.line.starts_with("GET ") && kuma.line.contains("status=down"),
        "{kuma:?}"
    );
    assert!(
        kuma.line.contains("msg=1+failed") || kuma.line.contains("msg=1%20failed"),
        "{kuma:?}"
    );
    // The textfile: NotAfter of each current certificate, and the run's results.
    let text = std::fs::read_to_string(&prom).unwrap();
    let ok_cert = rig.current("ok");
    let expected = format!(
        "x509_cert_not_after{{name=\"ok\",subject_CN=\"ok.example.internal\",serial=\"{}\"}} {}",
        ok_cert.info().serial,
        ok_cert.info().not_after.unix_timestamp()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(
        text.contains("pki_rotation_success{name=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("pki_rotation_success{name=\"bad\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("pki_rotation_last_success_timestamp_seconds{name=\"ok\"}"),
        "{text}"
    );
    assert!(
        !run.stderr.contains("tk_secret_token") && !run.stderr.contains("KumaToken"),
        "secrets in logs: {}",
        run.stderr
    );
    // Fixed: the next run succeeds, Kuma hears "up", ntfy hears nothing (nothing expires soon).
    rig.config(&format!(
        "{report}{good}{}",
        bad.replace("reload_command = \"exit 3\"\n", "")
    ));
    seen.lock().unwrap().clear();
    rig.rotate(&[]).ok();
    let requests = seen.lock().unwrap().clone();
    assert!(
        requests
            .iter()
            .any(|r| r.line.contains("/api/push/KumaToken") && r.line.contains("status=up")),
        "{requests:?}"
    );
    assert!(
        !requests.iter().any(|r| r.line.starts_with("POST")),
        "{requests:?}"
    );
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(
        text.contains("pki_rotation_success{name=\"bad\"} 1"),
        "{text}"
    );
}

#[test]
fn a_run_that_stops_early_still_reports_and_unreachable_reports_keep_tokens_out_of_logs() {
    let rig = Rig::new();
    let (port, seen) = listener();
    let prom = rig.path("metrics/pki.prom");
    let report = |kuma_port: u16| {
        format!(
            "[report]\ntextfile = \"{}\"\n\
             [report.ntfy]\nurl = \"http://127.0.0.1:{port}/pki-alerts\"\n\
             [report.uptime_kuma]\npush_url = \"http://127.0.0.1:{kuma_port}/api/push/KumaToken?status=up\"\n\n",
            prom.display()
        )
    };
    let cert = format!(
        "[[certificate]]\nname = \"ok\"\ncommon_name = \"ok.example.internal\"\n[[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        rig.path("out/ok").display()
    );
    rig.config(&format!("{}{cert}", report(port)));
    rig.rotate(&[]).ok();
    let serial = rig.current("ok").info().serial.clone();
    // The CA goes missing: the run stops before any certificate, and says so everywhere.
    std::fs::rename(rig.path("ca"), rig.path("ca.moved")).unwrap();
    seen.lock().unwrap().clear();
    let run = rig.rotate(&[]).fails_with(&[1]);
    let requests = seen.lock().unwrap().clone();
    let kuma = requests
        .iter()
        .find(|r| r.line.contains("/api/push/KumaToken"))
        .expect("kuma was told");
    assert!(
        kuma.line.contains("status=down") && kuma.line.contains("run+failed"),
        "{kuma:?}"
    );
    let ntfy = requests
        .iter()
        .find(|r| r.line.starts_with("POST /pki-alerts"))
        .expect("ntfy was told");
    assert!(ntfy.body.starts_with("RUN FAILED: "), "{ntfy:?}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("pki_rotation_run_success 0"), "{text}");
    assert!(
        text.contains("pki_rotation_success{name=\"ok\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(&format!("serial=\"{serial}\"")),
        "expiry metrics stay: {text}"
    );
    check_pair(&rig.path("out/ok/cert.pem"), &rig.path("out/ok/key.pem"));
    assert!(!run.stderr.contains("KumaToken"), "{run:#?}");

    // Back, with Uptime Kuma unreachable: the run succeeds, the failed push is a warning
    // that does not show the push token.
    std::fs::rename(rig.path("ca.moved"), rig.path("ca")).unwrap();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    rig.config(&format!("{}{cert}", report(closed_port)));
    let run = rig.rotate(&[]).ok();
    assert!(
        run.stderr.contains("report to http://127.0.0.1"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("KumaToken"), "{run:#?}");
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(text.contains("pki_rotation_run_success 1"), "{text}");
}

#[test]
fn a_new_ca_makes_every_certificate_due() {
    let rig = Rig::new();
    let body = format!(
        "[[certificate]]\nname = \"svc\"\ncommon_name = \"svc.example.internal\"\n[[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        rig.path("out/svc").display()
    );
    rig.config(&body);
    rig.rotate(&[]).ok();
    let before = rig.current("svc");
    // The operator moves to a new CA: the planner notices the issuer changed.
    let other = rig.path("ca2");
    Pki::new([
        "ca",
        "init",
        "--dir",
        other.to_str().unwrap(),
        "--insecure-no-passphrase",
    ])
    .run()
    .ok();
    let text = std::fs::read_to_string(rig.config_path()).unwrap().replace(
        &format!("ca_dir = \"{}\"", rig.path("ca").display()),
        &format!("ca_dir = \"{}\"", other.display()),
    );
    std::fs::write(rig.config_path(), text).unwrap();
    let plan = rig.rotate(&["--dry-run"]).ok();
    assert!(
        plan.stdout.contains("svc: issue (issuer-changed"),
        "{}",
        plan.stdout
    );
    rig.rotate(&[]).ok();
    let after = rig.current("svc");
    assert_ne!(before.info().serial, after.info().serial);
    let new_intermediate =
        Certificate::from_pem(&std::fs::read(other.join("intermediate.pem")).unwrap(), "i")
            .unwrap();
    assert!(after.is_signed_by(&new_intermediate));
}

/// `pki rotate` of the rig's config against `bao`, with its token.
pub(crate) fn vault_rotate(rig: &Rig, bao: &pki_tests::bao::Bao, extra: &[&str]) -> Run {
    let config = rig.config_path();
    let mut args = vec!["rotate", "--config", config.to_str().unwrap()];
    args.extend_from_slice(extra);
    pki_tests::bao::pki_clean(args, bao.dir.path())
        .env("VAULT_TOKEN", &bao.token)
        .run()
}

#[test]
fn rotation_through_vault() {
    let Some(bao) = pki_tests::bao::Bao::dev() else {
        return;
    };
    bao.bootstrap();
    let rig = Rig::new();
    let out = rig.path("out/api");
    std::fs::write(
        rig.config_path(),
        format!(
            "state_dir = \"{}\"\n[backend]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"pki\"\nrole = \"services\"\n\n\
             [[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\nsans = [\"10.0.0.7\"]\nttl = \"2d\"\n\
             [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
            rig.path("state").display(),
            bao.addr,
            out.display()
        ),
    )
    .unwrap();
    let rotate = |extra: &[&str]| vault_rotate(&rig, &bao, extra);
    rotate(&[]).ok();
    let first = rig.current("api");
    // openssl verifies what was deployed against the chain Vault returned.
    let mut args = vec![
        "verify".to_owned(),
        "-x509_strict".to_owned(),
        "-purpose".to_owned(),
        "sslserver".to_owned(),
        "-CAfile".to_owned(),
        out.join("ca.pem").display().to_string(),
    ];
    // Bootstrapped with the root in Vault, a leaf has no intermediate.
    if !std::fs::read(out.join("chain.pem")).unwrap().is_empty() {
        args.extend([
            "-untrusted".to_owned(),
            out.join("chain.pem").display().to_string(),
        ]);
    }
    args.push(out.join("cert.pem").display().to_string());
    let verify = pki_tests::openssl(args);
    assert_eq!(verify.code, 0, "{verify:#?}");
    check_pair(&out.join("cert.pem"), &out.join("key.pem"));
    // Nothing due, then forced.
    let plan = rotate(&["--dry-run"]).ok();
    assert!(plan.stdout.starts_with("api: keep"), "{}", plan.stdout);
    rotate(&["--force"]).ok();
    assert_ne!(rig.current("api").info().serial, first.info().serial);
    check_pair(&out.join("cert.pem"), &out.join("key.pem"));
    // Vault refusing a name is a failed certificate with Vault's reason, exit 1.
    let text = std::fs::read_to_string(rig.config_path())
        .unwrap()
        .replace("api.example.internal", "api.evil.com");
    std::fs::write(rig.config_path(), text).unwrap();
    let run = rotate(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("not allowed by this role"), "{run:#?}");
    check_pair(&out.join("cert.pem"), &out.join("key.pem"));
}

/// An offline backend and a Vault one in the same config: each certificate goes to its own;
/// with Vault gone, only Vault's certificate fails and its target keeps what it had.
#[test]
fn two_backends_and_one_of_them_down() {
    let Some(bao) = pki_tests::bao::Bao::dev() else {
        return;
    };
    bao.bootstrap();
    let rig = Rig::new();
    let text = format!(
        "state_dir = \"{}\"\n\
         [backends.internal]\ntype = \"offline\"\nca_dir = \"{}\"\n\
         [backends.vault]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"pki\"\nrole = \"services\"\n\
         retry_budget = \"2s\"\n\n\
         [[certificate]]\nname = \"db\"\ncommon_name = \"db.example.internal\"\nbackend = \"internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n\
         [[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\nbackend = \"vault\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        rig.path("state").display(),
        rig.path("ca").display(),
        bao.addr,
        rig.path("out/db").display(),
        rig.path("out/api").display()
    );
    std::fs::write(rig.config_path(), text).unwrap();
    let rotate = |extra: &[&str]| vault_rotate(&rig, &bao, extra);
    let plan = rotate(&["--dry-run"]).ok();
    assert!(
        plan.stdout.contains("db: issue (missing") && plan.stdout.contains("backend internal)"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("backend vault)"), "{}", plan.stdout);
    rotate(&[]).ok();
    // Each certificate came from its own backend: the offline CA's, and Vault's.
    let issuer = |name: &str| {
        let verify = pki_tests::openssl([
            "x509".to_owned(),
            "-noout".to_owned(),
            "-issuer".to_owned(),
            "-in".to_owned(),
            rig.path(&format!("out/{name}/cert.pem"))
                .display()
                .to_string(),
        ]);
        assert_eq!(verify.code, 0, "{verify:#?}");
        verify.stdout
    };
    let (db_issuer, api_issuer) = (issuer("db"), issuer("api"));
    assert_ne!(db_issuer, api_issuer);
    for name in ["db", "api"] {
        let out = rig.path(&format!("out/{name}"));
        let verify = pki_tests::openssl([
            "verify".to_owned(),
            "-CAfile".to_owned(),
            out.join("ca.pem").display().to_string(),
            "-untrusted".to_owned(),
            out.join("chain.pem").display().to_string(),
            out.join("cert.pem").display().to_string(),
        ]);
        assert_eq!(verify.code, 0, "{name}: {verify:#?}");
    }
    let api = rig.current("api").info().serial.clone();
    let db = rig.current("db").info().serial.clone();
    // Vault down: the offline certificate is still renewed, Vault's fails, exit 1.
    let token = bao.token.clone();
    let home = bao.dir.path().to_path_buf();
    drop(bao);
    let config = rig.config_path();
    let run = pki_tests::bao::pki_clean(
        ["rotate", "--config", config.to_str().unwrap(), "--force"],
        &home,
    )
    .env("VAULT_TOKEN", &token)
    .run();
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("backend \"vault\""), "{run:#?}");
    assert_ne!(rig.current("db").info().serial, db);
    assert_eq!(rig.current("api").info().serial, api);
    check_pair(&rig.path("out/api/cert.pem"), &rig.path("out/api/key.pem"));
    check_pair(&rig.path("out/db/cert.pem"), &rig.path("out/db/key.pem"));
}

#[test]
fn the_example_configs_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let quick = pki_deploy::config::load(&examples.join("quickstart.toml")).unwrap();
    assert_eq!(quick.certificates.len(), 2);
    // The Debian example names the haproxy and mysql users' groups: present once the
    // services are installed (scripts/install-test-deps).
    if !require(&["haproxy", "mariadbd"]) {
        return;
    }
    let host = pki_deploy::config::load(&examples.join("debian-host.toml")).unwrap();
    let Some(pki_deploy::config::Backend::Vault(vault)) = host.backend("default") else {
        panic!("{:?}", host.backends);
    };
    // The cluster's three nodes, in order.
    assert_eq!(
        vault.address.as_deref().map(|a| a.split(',').count()),
        Some(3)
    );
    assert_eq!(host.certificates.len(), 4);
    // The public site from Let's Encrypt, beside Vault.
    assert!(matches!(
        host.backend("public"),
        Some(pki_deploy::config::Backend::Acme(_))
    ));
    let www = host
        .certificates
        .iter()
        .find(|c| c.name == "www-public")
        .unwrap();
    assert_eq!(www.backend, "public");
    assert!(
        host.certificates
            .iter()
            .filter(|c| c.name != "www-public")
            .all(|c| c.backend == "default")
    );
}

/// A certificate the backend issued but the store could not take (here: a file where its
/// directory goes) is recorded first, and `--orphans` lists it with its serial, to be revoked.
#[test]
fn a_certificate_issued_and_never_stored_is_listed_as_an_orphan() {
    let rig = Rig::new();
    rig.config(&format!(
        "[[certificate]]\nname = \"lost\"\ncommon_name = \"lost.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        rig.path("out/lost").display()
    ));
    std::fs::create_dir_all(rig.path("state/certs")).unwrap();
    std::fs::write(rig.path("state/certs/lost"), "in the way").unwrap();
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let issued = run
        .stderr
        .lines()
        .find_map(|l| l.split("serial ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{run:#?}"))
        .to_owned();
    let listed = rig.rotate(&["--orphans"]).ok();
    assert!(
        listed.stdout.starts_with("lost: serial ") && listed.stdout.contains("never stored"),
        "{listed:#?}"
    );
    let json = Pki::new([
        "--json",
        "rotate",
        "--config",
        rig.config_path().to_str().unwrap(),
        "--orphans",
    ])
    .run()
    .ok()
    .json();
    let serial = json[0]["serial"].as_str().unwrap().to_owned();
    assert_eq!(json.as_array().unwrap().len(), 1);
    assert_eq!(
        serial.to_ascii_lowercase().replace(':', ""),
        issued.to_ascii_lowercase().replace(':', ""),
        "the serial the run logged"
    );
    // Once the way is clear, the next run stores and deploys a new certificate; the lost one
    // stays listed until it expires or is revoked.
    std::fs::remove_file(rig.path("state/certs/lost")).unwrap();
    rig.rotate(&[]).ok();
    assert_ne!(rig.current("lost").info().serial.to_string(), serial);
    let again = rig.rotate(&["--orphans"]).ok();
    assert!(again.stdout.contains(&serial), "{again:#?}");
}

/// README's first command: the quickstart config runs as it is, from a fresh directory, and a
/// second run finds nothing due.
#[test]
fn the_quickstart_runs_as_readme_says() {
    let tmp = servers::short_tempdir();
    let examples = tmp.path().join("examples");
    std::fs::create_dir(&examples).unwrap();
    let config = examples.join("quickstart.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/quickstart.toml"),
        &config,
    )
    .unwrap();
    let run = || Pki::new(["rotate", "--config", config.to_str().unwrap()]).run();
    let first = run();
    assert_eq!(first.code, 0, "{first:#?}");
    for f in [
        "deploy/web/cert.pem",
        "deploy/haproxy/web.pem",
        "metrics/pki.prom",
    ] {
        assert!(tmp.path().join("quickstart").join(f).is_file(), "{f}");
    }
    let second = run();
    assert_eq!(second.code, 0, "{second:#?}");
    assert!(second.stderr.contains("0 issued"), "{second:#?}");
}

/// `--log-format json`: every line is one ECS document; the issue line carries the x509 facts.
#[test]
fn json_log_lines_are_ecs_documents() {
    let rig = Rig::new();
    rig.config(&format!(
        "[[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        rig.path("out/api").display()
    ));
    let run = rig.rotate(&["--log-format", "json"]).ok();
    let docs: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(docs.iter().all(|d| d["@timestamp"].is_string()
        && d["log"]["level"].is_string()
        && d["message"].is_string()
        && d["event"]["action"].is_string()));
    let issued = docs
        .iter()
        .find(|d| d["event"]["action"] == "issued")
        .unwrap_or_else(|| panic!("{docs:?}"));
    assert_eq!(issued["event"]["outcome"], "success");
    assert_eq!(
        issued["x509"]["serial_number"],
        rig.current("api").info().serial.to_hex()
    );
    assert_eq!(
        issued["x509"]["subject"]["common_name"],
        "api.example.internal"
    );
    assert_eq!(issued["pki"]["certificate"], "api");
}
