//! Client identities against real MariaDB, PostgreSQL and Redis that require them: a client
//! certificate the hook deploys (files target, `profile = "client"`) authenticates, and keeps
//! working once rotated; one from another CA, an expired one, or (where the server maps the
//! subject to a user) one with another name is refused. A server-certificate rotation under a
//! loop of clients that verify the server fails no connection. The clients are the servers' own
//! command-line clients (OpenSSL underneath), not our TLS stack.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use pki_tests::servers::{self, Server};
use pki_tests::{Pki, TestCa, require};

use crate::rotate::{Rig, cert_key, cert_section, chown_postgres, probe, served};

/// A client identity on disk: `fullchain.pem` (leaf and intermediate, so that a server that
/// trusts only the root can build the path) and `key.pem`.
struct Identity(PathBuf);

impl Identity {
    fn cert(&self) -> PathBuf {
        self.0.join("fullchain.pem")
    }
    fn key(&self) -> PathBuf {
        self.0.join("key.pem")
    }
}

/// The identities a server must refuse, next to the one the hook deploys.
struct Intruders {
    /// Same name, another CA.
    foreign: Identity,
    /// Same name, our CA, expired.
    expired: Identity,
    /// Our CA, another name.
    other_name: Identity,
    _foreign_ca: TestCa,
}

/// A client certificate from `ca_dir`, issued with `pki issue` into `out`.
fn issue_client(ca_dir: &Path, cn: &str, out: &Path, ttl: &str) -> Identity {
    Pki::new([
        "issue",
        cn,
        "--profile",
        "client",
        "--ttl",
        ttl,
        "--out",
        out.to_str().unwrap(),
        "--ca-dir",
        ca_dir.to_str().unwrap(),
    ])
    .run()
    .ok();
    Identity(out.to_owned())
}

impl Intruders {
    fn new(rig: &Rig, cn: &str) -> Self {
        let foreign_ca = TestCa::new(&[]);
        let foreign = issue_client(&foreign_ca.dir, cn, &rig.path("foreign"), "1d");
        let expired = issue_client(&rig.path("ca"), cn, &rig.path("expired"), "1s");
        let other_name = issue_client(&rig.path("ca"), "intruder", &rig.path("intruder"), "1d");
        // The expired one was valid for a second (after the CA's backdating for clock skew).
        thread::sleep(Duration::from_millis(2100));
        Self {
            foreign,
            expired,
            other_name,
            _foreign_ca: foreign_ca,
        }
    }
}

/// The config of a server certificate (`server_target` for the service) and of the client
/// certificate `app`, deployed as files into `client/`.
fn server_and_client(rig: &Rig, server_target: &str) -> Identity {
    let client = rig.path("client");
    rig.config(&format!(
        "{}\n[[certificate]]\nname = \"app\"\ncommon_name = \"app\"\nprofile = \"client\"\n\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nfiles = [\"fullchain\", \"key\", \"ca\"]\n",
        cert_section("server", server_target),
        client.display()
    ));
    rig.rotate(&[]).ok();
    Identity(client)
}

