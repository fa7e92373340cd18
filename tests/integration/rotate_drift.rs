//! `pki rotate` when the disk no longer matches what the last run left: files restored from a
//! backup, a lost or corrupt state file, a deleted store version, a changed configuration, a
//! planted symlink. Each run must notice, repair or refuse clearly, and keep what works.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use super::rotate::{Rig, check_pair};

/// A files target writing `cert.pem` and `key.pem` (and whatever `extra` adds) into `out/web`.
fn files_config(rig: &Rig, extra: &str) {
    rig.config(&format!(
        "[[certificate]]\nname = \"web\"\ncommon_name = \"web.example.internal\"\n\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\ncert = \"cert.pem\"\nkey = \"key.pem\"\n{extra}",
        rig.path("out/web").display()
    ));
}

fn plan(rig: &Rig) -> String {
    rig.rotate(&["--dry-run"]).ok().stdout
}

/// Nothing to issue, nothing to redeploy.
fn in_sync(rig: &Rig) -> bool {
    let p = plan(rig);
    p.starts_with("web: keep") && !p.contains("redeploy")
}

/// A run that fails with exit code 1 (rotate logs its errors; it does not end in `error:`).
#[track_caller]
fn rotate_fails(rig: &Rig) -> pki_tests::Run {
    let run = rig.rotate(&[]);
    assert_eq!(run.code, 1, "{run:#?}");
    run
}

