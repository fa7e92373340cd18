//! `pki rotate`.

use anyhow::Result;
use pki::rotation::Decision;
use pki_deploy::log::{Level, LogFormat, Logger};
use pki_deploy::rotate::{self, RunSummary};
use pki_deploy::{Error, config};
use serde_json::{Value, json};

use crate::UsageError;
use crate::args::RotateArgs;
use crate::output;

/// Exit code when another run holds the lock (EX_TEMPFAIL: try again later).
pub(crate) const EXIT_LOCKED: u8 = 75;

pub(crate) async fn run(a: RotateArgs, json_out: bool) -> Result<u8> {
    let format = match a.log_format.as_str() {
        "human" => LogFormat::Human,
        "json" => LogFormat::Json,
        other => {
            return Err(
                UsageError(format!("--log-format {other:?}: expected human or json")).into(),
            );
        }
    };
    let log = Logger::new(format, Level::Info);
    let config = match config::load(&a.config) {
        Ok(c) => c,
        Err(e) => return Err(UsageError(e.to_string()).into()),
    };
    let options = rotate::Options {
        dry_run: a.dry_run,
        force: a.force,
        only: a.only,
        log,
    };
    let summary = match rotate::run(&config, &options).await {
        Ok(s) => s,
        Err(Error::LockHeld { path }) => {
            let msg = format!(
                "another `pki rotate` is running (lock {} is held); nothing done",
                path.display()
            );
            log.warn("locked", "", &msg, &[]);
            if json_out {
                output::print_json(&json!({ "locked": true, "lock": path }))?;
            }
            return Ok(EXIT_LOCKED);
        }
        Err(e) if e.is_config() => return Err(UsageError(e.to_string()).into()),
        Err(e) => return Err(e.into()),
    };
    if json_out {
        output::print_json(&summary_json(&summary))?;
    } else if summary.dry_run {
        print_plan(&summary);
    } else {
        let count = |a: &str| {
            summary
                .certificates
                .iter()
                .filter(|c| c.action == a)
                .count()
        };
        let failed = summary.certificates.iter().filter(|c| !c.ok()).count();
        let msg = format!(
            "run finished in {:.2}s: {} issued, {} redeployed, {} current, {failed} failed",
            summary.elapsed.as_secs_f64(),
            count("issued"),
            count("redeployed"),
            count("kept"),
        );
        if failed > 0 {
            log.error("run-finished", "", &msg, &[]);
        } else {
            log.info("run-finished", "", &msg, &[]);
        }
    }
    Ok(if summary.failed() { 1 } else { 0 })
}

fn print_plan(summary: &RunSummary) {
    for c in &summary.certificates {
        match &c.decision {
            Decision::Keep { renew_after } => {
                let stale: Vec<String> = c
                    .targets
                    .iter()
                    .filter(|t| t.action == "stale")
                    .map(|t| format!("{} ({})", t.label, t.detail.as_deref().unwrap_or("")))
                    .collect();
                if stale.is_empty() {
                    println!(
                        "{}: keep (renew after {})",
                        c.name,
                        output::Utc(*renew_after)
                    );
                } else {
                    println!(
                        "{}: keep (renew after {}); redeploy {}",
                        c.name,
                        output::Utc(*renew_after),
                        stale.join(", ")
                    );
                }
            }
            Decision::Issue { reason, detail } => {
                println!("{}: issue ({reason}: {detail})", c.name)
            }
        }
    }
}

fn summary_json(summary: &RunSummary) -> Value {
    let certs: Vec<Value> = summary
        .certificates
        .iter()
        .map(|c| {
            let current = c.current.as_ref().map(|cur| {
                json!({
                    "serial": cur.info().serial,
                    "not_after": output::time(cur.info().not_after),
                    "sha256_fingerprint": cur.info().sha256_fingerprint,
                })
            });
            json!({
                "name": c.name,
                "decision": c.decision,
                "action": c.action,
                "ok": c.ok(),
                "error": c.error,
                "current": current,
                "targets": c.targets.iter().map(|t| json!({
                    "target": t.label,
                    "action": t.action,
                    "detail": t.detail,
                    "error": t.error,
                    "rollback": t.rollback,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "dry_run": summary.dry_run,
        "started": output::time(summary.started),
        "finished": output::time(summary.finished),
        "ok": !summary.failed(),
        "certificates": certs,
        "report_errors": summary.report_errors,
    })
}
