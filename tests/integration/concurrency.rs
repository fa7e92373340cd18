//! Several `pki` processes issuing into one CA directory at once.

use std::collections::HashSet;

use pki_tests::TestCa;

#[test]
fn four_processes_issue_fifty_each_with_distinct_serials() {
    let ca = TestCa::new(&[]);
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let dir = ca.dir.clone();
            let base = ca.path(&format!("w{w}"));
            std::thread::spawn(move || {
                let mut serials = Vec::new();
                for i in 0..50 {
                    let out = base.join(i.to_string());
                    let run = pki_tests::pki_in(
                        &dir,
                        [
                            "--json",
                            "issue",
                            &format!("w{w}-{i}.example.internal"),
                            "--out",
                            out.to_str().unwrap(),
                        ],
                    )
                    .ok();
                    serials.push(run.json()["serial"].as_str().unwrap().to_owned());
                }
                serials
            })
        })
        .collect();
    let mut all = HashSet::new();
    for w in workers {
        for s in w.join().unwrap() {
            assert!(all.insert(s.clone()), "serial {s} issued twice");
        }
    }
    assert_eq!(all.len(), 200);
    let listed = ca.pki(["--json", "list"]).ok().json();
    let listed: HashSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["serial"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed, all,
        "the inventory holds exactly the issued certificates"
    );
    // The sqlite3 shell checks the database independently (under CI its absence fails).
    if pki_tests::require(&["sqlite3"]) {
        let out = std::process::Command::new("sqlite3")
            .arg(ca.dir.join("inventory.db"))
            .arg("PRAGMA integrity_check;")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    }
}
