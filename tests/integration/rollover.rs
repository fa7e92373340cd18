//! CA rollover while services serve: Nginx and HAProxy keep answering a client loop that
//! verifies every handshake against the trust bundle the hook deploys, from before the
//! rollover to after the last leaf moved, and not one handshake fails.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pki::Certificate;
use pki_tests::servers::{self, Server};
use pki_tests::{Pki, require};

use crate::rotate::{Rig, cert_key, haproxy_target, nginx_commands, probe, vault_rotate};

/// A full TLS handshake with 127.0.0.1:`port` for `localhost`, verified against every CA in
/// `bundle` (read anew each time, as a client restarted after an update would); returns the
/// leaf and its issuer's common name.
pub(crate) fn verified_handshake(
    port: u16,
    bundle: &Path,
) -> Result<(Certificate, String), String> {
    let pem = std::fs::read(bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in Certificate::all_from_pem(&pem, "bundle").map_err(|e| e.to_string())? {
        roots
            .add(rustls::pki_types::CertificateDer::from(ca.der().to_vec()))
            .map_err(|e| e.to_string())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap())
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)
            .map_err(|e| format!("port {port}: {e}"))?;
    }
    let chain = conn.peer_certificates().ok_or("no certificate")?;
    let leaf = Certificate::from_der(chain[0].to_vec(), "served").map_err(|e| e.to_string())?;
    let issuer = chain
        .get(1)
        .and_then(|c| Certificate::from_der(c.to_vec(), "served chain").ok())
        .and_then(|c| c.info().common_name.clone())
        .unwrap_or_default();
    Ok((leaf, issuer))
}

