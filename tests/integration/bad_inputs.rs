//! Bad inputs (reliability.md §5): each gives a clear error naming what is wrong, exit code 1 or
//! 2, never a panic, and leaves nothing in --out.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pki::authority::offline::{self, InitOptions, KeyProtection};
use pki::duration;
use pki_tests::{Pki, TestCa, dir_entries, fixture};
use time::Duration;

/// Runs `pki issue` with `args` + `--out OUT`, expects failure with one of `codes` and a message
/// containing `needle`, and checks that OUT was not created.
fn refused(ca: &TestCa, args: &[&str], codes: &[i32], needle: &str) {
    let out = ca.path("out");
    let mut all: Vec<&str> = vec!["issue"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", out.to_str().unwrap()]);
    let run = ca.pki(&all).fails_with(codes);
    assert!(
        run.stderr.contains(needle),
        "stderr should mention {needle:?} for {args:?}: {run:#?}"
    );
    assert!(
        !out.exists(),
        "{args:?} left {:?} in --out",
        dir_entries(&out)
    );
}

#[test]
fn malformed_pem_inputs() {
    let ca = TestCa::new(&[]);
    for (file, needle) in [
        ("pem/empty.pem", "empty"),
        ("pem/whitespace.pem", "empty"),
        ("pem/truncated.pem", "not terminated"),
        ("pem/garbage.pem", "no PEM block"),
        ("pem/bad-base64.pem", "base64"),
        ("keys/rsa-pkcs1.key", "expected CERTIFICATE REQUEST"),
    ] {
        let path = fixture(file);
        refused(&ca, &["--csr", path.to_str().unwrap()], &[1], needle);
        refused(
            &ca,
            &["--csr", path.to_str().unwrap()],
            &[1],
            path.to_str().unwrap(),
        );
        // inspect names the file too.
        let run = ca.pki(["inspect", path.to_str().unwrap()]).fails_with(&[1]);
        assert!(run.stderr.contains(path.to_str().unwrap()), "{run:#?}");
    }
}

#[test]
fn huge_and_endless_inputs_are_bounded() {
    let ca = TestCa::new(&[]);
    let huge = ca.path("huge.pem");
    std::fs::write(&huge, vec![b'A'; 3 << 20]).unwrap();
    refused(&ca, &["--csr", huge.to_str().unwrap()], &[1], "larger than");
    // A device is refused before anything is read from it.
    refused(&ca, &["--csr", "/dev/zero"], &[1], "not a regular file");
    refused(
        &ca,
        &["--csr", "/nonexistent/x.csr"],
        &[1],
        "/nonexistent/x.csr",
    );
}

#[test]
fn hostile_csrs_are_refused_with_the_reason() {
    let ca = TestCa::new(&["--permitted-dns", "example.internal"]);
    for (file, needle) in [
        ("csr/bad-signature.csr", "signature does not verify"),
        ("csr/ca-true.csr", "CA:TRUE"),
        ("csr/any-eku.csr", "anyExtendedKeyUsage"),
        ("csr/code-signing.csr", "codeSigning"),
        ("csr/key-cert-sign.csr", "keyCertSign"),
        ("csr/p521.csr", "not supported"),
        ("csr/rsa-1024.csr", "too weak"),
        ("csr/sha1.csr", "too weak"),
        ("csr/dotdot-san.csr", "../../etc/passwd"),
        (
            "csr/outside-domain.csr",
            "outside the CA's permitted domains",
        ),
    ] {
        refused(
            &ca,
            &["--csr", fixture(file).to_str().unwrap()],
            &[1, 2],
            needle,
        );
    }
}

#[test]
fn forbidden_and_malformed_names() {
    let ca = TestCa::new(&["--permitted-dns", "example.internal"]);
    refused(
        &ca,
        &["www.evil.com"],
        &[1],
        "outside the CA's permitted domains",
    );
    refused(
        &ca,
        &["ok.example.internal", "--san", "evil.com"],
        &[1],
        "evil.com",
    );
    refused(&ca, &["../etc/passwd"], &[2], "path separator");
    refused(
        &ca,
        &["ok.example.internal", "--san", "../../x"],
        &[2],
        "../../x",
    );
    refused(
        &ca,
        &["ok.example.internal", "--san", "a/b.example.internal"],
        &[2],
        "a/b",
    );
    refused(&ca, &["*.*.example.internal"], &[2], "wildcard");
    refused(&ca, &["Display Name Only"], &[2], "must be a host name");
    refused(&ca, &[&"a".repeat(70)], &[2], "longer than");
}

#[test]
fn bad_arguments_are_usage_errors() {
    let ca = TestCa::new(&[]);
    refused(&ca, &["x.example.internal", "--ttl", "12q"], &[2], "12q");
    refused(
        &ca,
        &["x.example.internal", "--key", "dsa-1024"],
        &[2],
        "dsa-1024",
    );
    refused(
        &ca,
        &["x.example.internal", "--profile", "codesign"],
        &[2],
        "codesign",
    );
    refused(&ca, &[], &[2], "COMMON_NAME");
    ca.pki(["revoke", "not-hex"]).fails_with(&[2]);
    let run = ca.pki(["revoke", "abcdef0123"]).fails_with(&[1]);
    assert!(run.stderr.contains("abcdef0123"), "{run:#?}");
    let run = Pki::new(["issue", "x.example.internal", "--out", "/tmp/never"])
        .run()
        .fails_with(&[2]);
    assert!(run.stderr.contains("--ca-dir"), "{run:#?}");
    Pki::new(["issue", "--bogus-flag"]).run().fails_with(&[2]);
}

#[test]
fn ttl_beyond_the_ca_is_refused() {
    let ca = TestCa::new(&["--intermediate-ttl", "1y"]);
    refused(
        &ca,
        &["x.example.internal", "--ttl", "400d"],
        &[1],
        "expires",
    );
    ca.pki([
        "issue",
        "x.example.internal",
        "--ttl",
        "300d",
        "--out",
        ca.path("fine").to_str().unwrap(),
    ])
    .ok();
}

fn library_ca(dir: &Path, now: time::OffsetDateTime, intermediate: &str) {
    let mut options = InitOptions::new(KeyProtection::None);
    options.name = "Old".into();
    options.intermediate_ttl = duration::parse(intermediate).unwrap();
    offline::init(dir, &options, now).unwrap();
}

#[test]
fn expired_and_future_cas_cannot_sign() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // A one-year CA made 400 days ago, and one whose validity starts in two days.
    for (name, shift) in [
        ("expired", -Duration::days(400)),
        ("future", Duration::days(2)),
    ] {
        let dir = tmp.path().join(name);
        library_ca(&dir, pki::clock::now() + shift, "1y");
        let run = Pki::new([
            "issue",
            "x.example.internal",
            "--ttl",
            "1d",
            "--out",
            out.to_str().unwrap(),
        ])
        .ca(&dir)
        .run()
        .fails_with(&[1]);
        assert!(run.stderr.contains("not valid now"), "{run:#?}");
        assert!(!out.exists());
    }
}

