//! `pki status`: each managed certificate as the store, the run state and the planner see it,
//! with exit codes for monitoring. Reads only; takes no lock and contacts no backend.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use pki::rotation::Decision;
use pki::{Certificate, clock};
use pki_deploy::config::{self, CertificateConfig};
use pki_deploy::rotate::plan::{self, PlanInput, Planned};
use pki_deploy::service::layout::Freshness;
use pki_deploy::state::RunState;
use pki_deploy::store::Store;
use serde::Serialize;
use time::OffsetDateTime;

use crate::UsageError;
use crate::output::{self, Format};

#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The rotation config.
    #[arg(long, value_name = "FILE", default_value = "/etc/pki/rotate.toml")]
    pub config: PathBuf,
}

/// One target: whether the version it serves was proven served by a probe.
#[derive(Serialize)]
struct TargetStatus {
    target: String,
    proven: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    why: Option<String>,
}

/// One certificate.
#[derive(Serialize)]
struct CertStatus {
    name: String,
    backend: String,
    serial: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    not_after: Option<OffsetDateTime>,
    /// Seconds left before expiry (negative once expired).
    seconds_left: Option<i64>,
    /// The next renewal point, or none when it is due now.
    #[serde(with = "time::serde::rfc3339::option")]
    renew_after: Option<OffsetDateTime>,
    due: Option<String>,
    last_result: Option<String>,
    last_error: Option<String>,
    targets: Vec<TargetStatus>,
    /// Why it needs attention (exit 1), if it does.
    problems: Vec<String>,
}

pub(crate) fn run(a: StatusArgs, format: Format) -> Result<u8> {
    let config = config::load(&a.config).map_err(|e| UsageError(e.to_string()))?;
    let store = Store::open(&config.state_dir);
    let (state, unreadable) = RunState::load(&config.state_dir);
    if let Some(problem) = unreadable {
        eprintln!("warning: {problem}");
    }
    let now = clock::now();
    let warning = config
        .report
        .expiry_warning
        .unwrap_or(pki_deploy::report::DEFAULT_EXPIRY_WARNING);
    let certs: Vec<&CertificateConfig> = config.certificates.iter().collect();
    let input = PlanInput::new(&config, &store, &state, now);
    let statuses: Vec<CertStatus> = plan::plan(&input, &certs)
        .into_iter()
        .map(|p| status_of(p, &store, &state, (now, warning)))
        .collect();
    let failing = statuses.iter().any(|s| !s.problems.is_empty());
    if format.is_json() {
        output::print_json(&statuses)?;
    } else {
        for s in &statuses {
            println!("{}", line(s));
        }
    }
    Ok(u8::from(failing))
}

fn status_of(
    p: Planned<'_>,
    store: &Store,
    state: &RunState,
    (now, warning): (OffsetDateTime, time::Duration),
) -> CertStatus {
    let name = p.cert.name.clone();
    let current: Option<Certificate> = p.current.clone().or_else(|| {
        p.version
            .as_ref()
            .and_then(|v| store.certificate(&name, v).ok())
    });
    let history = state.certificates.get(&name);
    let mut problems = Vec::new();
    let (serial, not_after) = match &current {
        Some(c) => (Some(c.info().serial.to_hex()), Some(c.info().not_after)),
        None => {
            problems.push("no certificate in the store".to_owned());
            (None, None)
        }
    };
    if let Some(t) = not_after {
        if t <= now {
            problems.push("expired".to_owned());
        } else if t - now <= warning {
            problems.push(format!(
                "expires within the expiry warning ({})",
                pki::duration::format(warning)
            ));
        }
    }
    let last_result = history.and_then(|h| h.last_result.clone());
    if last_result.as_deref() == Some("failed") {
        problems.push("the last run failed for it".to_owned());
    }
    let targets: Vec<TargetStatus> = p
        .cert
        .targets
        .iter()
        .zip(&p.targets)
        .map(|(t, f)| match f {
            Freshness::InSync => TargetStatus {
                target: t.label(),
                proven: true,
                why: None,
            },
            Freshness::Stale(why) => TargetStatus {
                target: t.label(),
                proven: false,
                why: Some(why.clone()),
            },
            _ => TargetStatus {
                target: t.label(),
                proven: false,
                why: Some("unknown".to_owned()),
            },
        })
        .collect();
    if targets.iter().any(|t| !t.proven) {
        problems.push("a target does not serve the current version (proven)".to_owned());
    }
    let (renew_after, due) = match &p.decision {
        Decision::Keep { renew_after } => (Some(*renew_after), None),
        Decision::Issue { reason, detail } => (None, Some(format!("{reason}: {detail}"))),
        _ => (None, None),
    };
    CertStatus {
        backend: p.cert.backend.clone(),
        serial,
        not_after,
        seconds_left: not_after.map(|t| (t - now).whole_seconds()),
        renew_after,
        due,
        last_result,
        last_error: history.and_then(|h| h.last_error.clone()),
        targets,
        problems,
        name,
    }
}

fn line(s: &CertStatus) -> String {
    let left = s.seconds_left.map_or_else(
        || "-".to_owned(),
        |secs| {
            if secs <= 0 {
                "expired".to_owned()
            } else {
                format!(
                    "{} left",
                    pki::duration::format(time::Duration::seconds(secs))
                )
            }
        },
    );
    let renew = match (&s.renew_after, &s.due) {
        (Some(t), _) => format!("renew after {}", output::Utc(*t)),
        (None, Some(why)) => format!("due now ({why})"),
        _ => "-".to_owned(),
    };
    let targets: Vec<String> = s
        .targets
        .iter()
        .map(|t| match &t.why {
            None => format!("{} proven", t.target),
            Some(why) => format!("{} NOT proven ({why})", t.target),
        })
        .collect();
    let mut text = format!(
        "{} [{}] serial {} until {} ({left}); {renew}; last run {}; {}",
        s.name,
        s.backend,
        s.serial.as_deref().unwrap_or("-"),
        s.not_after
            .map_or_else(|| "-".to_owned(), |t| output::Utc(t).to_string()),
        s.last_result.as_deref().unwrap_or("never"),
        targets.join(", ")
    );
    if !s.problems.is_empty() {
        text.push_str(&format!(" -- ATTENTION: {}", s.problems.join("; ")));
    }
    text
}
