//! Printing: JSON on stdout with `--json`, text otherwise; errors on stderr, once, with their
//! causes.

use std::io::Write;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How results are printed: text for people, or JSON on stdout (`--json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// Lines for people.
    Text,
    /// JSON on stdout.
    Json,
}

impl Format {
    /// Whether results are JSON.
    pub(crate) fn is_json(self) -> bool {
        self == Self::Json
    }
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// An RFC 3339 timestamp.
/// A CA's name constraints on one line (`dns example.internal; ip 10.0.0.0/8; no ip
/// 0.0.0.0/0, ::/0`), or `None` when it has none.
pub(crate) fn constraints(c: &pki::constraints::Constraints) -> Option<String> {
    let list = |v: &[ipnet::IpNet]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut parts = Vec::new();
    if !c.permitted_dns.is_empty() {
        parts.push(format!("dns {}", c.permitted_dns.join(", ")));
    }
    if !c.permitted_ip.is_empty() {
        parts.push(format!("ip {}", list(&c.permitted_ip).join(", ")));
    }
    if !c.excluded_ip.is_empty() {
        parts.push(format!("no ip {}", list(&c.excluded_ip).join(", ")));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

pub(crate) fn time(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A UTC timestamp that displays as `2026-11-25T03:14:15Z` without allocating.
pub(crate) struct Utc(pub OffsetDateTime);

impl std::fmt::Display for Utc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

/// The messages of an error and its causes, without repeating text a cause already gave.
pub(crate) fn messages(err: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.iter().any(|prev| prev.contains(&text)) {
            continue;
        }
        out.push(text);
    }
    out
}

/// Prints an error on stderr (and as JSON on stdout with `--json`).
pub(crate) fn print_error(err: &anyhow::Error, format: Format) {
    let msgs = messages(err);
    let mut stderr = std::io::stderr().lock();
    if let Some((first, rest)) = msgs.split_first() {
        let _ = writeln!(stderr, "error: {first}");
        for cause in rest {
            let _ = writeln!(stderr, "  caused by: {cause}");
        }
    }
    let hint = crate::hints::hint(err);
    if let Some(h) = hint {
        let _ = writeln!(stderr, "  hint: {h}");
    }
    if format.is_json() {
        let _ = print_json(&serde_json::json!({ "error": msgs.join(": "), "hint": hint }));
    }
}

#[derive(Serialize)]
struct IssuedReport<'a> {
    serial: &'a pki::Serial,
    common_name: Option<&'a str>,
    subject_alt_names: &'a [pki::SubjectName],
    profile: Option<pki::Profile>,
    key_algorithm: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    not_after: OffsetDateTime,
    sha256_fingerprint: &'a str,
    issuer: &'a str,
    files: Vec<String>,
    warnings: &'a [String],
}

/// Reports an issued certificate and the files written.
pub(crate) fn issued(
    issued: &pki::IssuedCertificate,
    files: &[std::path::PathBuf],
    format: Format,
    verb: &str,
) -> anyhow::Result<()> {
    let c = issued.certificate.info();
    let report = IssuedReport {
        serial: &c.serial,
        common_name: c.common_name.as_deref(),
        subject_alt_names: &c.subject_alt_names,
        profile: c.profile,
        key_algorithm: &c.key_description,
        not_before: c.not_before,
        not_after: c.not_after,
        sha256_fingerprint: &c.sha256_fingerprint,
        issuer: &c.issuer,
        files: files.iter().map(|p| p.display().to_string()).collect(),
        warnings: &issued.warnings,
    };
    for w in &issued.warnings {
        eprintln!("warning: {w}");
    }
    if format.is_json() {
        return print_json(&report);
    }
    let names: Vec<String> = c
        .subject_alt_names
        .iter()
        .map(ToString::to_string)
        .collect();
    println!(
        "{verb} serial {} for {} ({}, {})",
        c.serial,
        c.common_name.as_deref().unwrap_or("-"),
        c.profile.map_or("-", pki::Profile::name),
        c.key_description
    );
    println!("  names   {}", names.join(", "));
    println!("  valid   {} to {}", time(c.not_before), time(c.not_after));
    println!("  sha256  {}", c.sha256_fingerprint);
    println!("  files   {}", report.files.join(" "));
    Ok(())
}
