//! The config frame, each service's keys and the error positions.

use super::*;
use crate::exec::CommandSpec;
use crate::service::Service;

const MINIMAL: &str = r#"
state_dir = "state"
[backend]
type = "offline"
ca_dir = "ca"

[[certificate]]
name = "web"
common_name = "web.example.internal"
[[certificate.target]]
type = "files"
dir = "out"
"#;

fn err(text: &str) -> String {
    parse(text, Path::new("/etc/pki/rotate.toml"))
        .unwrap_err()
        .to_string()
}

#[test]
fn minimal_config_and_defaults() {
    let c = parse(MINIMAL, Path::new("/etc/pki/rotate.toml")).unwrap();
    assert_eq!(c.state_dir, Path::new("/etc/pki/state"));
    let cert = &c.certificates[0];
    assert_eq!(cert.request.ttl(), DEFAULT_TTL);
    assert_eq!(cert.renew_at, RenewAt::default());
    assert_eq!(cert.targets[0].files().len(), 5);
    assert_eq!(cert.targets[0].key_mode(), 0o600);
    assert_eq!(cert.line, 7);
}

#[test]
fn unknown_keys_name_line_and_key() {
    let text = MINIMAL.replace("ca_dir = \"ca\"", "ca_dir = \"ca\"\ncolour = \"blue\"");
    let e = err(&text);
    assert!(
        e.contains("/etc/pki/rotate.toml:6:") && e.contains("colour"),
        "{e}"
    );
}

#[test]
fn wrong_types_and_values() {
    let e = err(&MINIMAL.replace("name = \"web\"", "name = 5"));
    assert!(e.contains(":8:"), "{e}");
    // The key's own line (the table's, before values were checked by key).
    let e = err(&MINIMAL.replace("name = \"web\"", "name = \"../web\""));
    assert!(e.contains("certificate.name") && e.contains(":8:"), "{e}");
    let e = err(&MINIMAL.replace(
        "common_name = \"web.example.internal\"",
        "common_name = \"web.example.internal\"\nttl = \"3q\"",
    ));
    assert!(e.contains("3q") && e.contains(":10:"), "{e}");
    let e = err(&MINIMAL.replace("type = \"files\"", "type = \"apache\""));
    assert!(e.contains("apache") && e.contains("target.type"), "{e}");
    let e = err(&MINIMAL.replace("dir = \"out\"", "dir = \"out\"\nsocket = \"/x\""));
    assert!(
        e.contains("socket") && e.contains("not a key of files"),
        "{e}"
    );
    let e = err(&MINIMAL.replace(
        "common_name = \"web.example.internal\"",
        "common_name = \"web.example.internal\"\nrenew_before = \"40d\"",
    ));
    assert!(e.contains("renew_before"), "{e}");
    for renew in ["renew_at = \"5%\"", "renew_before = \"28d\""] {
        let e = err(&MINIMAL.replace(
            "common_name = \"web.example.internal\"",
            &format!("common_name = \"web.example.internal\"\n{renew}"),
        ));
        assert!(e.contains("every run would renew"), "{renew}: {e}");
    }
}

fn with_target(target: &str) -> String {
    MINIMAL.replace("type = \"files\"\ndir = \"out\"", target)
}

