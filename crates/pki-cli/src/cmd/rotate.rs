//! `pki rotate`.

use anyhow::Result;
use pki::rotation::Decision;
use pki_deploy::log::{Event, Level, LogFormat, Logger};
use pki_deploy::rotate::{self, CertAction, RunSummary, TargetAction};
use pki_deploy::{Error, config};
use serde_json::json;

use crate::UsageError;
use crate::args::{self, RotateArgs};
use crate::output::{self, Format};

/// Exit code when another run holds the lock (EX_TEMPFAIL: try again later).
pub(crate) const EXIT_LOCKED: u8 = 75;

pub(crate) async fn run(a: RotateArgs, format: Format) -> Result<u8> {
    let log_format = match a.log_format {
        args::LogFormat::Human => LogFormat::Human,
        args::LogFormat::Json => LogFormat::Json,
    };
    let log = Logger::new(log_format, Level::Info);
    let config = match config::load(&a.config) {
        Ok(c) => c,
        Err(e) => return Err(UsageError(e.to_string()).into()),
    };
    let mut options = rotate::Options::new(log);
    options.dry_run = a.dry_run;
    options.force = a.force;
    rotate::selected(&config, &a.only).map_err(|e| UsageError(format!("--only: {e}")))?;
    options.only = a.only;
    // A run from cron never prompts: the passphrase comes from the config's file or from here.
    options.ca_passphrase = crate::passphrase::source(None).passphrase()?;
    let summary = match rotate::run(&config, &options).await {
        Ok(s) => s,
        Err(e @ Error::LockHeld { .. }) => {
            log.warn(Event::run("locked", e.to_string()));
            if let (Format::Json, Error::LockHeld { path }) = (format, &e) {
                output::print_json(&json!({ "locked": true, "lock": path }))?;
            }
            return Ok(EXIT_LOCKED);
        }
        Err(e) if e.is_config() => return Err(UsageError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    if format.is_json() {
        output::print_json(&summary)?;
    } else if summary.dry_run {
        print_plan(&summary)?;
    } else {
        let failed = summary.certificates.iter().filter(|c| !c.ok()).count();
        let msg = format!(
            "run finished in {:.2}s: {} issued, {} redeployed, {} current, {failed} failed",
            summary.elapsed.as_secs_f64(),
            summary.count(CertAction::Issued),
            summary.count(CertAction::Redeployed),
            summary.count(CertAction::Kept),
        );
        if failed > 0 {
            log.error(Event::run("run-finished", msg));
        } else {
            log.info(Event::run("run-finished", msg));
        }
    }
    Ok(if summary.failed() { 1 } else { 0 })
}

fn print_plan(summary: &RunSummary) -> std::io::Result<()> {
    use std::io::Write;
    // One write for the whole plan, not one per line: a plan may list thousands.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for c in &summary.certificates {
        match &c.decision {
            Some(Decision::Keep { renew_after }) => {
                let stale: Vec<String> = c
                    .targets
                    .iter()
                    .filter(|t| t.action == TargetAction::Stale)
                    .map(|t| format!("{} ({})", t.label, t.detail.as_deref().unwrap_or("")))
                    .collect();
                write!(
                    out,
                    "{}: keep (renew after {})",
                    c.name,
                    output::Utc(*renew_after)
                )?;
                if !stale.is_empty() {
                    write!(out, "; redeploy {}", stale.join(", "))?;
                }
                writeln!(out)?;
            }
            Some(Decision::Issue { reason, detail }) => {
                writeln!(out, "{}: issue ({reason}: {detail})", c.name)?;
            }
            _ => writeln!(out, "{}: {}", c.name, c.action)?,
        }
    }
    out.flush()
}
