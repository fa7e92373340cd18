//! Throwaway servers for the deploy tests: HAProxy, Nginx, MariaDB, PostgreSQL and Redis with
//! TLS, each in a short temporary directory, bound to 127.0.0.1 on a free port, stopped when
//! dropped. Recipes from `reference/test-servers.md`.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, below the kernel's ephemeral range (32768 and up), so that no
/// outgoing connection or `bind(0)` elsewhere takes it before the server binds it; spread by
/// pid so that parallel test processes rarely try the same ones.
/// A port is also reserved for the test process that picked it (a file named after it, holding
/// the pid, in a shared directory): between picking a port and a server binding it, another
/// test process must not pick it too.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919);
    for _ in 0..2000 {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = 20000 + (seed.wrapping_add(n.wrapping_mul(97)) % 12000) as u16;
        if reserve(port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Takes `port` for this process, unless a live test process holds it (a dead one's
/// reservation is taken over).
fn reserve(port: u16) -> bool {
    let dir = std::env::temp_dir().join("pki-test-ports");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(port.to_string());
    let me = std::process::id().to_string();
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&file)
        {
            Ok(mut f) => return std::io::Write::write_all(&mut f, me.as_bytes()).is_ok(),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let holder = std::fs::read_to_string(&file).unwrap_or_default();
                // Ours already, being written by another process, or held by a live one.
                if holder == me || holder.is_empty() || Path::new("/proc").join(&holder).exists() {
                    return false;
                }
                let _ = std::fs::remove_file(&file);
            }
            Err(_) => return true,
        }
    }
    false
}

/// A temporary directory with a short path: unix sockets allow about 100 bytes.
pub fn short_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("p")
        .tempdir_in("/tmp")
        .unwrap();
    // Services running as their own users (postgres) must be able to traverse it.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Waits until `check` is true, or panics after `limit` with `what` and the log's tail.
