//! The security review's findings (`security-review.md`), each reproduced against the binary
//! and shown fixed; the test names carry the finding's number. Findings 3, 4 and 9 are shown
//! where their code lives (the probe, the Redis exchange, the inventory).

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;

use pki_tests::require_root;

use crate::rotate::Rig;

const NOBODY: u32 = 65534;

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A files target whose reload command leaves a trace when it runs.
fn traced_target(rig: &Rig) -> String {
    format!(
        "[[certificate]]\nname = \"web\"\ncommon_name = \"web.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nreload_command = \"touch {}\"\n",
        rig.path("out").display(),
        rig.path("reload-ran").display()
    )
}

/// Finding 6: a config (or a directory above it, a secret file, a program it runs) that
/// another user could change is refused with exit 2 naming it, and nothing runs.
#[test]
fn finding_6_a_config_others_could_change_is_refused_and_nothing_runs() {
    if !require_root("checking files owned by another user") {
        return;
    }
    let rig = Rig::new();
    rig.config(&traced_target(&rig));
    let refused = |what: &str, needle: &Path| {
        let run = rig.rotate(&[]).fails_with(&[2]);
        let name = needle.display().to_string();
        assert!(run.stderr.contains(&name), "{what}: {run:#?}");
        assert!(!rig.path("reload-ran").exists(), "{what}: the reload ran");
    };
    // The config itself, writable by others.
    set_mode(&rig.config_path(), 0o666);
    refused("a world-writable config", &rig.config_path());
    set_mode(&rig.config_path(), 0o644);
    // Owned by another user.
    chown(rig.config_path(), Some(NOBODY), None).unwrap();
    refused("a config owned by nobody", &rig.config_path());
    chown(rig.config_path(), Some(0), None).unwrap();
    // Its directory, writable by others.
    let dir = rig.config_path().parent().unwrap().to_path_buf();
    set_mode(&dir, 0o777);
    refused("a config in a world-writable directory", &dir);
    set_mode(&dir, 0o700);

    // A passphrase file of another user's, and a program another user could replace.
    let secret = rig.path("passphrase");
    std::fs::write(&secret, "not used\n").unwrap();
    set_mode(&secret, 0o600);
    chown(&secret, Some(NOBODY), None).unwrap();
    let text = std::fs::read_to_string(rig.config_path()).unwrap();
    let with_secret = text.replacen(
        "ca_dir = ",
        &format!("passphrase_file = \"{}\"\nca_dir = ", secret.display()),
        1,
    );
    std::fs::write(rig.config_path(), &with_secret).unwrap();
    refused("a passphrase file owned by nobody", &secret);
    std::fs::write(rig.config_path(), &text).unwrap();

    let script = rig.path("reload.sh");
    std::fs::write(&script, "#!/bin/sh\ntouch \"$0.ran\"\n").unwrap();
    set_mode(&script, 0o755);
    chown(&script, Some(NOBODY), None).unwrap();
    let with_program = text.replace(
        &format!(
            "reload_command = \"touch {}\"",
            rig.path("reload-ran").display()
        ),
        &format!("reload_command = [\"{}\"]", script.display()),
    );
    std::fs::write(rig.config_path(), &with_program).unwrap();
    refused("a reload program owned by nobody", &script);
    assert!(!rig.path("reload.sh.ran").exists());

    // Put right, the same config runs.
    chown(&script, Some(0), None).unwrap();
    rig.rotate(&[]).ok();
    assert!(rig.path("reload.sh.ran").exists());
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

/// Finding 10: the CA directory is 0700 and the inventory with its WAL and index 0600,
/// whatever the umask and even when the directory existed; an older CA's inventory is made
/// private when it is next opened.
#[test]
fn finding_10_the_ca_directory_and_inventory_are_private_whatever_the_umask() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = tmp.path().join("ca2");
    std::fs::create_dir(&ca).unwrap();
    set_mode(&ca, 0o755);
    let dir = ca.to_str().unwrap();
    pki_tests::Pki::under_umask(
        0o022,
        ["ca", "init", "--dir", dir, "--insecure-no-passphrase"],
    )
    .run()
    .ok();
    let out = tmp.path().join("out");
    pki_tests::Pki::under_umask(
        0o022,
        [
            "issue",
            "a.example.internal",
            "--ca-dir",
            dir,
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .run()
    .ok();
    assert_eq!(mode_of(&ca), 0o700);
    let files = ["inventory.db", "inventory.db-wal", "inventory.db-shm"];
    for f in files {
        let p = ca.join(f);
        if p.exists() {
            assert_eq!(mode_of(&p), 0o600, "{f}");
        }
    }
    assert!(ca.join("inventory.db").exists());
    // As an older release left it: readable by all. Opening it tightens it.
    for f in files {
        let p = ca.join(f);
        if p.exists() {
            set_mode(&p, 0o644);
        }
    }
    pki_tests::Pki::new(["list", "--ca-dir", dir]).run().ok();
    for f in files {
        let p = ca.join(f);
        if p.exists() {
            assert_eq!(mode_of(&p), 0o600, "{f} after an open");
        }
    }
}

/// Finding 11: under the shipped unit's `UMask=0077`, the hook's own directories still get
/// 0755, so a key meant to be read by a group (0640 root:nogroup) is readable by that group.
#[test]
fn finding_11_the_hooks_directories_get_their_modes_under_umask_0077() {
    if !require_root("reading a key as another user") {
        return;
    }
    let rig = Rig::new();
    let out = rig.path("out");
    rig.config(&format!(
        "[[certificate]]\nname = \"db\"\ncommon_name = \"db.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nfiles = [\"key\", \"cert\"]\n\
         group = \"nogroup\"\nkey_mode = \"0640\"\n",
        out.display()
    ));
    let config = rig.config_path();
    pki_tests::Pki::under_umask(0o077, ["rotate", "--config", config.to_str().unwrap()])
        .run()
        .ok();
    for d in [out.clone(), out.join(".pki"), out.join(".pki/key.pem")] {
        assert_eq!(mode_of(&d), 0o755, "{}", d.display());
    }
    let read = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(out.join("key.pem"))
        .output()
        .unwrap();
    assert!(read.status.success(), "{read:?}");
    assert!(String::from_utf8_lossy(&read.stdout).contains("PRIVATE KEY"));
}

/// Finding 12: while it holds the CA key, the process cannot be dumped, its core limit is 0,
/// and the passphrase it was given in the environment is gone from `/proc/PID/environ`.
#[test]
fn finding_12_no_core_dump_and_no_secret_left_in_the_environment() {
    let rig = Rig::new();
    let seen = rig.path("seen");
    std::fs::create_dir(&seen).unwrap();
    // The reload hook's parent is the running `pki`: it looks at it from outside.
    let hook = format!(
        "cat /proc/$PPID/limits > {s}/limits; cat /proc/$PPID/status > {s}/status; \
         (tr '\\\\0' '\\\\n' < /proc/$PPID/environ > {s}/environ) 2> {s}/environ.err; true",
        s = seen.display()
    );
    let ca = rig.path("enc-ca");
    rig.config(&format!(
        "[[certificate]]\nname = \"web\"\ncommon_name = \"web.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nreload_command = \"{hook}\"\n",
        rig.path("out").display()
    ));
    // A CA with an encrypted key, unlocked with a passphrase from the environment.
    let pass = "correct horse battery staple";
    pki_tests::Pki::new(["ca", "init", "--dir", ca.to_str().unwrap()])
        .env("PKI_CA_PASSPHRASE", pass)
        .run()
        .ok();
    let text = std::fs::read_to_string(rig.config_path())
        .unwrap()
        .replacen(
            &format!("ca_dir = \"{}\"", rig.path("ca").display()),
            &format!("ca_dir = \"{}\"", ca.display()),
            1,
        );
    std::fs::write(rig.config_path(), text).unwrap();
    let config = rig.config_path();
    pki_tests::Pki::new(["rotate", "--config", config.to_str().unwrap()])
        .env("PKI_CA_PASSPHRASE", pass)
        .run()
        .ok();
    let limits = std::fs::read_to_string(seen.join("limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "{core}"
    );
    // Not dumpable: /proc/PID files belong to root, and only root may read its environment.
    let environ = std::fs::read_to_string(seen.join("environ")).unwrap_or_default();
    assert!(!environ.contains("correct horse"), "{environ}");
    assert!(!environ.contains("PKI_CA_PASSPHRASE"), "{environ}");
    assert!(ca.join("root.key.pem").exists());
}

/// Finding 8: an ntfy URL with a token, or an Uptime Kuma push URL (the token is in it), must
/// be https unless the server is on this machine.
#[test]
fn finding_8_reporters_never_send_a_token_in_clear_text_across_a_network() {
    let rig = Rig::new();
    let token = rig.path("ntfy-token");
    std::fs::write(&token, "tk_NTFYSECRET\n").unwrap();
    set_mode(&token, 0o600);
    let base = traced_target(&rig);
    let with = |report: &str| rig.config(&format!("{base}\n{report}"));
    let ntfy = |url: &str| {
        format!(
            "[report.ntfy]\nurl = \"{url}\"\ntoken_file = \"{}\"\n",
            token.display()
        )
    };
    with(&ntfy("http://192.0.2.2:18301/pki-alerts"));
    let run = rig.rotate(&["--dry-run"]).fails_with(&[2]);
    assert!(
        run.stderr.contains("url") && run.stderr.contains("https"),
        "{run:#?}"
    );
    with(&ntfy("http://127.0.0.1:18301/pki-alerts"));
    rig.rotate(&["--dry-run"]).ok();
    with(&ntfy("https://ntfy.example.internal/pki-alerts"));
    rig.rotate(&["--dry-run"]).ok();
    with("[report.uptime_kuma]\npush_url = \"http://192.0.2.2:3001/api/push/TOKEN\"\n");
    let run = rig.rotate(&["--dry-run"]).fails_with(&[2]);
    assert!(run.stderr.contains("push_url"), "{run:#?}");
    // Written in the config, the push URL makes the config a secret: private, or refused.
    with("[report.uptime_kuma]\npush_url = \"https://kuma.example.internal/api/push/TOKEN\"\n");
    rig.rotate(&["--dry-run"]).ok();
    set_mode(&rig.config_path(), 0o644);
    let run = rig.rotate(&["--dry-run"]).fails_with(&[2]);
    assert!(
        run.stderr
            .contains(&rig.config_path().display().to_string()),
        "{run:#?}"
    );
    assert!(!run.stderr.contains("TOKEN"), "{run:#?}");
}

/// A CSR made by openssl for `cn` with these SANs (`DNS:…,IP:…,URI:…`), and `key_args` for
/// `openssl genpkey` (EC P-256 unless given).
fn csr(dir: &Path, cn: &str, sans: &str, key_args: &[&str]) -> std::path::PathBuf {
    let key = dir.join(format!("{}.key", pki_tests::servers::free_port()));
    let csr = key.with_extension("csr");
    let mut genpkey = vec!["genpkey", "-out", key.to_str().unwrap()];
    if key_args.is_empty() {
        genpkey.extend(["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]);
    } else {
        genpkey.extend_from_slice(key_args);
    }
    assert_eq!(pki_tests::openssl(&genpkey).code, 0);
    let subj = format!("/CN={cn}");
    let mut req = vec![
        "req",
        "-new",
        "-key",
        key.to_str().unwrap(),
        "-subj",
        &subj,
        "-out",
        csr.to_str().unwrap(),
    ];
    let ext = format!("subjectAltName={sans}");
    if !sans.is_empty() {
        req.extend(["-addext", &ext]);
    }
    let run = pki_tests::openssl(&req);
    assert_eq!(run.code, 0, "{run:#?}");
    csr
}

/// Finding 5 (and the CSR policy of finding 13): a CA constrained to DNS domains vouches for
/// no IP address unless given ranges, checks a URI's host, and refuses what its constraints
/// would make invalid, with the reason; wildcards need the CA's allowance; a server's common
/// name is a host name; RSA keys use exponent 65537; a client's one-label name stays out of
/// the DNS names.
#[test]
fn finding_5_name_constraints_hold_for_every_name_type() {
    if !pki_tests::require(&["openssl"]) {
        return;
    }
    let dns_only = pki_tests::TestCa::new(&["--permitted-dns", "example.internal"]);
    let text = pki_tests::openssl([
        "x509",
        "-noout",
        "-text",
        "-in",
        dns_only.dir.join("intermediate.pem").to_str().unwrap(),
    ])
    .stdout;
    assert!(
        text.contains("Excluded:") && text.contains("IP:0.0.0.0/0.0.0.0"),
        "{text}"
    );
    let work = tempfile::tempdir().unwrap();
    let out = |n: &str| work.path().join(n);
    let sign = |ca: &pki_tests::TestCa, csr: &Path, dir: &str| {
        ca.pki([
            "issue",
            "--csr",
            csr.to_str().unwrap(),
            "--out",
            out(dir).to_str().unwrap(),
        ])
    };
    for (sans, needle) in [
        ("DNS:ok.example.internal,IP:8.8.8.8", "excludes 0.0.0.0/0"),
        ("DNS:ok.example.internal,IP:10.0.0.21", "excludes 0.0.0.0/0"),
        (
            "DNS:ok.example.internal,URI:https://bank.com/login",
            "bank.com",
        ),
        (
            "DNS:ok.example.internal,URI:spiffe://evil.com/admin",
            "evil.com",
        ),
    ] {
        let c = csr(work.path(), "ok.example.internal", sans, &[]);
        let run = sign(&dns_only, &c, "refused").fails_with(&[1]);
        assert!(run.stderr.contains(needle), "{sans}: {run:#?}");
        assert!(!out("refused").exists());
    }
    let c = csr(
        work.path(),
        "ok.example.internal",
        "DNS:ok.example.internal,URI:spiffe://api.example.internal/svc",
        &[],
    );
    sign(&dns_only, &c, "spiffe").ok();

    // With a permitted range, its addresses are issued and verify; others are refused.
    let ranged = pki_tests::TestCa::new(&[
        "--permitted-dns",
        "example.internal",
        "--permitted-ip",
        "10.0.0.0/8",
    ]);
    let c = csr(
        work.path(),
        "ok.example.internal",
        "DNS:ok.example.internal,IP:10.0.0.21",
        &[],
    );
    sign(&ranged, &c, "ip").ok();
    let verify = pki_tests::openssl([
        "verify",
        "-CAfile",
        out("ip").join("ca.pem").to_str().unwrap(),
        "-untrusted",
        out("ip").join("chain.pem").to_str().unwrap(),
        "-purpose",
        "sslserver",
        "-verify_ip",
        "10.0.0.21",
        out("ip").join("cert.pem").to_str().unwrap(),
    ]);
    assert_eq!(verify.code, 0, "{verify:#?}");
    let c = csr(
        work.path(),
        "ok.example.internal",
        "DNS:ok.example.internal,IP:8.8.8.8",
        &[],
    );
    let run = sign(&ranged, &c, "refused").fails_with(&[1]);
    assert!(run.stderr.contains("10.0.0.0/8"), "{run:#?}");

    // Wildcards: refused by default, issued by a CA that allows them.
    let run = dns_only
        .pki([
            "issue",
            "*.example.internal",
            "--out",
            out("w").to_str().unwrap(),
        ])
        .fails_with(&[1]);
    assert!(run.stderr.contains("wildcard"), "{run:#?}");
    let wild = pki_tests::TestCa::new(&["--allow-wildcards"]);
    wild.pki([
        "issue",
        "*.example.internal",
        "--out",
        out("w").to_str().unwrap(),
    ])
    .ok();

    // A server certificate's CN that is no host name, and RSA with e=3.
    let c = csr(work.path(), "Evil Root CA", "DNS:ok.example.internal", &[]);
    let run = sign(&dns_only, &c, "refused").fails_with(&[1, 2]);
    assert!(run.stderr.contains("host name"), "{run:#?}");
    let e3 = [
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-pkeyopt",
        "rsa_keygen_pubexp:3",
    ];
    let c = csr(
        work.path(),
        "ok.example.internal",
        "DNS:ok.example.internal",
        &e3,
    );
    let run = sign(&dns_only, &c, "refused").fails_with(&[1, 2]);
    assert!(run.stderr.contains("exponent 3"), "{run:#?}");

    // A client named `backup-agent`: in the subject, not a dNSName.
    let any = pki_tests::TestCa::new(&[]);
    any.pki([
        "issue",
        "backup-agent",
        "--profile",
        "client",
        "--out",
        out("client").to_str().unwrap(),
    ])
    .ok();
    let cert = pki::Certificate::from_pem(
        &std::fs::read(out("client").join("cert.pem")).unwrap(),
        "client",
    )
    .unwrap();
    assert_eq!(cert.info().common_name.as_deref(), Some("backup-agent"));
    assert!(
        cert.info().subject_alt_names.is_empty(),
        "{:?}",
        cert.info()
    );
}

/// A rotation that ran and failed (exit 1: a certificate or target failed, said in the log).
#[track_caller]
fn failed(run: pki_tests::Run) -> pki_tests::Run {
    assert_eq!(run.code, 1, "expected a failed run: {run:#?}");
    run
}

/// A files target for `key` and `cert` (and `chain` when given), by path.
fn split_target(key: &Path, cert: &Path, chain: Option<&Path>) -> String {
    let mut t = format!(
        "[[certificate]]\nname = \"split\"\ncommon_name = \"split.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\nkey = \"{}\"\ncert = \"{}\"\n",
        key.display(),
        cert.display()
    );
    if let Some(c) = chain {
        t.push_str(&format!("chain = \"{}\"\n", c.display()));
    }
    t
}

/// Finding 1: every directory a target writes into is checked, not only the first file's;
/// adopting files found in place never follows a link and never waits on a FIFO.
#[test]
fn finding_1_every_files_directory_is_checked_and_adoption_never_follows_or_blocks() {
    if !require_root("directories owned by another user") {
        return;
    }
    let rig = Rig::new();
    let private = rig.path("private");
    let theirs = rig.path("theirs");
    for d in [&private, &theirs] {
        std::fs::create_dir(d).unwrap();
        set_mode(d, 0o755);
    }
    chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    rig.config(&split_target(
        &private.join("key.pem"),
        &theirs.join("cert.pem"),
        None,
    ));
    let run = failed(rig.rotate(&[]));
    assert!(
        run.stderr.contains(&theirs.display().to_string()) && run.stderr.contains("65534"),
        "{run:#?}"
    );
    assert!(
        std::fs::read_dir(&theirs).unwrap().next().is_none(),
        "wrote into theirs"
    );
    assert!(
        !private.join("key.pem").exists(),
        "half a target was deployed"
    );

    // In directories of our own: a link to a root-only file and a FIFO where files are to
    // be adopted. Neither is read; the run finishes and the paths become the managed links.
    let ours = rig.path("ours");
    std::fs::create_dir(&ours).unwrap();
    let secret = rig.path("secret");
    std::fs::write(&secret, "TOPSECRET-root-only").unwrap();
    set_mode(&secret, 0o600);
    std::fs::write(ours.join("key.pem"), "old key").unwrap();
    std::os::unix::fs::symlink(&secret, ours.join("cert.pem")).unwrap();
    let fifo = ours.join("chain.pem");
    mkfifo(&fifo);
    rig.config(&split_target(
        &ours.join("key.pem"),
        &ours.join("cert.pem"),
        Some(&fifo),
    ));
    let started = std::time::Instant::now();
    rig.rotate(&[]).ok();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    for f in ["key.pem", "cert.pem", "chain.pem"] {
        let m = std::fs::symlink_metadata(ours.join(f)).unwrap();
        assert!(m.file_type().is_symlink(), "{f} is the managed link");
    }
    let copied = std::process::Command::new("grep")
        .args(["-rl", "TOPSECRET"])
        .arg(ours.join(".pki"))
        .output()
        .unwrap();
    assert!(
        copied.stdout.is_empty(),
        "the secret was copied: {copied:?}"
    );
}

/// Finding 2: a directory whose parent another user may write is refused, so a link planted
/// in its place cannot send root's writes into another directory.
#[test]
fn finding_2_a_directory_under_another_users_parent_is_refused() {
    if !require_root("directories owned by another user") {
        return;
    }
    let rig = Rig::new();
    let parent = rig.path("parent");
    std::fs::create_dir(&parent).unwrap();
    set_mode(&parent, 0o755);
    chown(&parent, Some(NOBODY), Some(NOBODY)).unwrap();
    // Root-owned, and holding an admin's file; the parent's owner links `ssl` to it.
    let elsewhere = rig.path("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("cert.pem"), "the admin's file").unwrap();
    std::os::unix::fs::symlink(&elsewhere, parent.join("ssl")).unwrap();
    let ssl = parent.join("ssl");
    rig.config(&split_target(
        &ssl.join("key.pem"),
        &ssl.join("cert.pem"),
        None,
    ));
    let run = failed(rig.rotate(&[]));
    assert!(
        run.stderr.contains(&parent.display().to_string()),
        "{run:#?}"
    );
    assert_eq!(
        std::fs::read_to_string(elsewhere.join("cert.pem")).unwrap(),
        "the admin's file"
    );
    assert!(!elsewhere.join(".pki").exists());
    // A real root-owned directory there is refused too: its parent's owner could swap it.
    std::fs::remove_file(&ssl).unwrap();
    std::fs::create_dir(&ssl).unwrap();
    let run = failed(rig.rotate(&[]));
    assert!(run.stderr.contains("65534"), "{run:#?}");
    assert!(std::fs::read_dir(&ssl).unwrap().next().is_none());
}

/// Beyond the review: a run large enough to defer its syncs opens each file system it will
/// write to before anything is checked. A `.pki` planted as a link to a FIFO on another file
/// system once held that open (and root's run) forever; now that target fails and the others
/// are deployed.
#[test]
fn a_fifo_planted_where_a_large_run_looks_first_never_blocks_it() {
    let rig = Rig::new();
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let fifo = shm.path().join("fifo");
    mkfifo(&fifo);
    let trap = rig.path("out/trap");
    std::fs::create_dir_all(&trap).unwrap();
    std::os::unix::fs::symlink(&fifo, trap.join(".pki")).unwrap();
    let mut body = String::new();
    for i in 0..9 {
        let dir = if i == 0 {
            trap.clone()
        } else {
            rig.path(&format!("out/c{i}"))
        };
        body.push_str(&format!(
            "[[certificate]]\nname = \"c{i}\"\ncommon_name = \"c{i}.example.internal\"\n\
             [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n",
            dir.display()
        ));
    }
    rig.config(&body);
    let started = std::time::Instant::now();
    let out = std::process::Command::new("timeout")
        .args(["--kill-after=5", "60"])
        .arg(pki_tests::pki_bin())
        .args(["rotate", "--config"])
        .arg(rig.config_path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "the run hung: {stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("trap"), "{stderr}");
    for i in 1..9 {
        assert!(
            rig.path(&format!("out/c{i}/cert.pem")).exists(),
            "c{i} was not deployed: {stderr}"
        );
    }
    assert!(!trap.join("cert.pem").exists());
}