#[test]
fn modes_are_octal_and_least_privilege() {
    let e = err(&with_target(
        "type = \"files\"\ndir = \"out\"\nkey_mode = 600",
    ));
    assert!(e.contains("decimal") && e.contains("\"0600\""), "{e}");
    let ok = parse(
        &with_target("type = \"files\"\ndir = \"out\"\nkey_mode = 0o640"),
        Path::new("x.toml"),
    )
    .unwrap();
    assert_eq!(ok.certificates[0].targets[0].key_mode(), 0o640);
    for (mode, why) in [
        ("\"0644\"", "every user read"),
        ("\"0660\"", "rewrite"),
        ("\"0700\"", "executable"),
        ("\"4600\"", "set-id"),
        ("\"0200\"", "owner read"),
    ] {
        let e = err(&with_target(&format!(
            "type = \"files\"\ndir = \"out\"\nkey_mode = {mode}"
        )));
        assert!(e.contains("key_mode") && e.contains(why), "{mode}: {e}");
    }
    let text = with_target("type = \"files\"\ndir = \"out\"\ncert_mode = \"0666\"");
    let e = err(&text);
    // The key's own line, not the table's.
    let line = text
        .lines()
        .position(|l| l.starts_with("cert_mode"))
        .unwrap()
        + 1;
    assert!(
        e.contains("cert_mode") && e.contains(&format!(":{line}:")),
        "{e}"
    );
    // A missing key: the table's header line.
    let text = format!("{MINIMAL}\n[report.uptime_kuma]\nca_cert = \"/x\"\n");
    let line = text
        .lines()
        .position(|l| l == "[report.uptime_kuma]")
        .unwrap()
        + 1;
    let e = err(&text);
    assert!(
        e.contains("push_url") && e.contains(&format!(":{line}:")),
        "{e}"
    );
}

#[test]
fn an_empty_file_list_is_refused() {
    let e = err(&with_target("type = \"files\"\ndir = \"out\"\nfiles = []"));
    assert!(e.contains("files") && e.contains("empty"), "{e}");
}

/// Validates as the root-run hook does, whoever runs the test.
fn as_root(text: &str) -> Result<Config> {
    let facts = Facts {
        host: "h".into(),
        writer: 0,
    };
    parse_with(text, Path::new("x.toml"), &facts)
}

#[test]
fn services_running_as_their_own_user_must_be_able_to_read_the_key() {
    let redis = "type = \"redis\"\ncert = \"/etc/redis/tls/r.crt\"\nkey = \"/etc/redis/tls/r.key\"\n\
                 socket = \"/run/redis/redis.sock\"\nprobe = { address = \"127.0.0.1:6379\" }";
    let e = as_root(&with_target(redis)).unwrap_err().to_string();
    assert!(e.contains("group") && e.contains("Redis"), "{e}");
    let c = as_root(&with_target(&format!("{redis}\ngroup = 0"))).unwrap();
    assert_eq!(c.certificates[0].targets[0].key_mode(), 0o640);

    let pg = "type = \"postgres\"\ncert = \"/etc/pg/s.crt\"\nkey = \"/etc/pg/s.key\"\n\
              probe = { address = \"127.0.0.1:5432\" }";
    // Owned by root: 0640 by default, and never more.
    let c = as_root(&with_target(&format!("{pg}\ngroup = 0"))).unwrap();
    assert_eq!(c.certificates[0].targets[0].key_mode(), 0o640);
    // Owned by the server: 0600 by default, and 0640 is refused.
    let c = as_root(&with_target(&format!("{pg}\nowner = 1"))).unwrap();
    assert_eq!(c.certificates[0].targets[0].key_mode(), 0o600);
    let e = as_root(&with_target(&format!(
        "{pg}\nowner = 1\nkey_mode = \"0640\""
    )))
    .unwrap_err()
    .to_string();
    assert!(e.contains("PostgreSQL refuses"), "{e}");
}

#[test]
fn service_targets_need_a_probe() {
    let text = MINIMAL.replace(
        "type = \"files\"\ndir = \"out\"",
        "type = \"nginx\"\ncert = \"/etc/nginx/web.crt\"\nkey = \"/etc/nginx/web.key\"",
    );
    assert!(err(&text).contains("probe"));
    let text = text.replace(
        "key = \"/etc/nginx/web.key\"",
        "key = \"/etc/nginx/web.key\"\nprobe = { address = \"127.0.0.1:443\" }",
    );
    let c = parse(&text, Path::new("x.toml")).unwrap();
    let Service::Nginx(nginx) = c.certificates[0].targets[0].service() else {
        panic!("not an nginx target");
    };
    assert_eq!(nginx.test_command, CommandSpec::of(&["nginx", "-t", "-q"]));
}