/// Handshakes with every port in a loop on another thread while `during` runs, and a few
/// rounds after; returns the rounds made and the issuers seen, and fails on any failure.
pub(crate) fn handshakes_during(
    ports: Vec<u16>,
    bundle: PathBuf,
    during: impl FnOnce(),
) -> (usize, Vec<String>) {
    let round = move || {
        ports
            .iter()
            .map(|&port| verified_handshake(port, &bundle).map(|(_, issuer)| issuer))
            .collect::<Vec<_>>()
    };
    let attempts = pki_tests::client_loop::around(round, during, 10);
    let mut seen: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    for result in attempts.results.iter().flatten() {
        match result {
            Ok(issuer) if !seen.contains(issuer) => seen.push(issuer.clone()),
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "failed handshakes: {failures:#?}");
    (attempts.results.len(), seen)
}

/// Nginx and HAProxy on bootstrap certificates, and a config with one certificate for each
/// plus the trust bundle at `trust/ca.pem` (as a host's clients read it).
pub(crate) fn two_services(rig: &Rig, backend: &str) -> (Server, Server, PathBuf) {
    let (ngx, cert, key) = rig.service("site.crt", "site.key", servers::nginx);
    let (hap, pem) = rig.haproxy(&[]);
    let (test, reload) = nginx_commands(&ngx);
    let bundle = rig.path("trust/ca.pem");
    rig.config(&format!(
        "{backend}\
         [[certificate]]\nname = \"web\"\ncommon_name = \"localhost\"\nsans = [\"127.0.0.1\"]\n\n\
         [[certificate.target]]\n{}\n{test}\n{reload}\n{}\n\n\
         [[certificate]]\nname = \"lb\"\ncommon_name = \"localhost\"\nsans = [\"127.0.0.1\"]\n\n\
         [[certificate.target]]\n{}\n\n\
         [[trust]]\npath = \"{}\"\n",
        cert_key("nginx", &cert, &key),
        probe(ngx.port, None),
        haproxy_target(&pem, &hap.path("admin.sock"), hap.port, None),
        bundle.display(),
    ));
    (ngx, hap, bundle)
}

#[test]
fn offline_intermediate_rollover_fails_no_handshake() {
    if !require(&["nginx", "haproxy", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (ngx, hap, bundle) = two_services(&rig, "");
    rig.rotate(&[]).ok();
    let ca_dir = rig.path("ca");
    let old_intermediate = Certificate::from_pem(
        &std::fs::read(ca_dir.join("intermediate.pem")).unwrap(),
        "intermediate",
    )
    .unwrap();
    let old_leaf = rig.current("web");

    let (rounds, issuers) = handshakes_during(vec![ngx.port, hap.port], bundle.clone(), || {
        Pki::new([
            "ca",
            "rotate-intermediate",
            "--ca-dir",
            ca_dir.to_str().unwrap(),
        ])
        .run()
        .ok();
        // The next run plans both certificates: issued by another CA.
        let plan = rig.rotate(&["--dry-run", "--json"]).ok().json();
        let reasons: Vec<_> = plan["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                c["decision"]["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        assert_eq!(reasons, ["issuer-changed", "issuer-changed"], "{plan:#}");
        rig.rotate(&[]).ok();
    });
    let new_intermediate = Certificate::from_pem(
        &std::fs::read(ca_dir.join("intermediate.pem")).unwrap(),
        "intermediate",
    )
    .unwrap();
    assert_ne!(new_intermediate.der(), old_intermediate.der());
    // Both services now serve leaves of the new intermediate; the loop saw both issuers.
    for port in [ngx.port, hap.port] {
        let (leaf, issuer) = verified_handshake(port, &bundle).unwrap();
        assert!(leaf.is_signed_by(&new_intermediate));
        assert_eq!(Some(issuer), new_intermediate.info().common_name);
    }
    assert_eq!(issuers.len(), 2, "{issuers:?} in {rounds} rounds");
    eprintln!(
        "{rounds} rounds of verified handshakes with Nginx and HAProxy, none failed; issuers {issuers:?}"
    );

    // The old leaf still verifies (the overlap), and once revoked, the retired intermediate's
    // CRL says so.
    let dir = rig.path("old");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("leaf.pem"), old_leaf.pem()).unwrap();
    std::fs::write(dir.join("chain.pem"), old_intermediate.pem()).unwrap();
    let (chain, leaf) = (dir.join("chain.pem"), dir.join("leaf.pem"));
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "-CAfile", bundle.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.extend([
            "-untrusted",
            chain.to_str().unwrap(),
            leaf.to_str().unwrap(),
        ]);
        pki_tests::openssl(args)
    };
    verify(&[]).ok();
    let ca = |args: &[&str]| pki_tests::pki_in(&ca_dir, args).ok();
    ca(&["revoke", &old_leaf.info().serial.to_hex()]);
    let crl = rig.path("crl.pem");
    ca(&["crl", "--out", crl.to_str().unwrap()]);
    let text = std::fs::read_to_string(&crl).unwrap();
    assert_eq!(text.matches("BEGIN X509 CRL").count(), 2, "{text}");
    let revoked = verify(&["-crl_check", "-CRLfile", crl.to_str().unwrap()]);
    assert_ne!(revoked.code, 0);
    assert!(
        revoked.stdout.contains("revoked") || revoked.stderr.contains("revoked"),
        "{revoked:?}"
    );

    // A backup carries the retired intermediate: the restored CA signs both CRLs too.
    let archive = rig.path("ca.tar");
    ca(&["ca", "backup", "--out", archive.to_str().unwrap()]);
    let restored = rig.path("restored");
    ca(&[
        "ca",
        "restore",
        archive.to_str().unwrap(),
        "--dir",
        restored.to_str().unwrap(),
    ]);
    let again = Pki::new(["crl", "--ca-dir", restored.to_str().unwrap()])
        .run()
        .ok();
    assert_eq!(again.stdout.matches("BEGIN X509 CRL").count(), 2);
}

/// The trust target: the bundle written once, its command run only when it changed, the
/// previous content put back when the command fails, a planted link refused.
#[test]
fn a_trust_file_follows_the_bundle_and_its_command() {
    let rig = Rig::new();
    let trust = rig.path("trust/internal.crt");
    let count = rig.path("reloads");
    let metrics = rig.path("metrics/pki.prom");
    let config = |command: &str| {
        rig.config(&format!(
            "[report]\ntextfile = \"{}\"\n\n\
             [[certificate]]\nname = \"app\"\ncommon_name = \"app.example.internal\"\n\n\
             [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n\
             [[trust]]\npath = \"{}\"\nreload_command = \"{command}\"\n",
            metrics.display(),
            rig.path("app").display(),
            trust.display(),
        ));
    };
    let gauge = || {
        let text = std::fs::read_to_string(&metrics).unwrap();
        let wanted = format!("pki_trust_file_success{{path=\"{}\"}} ", trust.display());
        text.lines()
            .find_map(|l| l.strip_prefix(&wanted).map(str::to_owned))
            .unwrap_or_else(|| panic!("no trust gauge in {text}"))
    };
    config(&format!("echo reload >> {}", count.display()));
    let reloads = || {
        std::fs::read_to_string(&count)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let plan = rig.rotate(&["--dry-run"]).ok();
    assert!(
        plan.stdout.contains(&format!(
            "trust {}: write (1 CA(s) of backend default)",
            trust.display()
        )),
        "{}",
        plan.stdout
    );
    assert!(!trust.exists(), "a dry run wrote the trust file");

    let run = rig.rotate(&["--json"]).ok().json();
    assert_eq!(run["trust"][0]["action"], "updated", "{run:#}");
    let root = std::fs::read(rig.path("ca/root.pem")).unwrap();
    assert_eq!(std::fs::read(&trust).unwrap(), root);
    assert_eq!(std::fs::read(rig.path("app/ca.pem")).unwrap(), root);
    assert_eq!(reloads(), 1);
    assert_eq!(gauge(), "1");
    let meta = std::fs::symlink_metadata(&trust).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o644
    );

    // In sync: nothing written, nothing run.
    let run = rig.rotate(&["--json"]).ok().json();
    assert_eq!(run["trust"][0]["action"], "in-sync");
    assert_eq!(reloads(), 1);

    // Changed by hand: written back, command run again.
    std::fs::write(&trust, "edited\n").unwrap();
    rig.rotate(&[]).ok();
    assert_eq!(std::fs::read(&trust).unwrap(), root);
    assert_eq!(reloads(), 2);

    // A failing command: exit 1, the previous content back.
    config("exit 3");
    std::fs::write(&trust, "edited\n").unwrap();
    let failed = rig.rotate(&["--json"]);
    assert_eq!(failed.code, 1, "{failed:?}");
    let run = failed.json();
    assert_eq!(run["trust"][0]["action"], "failed", "{run:#}");
    assert!(
        run["trust"][0]["error"].as_str().unwrap().contains("exit"),
        "{run:#}"
    );
    assert_eq!(std::fs::read_to_string(&trust).unwrap(), "edited\n");
    assert_eq!(gauge(), "0", "monitoring hears of the failure");
    // The certificate is fine all along.
    assert_eq!(run["certificates"][0]["action"], "kept");

    // A link planted where the file goes is not followed.
    config(&format!("echo reload >> {}", count.display()));
    let elsewhere = rig.path("elsewhere");
    std::fs::write(&elsewhere, "not yours\n").unwrap();
    std::fs::remove_file(&trust).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &trust).unwrap();
    let refused = rig.rotate(&["--json"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("symbolic link"), "{refused:?}");
    assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), "not yours\n");
}