/// The output of a client command that must succeed, or its error output.
fn outcome(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "exit {:?}: {stdout} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `connect` in a loop on another thread from before `during` runs until some connections
/// after it returned; every answer must be `expected`. Returns how many connections were
/// made while `during` ran and in all.
fn loop_during(
    connect: impl Fn() -> Result<String, String> + Send + 'static,
    expected: &str,
    during: impl FnOnce(),
) -> (usize, usize) {
    let attempts = pki_tests::client_loop::around(connect, during, 5);
    let failures: Vec<_> = attempts
        .results
        .iter()
        .filter(|r| r.as_deref() != Ok(expected))
        .collect();
    assert!(failures.is_empty(), "failed connections: {failures:#?}");
    (attempts.during, attempts.results.len())
}

/// Forces a new server certificate while the loop runs; the service then serves it.
fn rotate_server_under(
    rig: &Rig,
    port: u16,
    starttls: Option<&str>,
    connect: impl Fn() -> Result<String, String> + Send + 'static,
    expected: &str,
) {
    let old = served(port, starttls);
    let (during, all) = loop_during(connect, expected, || {
        rig.rotate(&["--force", "--only", "server"]).ok();
    });
    assert!(
        during >= 1,
        "no connection overlapped the rotation ({all} in all)"
    );
    let new = served(port, starttls);
    assert_ne!(old, new, "the server certificate did not change");
    assert_eq!(new, rig.current("server").info().serial);
    eprintln!("{all} verified connections, {during} during the rotation, none failed");
}

/// Every intruder is refused by `connect`; the refusal is the server's, not a missing file.
fn refused(intruders: &Intruders, connect: impl Fn(&Identity) -> Result<String, String>) {
    for (what, id) in [
        ("another CA", &intruders.foreign),
        ("expired", &intruders.expired),
    ] {
        assert!(id.cert().exists() && id.key().exists());
        match connect(id) {
            Ok(answer) => panic!("a client certificate from {what} was accepted: {answer}"),
            Err(e) => eprintln!("{what}: refused: {e}"),
        }
    }
}

#[test]
fn mariadb_requires_the_client_subject() {
    if !require(&["mariadbd", "mariadb", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let root = rig.path("ca/root.pem");
    let ssl_ca = format!("ssl-ca = {}", root.display());
    let (db, cert, key) = rig.service("server.crt", "server.key", |dir, c, k| {
        servers::mariadb_with(dir, c, k, &ssl_ca)
    });
    let admin = |sql: &str| {
        outcome(
            Command::new("mariadb")
                .arg(format!("--defaults-file={}", db.path("my.cnf").display()))
                .args(["-N", "-e", sql]),
        )
        .unwrap()
    };
    admin("CREATE USER 'app'@'127.0.0.1' REQUIRE SUBJECT '/CN=app'");
    let client = server_and_client(
        &rig,
        &format!(
            "{}\ngroup = \"root\"\n\
             reload_command = [\"mariadb\", \"--defaults-file={}\", \"-e\", \"FLUSH SSL\"]\n{}",
            cert_key("mariadb", &cert, &key),
            db.path("my.cnf").display(),
            probe(db.port, None)
        ),
    );
    let connect = {
        let port = db.port;
        move |id: &Identity| {
            outcome(
                Command::new("mariadb")
                    .args(["--no-defaults", "-h", "127.0.0.1", "-u", "app", "-N", "-B"])
                    .arg(format!("--port={port}"))
                    .arg(format!("--ssl-cert={}", id.cert().display()))
                    .arg(format!("--ssl-key={}", id.key().display()))
                    .arg(format!("--ssl-ca={}", root.display()))
                    .args(["--ssl-verify-server-cert", "-e", "SELECT CURRENT_USER()"]),
            )
        }
    };
    assert_eq!(connect(&client), Ok("app@127.0.0.1".to_owned()));
    let intruders = Intruders::new(&rig, "app");
    refused(&intruders, &connect);
    let other = connect(&intruders.other_name);
    assert!(
        other.as_ref().is_err_and(|e| e.contains("Access denied")),
        "a certificate for another subject: {other:?}"
    );

    let first = rig.current("app").info().serial.clone();
    rig.rotate(&["--force", "--only", "app"]).ok();
    assert_ne!(rig.current("app").info().serial, first);
    assert_eq!(connect(&client), Ok("app@127.0.0.1".to_owned()));

    let c = connect.clone();
    let client_dir = client.0;
    rotate_server_under(
        &rig,
        db.port,
        Some("mysql"),
        move || c(&Identity(client_dir.clone())),
        "app@127.0.0.1",
    );
    drop(db);
}

#[test]
fn postgres_maps_the_client_certificate_to_its_role() {
    if !require(&["setpriv", "pg_isready", "psql", "openssl"])
        || !Path::new("/usr/lib/postgresql/15/bin/postgres").exists()
    {
        assert!(!pki_tests::under_ci(), "PostgreSQL 15 is missing");
        return;
    }
    let rig = Rig::new();
    let (pg, cert, key) = rig.service("server.crt", "server.key", |dir, c, k| {
        chown_postgres(k);
        std::fs::set_permissions(k, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        // What README shows: the postgres superuser on the socket, the role `app` only over
        // TLS with a client certificate whose CN is `app`, nothing else.
        let hba = dir.path().join("pg_hba.conf");
        std::fs::write(
            &hba,
            "local all postgres trust\nhostssl all app 127.0.0.1/32 cert\nhost all all 0.0.0.0/0 reject\n",
        )
        .unwrap();
        let ca = dir.path().join("client-ca.pem");
        std::fs::copy(rig.path("ca/root.pem"), &ca).unwrap();
        for f in [&hba, &ca] {
            std::fs::set_permissions(f, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                .unwrap();
        }
        let extra = format!(
            "ssl_ca_file = '{}'\nhba_file = '{}'\n",
            ca.display(),
            hba.display()
        );
        servers::postgres_with(dir, c, k, &extra)
    });
    let sock = pg.path("sock");
    let admin = outcome(
        Command::new("psql")
            .arg("-h")
            .arg(&sock)
            .args(["-p", &pg.port.to_string(), "-U", "postgres", "-Atc"])
            .arg("CREATE ROLE app LOGIN"),
    );
    assert!(admin.is_ok(), "{admin:?}");
    let client = server_and_client(
        &rig,
        &format!(
            "{}\nowner = \"postgres\"\n\
             reload_command = [\"psql\", \"-h\", \"{}\", \"-p\", \"{}\", \"-U\", \"postgres\", \"-Atc\", \"SELECT pg_reload_conf()\"]\n{}",
            cert_key("postgres", &cert, &key),
            sock.display(),
            pg.port,
            probe(pg.port, None)
        ),
    );
    let connect = {
        let (port, root) = (pg.port, rig.path("ca/root.pem"));
        move |id: &Identity| {
            outcome(
                Command::new("psql")
                    .env_clear()
                    .env("PATH", "/usr/bin:/bin")
                    .arg(format!(
                        "host=127.0.0.1 port={port} user=app dbname=postgres sslmode=verify-full \
                         sslrootcert={} sslcert={} sslkey={} connect_timeout=10",
                        root.display(),
                        id.cert().display(),
                        id.key().display()
                    ))
                    .args(["-Atc", "SELECT current_user"]),
            )
        }
    };
    assert_eq!(connect(&client), Ok("app".to_owned()));
    let intruders = Intruders::new(&rig, "app");
    refused(&intruders, &connect);
    let other = connect(&intruders.other_name);
    assert!(
        other
            .as_ref()
            .is_err_and(|e| e.contains("certificate authentication failed")),
        "a certificate for another role: {other:?}"
    );

    let first = rig.current("app").info().serial.clone();
    rig.rotate(&["--force", "--only", "app"]).ok();
    assert_ne!(rig.current("app").info().serial, first);
    assert_eq!(connect(&client), Ok("app".to_owned()));

    let c = connect.clone();
    let client_dir = client.0;
    rotate_server_under(
        &rig,
        pg.port,
        Some("postgres"),
        move || c(&Identity(client_dir.clone())),
        "app",
    );
    drop(pg);
}

#[test]
fn redis_requires_a_client_certificate_of_the_ca() {
    if !require(&["redis-server", "redis-cli", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let root = rig.path("ca/root.pem");
    let extra = format!("tls-auth-clients yes\ntls-ca-cert-file {}", root.display());
    let (r, cert, key) = rig.service("redis.crt", "redis.key", |dir, c, k| {
        servers::redis_with(dir, c, k, &extra)
    });
    let client = server_and_client(
        &rig,
        &format!(
            "{}\ngroup = \"root\"\nsocket = \"{}\"\n{}",
            cert_key("redis", &cert, &key),
            r.path("redis.sock").display(),
            probe(r.port, None)
        ),
    );
    let connect = {
        let (port, root) = (r.port, root.clone());
        move |id: &Identity| {
            outcome(
                Command::new("redis-cli")
                    .args(["--tls", "-h", "127.0.0.1", "-p", &port.to_string()])
                    .arg("--cacert")
                    .arg(&root)
                    .arg("--cert")
                    .arg(id.cert())
                    .arg("--key")
                    .arg(id.key())
                    .arg("PING"),
            )
            // redis-cli exits 0 when the connection fails: the answer decides.
            .and_then(|answer| {
                if answer == "PONG" {
                    Ok(answer)
                } else {
                    Err(answer)
                }
            })
        }
    };
    assert_eq!(connect(&client), Ok("PONG".to_owned()));
    let intruders = Intruders::new(&rig, "app");
    refused(&intruders, &connect);
    // And no certificate at all.
    let bare = outcome(
        Command::new("redis-cli")
            .args(["--tls", "-h", "127.0.0.1", "-p", &r.port.to_string()])
            .arg("--cacert")
            .arg(&root)
            .arg("PING"),
    );
    assert_ne!(
        bare,
        Ok("PONG".to_owned()),
        "Redis accepted a client without a certificate"
    );

    let first = rig.current("app").info().serial.clone();
    rig.rotate(&["--force", "--only", "app"]).ok();
    assert_ne!(rig.current("app").info().serial, first);
    assert_eq!(connect(&client), Ok("PONG".to_owned()));

    let c = connect.clone();
    let client_dir = client.0;
    rotate_server_under(
        &rig,
        r.port,
        None,
        move || c(&Identity(client_dir.clone())),
        "PONG",
    );
    drop::<Server>(r);
}
