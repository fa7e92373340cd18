//! The rotation config: `pki_deploy::config::parse_with` on arbitrary UTF-8 text, as root and
//! as an ordinary user. Nothing may panic; a config that is accepted has unique, file-safe
//! certificate names, each with a target; every duration in the text that parses survives a
//! round trip through `duration::format`.

#![no_main]

use std::collections::HashSet;
use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use pki::duration;
use pki_deploy::config::{Facts, parse_with};

static AS_ROOT: LazyLock<Facts> = LazyLock::new(|| pki_deploy::fuzzing::facts("fuzz-host", 0));
static AS_USER: LazyLock<Facts> = LazyLock::new(|| pki_deploy::fuzzing::facts("fuzz-host", 1000));

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Which uid writes changes the key-mode rules: take both, by the parity of the length.
    let facts = if data.len() % 2 == 0 {
        &*AS_ROOT
    } else {
        &*AS_USER
    };
    if let Ok(config) = parse_with(text, Path::new("/etc/pki/rotate.toml"), facts) {
        assert!(config.run_timeout > time::Duration::ZERO);
        let mut names = HashSet::new();
        for c in &config.certificates {
            assert!(names.insert(c.name.as_str()), "{:?} twice", c.name);
            assert!(pki::name::file_component(&c.name).is_ok());
            assert!(!c.targets.is_empty());
            let _ = c.desired();
        }
    }
    for word in text
        .split(|c: char| c.is_whitespace() || matches!(c, '"' | '=' | '\''))
        .take(64)
    {
        if let Ok(d) = duration::parse(word) {
            let shown = duration::format(d);
            let back = duration::parse(&shown)
                .unwrap_or_else(|e| panic!("{word:?} formats as {shown:?}, which fails: {e}"));
            assert_eq!(back, d, "{word:?} formats as {shown:?}");
        }
    }
});
