//! `pki rotate`.

use anyhow::Result;
use pki::rotation::Decision;
use pki_deploy::log::{Event, Level, LogFormat, Logger};
use pki_deploy::rotate::{self, CertAction, RunSummary, TargetAction, TrustAction};
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
    if a.orphans {
        return orphans(&config, format);
    }
    hard_stop(config.run_timeout, log);
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
        let mut msg = format!(
            "run finished in {:.2}s: {} issued, {} redeployed, {} current, {failed} failed",
            summary.elapsed.as_secs_f64(),
            summary.count(CertAction::Issued),
            summary.count(CertAction::Redeployed),
            summary.count(CertAction::Kept),
        );
        if !summary.trust.is_empty() {
            let count = |a| summary.trust.iter().filter(|t| t.action == a).count();
            msg.push_str(&format!(
                "; trust files: {} written, {} in sync, {} failed",
                count(TrustAction::Updated),
                count(TrustAction::InSync),
                count(TrustAction::Failed)
            ));
        }
        if summary.failed() {
            log.error(Event::run("run-finished", msg));
        } else {
            log.info(Event::run("run-finished", msg));
        }
    }
    Ok(if summary.failed() { 1 } else { 0 })
}

/// `--orphans`: what the run state holds of certificates issued and never stored.
fn orphans(config: &config::Config, format: Format) -> Result<u8> {
    let (mut state, unreadable) = pki_deploy::state::RunState::load(&config.state_dir);
    if let Some(problem) = unreadable {
        anyhow::bail!("{problem}");
    }
    let now = pki::clock::now().unix_timestamp();
    let orphans = state.orphans(now);
    let when = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .map(|t| pki::error::Rfc3339(t).to_string())
            .unwrap_or_default()
    };
    if format.is_json() {
        let list: Vec<_> = orphans
            .iter()
            .map(|(serial, r)| {
                json!({
                    "name": r.name, "serial": serial,
                    "not_after": when(r.not_after), "recorded": when(r.recorded),
                })
            })
            .collect();
        output::print_json(&list)?;
        return Ok(0);
    }
    let mut out = String::new();
    for (serial, r) in &orphans {
        out.push_str(&format!(
            "{}: serial {serial}, valid until {}, issued {} and never stored\n",
            r.name,
            when(r.not_after),
            when(r.recorded)
        ));
    }
    if orphans.is_empty() {
        out.push_str("no orphaned certificate\n");
    }
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())?;
    Ok(0)
}

/// How long after `run_timeout` a run that its own watchdog could not stop is ended.
const HARD_STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The run's watchdog stops it at its next await past `run_timeout`; a thread stuck in a
/// system call (a hung mount, a peer the kernel waits on) never gets there. This thread ends
/// the process a grace period later, with exit status 1: the kernel releases the lock and the
/// timer's next run starts afresh, as after a crash, which every write is made to survive.
fn hard_stop(run_timeout: time::Duration, log: Logger) {
    let Ok(limit) = std::time::Duration::try_from(run_timeout) else {
        return;
    };
    let Some(at) = limit.checked_add(HARD_STOP_GRACE) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("hard-stop".into())
        .spawn(move || {
            std::thread::sleep(at);
            log.error(Event::run(
                "hard-stop",
                format!(
                    "the run is still going {}s past run_timeout ({}); stopping the process",
                    HARD_STOP_GRACE.as_secs(),
                    pki::duration::format(run_timeout)
                ),
            ));
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        log.warn(Event::run(
            "hard-stop",
            format!("no hard stop for this run: {e}"),
        ));
    }
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
                    "{}: keep (renew after {}; backend {})",
                    c.name,
                    output::Utc(*renew_after),
                    c.backend
                )?;
                if !stale.is_empty() {
                    write!(out, "; redeploy {}", stale.join(", "))?;
                }
                writeln!(out)?;
            }
            Some(Decision::Issue { reason, detail }) => {
                writeln!(
                    out,
                    "{}: issue ({reason}: {detail}; backend {})",
                    c.name, c.backend
                )?;
            }
            _ => match &c.error {
                Some(e) => writeln!(out, "{}: {} (backend {}: {e})", c.name, c.action, c.backend)?,
                None => writeln!(out, "{}: {} (backend {})", c.name, c.action, c.backend)?,
            },
        }
    }
    for t in &summary.trust {
        let what = match t.action {
            TrustAction::InSync => "in sync",
            TrustAction::WouldUpdate | TrustAction::Updated => "write",
            TrustAction::Failed => "cannot write",
            _ => "unknown",
        };
        write!(
            out,
            "trust {}: {what} ({} CA(s) of backend {}",
            t.path.display(),
            t.cas,
            t.backend
        )?;
        match &t.error {
            Some(e) => writeln!(out, ": {e})")?,
            None => writeln!(out, ")")?,
        }
    }
    out.flush()
}
