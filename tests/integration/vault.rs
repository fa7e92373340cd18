//! The Vault backend against a real OpenBao dev server: issue, sign, renew, revoke and CRL
//! round-trips checked by openssl against the chain Vault returned; a sealed server; a server
//! stopped in the middle of a batch; a role refusing a name; KV v2.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use pki_tests::bao::{Bao, pki_clean};
use pki_tests::{Pki, TestCa, dir_entries, openssl, require};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `openssl verify -x509_strict` of `dir/cert.pem` against `ca.pem`, with `chain.pem` as
/// untrusted intermediates when it holds any.
fn openssl_verify(dir: &Path) {
    let chain = dir.join("chain.pem");
    let mut args = vec![
        "verify".to_owned(),
        "-x509_strict".into(),
        "-purpose".into(),
        "sslserver".into(),
        "-CAfile".into(),
        s(&dir.join("ca.pem")).into(),
    ];
    if std::fs::metadata(&chain).unwrap().len() > 0 {
        args.push("-untrusted".into());
        args.push(s(&chain).into());
    }
    args.push(s(&dir.join("cert.pem")).into());
    let run = openssl(&args);
    assert!(
        run.code == 0 && run.stdout.trim_end().ends_with(": OK"),
        "{run:#?}"
    );
}

/// The public key of a certificate and of a key, as openssl prints them, are the same.
fn key_matches(dir: &Path) {
    let from_cert = openssl(["x509", "-in", s(&dir.join("cert.pem")), "-noout", "-pubkey"]);
    let from_key = openssl(["pkey", "-in", s(&dir.join("key.pem")), "-pubout"]);
    assert_eq!(from_cert.code, 0, "{from_cert:#?}");
    assert_eq!(
        from_cert.stdout,
        from_key.stdout,
        "key does not match {}",
        dir.display()
    );
}