fn is_link(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn files_restored_over_the_links_are_noticed_even_with_old_mtimes() {
    let rig = Rig::new();
    files_config(&rig, "");
    rig.rotate(&[]).ok();
    let out = rig.path("out/web");
    assert!(in_sync(&rig), "{}", plan(&rig));
    // A restore (`rsync -a`, `tar`) puts regular files back and resets the directory's mtime.
    let cert = std::fs::read(out.join("cert.pem")).unwrap();
    std::fs::remove_file(out.join("cert.pem")).unwrap();
    std::fs::write(out.join("cert.pem"), &cert).unwrap();
    assert!(
        Command::new("touch")
            .args(["-d", "2020-01-01"])
            .arg(&out)
            .status()
            .unwrap()
            .success()
    );
    let p = plan(&rig);
    assert!(p.contains("not the managed link"), "{p}");
    rig.rotate(&[]).ok();
    assert!(is_link(&out.join("cert.pem")));
    check_pair(&out.join("cert.pem"), &out.join("key.pem"));
    assert!(in_sync(&rig), "{}", plan(&rig));
}

#[test]
fn a_changed_target_configuration_is_deployed_as_a_new_version() {
    let rig = Rig::new();
    files_config(&rig, "");
    rig.rotate(&[]).ok();
    let serial = rig.current("web").info().serial.clone();
    // A CA file is added to the target: the same certificate, one more file.
    files_config(&rig, "ca = \"ca.pem\"\n");
    let p = plan(&rig);
    assert!(p.contains("configuration changed"), "{p}");
    rig.rotate(&[]).ok();
    let out = rig.path("out/web");
    let ca = std::fs::read(out.join("ca.pem")).expect("the new file resolves");
    assert!(!ca.is_empty());
    assert_eq!(rig.current("web").info().serial, serial, "nothing reissued");
    check_pair(&out.join("cert.pem"), &out.join("key.pem"));
    // A new key mode is a change too, and is applied.
    files_config(&rig, "ca = \"ca.pem\"\nkey_mode = \"0640\"\n");
    rig.rotate(&[]).ok();
    let mode = std::fs::metadata(out.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    assert!(in_sync(&rig), "{}", plan(&rig));
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_the_run_still_works() {
    let rig = Rig::new();
    files_config(&rig, "");
    rig.rotate(&[]).ok();
    let state = rig.path("state/state.json");
    std::fs::write(&state, b"{ not json").unwrap();
    let run = rig.rotate(&[]).ok();
    assert!(run.stderr.contains("not a state file"), "{run:#?}");
    assert!(rig.path("state/state.json.unreadable").exists());
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state).unwrap()).expect("a new state file");
    assert!(saved["certificates"]["web"].is_object(), "{saved}");
    check_pair(&rig.path("out/web/cert.pem"), &rig.path("out/web/key.pem"));
}

#[test]
fn a_deleted_store_version_is_issued_again() {
    let rig = Rig::new();
    files_config(&rig, "");
    rig.rotate(&[]).ok();
    let before = rig.current("web").info().serial.clone();
    let current = rig.path("state/certs/web/current");
    let file = std::fs::canonicalize(&current).unwrap();
    std::fs::remove_file(&file).unwrap();
    let run = rig.rotate(&[]).ok();
    let after = rig.current("web").info().serial.clone();
    assert_ne!(before, after, "{run:#?}");
    check_pair(&rig.path("out/web/cert.pem"), &rig.path("out/web/key.pem"));
    let served = pki::Certificate::from_pem(
        &std::fs::read(rig.path("out/web/cert.pem")).unwrap(),
        "deployed",
    )
    .unwrap();
    assert_eq!(served.info().serial, after);
}

#[test]
fn a_failed_repair_of_the_same_version_is_retried_by_the_next_run() {
    let rig = Rig::new();
    files_config(&rig, "");
    rig.rotate(&[]).ok();
    let out = rig.path("out/web");
    // The link is replaced by a copy; the repair's reload then fails.
    let cert = std::fs::read(out.join("cert.pem")).unwrap();
    std::fs::remove_file(out.join("cert.pem")).unwrap();
    std::fs::write(out.join("cert.pem"), &cert).unwrap();
    files_config(&rig, "reload_command = [\"false\"]\n");
    rotate_fails(&rig);
    // Still failing: the next run must try again and say so, not report the target in sync.
    let run = rotate_fails(&rig);
    assert!(run.stderr.contains("false"), "{run:#?}");
    files_config(&rig, "");
    rig.rotate(&[]).ok();
    assert!(in_sync(&rig), "{}", plan(&rig));
    check_pair(&out.join("cert.pem"), &out.join("key.pem"));
}

#[test]
fn a_planted_symlink_for_the_versions_directory_is_refused() {
    let rig = Rig::new();
    files_config(&rig, "");
    let out = rig.path("out/web");
    let elsewhere = rig.path("elsewhere");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, out.join(".pki")).unwrap();
    let run = rotate_fails(&rig);
    assert!(
        run.stderr.contains("refusing to write into") && run.stderr.contains("symbolic link"),
        "{run:#?}"
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // A directory others can write to is refused the same way.
    std::fs::remove_file(out.join(".pki")).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    let run = rotate_fails(&rig);
    assert!(run.stderr.contains("lets other users write"), "{run:#?}");
    assert!(!out.join("key.pem").exists());
}

#[test]
fn files_found_in_place_are_adopted_then_pruned() {
    let rig = Rig::new();
    files_config(&rig, "");
    let out = rig.path("out/web");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    rig.bootstrap(
        "web.example.internal",
        Some(&out.join("cert.pem")),
        Some(&out.join("key.pem")),
        None,
    );
    rig.rotate(&[]).ok();
    let versions = out.join(".pki/cert.pem");
    assert!(versions.join("adopted").is_dir(), "kept for a rollback");
    for _ in 0..3 {
        rig.rotate(&["--force"]).ok();
    }
    assert!(
        !versions.join("adopted").exists(),
        "the adopted files are old once newer versions are kept: {:?}",
        std::fs::read_dir(&versions)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect::<Vec<_>>()
    );
    let kept = std::fs::read_dir(&versions)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_dir())
        .count();
    assert_eq!(kept, 3, "current and two before");
    check_pair(&out.join("cert.pem"), &out.join("key.pem"));
}

/// Above 512 certificates the plan is made on several threads: it must still come out in the
/// config's order, with each certificate's own decision.
#[test]
fn a_large_configuration_is_planned_in_order() {
    let rig = Rig::new();
    let n = 600;
    let body: String = (0..n)
        .map(|i| {
            format!(
                "[[certificate]]\nname = \"c{i}\"\ncommon_name = \"c{i}.example.internal\"\n\
                 [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nfiles = [\"cert\"]\n\n",
                rig.path(&format!("out/c{i}")).display()
            )
        })
        .collect();
    rig.config(&body);
    rig.rotate(&[]).ok();
    // One certificate loses its store version: only it is due.
    let victim = rig.path("state/certs/c417/current");
    std::fs::remove_file(std::fs::canonicalize(&victim).unwrap()).unwrap();
    let p = plan(&rig);
    let lines: Vec<&str> = p.lines().collect();
    assert_eq!(lines.len(), n, "{p}");
    for (i, line) in lines.iter().enumerate() {
        let name = format!("c{i}: ");
        assert!(line.starts_with(&name), "line {i}: {line}");
        if i == 417 {
            assert!(line.contains(": issue"), "{line}");
        } else {
            assert!(
                line.contains(": keep") && !line.contains("redeploy"),
                "{line}"
            );
        }
    }
}