#[test]
fn trust_tables_with_a_bad_backend_or_path_are_config_errors() {
    let rig = Rig::new();
    for (body, expected) in [
        (
            "[[trust]]\npath = \"t.crt\"\nbackend = \"nope\"\n",
            "no backend \"nope\"",
        ),
        (
            "[[trust]]\npath = \"t.crt\"\nowner = \"no-such-user-here\"\n",
            "no user",
        ),
        (
            "[[trust]]\npath = \"t.crt\"\nmode = \"0666\"\n",
            "other users",
        ),
        (
            "[[trust]]\npath = \"t.crt\"\n\n[[trust]]\npath = \"t.crt\"\n",
            "written twice",
        ),
        ("[[trust]]\npath = \"t.crt\"\nextra = 1\n", "extra"),
    ] {
        rig.config(body);
        let run = rig.rotate(&["--dry-run"]).fails_with(&[2]);
        assert!(run.stderr.contains(expected), "{body}: {}", run.stderr);
        assert!(run.stderr.contains("rotate.toml"), "{}", run.stderr);
    }
}

/// Root rollover: staged, the new root reaches the trust file and every `ca` file while the
/// leaves stay; once the overlap has passed, the next run activates it and moves the leaves.
/// A client loop that verifies against the trust file sees no failed handshake throughout.
#[test]
fn offline_root_rollover_distributes_the_root_first_and_fails_no_handshake() {
    if !require(&["nginx", "haproxy", "openssl"]) {
        return;
    }
    let rig = Rig::new();
    let (ngx, hap, bundle) = two_services(&rig, "");
    rig.rotate(&[]).ok();
    let ca_dir = rig.path("ca");
    let old_root = std::fs::read(ca_dir.join("root.pem")).unwrap();
    let serials = |rig: &Rig| {
        [
            rig.current("web").info().serial.clone(),
            rig.current("lb").info().serial.clone(),
        ]
    };
    let before = serials(&rig);
    let count = |path: &Path| {
        std::fs::read_to_string(path)
            .unwrap()
            .matches("BEGIN CERTIFICATE")
            .count()
    };

    let (rounds, issuers) = handshakes_during(vec![ngx.port, hap.port], bundle.clone(), || {
        let overlap = Duration::from_secs(3);
        let staged_at = Instant::now();
        Pki::new([
            "ca",
            "rotate-root",
            "--ca-dir",
            ca_dir.to_str().unwrap(),
            "--overlap",
            "3s",
        ])
        .run()
        .ok();
        // Both roots everywhere, the leaves unchanged.
        let plan = rig.rotate(&["--dry-run", "--json"]).ok().json();
        for c in plan["certificates"].as_array().unwrap() {
            assert_eq!(c["decision"]["reason"], "trust-changed", "{plan:#}");
        }
        let run = rig.rotate(&["--json"]).ok().json();
        for c in run["certificates"].as_array().unwrap() {
            assert_eq!(c["action"], "redeployed", "{run:#}");
        }
        assert_eq!(run["trust"][0]["action"], "updated", "{run:#}");
        assert_eq!(serials(&rig), before);
        assert_eq!(count(&bundle), 2);
        // Activation before the overlap is refused.
        let early = Pki::new([
            "ca",
            "rotate-root",
            "--ca-dir",
            ca_dir.to_str().unwrap(),
            "--activate",
        ])
        .run()
        .fails_with(&[2]);
        assert!(early.stderr.contains("may sign from"), "{early:?}");
        // After it, the first run activates the new root and moves the leaves.
        thread::sleep(overlap.saturating_sub(staged_at.elapsed()) + Duration::from_millis(200));
        let run = rig.rotate(&["--json"]).ok();
        assert!(
            run.stderr.contains("root-activated") || run.stderr.contains("signs from now on"),
            "{}",
            run.stderr
        );
        for c in run.json()["certificates"].as_array().unwrap() {
            assert_eq!(c["decision"]["reason"], "issuer-changed");
            assert_eq!(c["action"], "issued");
        }
    });
    let after = serials(&rig);
    assert_ne!(after[0], before[0]);
    assert_ne!(after[1], before[1]);
    assert_ne!(std::fs::read(ca_dir.join("root.pem")).unwrap(), old_root);
    // The old root stays trusted while a leaf issued under it lives.
    assert_eq!(count(&bundle), 2);
    let new_root =
        Certificate::from_pem(&std::fs::read(ca_dir.join("root.pem")).unwrap(), "root").unwrap();
    let new_intermediate = Certificate::from_pem(
        &std::fs::read(ca_dir.join("intermediate.pem")).unwrap(),
        "i",
    )
    .unwrap();
    assert!(new_intermediate.is_signed_by(&new_root));
    for port in [ngx.port, hap.port] {
        let (leaf, _) = verified_handshake(port, &bundle).unwrap();
        assert!(leaf.is_signed_by(&new_intermediate));
    }
    assert_eq!(issuers.len(), 2, "{issuers:?}");
    // The control: a client that had kept only the old root fails now, so the loop above
    // passed because the trust file carried the new root before the leaves moved.
    let only_old = rig.path("old-root.pem");
    std::fs::write(&only_old, &old_root).unwrap();
    assert!(verified_handshake(ngx.port, &only_old).is_err());
    eprintln!(
        "{rounds} rounds of verified handshakes across the root rollover, none failed; issuers {issuers:?}"
    );
}

