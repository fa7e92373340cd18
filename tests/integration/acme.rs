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

/// What `openssl s_client` sees for `sni` on 127.0.0.1:`port`, verifying against `root`:
/// whether it verified (and the hostname matched), and the leaf's serial.
fn served_verified(port: u16, sni: &str, root: &Path) -> (bool, pki::Serial) {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            sni,
        ])
        .args(["-verify_return_error", "-verify_hostname", sni, "-CAfile"])
        .arg(root)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let leaf = pki::Certificate::from_pem(&out.stdout, "s_client output")
        .unwrap_or_else(|e| panic!("no certificate for {sni}: {e}\n{text}"));
    let verified = out.status.success() && text.contains("Verify return code: 0 (ok)");
    (verified, leaf.info().serial.clone())
}

/// What 127.0.0.1:`port` serves for www.example.com: its chain verifies against pebble's root
/// and its leaf is the store's current `www`, whose serial is returned.
fn served_from_pebble(pebble: &Pebble, rig: &Rig, port: u16) -> pki::Serial {
    let root = rig.path("pebble-root.pem");
    pebble.root(&root);
    let (ok, serial) = served_verified(port, "www.example.com", &root);
    assert!(ok, "the served chain verifies against pebble's root");
    assert_eq!(serial, rig.current("www").info().serial);
    serial
}

/// An HAProxy target for `pem`, probed with `sni`.
fn haproxy_target(pem: &Path, socket: &Path, port: u16, sni: &str) -> String {
    format!(
        "type = \"haproxy\"\npem = \"{}\"\nsocket = \"{}\"\n\
         probe = {{ address = \"127.0.0.1:{port}\", server_name = \"{sni}\" }}\n",
        pem.display(),
        socket.display()
    )
}

/// The issue's scene: one HAProxy, its internal certificate from the offline CA, its public
/// one from pebble, which validates through HAProxy's port-80 frontend routed to the hook.
#[test]
fn public_and_internal_certificates_on_one_haproxy() {
    let (http_port, responder) = (free_port(), free_port());
    let Some(pebble) = Pebble::start(http_port, None) else {
        return;
    };
    if !pki_tests::require(&["haproxy"]) {
        return;
    }
    let rig = Rig::new();
    let dir = pki_tests::servers::short_tempdir();
    let (internal, public) = (
        dir.path().join("internal.pem"),
        dir.path().join("public.pem"),
    );
    rig.bootstrap("localhost", None, None, Some(&internal));
    // The site starts on a placeholder, as before its first public certificate.
    rig.bootstrap("www.example.com", None, None, Some(&public));
    let haproxy = pki_tests::servers::haproxy_front(
        dir,
        &[&internal, &public],
        http_port,
        pki_tests::servers::Challenges::Responder(responder),
    );
    let socket = haproxy.path("admin.sock");
    let internal_cert = format!(
        "[[certificate]]\nname = \"internal\"\ncommon_name = \"localhost\"\nsans = [\"127.0.0.1\"]\n\
         [[certificate.target]]\n{}\n",
        haproxy_target(&internal, &socket, haproxy.port, "localhost")
    );
    rig.config(&internal_cert);
    rig.rotate(&[]).ok();
    let offline_root = rig.path("ca/root.pem");
    let (ok, internal_serial) = served_verified(haproxy.port, "localhost", &offline_root);
    assert!(
        ok,
        "the internal certificate verifies against the offline CA"
    );
    // The public site joins: its certificate comes from pebble, through HAProxy's :80.
    let public_cert = format!(
        "[[certificate]]\nname = \"www\"\ncommon_name = \"www.example.com\"\nbackend = \"public\"\n\
         [[certificate.target]]\n{}\n",
        haproxy_target(&public, &socket, haproxy.port, "www.example.com")
    );
    rig.config(&format!(
        "{}{internal_cert}{public_cert}",
        acme_backend(&pebble, &format!("listen = \"127.0.0.1:{responder}\""))
    ));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 0, "{run:#?}\n{}", pebble.log());
    let www_serial = served_from_pebble(&pebble, &rig, haproxy.port);
    // HAProxy logged the validation requests going to the hook's responder.
    let log = std::fs::read_to_string(&haproxy.log).unwrap_or_default();
    assert!(
        log.contains("be_acme") && log.contains("/.well-known/acme-challenge/"),
        "{log}"
    );
    // The internal certificate was not touched.
    let (ok, serial) = served_verified(haproxy.port, "localhost", &offline_root);
    assert!(ok);
    assert_eq!(serial, internal_serial);
    // A second run does nothing.
    let again = rig.rotate(&[]).ok();
    assert!(
        again.stderr.contains("0 issued, 0 redeployed, 2 current"),
        "{again:#?}"
    );
    assert_eq!(served_from_pebble(&pebble, &rig, haproxy.port), www_serial);
}

