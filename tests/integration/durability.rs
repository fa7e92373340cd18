//! Durability against the machine failing, for real: a crash image of a file system taken the
//! moment `pki issue` has returned, and a target directory that is full. Both need root (a
//! loop device, a tmpfs mount); they fail under CI when they cannot have it.

use std::path::{Path, PathBuf};
use std::process::Command;

use pki::Certificate;
use pki_tests::{Pki, require_root, servers};

use crate::rotate::Rig;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A small ext4 file system on a loop device, mounted; unmounted and detached on drop.
struct LoopFs {
    dir: tempfile::TempDir,
    device: String,
}

impl LoopFs {
    fn new() -> Self {
        let dir = servers::short_tempdir();
        let img = dir.path().join("fs.img");
        run(Command::new("truncate").args(["-s", "64M"]).arg(&img));
        run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
        let device = run(Command::new("losetup").args(["--find", "--show"]).arg(&img))
            .trim()
            .to_owned();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        run(Command::new("mount").arg(&device).arg(&mnt));
        Self { dir, device }
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    /// What the device holds now: everything written to it, nothing still in the page cache
    /// only. Mounting it (after the journal replay a real crash would get) shows what a power
    /// cut at this instant would have left.
    fn crash_image(&self) -> PathBuf {
        let img = self.dir.path().join("crash.img");
        run(Command::new("dd")
            .arg(format!("if={}", self.device))
            .arg(format!("of={}", img.display()))
            .args(["bs=1M", "iflag=direct", "status=none"]));
        // The journal replayed, as at the next boot (exit 1: "errors corrected" is fine).
        let fsck = Command::new("e2fsck")
            .arg("-fy")
            .arg(&img)
            .output()
            .unwrap();
        assert!(fsck.status.code().is_some_and(|c| c <= 1), "{fsck:?}");
        img
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt()).status();
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

/// A crash image mounted read-only; unmounted on drop.
struct Mounted(PathBuf);

impl Mounted {
    fn new(img: &Path) -> Self {
        let mnt = img.with_extension("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        run(Command::new("mount")
            .args(["-o", "ro,loop"])
            .arg(img)
            .arg(&mnt));
        Self(mnt)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A fresh `pki issue`, then a crash the moment it has returned: all five files are whole
/// (the pair matches, the chain verifies) and the inventory records the serial. A file
/// written without a sync at the same moment is not on the image, which shows that it is
/// one of a crash.
#[test]
fn a_fresh_issue_survives_a_crash_right_after_it_returns() {
    if !require_root("a loop device") || !pki_tests::require(&["openssl"]) {
        return;
    }
    let fs = LoopFs::new();
    let (ca, out) = (fs.mnt().join("ca"), fs.mnt().join("out"));
    let dir = |p: &Path| p.to_str().unwrap().to_owned();
    Pki::new(["ca", "init", "--dir", &dir(&ca), "--insecure-no-passphrase"])
        .run()
        .ok();
    // The CA made durable first: what is tested is the issue.
    run(Command::new("sync").arg("-f").arg(&ca));
    let issued = Pki::new([
        "--json",
        "issue",
        "crash.example.internal",
        "--ca-dir",
        &dir(&ca),
        "--out",
        &dir(&out),
    ])
    .run()
    .ok();
    std::fs::write(fs.mnt().join("unsynced"), "written without a sync").unwrap();
    let serial = issued.json()["serial"].as_str().unwrap().to_owned();
    let image = Mounted::new(&fs.crash_image());
    assert!(
        !image.0.join("unsynced").exists(),
        "the image is not a crash image"
    );
    let got = image.0.join("out");
    for f in [
        "key.pem",
        "cert.pem",
        "chain.pem",
        "fullchain.pem",
        "ca.pem",
    ] {
        let len = std::fs::metadata(got.join(f)).unwrap().len();
        assert!(len > 0, "{f} is empty on the crash image");
    }
    let cert =
        Certificate::from_pem(&std::fs::read(got.join("cert.pem")).unwrap(), "cert").unwrap();
    let key =
        pki::PrivateKey::from_pem(&std::fs::read(got.join("key.pem")).unwrap(), "key").unwrap();
    assert!(cert.matches_key(&key));
    assert_eq!(cert.info().serial.to_hex(), serial);
    let verify = pki_tests::openssl([
        "verify",
        "-CAfile",
        &dir(&got.join("ca.pem")),
        "-untrusted",
        &dir(&got.join("chain.pem")),
        &dir(&got.join("cert.pem")),
    ]);
    assert_eq!(verify.code, 0, "{verify:#?}");
    // The inventory on the image (copied out: the image is mounted read-only).
    let copy = fs.dir.path().join("ca-copy");
    run(Command::new("cp")
        .arg("-a")
        .arg(image.0.join("ca"))
        .arg(&copy));
    let listed = Pki::new(["--json", "list", "--ca-dir", &dir(&copy)])
        .run()
        .ok();
    let serials: Vec<String> = listed
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serials, [serial]);
}

/// A target directory on a full file system: the rotation fails naming ENOSPC, the pair in
/// place stays (and still works as a pair a server loads), and no temporary file is left.
#[test]
fn a_full_disk_fails_the_rotation_and_keeps_the_old_pair_in_place() {
    if !require_root("mounting a tmpfs") || !pki_tests::require(&["openssl"]) {
        return;
    }
    let rig = Rig::new();
    let full = rig.path("full");
    std::fs::create_dir(&full).unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs"])
        .arg(&full));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _mounted = Unmount(full.clone());
    rig.config(&format!(
        "[[certificate]]\nname = \"full\"\ncommon_name = \"full.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\nfiles = [\"key\", \"cert\"]\n",
        full.display()
    ));
    rig.rotate(&[]).ok();
    let before = std::fs::read(full.join("cert.pem")).unwrap();
    // Fill what is left.
    let _ = Command::new("dd")
        .arg("if=/dev/zero")
        .arg(format!("of={}", full.join("filler").display()))
        .args(["bs=4k", "status=none"])
        .status();
    let run = rig.rotate(&["--force"]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("No space left on device"), "{run:#?}");
    assert_eq!(std::fs::read(full.join("cert.pem")).unwrap(), before);
    let cert = Certificate::from_pem(&before, "cert").unwrap();
    let key =
        pki::PrivateKey::from_pem(&std::fs::read(full.join("key.pem")).unwrap(), "key").unwrap();
    assert!(cert.matches_key(&key), "the pair in place is whole");
    let leftovers = run_find(&full);
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Every temporary name under `dir`.
fn run_find(dir: &Path) -> Vec<String> {
    let out = Command::new("find")
        .arg(dir)
        .args(["-name", ".pki-tmp-*"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