/// The JSON `data` of a Vault API answer.
fn vault_data(
    bao: &pki_tests::bao::Bao,
    method: &str,
    path: &str,
    body: &str,
) -> serde_json::Value {
    let text = bao.root(method, path, Some(body).filter(|b| !b.is_empty()));
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["data"].clone()
}

/// A Vault issuer rollover with `pki vault rotate-intermediate`: a new intermediate in the
/// `pki` mount, signed by the root mount and made the default issuer. Returns the new
/// issuer's certificate, as the mount says.
fn vault_new_default_issuer(bao: &pki_tests::bao::Bao) -> Certificate {
    let out = bao.pki(["vault", "rotate-intermediate"]).run().ok();
    assert!(
        out.stdout.contains("Rotated the intermediate of pki"),
        "{out:#?}"
    );
    let default = vault_data(bao, "GET", "/v1/pki/issuer/default/json", "");
    Certificate::from_pem(
        default["certificate"].as_str().unwrap().as_bytes(),
        "new issuer",
    )
    .unwrap()
}

/// Vault intermediate rollover: a new default issuer in the mount; the hook reissues every
/// certificate the old one signed, each at its turn in `issuer_spread` (not all in one run),
/// while Nginx and HAProxy serve a client loop that verifies against the trust file.
#[test]
fn vault_issuer_rollover_is_spread_and_fails_no_handshake() {
    if !require(&["nginx", "haproxy", "openssl"]) {
        return;
    }
    let Some(bao) = pki_tests::bao::Bao::dev() else {
        return;
    };
    bao.bootstrap();
    bao.root(
        "POST",
        "/v1/pki/roles/local",
        Some(
            r#"{"allowed_domains":"localhost","allow_bare_domains":true,"allow_subdomains":true,
                "allow_localhost":true,"allow_ip_sans":true,"key_type":"ec","key_bits":256,
                "client_flag":false,"max_ttl":"720h"}"#,
        ),
    );
    let rig = Rig::new();
    let others: String = (1..=6)
        .map(|n| {
            format!(
                "[[certificate]]\nname = \"svc{n}\"\ncommon_name = \"svc{n}.localhost\"\n\n\
                 [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n",
                rig.path(&format!("svc{n}")).display()
            )
        })
        .collect();
    let backend = format!(
        "host = \"fleet-host-147\"\n[defaults]\nissuer_spread = \"8s\"\nttl = \"7d\"\n\n\
         [backend]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"pki\"\nrole = \"local\"\n\n{others}",
        bao.addr
    );
    let (ngx, hap, bundle) = two_services(&rig, "");
    // The rig wrote an offline config: the same certificates, from Vault.
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    let certs = &text[text.find("[[certificate]]").unwrap()..];
    std::fs::write(
        rig.config_path(),
        format!(
            "state_dir = \"{}\"\n{backend}{certs}",
            rig.path("state").display()
        ),
    )
    .unwrap();
    vault_rotate(&rig, &bao, &[]).ok();
    let names = ["web", "lb", "svc1", "svc2", "svc3", "svc4", "svc5", "svc6"];
    let old: Vec<_> = names
        .iter()
        .map(|n| rig.current(n).info().serial.clone())
        .collect();
    assert_eq!(count_cas(&bundle), 1);

    let mut moved_by_run: Vec<usize> = Vec::new();
    let started = Instant::now();
    let (rounds, issuers) = handshakes_during(vec![ngx.port, hap.port], bundle.clone(), || {
        let new_issuer = vault_new_default_issuer(&bao);
        loop {
            let run = vault_rotate(&rig, &bao, &["--json"]).ok().json();
            let issued = run["certificates"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["action"] == "issued")
                .inspect(|c| assert_eq!(c["decision"]["reason"], "issuer-changed", "{c:#}"))
                .count();
            moved_by_run.push(issued);

            let all_moved = names
                .iter()
                .all(|n| rig.current(n).is_signed_by(&new_issuer));
            if all_moved {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "not all moved: {moved_by_run:?}"
            );
            thread::sleep(Duration::from_millis(400));
        }
    });
    let moved: usize = moved_by_run.iter().sum();
    assert_eq!(moved, names.len(), "{moved_by_run:?}");
    let runs_that_moved = moved_by_run.iter().filter(|&&n| n > 0).count();
    assert!(
        runs_that_moved >= 2,
        "all in one run, not spread: {moved_by_run:?}"
    );
    assert!(
        moved_by_run[0] < names.len(),
        "the first run moved everything: {moved_by_run:?}"
    );
    for (n, before) in names.iter().zip(&old) {
        assert_ne!(&rig.current(n).info().serial, before);
    }
    // Same root: the trust file never changed.
    assert_eq!(count_cas(&bundle), 1);
    assert_eq!(issuers.len(), 2, "{issuers:?}");
    eprintln!(
        "{rounds} rounds of verified handshakes, none failed; reissues per run {moved_by_run:?}"
    );
}