/// Stateless http-01: HAProxy answers the challenge itself from the account thumbprint,
/// which `pki acme thumbprint` prints (creating the account).
#[test]
fn stateless_http01_answered_by_haproxy() {
    let http_port = free_port();
    let Some(pebble) = Pebble::start(http_port, None) else {
        return;
    };
    if !pki_tests::require(&["haproxy"]) {
        return;
    }
    let rig = Rig::new();
    let dir = pki_tests::servers::short_tempdir();
    let public = dir.path().join("public.pem");
    rig.bootstrap("www.example.com", None, None, Some(&public));
    let target_for =
        |socket: &Path, port: u16| haproxy_target(&public, socket, port, "www.example.com");
    // The thumbprint is needed before HAProxy starts: the config names its socket-to-be.
    let socket = dir.path().join("admin.sock");
    let config = |port: u16| {
        format!(
            "{}[[certificate]]\nname = \"www\"\ncommon_name = \"www.example.com\"\nbackend = \"public\"\n\
             [[certificate.target]]\n{}\n",
            acme_backend(&pebble, "challenge = \"http-01-stateless\""),
            target_for(&socket, port)
        )
    };
    rig.config(&config(1));
    let thumbprint = pki_tests::Pki::new([
        "acme",
        "thumbprint",
        "--config",
        rig.config_path().to_str().unwrap(),
    ])
    .run()
    .ok()
    .stdout
    .trim()
    .to_owned();
    assert_eq!(thumbprint.len(), 43, "{thumbprint:?}");
    let haproxy = pki_tests::servers::haproxy_front(
        dir,
        &[&public],
        http_port,
        pki_tests::servers::Challenges::Stateless(&thumbprint),
    );
    rig.config(&config(haproxy.port));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 0, "{run:#?}\n{}", pebble.log());
    served_from_pebble(&pebble, &rig, haproxy.port);
}

/// Webroot http-01 for Nginx: the challenge file is written under the site's root, served
/// by Nginx on its port 80 stand-in, and removed afterwards.
#[test]
fn webroot_http01_served_by_nginx() {
    let http_port = free_port();
    let Some(pebble) = Pebble::start(http_port, None) else {
        return;
    };
    if !pki_tests::require(&["nginx"]) {
        return;
    }
    let rig = Rig::new();
    let webroot = rig.path("www-root");
    std::fs::create_dir(&webroot).unwrap();
    std::fs::set_permissions(
        &webroot,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let (nginx, cert, key) = rig.service("cert.pem", "key.pem", |dir, cert, key| {
        pki_tests::servers::nginx_with(
            dir,
            cert,
            key,
            &format!(
                "  server {{\n    listen 127.0.0.1:{http_port};\n    \
                 location /.well-known/acme-challenge/ {{ root {}; default_type text/plain; }}\n    \
                 location / {{ return 301 https://$host$request_uri; }}\n  }}\n",
                webroot.display()
            ),
        )
    });
    let (test, reload) = crate::rotate::nginx_commands(&nginx);
    rig.config(&format!(
        "{}[[certificate]]\nname = \"www\"\ncommon_name = \"www.example.com\"\nbackend = \"public\"\n\
         [[certificate.target]]\ntype = \"nginx\"\ncert = \"{}\"\nkey = \"{}\"\n{test}\n{reload}\n\
         probe = {{ address = \"127.0.0.1:{}\", server_name = \"www.example.com\" }}\n",
        acme_backend(
            &pebble,
            &format!("challenge = \"webroot\"\nwebroot = \"{}\"", webroot.display())
        ),
        cert.display(),
        key.display(),
        nginx.port
    ));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 0, "{run:#?}\n{}", pebble.log());
    served_from_pebble(&pebble, &rig, nginx.port);
    let access = std::fs::read_to_string(nginx.path("access.log")).unwrap_or_default();
    assert!(access.contains("/.well-known/acme-challenge/"), "{access}");
    let left = pki_tests::dir_entries(&webroot.join(".well-known/acme-challenge"));
    assert!(left.is_empty(), "challenge files left behind: {left:?}");
}

