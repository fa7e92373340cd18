//! A throwaway pebble (Debian's 2.4, the ACME test server) with `pebble-challtestsrv` as its
//! DNS server (every name is 127.0.0.1), on loopback ports, stopped when dropped. Recipe from
//! `reference/acme.md`: pebble ships no TLS certificate, so one is made here with openssl.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::servers::{Server, free_port, port_open, ready, short_tempdir, spawn};

/// A running pebble and its DNS server.
pub struct Pebble {
    /// pebble itself (its `port` is the ACME port).
    pub server: Server,
    /// pebble-challtestsrv (DNS and management).
    pub dns: Server,
    /// The directory URL.
    pub directory: String,
    /// The CA file that signs pebble's HTTPS certificate (the `ca_cert` of the backend).
    pub tls_ca: PathBuf,
    /// The management port (`/roots/0`).
    pub management: u16,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pebble {
    /// Starts pebble validating http-01 on `http_port` of 127.0.0.1, issuing certificates
    /// valid for `validity` seconds when given. `None` when pebble is not installed (a failure
    /// under CI).
    pub fn start(http_port: u16, validity: Option<u64>) -> Option<Self> {
        let extra = validity.map_or_else(String::new, |v| {
            format!(", \"certificateValidityPeriod\": {v}")
        });
        Self::start_with(http_port, &extra)
    }

    /// [`Pebble::start`] requiring external account binding with the key id `kid` and the
    /// base64url HMAC key `hmac`.
    pub fn start_eab(http_port: u16, kid: &str, hmac: &str) -> Option<Self> {
        Self::start_with(
            http_port,
            &format!(
                ", \"externalAccountBindingRequired\": true, \
                 \"externalAccountMACKeys\": {{ \"{kid}\": \"{hmac}\" }}"
            ),
        )
    }

    /// pebble with `extra` keys (`, "key": value` text) in its config.
    fn start_with(http_port: u16, extra: &str) -> Option<Self> {
        if !crate::require(&["pebble", "pebble-challtestsrv", "openssl"]) {
            return None;
        }
        let dir = short_tempdir();
        let d = dir.path().to_path_buf();
        let p = |n: &str| d.join(n).display().to_string();
        run(Command::new("openssl").args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("tls-ca.key"),
            "-out",
            &p("tls-ca.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=pebble test TLS CA",
        ]));
        run(Command::new("openssl").args([
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &p("server.key"),
            "-out",
            &p("server.csr"),
            "-subj",
            "/CN=localhost",
        ]));
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             extendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(Command::new("openssl").args([
            "x509",
            "-req",
            "-in",
            &p("server.csr"),
            "-CA",
            &p("tls-ca.pem"),
            "-CAkey",
            &p("tls-ca.key"),
            "-CAcreateserial",
            "-out",
            &p("server.pem"),
            "-days",
            "2",
            "-extfile",
            &p("ext.cnf"),
        ]));
        let (acme, management, dns, dns_mgmt) =
            (free_port(), free_port(), free_port(), free_port());
        std::fs::write(
            d.join("pebble.json"),
            format!(
                "{{ \"pebble\": {{ \"listenAddress\": \"127.0.0.1:{acme}\", \
                 \"managementListenAddress\": \"127.0.0.1:{management}\", \
                 \"certificate\": \"{}\", \"privateKey\": \"{}\", \
                 \"httpPort\": {http_port}, \"tlsPort\": {}, \"ocspResponderURL\": \"\"{extra} }} }}",
                p("server.pem"),
                p("server.key"),
                free_port()
            ),
        )
        .unwrap();
        let dns_dir = short_tempdir();
        let dns_log = dns_dir.path().join("challtestsrv.log");
        let child = spawn(
            Command::new("pebble-challtestsrv").args([
                "-management",
                &format!("127.0.0.1:{dns_mgmt}"),
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ]),
            &dns_log,
        );
        let dns_server = ready(
            child,
            dns_dir,
            dns_mgmt,
            dns_log,
            "pebble-challtestsrv",
            Duration::from_secs(10),
            || port_open(dns_mgmt),
        );
        let log = d.join("pebble.log");
        let child = spawn(
            Command::new("pebble")
                .env("PEBBLE_VA_NOSLEEP", "1")
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                .env("PEBBLE_AUTHZREUSE", "0")
                .args(["-config", &p("pebble.json"), "-dnsserver"])
                .arg(format!("127.0.0.1:{dns}")),
            &log,
        );
        let server = ready(
            child,
            dir,
            acme,
            log,
            "pebble",
            Duration::from_secs(15),
            || port_open(acme) && port_open(management),
        );
        Some(Self {
            directory: format!("https://127.0.0.1:{acme}/dir"),
            tls_ca: d.join("tls-ca.pem"),
            management,
            server,
            dns: dns_server,
        })
    }

    /// The root that signs pebble's certificates (management endpoint `/roots/0`), written to
    /// `out`.
    pub fn root(&self, out: &std::path::Path) {
        run(Command::new("curl").args([
            "-sSf",
            "--cacert",
            &self.tls_ca.display().to_string(),
            "-o",
            &out.display().to_string(),
            &format!("https://127.0.0.1:{}/roots/0", self.management),
        ]));
    }

    /// What pebble's management API says of the certificate with this serial (hex).
    pub fn cert_status(&self, serial_hex: &str) -> String {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", &self.tls_ca.display().to_string()])
            .arg(format!(
                "https://127.0.0.1:{}/cert-status-by-serial/{serial_hex}",
                self.management
            ))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// pebble's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.server.log).unwrap_or_default()
    }
}