fn count_cas(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .matches("BEGIN CERTIFICATE")
        .count()
}

/// A Vault mount's roots are its trust bundle: a root issuer added to the mount reaches the
/// trust file at the next run (the certificates stay: trust-changed), and once revoked it
/// leaves it again.
#[test]
fn vault_roots_in_the_mount_make_the_bundle_and_a_revoked_one_leaves_it() {
    let Some(bao) = pki_tests::bao::Bao::dev() else {
        return;
    };
    bao.bootstrap();
    let rig = Rig::new();
    let trust = rig.path("trust/internal.crt");
    std::fs::write(
        rig.config_path(),
        format!(
            "state_dir = \"{}\"\n[backend]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"pki\"\nrole = \"services\"\n\n\
             [[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\n\
             [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n[[trust]]\npath = \"{}\"\n",
            rig.path("state").display(),
            bao.addr,
            rig.path("out/api").display(),
            trust.display()
        ),
    )
    .unwrap();
    vault_rotate(&rig, &bao, &[]).ok();
    assert_eq!(count_cas(&trust), 1);
    let serial = rig.current("api").info().serial.clone();
    let added = vault_data(
        &bao,
        "POST",
        "/v1/pki/root/generate/internal",
        r#"{"common_name":"Example Internal Root CA 2","key_type":"ec","key_bits":256,"ttl":"87600h","issuer_name":"next-root"}"#,
    );
    assert!(added["issuer_id"].is_string(), "{added:#}");
    let run = vault_rotate(&rig, &bao, &["--json"]).ok().json();
    assert_eq!(run["trust"][0]["action"], "updated", "{run:#}");
    assert_eq!(
        run["certificates"][0]["decision"]["reason"], "trust-changed",
        "{run:#}"
    );
    assert_eq!(count_cas(&trust), 2);
    assert_eq!(count_cas(&rig.path("out/api/ca.pem")), 2);
    assert_eq!(
        rig.current("api").info().serial,
        serial,
        "the certificate was reissued"
    );
    bao.root("POST", "/v1/pki/issuer/next-root/revoke", Some("{}"));
    vault_rotate(&rig, &bao, &[]).ok();
    assert_eq!(count_cas(&trust), 1, "a revoked root stays trusted");
    assert_eq!(count_cas(&rig.path("out/api/ca.pem")), 1);
}