/// What goes wrong is said plainly, exits 1, and leaves what is deployed in place: the server
/// down, a challenge it cannot validate, an account file that is not one.
#[test]
fn acme_failures_are_clear_and_keep_the_certificate_in_place() {
    let port = free_port();
    let Some(pebble) = Pebble::start(port, None) else {
        return;
    };
    let rig = Rig::new();
    let out = rig.path("out/www");
    let config = |listen: u16| {
        format!(
            "{}{}",
            acme_backend(&pebble, &format!("listen = \"127.0.0.1:{listen}\"")),
            public_cert("www", "www.example.com", &out)
        )
    };
    rig.config(&config(port));
    rig.rotate(&[]).ok();
    let serial = rig.current("www").info().serial.clone();
    // A challenge nobody answers: the error names the domain and pebble's problem detail.
    rig.config(&config(free_port()));
    let run = rig.rotate(&["--force"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("www.example.com")
            && run.stderr.contains("urn:ietf:params:acme:error:"),
        "{run:#?}"
    );
    assert_eq!(rig.current("www").info().serial, serial);
    crate::rotate::check_pair(&out.join("cert.pem"), &out.join("key.pem"));
    // An account file that is not one is refused with its path.
    let account = rig.path("state/acme/public.json");
    let kept = std::fs::read(&account).unwrap();
    std::fs::write(&account, b"{ not json").unwrap();
    rig.config(&config(port));
    let run = rig.rotate(&["--force"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains(&account.display().to_string()),
        "{run:#?}"
    );
    std::fs::write(&account, kept).unwrap();
    // The server gone: exit 1, a clear error, the certificate in place.
    let directory = pebble.directory.clone();
    let mut pebble = pebble;
    pebble.server.child.kill().unwrap();
    pebble.server.child.wait().unwrap();
    let run = rig.rotate(&["--force"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains(&directory), "{run:#?}");
    assert_eq!(rig.current("www").info().serial, serial);
    crate::rotate::check_pair(&out.join("cert.pem"), &out.join("key.pem"));
}

/// dns-01 through the hook command, for a wildcard: the hook sets and clears the TXT records
/// on pebble's DNS server (challtestsrv's management API).
#[test]
fn dns01_through_the_hook_for_a_wildcard() {
    let Some(pebble) = Pebble::start(free_port(), None) else {
        return;
    };
    if !pki_tests::require(&["curl"]) {
        return;
    }
    let rig = Rig::new();
    let hook = rig.path("dns-hook");
    let calls = rig.path("dns-calls");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nset -e\necho \"$PKI_ACME_ACTION $PKI_ACME_NAME\" >> {calls}\n\
             case \"$PKI_ACME_ACTION\" in\n\
             set) curl -sSf -d \"{{\\\"host\\\":\\\"$PKI_ACME_NAME.\\\",\\\"value\\\":\\\"$PKI_ACME_VALUE\\\"}}\" http://127.0.0.1:{m}/set-txt ;;\n\
             clear) curl -sSf -d \"{{\\\"host\\\":\\\"$PKI_ACME_NAME.\\\"}}\" http://127.0.0.1:{m}/clear-txt ;;\n\
             esac\n",
            calls = calls.display(),
            m = pebble.dns.port
        ),
    )
    .unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let out = rig.path("out/wild");
    rig.config(&format!(
        "{}[[certificate]]\nname = \"wild\"\ncommon_name = \"example.com\"\nsans = [\"*.example.com\"]\n\
         backend = \"public\"\n[[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        acme_backend(&pebble, &format!("challenge = \"dns-01\"\ndns_hook = [\"{}\"]", hook.display())),
        out.display()
    ));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 0, "{run:#?}\n{}", pebble.log());
    verifies_against_pebble(&pebble, &rig, &out);
    let names = rig.current("wild").info().subject_alt_names.clone();
    assert!(
        names
            .iter()
            .any(|n| matches!(n, pki::SubjectName::Dns(d) if d == "*.example.com")),
        "{names:?}"
    );
    // Both names' records were set, then cleared.
    let calls = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(
        calls.matches("set _acme-challenge.example.com").count(),
        2,
        "{calls}"
    );
    assert_eq!(
        calls.matches("clear _acme-challenge.example.com").count(),
        2,
        "{calls}"
    );
}

