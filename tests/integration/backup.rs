//! `pki ca backup` and `pki ca restore`: a consistent copy of a live CA while other processes
//! issue, restored, identical, and able to issue again.

use std::process::Command;

use pki_tests::{Pki, TestCa};

/// The serials `pki list --json` gives for the CA in `dir`, in its order.
fn listed(dir: &std::path::Path) -> serde_json::Value {
    Pki::new(["--json", "list", "--ca-dir", dir.to_str().unwrap()])
        .run()
        .ok()
        .json()
}

#[test]
fn a_live_ca_is_backed_up_restored_and_issues_again() {
    let ca = TestCa::new(&[]);
    for i in 0..3 {
        ca.issue(&format!("before-{i}"));
    }
    // Two processes issue while backups are taken: each backup is a consistent snapshot.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let dir = ca.dir.clone();
            let out = ca.path(&format!("w{w}"));
            std::thread::spawn(move || {
                for i in 0..8 {
                    pki_tests::pki_in(
                        &dir,
                        [
                            "issue",
                            &format!("w{w}-{i}.example.internal"),
                            "--out",
                            out.join(i.to_string()).to_str().unwrap(),
                        ],
                    )
                    .ok();
                }
            })
        })
        .collect();
    for b in 0..3 {
        let archive = ca.path(&format!("live-{b}.tar"));
        ca.pki(["ca", "backup", "--out", archive.to_str().unwrap()])
            .ok();
        let restored = ca.path(&format!("restored-live-{b}"));
        let run = Pki::new([
            "ca",
            "restore",
            archive.to_str().unwrap(),
            "--dir",
            restored.to_str().unwrap(),
        ])
        .run()
        .ok();
        assert!(run.stdout.contains("Restored"), "{run:#?}");
        let n = listed(&restored).as_array().unwrap().len();
        assert!((3..=19).contains(&n), "{n} certificates in a live backup");
    }
    for w in writers {
        w.join().unwrap();
    }
    // Quiet now: the restored CA lists exactly what the original does.
    let archive = ca.path("final.tar");
    ca.pki(["ca", "backup", "--out", archive.to_str().unwrap()])
        .ok();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&archive).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let restored = ca.path("restored");
    Pki::new([
        "ca",
        "restore",
        archive.to_str().unwrap(),
        "--dir",
        restored.to_str().unwrap(),
    ])
    .run()
    .ok();
    let original = listed(&ca.dir);
    assert_eq!(original.as_array().unwrap().len(), 19);
    assert_eq!(listed(&restored), original);
    // The restored CA issues, verifiably, and its new serial is none of the old ones.
    let out = ca.path("after-restore");
    pki_tests::pki_in(
        &restored,
        [
            "issue",
            "after.example.internal",
            "--out",
            out.to_str().unwrap(),
        ],
    )
    .ok();
    let verify = pki_tests::openssl([
        "verify".to_owned(),
        "-CAfile".to_owned(),
        restored.join("root.pem").display().to_string(),
        "-untrusted".to_owned(),
        restored.join("intermediate.pem").display().to_string(),
        out.join("cert.pem").display().to_string(),
    ]);
    assert_eq!(verify.code, 0, "{verify:#?}");
    let serial = pki::Certificate::from_pem(&std::fs::read(out.join("cert.pem")).unwrap(), "cert")
        .unwrap()
        .info()
        .serial
        .to_hex();
    assert!(
        !original
            .to_string()
            .to_lowercase()
            .contains(&serial.to_lowercase())
    );
    // A restore refuses a directory in use and an archive that was tampered with.
    let run = Pki::new([
        "ca",
        "restore",
        archive.to_str().unwrap(),
        "--dir",
        restored.to_str().unwrap(),
    ])
    .run();
    assert_ne!(run.code, 0, "{run:#?}");
    let mut bytes = std::fs::read(&archive).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    let bad = ca.path("bad.tar");
    std::fs::write(&bad, bytes).unwrap();
    let run = Pki::new([
        "ca",
        "restore",
        bad.to_str().unwrap(),
        "--dir",
        ca.path("never").to_str().unwrap(),
    ])
    .run();
    assert_ne!(run.code, 0, "{run:#?}");
}

#[test]
fn the_keys_stay_encrypted_in_a_backup() {
    let (ca, _) = TestCa::encrypted("a long passphrase for the test");
    let dir = ca.dir.clone();
    let archive = ca.path("ca.tar");
    Pki::new([
        "ca",
        "backup",
        "--ca-dir",
        dir.to_str().unwrap(),
        "--out",
        archive.to_str().unwrap(),
    ])
    .run()
    .ok();
    for key in ["root.key.pem", "intermediate.key.pem"] {
        let out = Command::new("tar")
            .arg("-xOf")
            .arg(&archive)
            .arg(key)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
            "{key}: {text}"
        );
    }
}
