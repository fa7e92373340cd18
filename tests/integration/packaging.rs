//! What the Debian package is built from: the man pages and completions `pki generate`
//! writes.

use pki_tests::Pki;

/// `pki generate` (hidden, for packaging): a man page per visible subcommand and the three
/// shells' completions, from the command line's own definitions.
#[test]
fn generate_writes_man_pages_and_completions() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("dist");
    Pki::new(["generate", "--out", out.to_str().unwrap()])
        .run()
        .ok();
    for page in [
        "pki.1",
        "pki-rotate.1",
        "pki-issue.1",
        "pki-status.1",
        "pki-ca-backup.1",
    ] {
        let text = std::fs::read_to_string(out.join("man").join(page)).unwrap();
        let name = page.trim_end_matches(".1");
        assert!(text.contains(&format!(".TH {name} 1")), "{page}");
    }
    // The hidden command documents nothing of itself.
    assert!(!out.join("man/pki-generate.1").exists());
    let bash = out.join("completions/pki.bash");
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&bash)
        .status()
        .unwrap();
    assert!(check.success());
    for file in ["pki.bash", "_pki", "pki.fish"] {
        let text = std::fs::read_to_string(out.join("completions").join(file)).unwrap();
        assert!(text.contains("rotate") && text.contains("status"), "{file}");
    }
}