/// A failed order is not placed again on the next run (a timer every 15 minutes would use up
/// the server's failed-authorization limit): the wait is kept in the run state.
#[test]
fn a_failed_order_backs_off_across_runs() {
    let port = free_port();
    let Some(pebble) = Pebble::start(port, None) else {
        return;
    };
    let rig = Rig::new();
    // Nothing answers the challenges.
    rig.config(&format!(
        "{}{}",
        acme_backend(&pebble, &format!("listen = \"127.0.0.1:{}\"", free_port())),
        public_cert("www", "www.example.com", &rig.path("out/www"))
    ));
    let orders = || pebble.log().matches("POST /order-plz").count();
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    let placed = orders();
    assert_eq!(placed, 1, "{}", pebble.log());
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stderr.contains("not ordering again before") && run.stderr.contains("1 failed order"),
        "{run:#?}"
    );
    assert_eq!(orders(), placed, "no order while backing off");
    let state = std::fs::read_to_string(rig.path("state/state.json")).unwrap();
    assert!(state.contains("\"backoff\""), "{state}");
    // Forced, it orders anyway.
    assert_eq!(rig.rotate(&["--force"]).code, 1);
    assert_eq!(orders(), placed + 1);
}

/// 6-day certificates (`certificateValidityPeriod` in pebble's config), planned at fixed
/// times: kept until two thirds of their life, due from then on, at the point itself (an
/// ACME certificate has no jitter by default).
#[test]
fn six_day_certificates_renew_on_schedule() {
    let port = free_port();
    let Some(pebble) = Pebble::start(port, Some(6 * 86_400)) else {
        return;
    };
    let rig = Rig::new();
    rig.config(&format!(
        "{}{}",
        acme_backend(&pebble, &format!("listen = \"127.0.0.1:{port}\"")),
        public_cert("www", "www.example.com", &rig.path("out/www"))
    ));
    rig.rotate(&[]).ok();
    let cert = rig.current("www");
    let (nb, na) = (cert.info().not_before, cert.info().not_after);
    // pebble's NotAfter is inclusive: six days less a second.
    assert!((na - nb - time::Duration::days(6)).abs() <= time::Duration::seconds(1));
    let config = pki_deploy::config::load(&rig.config_path()).unwrap();
    let store = pki_deploy::store::Store::open(&config.state_dir);
    let (state, _) = pki_deploy::state::RunState::load(&config.state_dir);
    let certs: Vec<_> = config.certificates.iter().collect();
    let point = nb + (na - nb) * (2.0 / 3.0);
    for (at, due) in [
        (nb + time::Duration::days(1), false),
        (point - time::Duration::minutes(1), false),
        (point + time::Duration::seconds(1), true),
        (na - time::Duration::hours(1), true),
    ] {
        let input = pki_deploy::rotate::plan::PlanInput::new(&config, &store, &state, at);
        let planned = pki_deploy::rotate::plan::plan(&input, &certs);
        assert_eq!(
            planned[0].is_due(),
            due,
            "at {at}: {:?}",
            planned[0].decision
        );
    }
}

