//! `pki doctor`: each check's verdict and fix, against a real HAProxy and OpenBao.

use crate::rotate::Rig;

fn doctor(rig: &Rig) -> pki_tests::Run {
    let config = rig.config_path();
    pki_tests::Pki::new(["doctor", "--config", config.to_str().unwrap()])
        .env("VAULT_TOKEN", "unused")
        .run()
}

#[test]
fn doctor_checks_files_and_what_is_served() {
    if !pki_tests::require(&["haproxy"]) {
        return;
    }
    let rig = Rig::new();
    let (haproxy, pem) = rig.haproxy(&[]);
    let socket = haproxy.path("admin.sock");
    rig.config(&format!(
        "[[certificate]]\nname = \"lb\"\ncommon_name = \"localhost\"\nsans = [\"127.0.0.1\"]\n\
         [[certificate.target]]\ntype = \"haproxy\"\npem = \"{}\"\nsocket = \"{}\"\n\
         probe = {{ address = \"127.0.0.1:{}\" }}\n\n\
         [[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        pem.display(),
        socket.display(),
        haproxy.port,
        rig.path("out/api").display()
    ));
    // Before the first run: HAProxy serves its bootstrap certificate, the store has none.
    let before = doctor(&rig);
    assert_eq!(before.code, 1, "{before:#?}");
    assert!(before.stdout.contains("FAIL api files"), "{before:#?}");
    rig.rotate(&[]).ok();
    let fine = doctor(&rig);
    assert_eq!(fine.code, 0, "{fine:#?}");
    for needle in [
        "OK   config",
        "OK   state dir",
        "OK   backend default",
        "OK   lb haproxy",
        "as on disk and in the store",
    ] {
        assert!(fine.stdout.contains(needle), "{needle}: {fine:#?}");
    }
    // A key readable by the group: the check says so, and how to fix it.
    let key = rig.path("out/api/key.pem");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    let loose = doctor(&rig);
    assert_eq!(loose.code, 1, "{loose:#?}");
    let line = loose
        .stdout
        .lines()
        .find(|l| l.starts_with("FAIL api files"))
        .unwrap();
    assert!(
        line.contains("mode 0640") && line.contains("fix: pki rotate"),
        "{line}"
    );
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // The service down: what it serves cannot be checked, and that is a failure.
    drop(haproxy);
    let down = doctor(&rig);
    assert_eq!(down.code, 1, "{down:#?}");
    let line = down.stdout.lines().find(|l| l.contains("serves")).unwrap();
    assert!(
        line.starts_with("FAIL") && line.contains("fix: start or reload"),
        "{line}"
    );
}

#[test]
fn doctor_checks_vault_and_its_clock() {
    let Some(bao) = pki_tests::bao::Bao::dev() else {
        return;
    };
    bao.bootstrap();
    let rig = Rig::new();
    std::fs::write(
        rig.config_path(),
        format!(
            "state_dir = \"{}\"\n[backend]\ntype = \"vault\"\naddress = \"{}\"\nmount = \"pki\"\nrole = \"services\"\n\n\
             [[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\n\
             [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
            rig.path("state").display(),
            bao.addr,
            rig.path("out/api").display()
        ),
    )
    .unwrap();
    let run = pki_tests::bao::pki_clean(
        ["doctor", "--config", rig.config_path().to_str().unwrap()],
        bao.dir.path(),
    )
    .env("VAULT_TOKEN", &bao.token)
    .run();
    assert!(run.stdout.contains("OK   backend default"), "{run:#?}");
    assert!(run.stdout.contains("OK   clock: within"), "{run:#?}");
    // Nothing deployed yet: the files check fails, so doctor exits 1.
    assert_eq!(run.code, 1, "{run:#?}");
    // A wrong token: the backend check fails with a fix.
    let run = pki_tests::bao::pki_clean(
        ["doctor", "--config", rig.config_path().to_str().unwrap()],
        bao.dir.path(),
    )
    .env("VAULT_TOKEN", "not-a-token")
    .run();
    assert!(run.stdout.contains("FAIL backend default"), "{run:#?}");
}

/// A trust file: missing before the first run, the bundle after it, a stale or edited one
/// and a planted link each a failure with the fix.
#[test]
fn doctor_checks_trust_files_against_the_bundle() {
    let rig = Rig::new();
    let trust = rig.path("trust/internal.crt");
    rig.config(&format!(
        "[[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n\
         [[trust]]\npath = \"{}\"\n",
        rig.path("out/api").display(),
        trust.display()
    ));
    let line = |run: &pki_tests::Run| {
        run.stdout
            .lines()
            .find(|l| l.contains("trust "))
            .unwrap_or_default()
            .to_owned()
    };
    let before = doctor(&rig);
    assert_eq!(before.code, 1);
    assert!(
        line(&before).starts_with("FAIL") && line(&before).contains("missing"),
        "{before:#?}"
    );
    rig.rotate(&[]).ok();
    let fine = doctor(&rig);
    assert_eq!(fine.code, 0, "{fine:#?}");
    assert!(
        line(&fine).starts_with("OK") && line(&fine).contains("holds the 1 CA(s)"),
        "{fine:#?}"
    );
    // Another CA in it: stale.
    let other = pki_tests::TestCa::new(&[]);
    std::fs::write(&trust, std::fs::read(other.dir.join("root.pem")).unwrap()).unwrap();
    let stale = doctor(&rig);
    assert_eq!(stale.code, 1);
    assert!(
        line(&stale).contains("not the 1 of backend default")
            && line(&stale).contains("fix: pki rotate"),
        "{stale:#?}"
    );
    // A link: refused.
    std::fs::remove_file(&trust).unwrap();
    std::os::unix::fs::symlink(rig.path("ca/root.pem"), &trust).unwrap();
    let link = doctor(&rig);
    assert!(line(&link).contains("not a regular file"), "{link:#?}");
}