pub fn wait_until(
    what: &str,
    log: Option<&Path>,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let tail = log
        .and_then(|l| std::fs::read_to_string(l).ok())
        .map(|t| {
            t.lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    panic!("{what} did not come up within {limit:?}:\n{tail}");
}

/// Waits until a server process is ready (`check`), then hands it over as a [`Server`]. Fails at
/// once, with its log, if the process exits meanwhile (a port taken after all, a bad config)
/// instead of finding another server on its port.
pub fn ready(
    mut child: Child,
    dir: tempfile::TempDir,
    port: u16,
    log: PathBuf,
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> bool,
) -> Server {
    let mut exited = None;
    wait_until(what, Some(&log), limit, || {
        if let Ok(Some(status)) = child.try_wait() {
            exited = Some(status);
            return true;
        }
        check()
    });
    if let Some(status) = exited {
        let tail = std::fs::read_to_string(&log).unwrap_or_default();
        panic!("{what} exited while starting ({status}):\n{tail}");
    }
    Server {
        child,
        dir,
        port,
        log,
    }
}

/// Whether something listens on 127.0.0.1:port.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A running server process; killed (TERM, then KILL) when dropped.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub log: PathBuf,
}

impl Server {
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cmd` with its output in `log`.
pub fn spawn(cmd: &mut Command, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// HAProxy with `bind … ssl crt <pem>` and an admin socket; answers every request with the
/// serial of the certificate used on that connection.
pub fn haproxy(dir: tempfile::TempDir, pem: &Path) -> Server {
    haproxy_with(dir, &[pem])
}

/// [`haproxy`] with several certificates on its one `bind` (SNI picks; the first is default).
pub fn haproxy_with(dir: tempfile::TempDir, pems: &[&Path]) -> Server {
    let port = free_port();
    let d = dir.path();
    let crts: String = pems
        .iter()
        .map(|p| format!(" crt {}", p.display()))
        .collect();
    let cfg = format!(
        "global\n    stats socket {sock} mode 600 level admin\n    log stderr format raw local0 info\n\
         defaults\n    mode http\n    log global\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
         frontend fe\n    bind 127.0.0.1:{port} ssl{crts}\n    \
         http-request return status 200 content-type text/plain lf-string \"conn-cert-serial=%[ssl_f_serial,hex]\\n\"\n",
        sock = d.join("admin.sock").display(),
    );
    start_haproxy(dir, &cfg, port, port)
}

/// Runs HAProxy on `cfg` (its admin socket `admin.sock` in `dir`), ready once the socket and
/// both ports answer.
fn start_haproxy(dir: tempfile::TempDir, cfg: &str, port: u16, other_port: u16) -> Server {
    let d = dir.path();
    std::fs::write(d.join("haproxy.cfg"), cfg).unwrap();
    let log = d.join("haproxy.log");
    let child = spawn(
        Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(d.join("haproxy.cfg")),
        &log,
    );
    let sock = d.join("admin.sock");
    ready(
        child,
        dir,
        port,
        log,
        "haproxy",
        Duration::from_secs(10),
        || sock.exists() && port_open(port) && port_open(other_port),
    )
}

/// HAProxy in front of public sites: `pems` on its TLS `bind` (SNI picks, the first is
/// default), and a plain HTTP frontend on `http_port` (standing for :80) that routes
/// `/.well-known/acme-challenge/` to 127.0.0.1:`responder` and redirects the rest to https.
/// With `thumbprint`, it answers challenges itself instead (stateless http-01).
pub fn haproxy_front(
    dir: tempfile::TempDir,
    pems: &[&Path],
    http_port: u16,
    challenges: Challenges<'_>,
) -> Server {
    let port = free_port();
    let d = dir.path();
    let crts: String = pems
        .iter()
        .map(|p| format!(" crt {}", p.display()))
        .collect();
    // http-request rules run before use_backend, in their order: the challenge answer (or
    // route) must come before the redirect, as README's lines show.
    let (global, answer, route) = match challenges {
        Challenges::Responder(_) => (
            String::new(),
            String::new(),
            "    use_backend be_acme if is_acme\n",
        ),
        Challenges::Stateless(thumbprint) => (
            format!("    setenv ACCOUNT_THUMBPRINT '{thumbprint}'\n"),
            "    http-request return status 200 content-type text/plain \
             lf-string \"%[path,field(-1,/)].${ACCOUNT_THUMBPRINT}\" if is_acme\n"
                .to_owned(),
            "",
        ),
    };
    let responder = match challenges {
        Challenges::Responder(port) => port,
        Challenges::Stateless(_) => free_port(),
    };
    let cfg = format!(
        "global\n    stats socket {sock} mode 600 level admin\n    log stderr format raw local0 info\n{global}\
         defaults\n    mode http\n    log global\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\
         frontend fe\n    bind 127.0.0.1:{port} ssl{crts}\n    \
         http-request return status 200 content-type text/plain lf-string \"conn-cert-serial=%[ssl_f_serial,hex]\\n\"\n\
         frontend http\n    bind 127.0.0.1:{http_port}\n    option httplog\n\
         acl is_acme path_beg /.well-known/acme-challenge/\n\
         {answer}    http-request redirect scheme https code 301 unless is_acme\n{route}\
         backend be_acme\n    server hook 127.0.0.1:{responder}\n",
        sock = d.join("admin.sock").display(),
    );
    start_haproxy(dir, &cfg, port, http_port)
}

/// How [`haproxy_front`] answers ACME http-01 challenges.
#[derive(Debug, Clone, Copy)]
pub enum Challenges<'a> {
    /// Routed to the hook's responder on this loopback port.
    Responder(u16),
    /// From the account thumbprint, by HAProxy itself.
    Stateless(&'a str),
}

/// Nginx serving `cert` and `key` (paths as the rotation config names them).
pub fn nginx(dir: tempfile::TempDir, cert: &Path, key: &Path) -> Server {
    nginx_with(dir, cert, key, "")
}

/// [`nginx`] with `extra` added inside its `http` block (another `server`, say).
pub fn nginx_with(dir: tempfile::TempDir, cert: &Path, key: &Path, extra: &str) -> Server {
    let port = free_port();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    let conf = format!(
        "pid {d}/nginx.pid;\nerror_log {d}/error.log info;\nworker_processes 1;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;\n  \
         fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port} ssl;\n    server_name localhost;\n    ssl_certificate {cert};\n    \
         ssl_certificate_key {key};\n    location / {{ default_type text/plain; return 200 \"ok\\n\"; }}\n  }}\n{extra}}}\n",
        d = d.display(),
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(d.join("nginx.conf"), conf).unwrap();
    let log = d.join("stderr.log");
    let child = spawn(
        Command::new("nginx")
            .arg("-p")
            .arg(d)
            .arg("-c")
            .arg(d.join("nginx.conf"))
            .arg("-g")
            .arg("daemon off;"),
        &log,
    );
    let pid = d.join("nginx.pid");
    ready(
        child,
        dir,
        port,
        log,
        "nginx",
        Duration::from_secs(10),
        || pid.exists() && port_open(port),
    )
}

/// MariaDB with `ssl-cert`/`ssl-key` at the given paths.
pub fn mariadb(dir: tempfile::TempDir, cert: &Path, key: &Path) -> Server {
    mariadb_with(dir, cert, key, "")
}

/// [`mariadb`] with `extra` lines in its `[mariadbd]` section (`ssl-ca = …`).
pub fn mariadb_with(dir: tempfile::TempDir, cert: &Path, key: &Path, extra: &str) -> Server {
    let port = free_port();
    let d = dir.path();
    std::fs::create_dir_all(d.join("tmp")).unwrap();
    let cnf = format!(
        "[mariadbd]\nuser = root\ndatadir = {d}/data\nsocket = {d}/mysqld.sock\npid-file = {d}/mariadbd.pid\n\
         log-error = {d}/error.log\ntmpdir = {d}/tmp\nport = {port}\nbind-address = 127.0.0.1\n\
         innodb-buffer-pool-size = 32M\ninnodb-log-file-size = 8M\nssl-cert = {cert}\nssl-key = {key}\n{extra}\n\
         [client]\nsocket = {d}/mysqld.sock\nuser = root\n",
        d = d.display(),
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(d.join("my.cnf"), cnf).unwrap();
    let init = Command::new("mariadb-install-db")
        .arg(format!("--defaults-file={}", d.join("my.cnf").display()))
        .arg("--auth-root-authentication-method=socket")
        .arg("--skip-test-db")
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "mariadb-install-db: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let log = d.join("error.log");
    let child = spawn(
        Command::new("mariadbd").arg(format!("--defaults-file={}", d.join("my.cnf").display())),
        &d.join("stdout.log"),
    );
    let cnf = d.join("my.cnf");
    ready(
        child,
        dir,
        port,
        log,
        "mariadb",
        Duration::from_secs(30),
        || {
            port_open(port)
                && Command::new("mariadb-admin")
                    .arg(format!("--defaults-file={}", cnf.display()))
                    .arg("ping")
                    .output()
                    .is_ok_and(|o| o.status.success())
        },
    )
}

/// PostgreSQL run as the `postgres` user, `ssl_cert_file`/`ssl_key_file` at the given paths.
pub fn postgres(dir: tempfile::TempDir, cert: &Path, key: &Path) -> Server {
    postgres_with(dir, cert, key, "")
}

/// [`postgres`] with `extra` lines in `postgresql.conf` (`ssl_ca_file`, `hba_file`, …).
pub fn postgres_with(dir: tempfile::TempDir, cert: &Path, key: &Path, extra: &str) -> Server {
    let port = free_port();
    let d = dir.path();
    let bin = Path::new("/usr/lib/postgresql/15/bin");
    let as_pg = |program: &Path| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=postgres", "--regid=postgres", "--init-groups"])
            .arg(program);
        c
    };
    for sub in ["data", "sock"] {
        let p = d.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&p)
            .status()
            .unwrap();
        assert!(status.success());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let init = as_pg(&bin.join("initdb"))
        .arg("-D")
        .arg(d.join("data"))
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        ])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "initdb: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let extra = format!(
        "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{sock}'\nssl = on\n\
         ssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n{extra}\n",
        sock = d.join("sock").display(),
        cert = cert.display(),
        key = key.display(),
    );
    let conf = d.join("data/postgresql.conf");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&extra);
    std::fs::write(&conf, text).unwrap();
    let log = d.join("postgres.log");
    let child = spawn(
        as_pg(&bin.join("postgres")).arg("-D").arg(d.join("data")),
        &log,
    );
    let sock = d.join("sock");
    ready(
        child,
        dir,
        port,
        log,
        "postgres",
        Duration::from_secs(30),
        || {
            Command::new("pg_isready")
                .arg("-q")
                .arg("-h")
                .arg(&sock)
                .arg("-p")
                .arg(port.to_string())
                .args(["-U", "postgres"])
                .status()
                .is_ok_and(|s| s.success())
        },
    )
}

/// Redis with TLS on a free port and a unix socket for administration.
pub fn redis(dir: tempfile::TempDir, cert: &Path, key: &Path) -> Server {
    redis_with(dir, cert, key, "")
}

/// [`redis`] with `extra` lines at the end of its config (the last setting of a key wins:
/// `tls-auth-clients yes`).
pub fn redis_with(dir: tempfile::TempDir, cert: &Path, key: &Path, extra: &str) -> Server {
    let port = free_port();
    let d = dir.path();
    let conf = format!(
        "bind 127.0.0.1\nport 0\ntls-port {port}\ntls-cert-file {cert}\ntls-key-file {key}\ntls-auth-clients no\n\
         unixsocket {d}/redis.sock\nunixsocketperm 700\ndir {d}\npidfile {d}/redis.pid\nlogfile {d}/redis.log\n\
         daemonize no\nsave \"\"\nappendonly no\n{extra}\n",
        d = d.display(),
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(d.join("redis.conf"), conf).unwrap();
    let log = d.join("redis.log");
    let child = spawn(
        Command::new("redis-server").arg(d.join("redis.conf")),
        &d.join("stdout.log"),
    );
    let sock = d.join("redis.sock");
    ready(
        child,
        dir,
        port,
        log,
        "redis",
        Duration::from_secs(10),
        || sock.exists() && port_open(port),
    )
}

/// The home of Debian's `jetty9` package.
pub const JETTY_HOME: &str = "/usr/share/jetty9";

/// Jetty 9 (Debian's `jetty9`, the server Solr runs on) with only an HTTPS connector on
/// 127.0.0.1, serving the PKCS#12 `keystore` and requiring client certificates that the PKCS#12
/// `truststore` trusts; both open with the password in `password_file`. Jetty's keystore scanner
/// (the `ssl-reload` module, what Solr's TLS reload uses) checks the keystore every second.
/// The settings go in the base's `start.ini`, not on the command line.
pub fn jetty(
    dir: tempfile::TempDir,
    keystore: &Path,
    truststore: &Path,
    password_file: &Path,
) -> Server {
    let port = free_port();
    let d = dir.path();
    let password = std::fs::read_to_string(password_file).unwrap();
    let password = password.trim();
    let ini = format!(
        "--module=server,https,ssl-reload\n\
         jetty.ssl.host=127.0.0.1\njetty.ssl.port={port}\n\
         jetty.sslContext.keyStoreAbsolutePath={}\njetty.sslContext.keyStoreType=PKCS12\n\
         jetty.sslContext.keyStorePassword={password}\njetty.sslContext.keyManagerPassword={password}\n\
         jetty.sslContext.trustStoreAbsolutePath={}\njetty.sslContext.trustStoreType=PKCS12\n\
         jetty.sslContext.trustStorePassword={password}\n\
         jetty.sslContext.needClientAuth=true\njetty.sslContext.reload.scanInterval=1\n",
        keystore.display(),
        truststore.display(),
    );
    std::fs::write(d.join("start.ini"), ini).unwrap();
    std::fs::set_permissions(d.join("start.ini"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let log = d.join("jetty.log");
    let child = spawn(
        Command::new("java")
            .arg("-Xmx128m")
            .arg("-jar")
            .arg(Path::new(JETTY_HOME).join("start.jar"))
            .arg(format!("jetty.home={JETTY_HOME}"))
            .arg(format!("jetty.base={}", d.display()))
            .current_dir(d),
        &log,
    );
    ready(
        child,
        dir,
        port,
        log,
        "jetty9",
        Duration::from_secs(60),
        || port_open(port),
    )
}