/// `pki issue`, `renew` and `revoke` with `--backend acme`: the same output files as the
/// other backends, and a revocation pebble records.
#[test]
fn issue_renew_and_revoke_from_the_command_line() {
    let port = free_port();
    let Some(pebble) = Pebble::start(port, None) else {
        return;
    };
    let rig = Rig::new();
    let settings = rig.path("acme.toml");
    std::fs::write(
        &settings,
        format!(
            "directory = \"{}\"\nca_cert = \"{}\"\nterms_agreed = true\nlisten = \"127.0.0.1:{port}\"\n",
            pebble.directory,
            pebble.tls_ca.display()
        ),
    )
    .unwrap();
    // It makes the command trust a CA file and maybe a hook: private, as a rotation config.
    std::fs::set_permissions(
        &settings,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let acme = [
        "--backend",
        "acme",
        "--acme-config",
        settings.to_str().unwrap(),
    ];
    let out = rig.path("site");
    let mut issue = vec!["issue", "www.example.com", "--out", out.to_str().unwrap()];
    issue.extend(acme);
    pki_tests::Pki::new(issue).run().ok();
    for f in ["cert.pem", "key.pem", "chain.pem", "fullchain.pem"] {
        assert!(out.join(f).is_file(), "{f}");
    }
    verifies_against_pebble(&pebble, &rig, &out);
    crate::rotate::check_pair(&out.join("cert.pem"), &out.join("key.pem"));
    let first =
        pki::Certificate::from_pem(&std::fs::read(out.join("cert.pem")).unwrap(), "cert").unwrap();
    // The account was kept beside the settings, private.
    let account = rig.path("acme-account.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&account).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let mut renew = vec!["renew", out.to_str().unwrap()];
    renew.extend(acme);
    pki_tests::Pki::new(renew).run().ok();
    let second =
        pki::Certificate::from_pem(&std::fs::read(out.join("cert.pem")).unwrap(), "cert").unwrap();
    assert_ne!(second.info().serial, first.info().serial);
    verifies_against_pebble(&pebble, &rig, &out);
    let mut revoke = vec![
        "revoke",
        out.join("cert.pem").to_str().unwrap().to_owned().leak() as &str,
        "--reason",
        "superseded",
    ];
    revoke.extend(acme);
    let run = pki_tests::Pki::new(revoke).run().ok();
    assert!(run.stdout.contains("Revoked serial"), "{run:#?}");
    assert!(
        pebble.log().contains("POST /revoke-cert"),
        "{}",
        pebble.log()
    );
    // A serial alone cannot be revoked through ACME: the certificate is needed.
    let serial = second.info().serial.to_hex();
    let mut by_serial = vec!["revoke", serial.as_str()];
    by_serial.extend(acme);
    let run = pki_tests::Pki::new(by_serial).run();
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("certificate file"), "{run:#?}");
    // The account kept is on pebble: pointed at another directory, it is refused, not used.
    let text = std::fs::read_to_string(&settings).unwrap().replace(
        &pebble.directory,
        "https://acme-staging-v02.api.letsencrypt.org/directory",
    );
    std::fs::write(&settings, text).unwrap();
    let mut again = vec![
        "issue",
        "www.example.com",
        "--out",
        out.to_str().unwrap(),
        "--force",
    ];
    again.extend(acme);
    let run = pki_tests::Pki::new(again).run();
    assert_ne!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("the account there is on"), "{run:#?}");
}

/// External account binding: a server that requires it takes the account with the key id and
/// the HMAC key from a 0600 file, and refuses it without them.
#[test]
fn an_account_with_external_binding() {
    let port = free_port();
    // 32 bytes, base64url, as a CA hands them out.
    let hmac = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let Some(pebble) = Pebble::start_eab(port, "kid-1", hmac) else {
        return;
    };
    let rig = Rig::new();
    let out = rig.path("out/www");
    let key_file = rig.path("eab.key");
    std::fs::write(&key_file, hmac).unwrap();
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let listen = format!("listen = \"127.0.0.1:{port}\"");
    // Without the binding the server refuses the account.
    rig.config(&format!(
        "{}{}",
        acme_backend(&pebble, &listen),
        public_cert("www", "www.example.com", &out)
    ));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("ACME account"), "{run:#?}");
    rig.config(&format!(
        "{}{}",
        acme_backend(
            &pebble,
            &format!(
                "{listen}\neab_key_id = \"kid-1\"\neab_hmac_file = \"{}\"",
                key_file.display()
            )
        ),
        public_cert("www", "www.example.com", &out)
    ));
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 0, "{run:#?}\n{}", pebble.log());
    verifies_against_pebble(&pebble, &rig, &out);
}