#[test]
fn loose_missing_or_corrupt_ca_keys() {
    let ca = TestCa::new(&[]);
    let key = ca.dir.join("intermediate.key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    refused(&ca, &["x.example.internal"], &[1], "mode 0640");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
    refused(&ca, &["x.example.internal"], &[1], "chmod 600");
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    refused(&ca, &["x.example.internal"], &[1], "intermediate.key.pem");
    std::fs::write(&key, b"garbage").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(&ca, &["x.example.internal"], &[1], "intermediate.key.pem");
    // A key that parses but belongs to another CA.
    let other = TestCa::new(&[]);
    std::fs::copy(other.dir.join("intermediate.key.pem"), &key).unwrap();
    refused(&ca, &["x.example.internal"], &[1], "does not match");
    std::fs::write(&key, saved).unwrap();
    ca.pki([
        "issue",
        "x.example.internal",
        "--out",
        ca.path("ok").to_str().unwrap(),
    ])
    .ok();
    // Not a CA directory at all.
    let run = Pki::new(["list"])
        .ca(&ca.path("nowhere"))
        .run()
        .fails_with(&[1]);
    assert!(run.stderr.contains("not a CA directory"), "{run:#?}");
}

#[test]
fn existing_output_is_not_clobbered() {
    let ca = TestCa::new(&[]);
    let out = ca.issue("svc");
    let before = std::fs::read(out.join("cert.pem")).unwrap();
    let run = ca
        .pki([
            "issue",
            "svc.example.internal",
            "--out",
            out.to_str().unwrap(),
        ])
        .fails_with(&[1]);
    assert!(run.stderr.contains("already exists"), "{run:#?}");
    assert_eq!(std::fs::read(out.join("cert.pem")).unwrap(), before);
    assert_eq!(
        dir_entries(&out),
        [
            "ca.pem",
            "cert.pem",
            "chain.pem",
            "fullchain.pem",
            "key.pem"
        ]
    );
    // A CSR-signed certificate must not land next to an unrelated key.
    let run = ca
        .pki([
            "issue",
            "--csr",
            fixture("csr/good.csr").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--force",
        ])
        .fails_with(&[1]);
    assert!(run.stderr.contains("key.pem"), "{run:#?}");
    // --out naming a file.
    let file = ca.path("a-file");
    std::fs::write(&file, b"x").unwrap();
    ca.pki([
        "issue",
        "f.example.internal",
        "--out",
        file.to_str().unwrap(),
    ])
    .fails_with(&[1]);
    // Only the certificates above are in the inventory: refusals issued nothing.
    let listed = ca.pki(["--json", "list"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn key_mismatch_and_legacy_keys_in_inspect() {
    let ca = TestCa::new(&[]);
    let a = ca.issue("a");
    let b = ca.issue("b");
    let run = ca.pki([
        "--json",
        "inspect",
        a.join("cert.pem").to_str().unwrap(),
        "--key",
        b.join("key.pem").to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["key_matches"], false);
    let run = ca
        .pki([
            "inspect",
            a.join("cert.pem").to_str().unwrap(),
            "--key",
            fixture("keys/rsa-pkcs1.key").to_str().unwrap(),
        ])
        .fails_with(&[1]);
    assert!(run.stderr.contains("legacy format"), "{run:#?}");
    // A chain from another CA does not verify.
    let other = TestCa::new(&[]);
    let o = other.issue("o");
    let chain = ca.path("other-chain.pem");
    let mut pem = std::fs::read(o.join("chain.pem")).unwrap();
    pem.extend(std::fs::read(o.join("ca.pem")).unwrap());
    std::fs::write(&chain, pem).unwrap();
    let run = ca.pki([
        "--json",
        "inspect",
        a.join("cert.pem").to_str().unwrap(),
        "--chain",
        chain.to_str().unwrap(),
    ]);
    assert_eq!(run.code, 1);
    assert_eq!(run.json()["chain"]["valid"], false);
}

#[test]
fn renew_with_a_mismatched_key_changes_nothing() {
    let ca = TestCa::new(&[]);
    let a = ca.issue("a");
    let b = ca.issue("b");
    std::fs::copy(b.join("key.pem"), a.join("key.pem")).unwrap();
    let before = std::fs::read(a.join("cert.pem")).unwrap();
    let run = ca
        .pki(["renew", a.to_str().unwrap(), "--reuse-key"])
        .fails_with(&[1]);
    assert!(run.stderr.contains("does not match"), "{run:#?}");
    assert_eq!(std::fs::read(a.join("cert.pem")).unwrap(), before);
}