/// A run that stops after the trust phase (the CA key locked: a certificate was due) keeps
/// the trust file it wrote and reports it.
#[test]
fn a_run_stopped_by_a_locked_key_still_writes_and_reports_the_trust_file() {
    let (ca, _pass) = pki_tests::TestCa::encrypted("a long passphrase for the test");
    let dir = ca.path("hook");
    std::fs::create_dir_all(&dir).unwrap();
    let (trust, metrics) = (dir.join("trust/internal.crt"), dir.join("pki.prom"));
    let config = dir.join("rotate.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n[backend]\ntype = \"offline\"\nca_dir = \"{}\"\n\n\
             [report]\ntextfile = \"{}\"\n\n\
             [[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\n\
             [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n[[trust]]\npath = \"{}\"\n",
            dir.join("state").display(),
            ca.dir.display(),
            metrics.display(),
            dir.join("out").display(),
            trust.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let run = Pki::new(["rotate", "--config", config.to_str().unwrap()]).run();
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("encrypted"), "{run:#?}");
    assert_eq!(
        std::fs::read(&trust).unwrap(),
        std::fs::read(ca.dir.join("root.pem")).unwrap()
    );
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("pki_rotation_run_success 0"), "{text}");
    assert!(
        text.contains(&format!(
            "pki_trust_file_success{{path=\"{}\"}} 1",
            trust.display()
        )),
        "{text}"
    );
}
