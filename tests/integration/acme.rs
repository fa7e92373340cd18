//! The ACME backend against a real pebble (Debian's), started by each test.

use std::path::Path;

use pki_tests::pebble::Pebble;
use pki_tests::servers::free_port;

use crate::rotate::Rig;

/// An `[backends.public]` ACME table for `pebble` with these extra keys.
fn acme_backend(pebble: &Pebble, extra: &str) -> String {
    format!(
        "[backends.public]\ntype = \"acme\"\ndirectory = \"{}\"\nca_cert = \"{}\"\n\
         contact = [\"mailto:ops@example.com\"]\nterms_agreed = true\n{extra}\n",
        pebble.directory,
        pebble.tls_ca.display()
    )
}

/// A certificate for `name` from the `public` backend, deployed as files in `dir`.
fn public_cert(name: &str, common_name: &str, dir: &Path) -> String {
    format!(
        "[[certificate]]\nname = \"{name}\"\ncommon_name = \"{common_name}\"\nbackend = \"public\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n",
        dir.display()
    )
}

/// Verifies a deployed leaf against pebble's root with openssl.
fn verifies_against_pebble(pebble: &Pebble, rig: &Rig, dir: &Path) {
    let root = rig.path("pebble-root.pem");
    pebble.root(&root);
    let verify = pki_tests::openssl([
        "verify".to_owned(),
        "-x509_strict".to_owned(),
        "-purpose".to_owned(),
        "sslserver".to_owned(),
        "-CAfile".to_owned(),
        root.display().to_string(),
        "-untrusted".to_owned(),
        dir.join("chain.pem").display().to_string(),
        dir.join("cert.pem").display().to_string(),
    ]);
    assert_eq!(verify.code, 0, "{verify:#?}");
}

#[test]
fn a_public_certificate_through_the_builtin_responder() {
    let port = free_port();
    let Some(pebble) = Pebble::start(port, None) else {
        return;
    };
    let rig = Rig::new();
    let out = rig.path("out/www");
    rig.config(&format!(
        "{}{}",
        acme_backend(&pebble, &format!("listen = \"127.0.0.1:{port}\"")),
        public_cert("www", "www.example.com", &out)
    ));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 0, "{run:#?}\n{}", pebble.log());
    verifies_against_pebble(&pebble, &rig, &out);
    crate::rotate::check_pair(&out.join("cert.pem"), &out.join("key.pem"));
    // The account was kept, private.
    let account = rig.path("state/acme/public.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&account).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // A second run does nothing.
    let plan = rig.rotate(&["--dry-run"]).ok();
    assert!(plan.stdout.starts_with("www: keep"), "{}", plan.stdout);
}
