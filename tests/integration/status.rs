//! `pki status`: what monitoring asks of each managed certificate, and its exit codes.

use crate::rotate::Rig;

/// `pki status` of the rig's config, with `extra` global flags (`--json`).
fn status(rig: &Rig, extra: &[&str]) -> pki_tests::Run {
    let config = rig.config_path();
    let mut args = extra.to_vec();
    args.extend(["status", "--config", config.to_str().unwrap()]);
    pki_tests::Pki::new(args).run()
}

#[test]
fn status_lines_and_exit_codes() {
    let rig = Rig::new();
    let cert = |name: &str, ttl: &str| {
        format!(
            "[[certificate]]\nname = \"{name}\"\ncommon_name = \"{name}.example.internal\"\nttl = \"{ttl}\"\n\
             [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n\n",
            rig.path(&format!("out/{name}")).display()
        )
    };
    rig.config(&format!("{}{}", cert("api", "30d"), cert("db", "30d")));
    // Nothing issued yet: exit 1, and it says why.
    let before = status(&rig, &[]);
    assert_eq!(before.code, 1, "{before:#?}");
    assert!(
        before.stdout.contains("no certificate in the store"),
        "{before:#?}"
    );
    rig.rotate(&[]).ok();
    // All fine: exit 0, one line each with backend, serial, expiry, renewal, last run, targets.
    let fine = status(&rig, &[]);
    assert_eq!(fine.code, 0, "{fine:#?}");
    let api_serial = rig.current("api").info().serial.to_hex();
    let line = fine.stdout.lines().find(|l| l.starts_with("api ")).unwrap();
    for part in [
        "[default]",
        api_serial.as_str(),
        "left",
        "renew after",
        "last run ok",
        "proven",
    ] {
        assert!(
            line.to_lowercase().contains(&part.to_lowercase()),
            "{part}: {line}"
        );
    }
    assert!(!fine.stdout.contains("ATTENTION"), "{fine:#?}");
    let json = status(&rig, &["--json"]);
    assert_eq!(json.code, 0);
    let v = json.json();
    assert_eq!(v[0]["name"], "api");
    assert_eq!(v[0]["backend"], "default");
    assert_eq!(v[0]["targets"][0]["proven"], true);
    assert!(v[0]["seconds_left"].as_i64().unwrap() > 29 * 86_400);
    // A target whose files were removed is not proven any more: exit 1.
    std::fs::remove_file(rig.path("out/db/cert.pem")).unwrap();
    let stale = status(&rig, &[]);
    assert_eq!(stale.code, 1, "{stale:#?}");
    let line = stale.stdout.lines().find(|l| l.starts_with("db ")).unwrap();
    assert!(
        line.contains("NOT proven") && line.contains("ATTENTION"),
        "{line}"
    );
    rig.rotate(&[]).ok();
    assert_eq!(status(&rig, &[]).code, 0);
    // Inside the expiry warning: exit 1.
    rig.config(&format!(
        "[report]\nexpiry_warning = \"40d\"\n\n{}{}",
        cert("api", "30d"),
        cert("db", "30d")
    ));
    let warned = status(&rig, &[]);
    assert_eq!(warned.code, 1, "{warned:#?}");
    assert!(
        warned.stdout.contains("expires within the expiry warning"),
        "{warned:#?}"
    );
    // A config error: exit 2.
    rig.config("[[certificate]]\nname = \"x\"\n");
    assert_eq!(status(&rig, &[]).code, 2);
}
