//! The JVM services on a real JVM server: Jetty 9 (Debian's `jetty9`, the server Solr runs
//! on) serves HTTPS from the PKCS#12 keystore the hook writes and picks a rotated one up by
//! its keystore scanner, without a restart, while requiring client certificates that the
//! truststore the hook writes trusts; a JVM client connects with a client keystore from the
//! hook. The PEM + PKCS#8 layout of Elasticsearch and Neo4j is loaded by the JDK as they load
//! it. The Java programs run with the JDK's source launcher.

use std::path::{Path, PathBuf};
use std::process::Command;

use pki_tests::servers::{self, JETTY_HOME};
use pki_tests::{Run, TestCa, require};

use crate::rotate::{Rig, probe, served};

/// A Java program of `tests/java`, run with the source launcher.
fn java(program: &str, args: &[&Path]) -> Run {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("java")
        .join(program);
    let out = Command::new("java")
        .arg(source)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether the JDK, with its compiler (for the source launcher), is here; under `CI=true` its
/// absence fails the test.
fn jdk_ready() -> bool {
    if !require(&["java", "openssl"]) {
        return false;
    }
    let compiler = Command::new("java")
        .args(["--list-modules"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("jdk.compiler"));
    compiler || absent("the JDK's compiler (openjdk-17-jdk-headless)")
}

/// [`jdk_ready`], and Jetty 9.
fn jetty_ready() -> bool {
    jdk_ready() && (Path::new(JETTY_HOME).join("start.jar").exists() || absent("jetty9"))
}

/// A missing dependency: fails under `CI=true`, else says the test is skipped.
fn absent(what: &str) -> bool {
    assert!(!pki_tests::under_ci(), "{what} is missing");
    eprintln!("SKIPPED: {what} is missing");
    false
}

/// A keystore target's lines: the PKCS#12 keystore and truststore in `dir`, one password file.
fn keystores(dir: &Path, password: &Path) -> String {
    format!(
        "type = \"keystore\"\npkcs12 = \"{}\"\ntruststore = \"{}\"\npassword_file = \"{}\"\ngroup = \"root\"",
        dir.join("keystore.p12").display(),
        dir.join("truststore.p12").display(),
        password.display()
    )
}

fn hex(serial: &pki::Serial) -> String {
    serial.to_hex().trim_start_matches('0').to_owned()
}

#[test]
fn jetty_reloads_the_rotated_keystore_and_takes_the_hooks_client_certificate() {
    if !jetty_ready() {
        return;
    }
    let rig = Rig::new();
    let password = rig.path("keystore.pass");
    std::fs::write(&password, "store-pass-4f9c2e\n").unwrap();
    std::fs::set_permissions(
        &password,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let (server, client) = (rig.path("jetty"), rig.path("client"));
    let config = |server_probe: &str| {
        rig.config(&format!(
            "[[certificate]]\nname = \"jetty\"\ncommon_name = \"localhost\"\nsans = [\"127.0.0.1\"]\n\n\
             [[certificate.target]]\n{}\n{server_probe}\n\n\
             [[certificate]]\nname = \"app\"\ncommon_name = \"app\"\nprofile = \"client\"\n\n\
             [[certificate.target]]\n{}\n",
            keystores(&server, &password),
            keystores(&client, &password),
        ));
    };
    // The first keystore, then Jetty on it.
    config("");
    rig.rotate(&[]).ok();
    let keystore = server.join("keystore.p12");
    let mut jetty = servers::jetty(
        servers::short_tempdir(),
        &keystore,
        &server.join("truststore.p12"),
        &password,
    );
    let (pid, port) = (jetty.pid(), jetty.port);
    let first = rig.current("jetty").info().serial.clone();
    assert_eq!(served(port, None), first);

    // The JVM client, with the hook's client keystore and truststore: verified both ways.
    let connect = |with_key: bool| {
        let (ks, ts) = (client.join("keystore.p12"), client.join("truststore.p12"));
        let port = PathBuf::from(port.to_string());
        let mut args: Vec<&Path> = vec![Path::new("localhost"), &port, &ts, &password];
        if with_key {
            args.extend([ks.as_path(), password.as_path()]);
        }
        java("TlsClient.java", &args)
    };
    let ok = connect(true);
    assert_eq!(ok.code, 0, "{ok:#?}");
    assert!(ok.stdout.starts_with("OK HTTP/1.1 "), "{ok:#?}");
    assert!(
        ok.stdout
            .trim_end()
            .ends_with(&format!("serial={}", hex(&first))),
        "{ok:#?}"
    );
    // Jetty requires the client certificate.
    let refused = connect(false);
    assert_ne!(
        refused.code, 0,
        "Jetty let a client without a certificate in: {refused:#?}"
    );
    // TLS 1.3: the client's handshake ends before the server checks its (absent)
    // certificate; the server's alert then ends the connection under the request.
    assert!(
        ["SSL", "alert", "Broken pipe", "reset"]
            .iter()
            .any(|e| refused.stderr.contains(e)),
        "not a TLS refusal: {refused:#?}"
    );
    eprintln!("without a client certificate: {}", refused.stderr.trim());

    // A rotation: Jetty's scanner picks the new keystore up, the hook's probe proves it.
    config(&probe(port, Some("30s")));
    rig.rotate(&["--force", "--only", "jetty"]).ok();
    let second = rig.current("jetty").info().serial.clone();
    assert_ne!(first, second);
    assert_eq!(served(port, None), second);
    assert!(jetty.alive(), "Jetty stopped");
    assert_eq!(jetty.pid(), pid, "Jetty was restarted");

    // The client's certificate rotated too: still accepted, and it sees the new server one.
    let client_first = rig.current("app").info().serial.clone();
    rig.rotate(&["--force", "--only", "app"]).ok();
    assert_ne!(rig.current("app").info().serial, client_first);
    let again = connect(true);
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(
        again
            .stdout
            .trim_end()
            .ends_with(&format!("serial={}", hex(&second))),
        "{again:#?}"
    );
}

#[test]
fn the_jdk_loads_the_pem_and_pkcs8_layout_of_elasticsearch_and_neo4j() {
    if !jdk_ready() {
        return;
    }
    let rig = Rig::new();
    let algorithms = ["ecdsa-p256", "ecdsa-p384", "rsa-2048", "ed25519"];
    let body: String = algorithms
        .iter()
        .map(|alg| {
            let dir = rig.path(alg);
            format!(
                "[[certificate]]\nname = \"{alg}\"\ncommon_name = \"search.example.internal\"\nkey = \"{alg}\"\n\n\
                 [[certificate.target]]\ntype = \"keystore\"\ncert = \"{}\"\nkey = \"{}\"\ngroup = \"root\"\n\n",
                dir.join("node.crt").display(),
                dir.join("node.key").display(),
            )
        })
        .collect();
    rig.config(&body);
    rig.rotate(&[]).ok();
    let ca = rig.path("ca/root.pem");
    for alg in algorithms {
        let dir = rig.path(alg);
        let (crt, key) = (dir.join("node.crt"), dir.join("node.key"));
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
        let run = java("PemCheck.java", &[&crt, &key, &ca]);
        assert_eq!(run.code, 0, "{alg}: {run:#?}");
        assert!(
            run.stdout.contains("CN=search.example.internal"),
            "{run:#?}"
        );
    }
    // The control: another key, or a chain another CA signed, is refused by the JDK.
    let p256 = rig.path("ecdsa-p256");
    let other_key = rig.path("ecdsa-p384/node.key");
    let wrong = java("PemCheck.java", &[&p256.join("node.crt"), &other_key, &ca]);
    assert_ne!(wrong.code, 0, "{wrong:#?}");
    let foreign = TestCa::new(&[]);
    let foreign_root = foreign.dir.join("root.pem");
    let untrusted = java(
        "PemCheck.java",
        &[
            &p256.join("node.crt"),
            &p256.join("node.key"),
            &foreign_root,
        ],
    );
    assert_ne!(untrusted.code, 0, "{untrusted:#?}");
}