fn serial_of(dir: &Path) -> String {
    let run = openssl(["x509", "-in", s(&dir.join("cert.pem")), "-noout", "-serial"]);
    run.stdout
        .trim()
        .trim_start_matches("serial=")
        .to_ascii_uppercase()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A fresh server bootstrapped without an offline root gets the hierarchy HashiCorp
/// recommends: the root in `pki_root`, an intermediate in `pki` signed by it, the role on the
/// intermediate. Leaves come with a one-certificate chain that openssl walks up to the root;
/// a second bootstrap changes nothing.
#[test]
fn bootstrap_makes_a_root_mount_and_an_intermediate_that_leaves_chain_to() {
    if !require(&["openssl"]) {
        return;
    }
    let Some(bao) = Bao::dev() else { return };
    let first = bao.bootstrap_with(&[]);
    assert!(
        first.stdout.contains("pki_root/") && first.stdout.contains("Bootstrapped"),
        "{first:#?}"
    );
    let again = bao.bootstrap_with(&[]);
    assert!(
        again.stdout.contains("Nothing changed") && !again.stdout.contains(" changed "),
        "{again:#?}"
    );
    let work = tempfile::tempdir().unwrap();
    let web = work.path().join("web");
    bao.issue("web.example.internal", "services", &web)
        .run()
        .ok();
    let chain = std::fs::read_to_string(web.join("chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 1, "{chain}");
    let verify = openssl([
        "verify",
        "-x509_strict",
        "-CAfile",
        s(&web.join("ca.pem")),
        "-untrusted",
        s(&web.join("chain.pem")),
        s(&web.join("cert.pem")),
    ]);
    assert!(
        verify.code == 0 && verify.stdout.trim_end().ends_with(": OK"),
        "{verify:#?}"
    );
    // The root is Vault's root mount's, and it signed the chain's intermediate.
    let (status, body) = bao.api("GET", "/v1/pki_root/cert/ca", None, None);
    assert_eq!(status, 200, "{body}");
    let root: serde_json::Value = serde_json::from_str(&body).unwrap();
    let root = pki::Certificate::from_pem(
        root["data"]["certificate"].as_str().unwrap().as_bytes(),
        "root",
    )
    .unwrap();
    let intermediate = pki::Certificate::from_pem(chain.as_bytes(), "chain").unwrap();
    assert!(intermediate.is_signed_by(&root));
    assert_eq!(
        std::fs::read_to_string(web.join("ca.pem")).unwrap().trim(),
        root.pem().trim()
    );
    // The leaf comes from the intermediate, not from the root.
    let text = openssl(["x509", "-in", s(&web.join("cert.pem")), "-noout", "-issuer"]);
    assert!(text.stdout.contains("pki Intermediate CA"), "{text:#?}");
}

/// Issue (key made here), sign a CSR, Vault-generated key, renew, revoke, CRL and list, with a
/// Vault intermediate signed by our offline root, so the chain has two levels.
#[test]
fn issue_sign_renew_revoke_crl_round_trip() {
    if !require(&["openssl"]) {
        return;
    }
    let Some(bao) = Bao::dev() else { return };
    let root = TestCa::new(&[
        "--permitted-dns",
        "example.internal",
        "--permitted-ip",
        "10.0.0.0/8",
        "--name",
        "Test Org",
    ]);
    let boot = || bao.bootstrap_with(&["--root-ca-dir", s(&root.dir)]);
    let first = boot();
    assert!(first.stdout.contains("Bootstrapped"), "{first:#?}");
    let again = boot();
    assert!(
        again.stdout.contains("Nothing changed") && !again.stdout.contains(" changed "),
        "{again:#?}"
    );

    let work = tempfile::tempdir().unwrap();
    let api = work.path().join("api");
    let run = bao
        .pki([
            "--json",
            "issue",
            "api.example.internal",
            "--san",
            "10.0.0.7",
            "--ttl",
            "3d",
            "--role",
            "services",
            "--out",
            s(&api),
        ])
        .run()
        .ok();
    let report = run.json();
    assert_eq!(report["common_name"], "api.example.internal");
    openssl_verify(&api);
    key_matches(&api);
    assert_eq!(mode(&api.join("key.pem")), 0o600);
    // The chain is Vault's intermediate, the root is ours (offline).
    let chain = std::fs::read_to_string(api.join("chain.pem")).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(
        std::fs::read(api.join("ca.pem")).unwrap(),
        std::fs::read(root.dir.join("root.pem")).unwrap()
    );

    // A CSR made by openssl: only its key and names are used.
    let csr_dir = work.path().join("csr");
    std::fs::create_dir(&csr_dir).unwrap();
    let csr = csr_dir.join("req.csr");
    openssl([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-keyout",
        s(&csr_dir.join("key.pem")),
        "-out",
        s(&csr),
        "-subj",
        "/CN=db.example.internal",
        "-addext",
        "subjectAltName=DNS:db.example.internal,IP:10.0.0.9",
    ])
    .ok();
    let signed = work.path().join("db");
    bao.pki([
        "issue",
        "--csr",
        s(&csr),
        "--role",
        "services",
        "--out",
        s(&signed),
    ])
    .run()
    .ok();
    assert!(!signed.join("key.pem").exists());
    openssl_verify(&signed);
    std::fs::copy(csr_dir.join("key.pem"), signed.join("key.pem")).unwrap();
    key_matches(&signed);

    // Vault generates the key (issue/:role).
    let server = work.path().join("server-keygen");
    bao.pki([
        "issue",
        "web.example.internal",
        "--key",
        "rsa-2048",
        "--server-keygen",
        "--role",
        "services",
        "--out",
        s(&server),
    ])
    .run()
    .ok();
    openssl_verify(&server);
    key_matches(&server);
    assert_eq!(mode(&server.join("key.pem")), 0o600);

    // Renew: a new serial and key, same names, written back in place.
    let before = serial_of(&api);
    bao.pki(["renew", s(&api), "--role", "services"]).run().ok();
    let after = serial_of(&api);
    assert_ne!(before, after);
    openssl_verify(&api);
    key_matches(&api);

    // Revoke the renewed one, then the CRL Vault publishes lists it and openssl agrees.
    let revoked = bao.pki(["revoke", &after]).run().ok();
    assert!(revoked.stdout.contains("Revoked"), "{revoked:#?}");
    let twice = bao.pki(["revoke", &after]).run().ok();
    assert!(twice.stdout.contains("already revoked"), "{twice:#?}");
    let crl = work.path().join("crl.pem");
    let crl_run = bao.pki(["--json", "crl", "--out", s(&crl)]).run().ok();
    assert!(
        crl_run.json()["entries"].as_u64().unwrap() >= 1,
        "{crl_run:#?}"
    );
    let text = openssl(["crl", "-in", s(&crl), "-noout", "-text"]);
    assert!(
        text.stdout.to_ascii_uppercase().contains(&after),
        "{after} not in {}",
        text.stdout
    );
    let crl_check = |cert: &Path| {
        openssl([
            "verify",
            "-crl_check",
            "-CAfile",
            s(&api.join("ca.pem")),
            "-untrusted",
            s(&api.join("chain.pem")),
            "-CRLfile",
            s(&crl),
            s(cert),
        ])
    };
    let check = crl_check(&api.join("cert.pem"));
    assert_ne!(check.code, 0);
    assert!(
        check.stdout.contains("revoked") || check.stderr.contains("revoked"),
        "{check:#?}"
    );
    let good = crl_check(&signed.join("cert.pem"));
    assert_eq!(good.code, 0, "{good:#?}");

    // The inventory as Vault keeps it.
    let list = bao.pki(["--json", "list"]).run().ok().json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 4, "{list:#}");
    let row = |serial: &str| {
        rows.iter()
            .find(|r| r["serial"].as_str().unwrap().eq_ignore_ascii_case(serial))
            .unwrap_or_else(|| panic!("{serial} not listed: {list:#}"))
    };
    assert_eq!(row(&after)["status"], "revoked");
    assert_eq!(row(&before)["status"], "valid");
    let revoked_only = bao
        .pki(["--json", "list", "--status", "revoked"])
        .run()
        .ok()
        .json();
    assert_eq!(revoked_only.as_array().unwrap().len(), 1);
}

/// A name outside the role's domains: Vault's reason is shown and nothing is written.
#[test]
fn role_refusal_shows_vaults_reason() {
    let Some(bao) = Bao::dev() else { return };
    bao.bootstrap();
    let out = bao.dir.path().join("evil");
    let run = bao
        .issue("evil.other.org", "services", &out)
        .run()
        .fails_with(&[1]);
    assert!(run.stderr.contains("not allowed by this role"), "{run:#?}");
    assert!(
        run.stderr.contains(&bao.addr) && run.stderr.contains("sign/services"),
        "{run:#?}"
    );
    assert!(!out.exists());
    // An unknown role is Vault's 400 too, with its message.
    let run = bao
        .issue("a.example.internal", "nosuch", &out)
        .run()
        .fails_with(&[1]);
    assert!(run.stderr.contains("unknown role"), "{run:#?}");
    // No role at all is a usage error.
    let run = bao
        .pki(["issue", "a.example.internal", "--out", s(&out)])
        .run()
        .fails_with(&[2]);
    assert!(run.stderr.contains("role"), "{run:#?}");
}

/// A sealed server: exit 1, "sealed" in the message, no file written, and fast (no retries).
#[test]
fn sealed_server_fails_and_writes_nothing() {
    let Some(bao) = Bao::dev() else { return };
    bao.bootstrap();
    bao.bao(["operator", "seal"]).ok();
    let out = bao.dir.path().join("sealed");
    let start = Instant::now();
    let run = bao
        .issue("a.example.internal", "services", &out)
        .run()
        .fails_with(&[1]);
    assert!(run.stderr.contains("sealed"), "{run:#?}");
    assert!(run.stderr.contains(&bao.addr), "{run:#?}");
    assert!(!out.exists());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let run = bao.pki(["secret", "get", "x"]).run().fails_with(&[1]);
    assert!(run.stderr.contains("sealed"), "{run:#?}");
}

/// The server dies during a batch: the command fails, and every output directory is either
/// complete (all files, key matching, chain verifying) or absent; no temporary file remains.
#[test]
fn server_stopped_mid_batch_leaves_nothing_half_written() {
    if !require(&["openssl"]) {
        return;
    }
    let Some(mut bao) = Bao::dev() else { return };
    bao.bootstrap();
    let work = tempfile::tempdir().unwrap();
    let list = work.path().join("names.txt");
    let names: String = (0..400)
        .map(|i| {
            format!(
                "host{i}.example.internal 10.1.{}.{}\n",
                i / 200,
                i % 200 + 1
            )
        })
        .collect();
    std::fs::write(&list, names).unwrap();
    let out = work.path().join("certs");
    let mut cmd = bao.pki([
        "issue",
        "--batch",
        s(&list),
        "--role",
        "services",
        "--concurrency",
        "4",
        "--out",
        s(&out),
    ]);
    // Fail quickly once the server is gone.
    cmd = cmd.env("VAULT_MAX_RETRIES", "1");
    let child = cmd.spawn();
    let start = Instant::now();
    while dir_entries(&out).len() < 5 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    bao.stop();
    let run = child.wait();
    let run = run.fails_with(&[1]);
    assert!(run.stderr.contains(&bao.addr), "{run:#?}");
    assert!(run.stderr.contains("stopped at"), "{run:#?}");
    let dirs = dir_entries(&out);
    assert!(
        dirs.len() >= 5 && dirs.len() < 400,
        "{} directories",
        dirs.len()
    );
    for d in &dirs {
        assert!(!d.starts_with(".pki-tmp"), "temporary file left: {d}");
        let dir = out.join(d);
        assert_eq!(
            dir_entries(&dir),
            [
                "ca.pem",
                "cert.pem",
                "chain.pem",
                "fullchain.pem",
                "key.pem"
            ],
            "{d} is incomplete"
        );
        key_matches(&dir);
        openssl_verify(&dir);
    }
}

/// KV v2: put from a file and argv, get a field to a 0600 file, check-and-set, versions.
#[test]
fn kv_put_get_cas_and_metadata() {
    let Some(bao) = Bao::dev() else { return };
    let work = tempfile::tempdir().unwrap();
    let pw = work.path().join("pw");
    std::fs::write(&pw, "s3cr3t-from-file\n").unwrap();
    // A secret file others can read is refused, like every secret file.
    let loose = bao
        .pki(["secret", "put", "apps/db", &format!("password=@{}", s(&pw))])
        .run()
        .fails_with(&[1, 2]);
    assert!(loose.stderr.contains("chmod 600"), "{loose:#?}");
    std::fs::set_permissions(&pw, PermissionsExt::from_mode(0o600)).unwrap();
    let put = bao
        .pki([
            "--json",
            "secret",
            "put",
            "apps/db",
            "user=billing",
            &format!("password=@{}", s(&pw)),
        ])
        .run()
        .ok();
    assert_eq!(put.json()["version"], 1);
    let got = bao
        .pki(["secret", "get", "apps/db", "--field", "password"])
        .run()
        .ok();
    assert_eq!(got.stdout, "s3cr3t-from-file");
    let file = work.path().join("out/password");
    std::fs::create_dir(work.path().join("out")).unwrap();
    bao.pki([
        "secret",
        "get",
        "apps/db",
        "--field",
        "password",
        "--out",
        s(&file),
    ])
    .run()
    .ok();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "s3cr3t-from-file");
    assert_eq!(mode(&file), 0o600);
    // From the standard input, as a pipe gives it: never on the command line.
    let piped = bao
        .pki(["--json", "secret", "put", "apps/piped", "token=-"])
        .input(b"s3cr3t-from-stdin\n")
        .run()
        .ok();
    assert_eq!(piped.json()["version"], 1);
    let got = bao
        .pki(["secret", "get", "apps/piped", "--field", "token"])
        .run()
        .ok();
    assert_eq!(got.stdout, "s3cr3t-from-stdin");
    assert_eq!(dir_entries(&work.path().join("out")), ["password"]);

    // Check-and-set: right version writes, stale version is refused with Vault's reason.
    let v2 = bao
        .pki([
            "--json",
            "secret",
            "put",
            "apps/db",
            "password=second",
            "--cas",
            "1",
        ])
        .run()
        .ok();
    assert_eq!(v2.json()["version"], 2);
    let stale = bao
        .pki(["secret", "put", "apps/db", "password=third", "--cas", "1"])
        .run()
        .fails_with(&[1]);
    assert!(stale.stderr.contains("check-and-set"), "{stale:#?}");
    let create_only = bao
        .pki(["secret", "put", "apps/db", "password=x", "--cas", "0"])
        .run()
        .fails_with(&[1]);
    assert!(
        create_only.stderr.contains("check-and-set"),
        "{create_only:#?}"
    );

    let all = bao
        .pki(["secret", "get", "apps/db", "--version", "1"])
        .run()
        .ok();
    let v: serde_json::Value = serde_json::from_str(&all.stdout).unwrap();
    assert_eq!(v["password"], "s3cr3t-from-file");
    assert_eq!(v["user"], "billing");
    let meta = bao
        .pki(["--json", "secret", "metadata", "apps/db"])
        .run()
        .ok()
        .json();
    assert_eq!(meta["current_version"], 2);
    assert_eq!(meta["versions"].as_object().unwrap().len(), 2);
    assert!(
        !meta.to_string().contains("second"),
        "metadata must hold no value"
    );

    let missing = bao
        .pki(["secret", "get", "apps/nothing"])
        .run()
        .fails_with(&[1]);
    assert!(
        missing.stderr.contains("secret/data/apps/nothing"),
        "{missing:#?}"
    );
    let bad = bao
        .pki(["secret", "get", "../sys/x"])
        .run()
        .fails_with(&[2]);
    assert!(bad.stderr.contains("secret path"), "{bad:#?}");
}

/// `pki issue a.example.internal --backend vault` with `extra` arguments, from a clean
/// environment with `HOME` at `home`: what each configuration mistake below is tried on.
fn vault_issue(home: &Path, extra: &[&str]) -> Pki {
    let mut args = vec!["issue", "a.example.internal", "--backend", "vault"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--out", "x"]);
    pki_clean(args, home)
}

/// Configuration mistakes are usage errors (exit 2) or refused files, before any request.
#[test]
fn configuration_errors() {
    let home = tempfile::tempdir().unwrap();
    let run = vault_issue(home.path(), &[]).run().fails_with(&[2]);
    assert!(run.stderr.contains("VAULT_ADDR"), "{run:#?}");
    let run = vault_issue(home.path(), &[])
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .run()
        .fails_with(&[2]);
    assert!(run.stderr.contains("VAULT_TOKEN"), "{run:#?}");
    // A token file others can read is refused, and the token is never echoed.
    let token = home.path().join("token");
    std::fs::write(&token, "s.supersecret\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = vault_issue(home.path(), &[])
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .env("PKI_VAULT_TOKEN_FILE", &token)
        .run()
        .fails_with(&[1]);
    assert!(run.stderr.contains("chmod 600"), "{run:#?}");
    assert!(!run.stderr.contains("supersecret"));
    // Unreachable: the address is named, after bounded retries.
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = vault_issue(home.path(), &["--role", "r"])
        .env("VAULT_ADDR", "http://127.0.0.1:1")
        .env("PKI_VAULT_TOKEN_FILE", &token)
        .env("VAULT_MAX_RETRIES", "1")
        .run()
        .fails_with(&[1]);
    assert!(
        run.stderr
            .contains("cannot connect to Vault at http://127.0.0.1:1"),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("supersecret"));
    let run = pki_clean(["list", "--backend", "vaultx"], home.path())
        .run()
        .fails_with(&[2]);
    assert!(run.stderr.contains("vaultx"), "{run:#?}");
}

/// `pki vault rotate-intermediate` with the root kept offline: refused on a mount with no
/// issuer yet; then a new intermediate, signed by the offline root, is the default issuer,
/// the old one stays, and what is issued afterwards chains to the new one.
#[test]
fn rotate_intermediate_with_an_offline_root() {
    if !require(&["openssl"]) {
        return;
    }
    let Some(bao) = Bao::dev() else { return };
    let root = TestCa::new(&["--permitted-dns", "example.internal"]);
    let rotate = || {
        bao.pki([
            "vault",
            "rotate-intermediate",
            "--root-ca-dir",
            s(&root.dir),
        ])
        .run()
    };
    let early = rotate().fails_with(&[2]);
    assert!(
        early.stderr.contains("has no issuer to roll over"),
        "{early:#?}"
    );
    bao.bootstrap_with(&["--root-ca-dir", s(&root.dir)]);
    let work = tempfile::tempdir().unwrap();
    let issue = |name: &str| {
        let out = work.path().join(name);
        bao.pki([
            "issue",
            "api.example.internal",
            "--role",
            "services",
            "--out",
            s(&out),
        ])
        .run()
        .ok();
        out
    };
    let before = issue("before");
    // Another root than the mount's issuers chain to is refused before anything is made:
    // a new root has to reach every trust bundle first.
    let other = TestCa::new(&["--permitted-dns", "example.internal"]);
    let refused = bao
        .pki([
            "vault",
            "rotate-intermediate",
            "--root-ca-dir",
            s(&other.dir),
        ])
        .run()
        .fails_with(&[2]);
    assert!(
        refused.stderr.contains("roll the root over first"),
        "{refused:#?}"
    );
    let no_root_mount = bao
        .pki(["vault", "rotate-intermediate"])
        .run()
        .fails_with(&[2]);
    assert!(
        no_root_mount.stderr.contains("holds no root"),
        "{no_root_mount:#?}"
    );
    let listed = |bao: &Bao| {
        let text = bao.root("LIST", "/v1/pki/issuers", None);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["data"]["keys"].as_array().unwrap().len()
    };
    assert_eq!(listed(&bao), 2, "a refused rollover left an issuer");
    let rotated = rotate().ok();
    assert!(
        rotated.stdout.contains("Rotated the intermediate of pki"),
        "{rotated:#?}"
    );
    let after = issue("after");
    let chain = |dir: &Path| std::fs::read_to_string(dir.join("chain.pem")).unwrap();
    assert_ne!(
        chain(&before),
        chain(&after),
        "the new leaf has the old intermediate"
    );
    for dir in [&before, &after] {
        openssl_verify(dir);
        assert_eq!(
            std::fs::read(dir.join("ca.pem")).unwrap(),
            std::fs::read(root.dir.join("root.pem")).unwrap()
        );
    }
    assert_eq!(listed(&bao), 3);
}
