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

/// The alerting rules shipped for Prometheus: valid, their unit tests pass (synthetic series
/// for each alert), and the textfile a run writes passes `promtool check metrics`.
#[test]
fn prometheus_rules_and_the_textfile_pass_promtool() {
    if !pki_tests::require(&["promtool"]) {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus");
    let promtool = |args: &[&str]| {
        let out = std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    promtool(&["check", "rules", "pki.rules.yml"]);
    promtool(&["test", "rules", "pki.rules.test.yml"]);
    let rig = crate::rotate::Rig::new();
    let textfile = rig.path("metrics/pki.prom");
    rig.config(&format!(
        "[report]\ntextfile = \"{}\"\n\n[[certificate]]\nname = \"api\"\ncommon_name = \"api.example.internal\"\n\
         [[certificate.target]]\ntype = \"files\"\ndir = \"{}\"\n",
        textfile.display(),
        rig.path("out/api").display()
    ));
    rig.rotate(&[]).ok();
    let text = std::fs::read(&textfile).unwrap();
    let mut check = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(check.stdin.as_mut().unwrap(), &text).unwrap();
    drop(check.stdin.take());
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