#[test]
fn percentages() {
    let text = MINIMAL.replace(
        "common_name = \"web.example.internal\"",
        "common_name = \"web.example.internal\"\nrenew_at = \"75%\"\njitter = 2",
    );
    let c = parse(&text, Path::new("x.toml")).unwrap();
    assert_eq!(c.certificates[0].renew_at, RenewAt::Fraction(0.75));
    assert!((c.certificates[0].jitter - 0.02).abs() < 1e-9);
    assert!(err(&text.replace("75%", "175%")).contains("outside"));
    // A jitter wider than the room before the renewal point is capped, not refused.
    let wide = parse(
        &text.replace("jitter = 2", "jitter = 90"),
        Path::new("x.toml"),
    )
    .unwrap();
    assert!((wide.certificates[0].jitter - 0.9).abs() < 1e-9);
    assert_eq!(
        parse(MINIMAL, Path::new("x.toml")).unwrap().certificates[0].jitter,
        DEFAULT_JITTER
    );
}

#[test]
fn a_large_config_is_read_in_order_and_its_first_error_is_reported() {
    let mut text =
        String::from("state_dir = \"state\"\n[backend]\ntype = \"offline\"\nca_dir = \"ca\"\n");
    for i in 0..(PARALLEL_READ + 100) {
        // Two bad tables, one in each half: the earlier is the one reported.
        let key = if i == 100 || i == PARALLEL_READ {
            "colour = \"red\"\n"
        } else {
            ""
        };
        text.push_str(&format!(
            "\n[[certificate]]\nname = \"c{i}\"\ncommon_name = \"c{i}.example.internal\"\n{key}\
             [[certificate.target]]\ntype = \"files\"\ndir = \"out/c{i}\"\n"
        ));
    }
    let first = text.lines().position(|l| l.starts_with("colour")).unwrap() + 1;
    let e = err(&text);
    assert!(
        e.contains(&format!("rotate.toml:{first}: certificate.colour")),
        "{e}"
    );
    let good = text.replace("colour = \"red\"\n", "");
    let c = parse(&good, Path::new("/etc/pki/rotate.toml")).unwrap();
    let names: Vec<_> = c.certificates.iter().map(|c| c.name.clone()).collect();
    let expected: Vec<_> = (0..PARALLEL_READ + 100).map(|i| format!("c{i}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn the_valid_fuzz_seeds_are_valid() {
    // The rotation_config fuzz target starts from these; a seed that no longer parses would
    // leave the fuzzer short of the deeper checks.
    for (name, text) in [
        (
            "minimal",
            include_str!("../../../../fixtures/fuzz/rotation_config/minimal.toml"),
        ),
        (
            "full",
            include_str!("../../../../fixtures/fuzz/rotation_config/full.toml"),
        ),
        (
            "quickstart",
            include_str!("../../../../fixtures/fuzz/rotation_config/quickstart.toml"),
        ),
        (
            "vault-debian-host",
            include_str!("../../../../fixtures/fuzz/rotation_config/vault-debian-host.toml"),
        ),
    ] {
        let c = as_root(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!c.certificates.is_empty(), "{name}");
    }
}

#[test]
fn a_push_url_given_inline_never_shows_in_debug_output() {
    let text = format!(
        "{MINIMAL}\n[report.uptime_kuma]\npush_url = \"https://kuma.example.internal/api/push/S3CRETPUSH\"\n"
    );
    let c = parse(&text, Path::new("/etc/pki/rotate.toml")).unwrap();
    let shown = format!("{c:?}");
    assert!(shown.contains("KumaConfig"), "{shown}");
    assert!(!shown.contains("S3CRETPUSH"), "{shown}");
}

const TWO_BACKENDS: &str = r#"
state_dir = "state"
[backends.internal]
type = "offline"
ca_dir = "ca"
[backends.public]
type = "vault"
address = "https://vault.example.internal:8200"
mount = "pki"
role = "web"

[defaults]
backend = "internal"

[[certificate]]
name = "api"
common_name = "api.example.internal"
[[certificate.target]]
type = "files"
dir = "api"

[[certificate]]
name = "www"
common_name = "www.example.com"
backend = "public"
[[certificate.target]]
type = "files"
dir = "www"
"#;

#[test]
fn named_backends_each_certificate_picks_one() {
    let c = parse(TWO_BACKENDS, Path::new("/etc/pki/rotate.toml")).unwrap();
    let names: Vec<_> = c.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["internal", "public"]);
    assert!(matches!(c.backend("internal"), Some(Backend::Offline(_))));
    assert!(matches!(c.backend("public"), Some(Backend::Vault(_))));
    assert_eq!(c.certificates[0].backend, "internal");
    assert_eq!(c.certificates[1].backend, "public");
    // The single table of before is the backend "default", which every certificate uses.
    let single = parse(MINIMAL, Path::new("x.toml")).unwrap();
    assert_eq!(single.backends.len(), 1);
    assert_eq!(single.certificates[0].backend, DEFAULT_BACKEND);
    // Beside [backend], a named one is picked by name and the rest use "default".
    let both = MINIMAL.replace(
        "[[certificate]]",
        "[backends.other]\ntype = \"offline\"\nca_dir = \"ca2\"\n\n[[certificate]]",
    );
    let both = parse(&both, Path::new("x.toml")).unwrap();
    assert_eq!(both.certificates[0].backend, DEFAULT_BACKEND);
}

#[test]
fn named_backend_errors_name_line_and_key() {
    let e = err(&TWO_BACKENDS.replace("backend = \"public\"", "backend = \"acme\""));
    assert!(
        e.contains(":25:") && e.contains("certificate \"www\": backend") && e.contains("\"acme\""),
        "{e}"
    );
    let e = err(&TWO_BACKENDS.replace("backend = \"internal\"\n", ""));
    assert!(
        e.contains("certificate \"api\": backend: required with several backends"),
        "{e}"
    );
    let e = err(&TWO_BACKENDS.replace("[backends.public]", "[backends.\"Public Site\"]"));
    assert!(
        e.contains(":6:") && e.contains("cannot name a backend"),
        "{e}"
    );
    let e = err(&TWO_BACKENDS.replace("type = \"vault\"", "type = \"vault\"\nnodes = 3"));
    assert!(e.contains("backends.public.") && e.contains(":8:"), "{e}");
    let e = err(&MINIMAL.replace(
        "[[certificate]]",
        "[backends.default]\ntype = \"offline\"\nca_dir = \"x\"\n[[certificate]]",
    ));
    assert!(e.contains("cannot name a backend"), "{e}");
    let e = err(&MINIMAL.replace("[backend]\ntype = \"offline\"\nca_dir = \"ca\"\n", ""));
    assert!(e.contains("backend: required"), "{e}");
}

#[test]
fn issuer_spread_defaults_by_backend_and_may_be_zero() {
    let c = parse(MINIMAL, Path::new("x.toml")).unwrap();
    assert_eq!(c.certificates[0].issuer_spread, Duration::ZERO);
    let vault = MINIMAL.replace(
        "type = \"offline\"\nca_dir = \"ca\"",
        "type = \"vault\"\naddress = \"https://vault.example.internal:8200\"\nmount = \"pki\"\nrole = \"web\"",
    );
    let c = parse(&vault, Path::new("x.toml")).unwrap();
    assert_eq!(c.certificates[0].issuer_spread, DEFAULT_VAULT_ISSUER_SPREAD);
    for (value, want) in [
        ("0", Duration::ZERO),
        ("0s", Duration::ZERO),
        ("6h", Duration::hours(6)),
    ] {
        let text = vault.replace(
            "common_name = \"web.example.internal\"",
            &format!("common_name = \"web.example.internal\"\nissuer_spread = \"{value}\""),
        );
        let c = parse(&text, Path::new("x.toml")).unwrap();
        assert_eq!(c.certificates[0].issuer_spread, want, "{value}");
    }
    let bad = vault.replace(
        "common_name = \"web.example.internal\"",
        "common_name = \"web.example.internal\"\nissuer_spread = \"-1h\"",
    );
    assert!(err(&bad).contains("issuer_spread"), "{}", err(&bad));
}
