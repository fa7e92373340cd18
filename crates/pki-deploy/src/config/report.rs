//! `[report]`: the Prometheus textfile, the expiry warning window, ntfy and Uptime Kuma.

use serde::Deserialize;
use time::Duration;

use super::de_opt_duration;
use super::doc::Table;
use crate::error::Result;
use crate::report::{KumaConfig, NtfyConfig, ReportConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReport {
    textfile: Option<String>,
    #[serde(default, deserialize_with = "de_opt_duration")]
    expiry_warning: Option<Duration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNtfy {
    url: String,
    token_file: Option<String>,
    priority: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    ca_cert: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKuma {
    push_url: Option<String>,
    push_url_file: Option<String>,
    ca_cert: Option<String>,
}

/// The priorities ntfy knows.
const PRIORITIES: [&str; 11] = [
    "1", "2", "3", "4", "5", "min", "low", "default", "high", "max", "urgent",
];

/// Reads `[report]` and its sub-tables.
pub(super) fn read(mut table: Table<'_>) -> Result<ReportConfig> {
    let ntfy = match table.take("ntfy") {
        Some(v) => Some(ntfy(table.of("report.ntfy.".into(), v, "ntfy")?)?),
        None => None,
    };
    let uptime_kuma = match table.take("uptime_kuma") {
        Some(v) => Some(kuma(table.of(
            "report.uptime_kuma.".into(),
            v,
            "uptime_kuma",
        )?)?),
        None => None,
    };
    let raw: RawReport = table.read("[report]")?;
    Ok(ReportConfig {
        textfile: raw.textfile.map(|p| table.source().path(&p)),
        expiry_warning: raw.expiry_warning,
        ntfy,
        uptime_kuma,
    })
}

fn ntfy(mut table: Table<'_>) -> Result<NtfyConfig> {
    let raw: RawNtfy = table.read("[report.ntfy]")?;
    if !raw.url.starts_with("http://") && !raw.url.starts_with("https://") {
        return Err(table.error("url", format!("{:?} is not an http(s) URL", raw.url)));
    }
    let mut ntfy = NtfyConfig::new(&raw.url);
    if let Some(priority) = raw.priority {
        if !PRIORITIES.contains(&priority.as_str()) {
            return Err(table.error(
                "priority",
                format!("{priority:?} is not 1–5, min, low, default, high, max or urgent"),
            ));
        }
        ntfy.priority = priority;
    }
    if raw.token_file.is_some() && !carries_secrets(&raw.url) {
        return Err(table.error(
            "url",
            "with token_file, must be https:// (plain http would send the token in clear \
             text; it is accepted only for a server on this machine)",
        ));
    }
    let src = table.source();
    ntfy.token_file = raw.token_file.map(|p| src.path(&p));
    ntfy.tags = raw.tags;
    ntfy.ca_cert = raw.ca_cert.map(|p| src.path(&p));
    Ok(ntfy)
}

fn kuma(mut table: Table<'_>) -> Result<KumaConfig> {
    let raw: RawKuma = table.read("[report.uptime_kuma]")?;
    if raw.push_url.is_some() == raw.push_url_file.is_some() {
        return Err(table.error("push_url", "give exactly one of push_url and push_url_file"));
    }
    if let Some(url) = &raw.push_url
        && !carries_secrets(url)
    {
        return Err(table.error(
            "push_url",
            "must be https:// (the URL carries the monitor's token; plain http is accepted only \
             for a server on this machine)",
        ));
    }
    let src = table.source();
    Ok(KumaConfig {
        push_url: raw.push_url,
        push_url_file: raw.push_url_file.map(|p| src.path(&p)),
        ca_cert: raw.ca_cert.map(|p| src.path(&p)),
    })
}

/// Whether `url` is one a token may travel to (see [`pki::tls::may_carry_secrets`]).
pub(crate) fn carries_secrets(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| pki::tls::may_carry_secrets(&u))
}
