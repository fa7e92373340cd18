//! `pki revoke`.

use std::path::Path;

use anyhow::Result;
use pki::authority::{RevocationReason, RevokeOutcome};
use pki::{Certificate, Serial, clock};
use serde::Serialize;

use super::Use;
use super::backend::open_backend;
use super::{parse, read_pem};
use crate::args::RevokeArgs;
use crate::output::{self, Format};

#[derive(Serialize)]
struct Report {
    serial: Serial,
    reason: String,
    #[serde(with = "time::serde::rfc3339")]
    revoked_at: time::OffsetDateTime,
    already_revoked: bool,
}

pub(crate) async fn run(a: RevokeArgs, format: Format) -> Result<u8> {
    let reason: RevocationReason = parse(&a.reason)?;
    let path = Path::new(&a.target);
    let certificate = if path.is_file() {
        Some(Certificate::from_pem(&read_pem(path)?, &a.target)?)
    } else {
        None
    };
    let serial = match &certificate {
        Some(c) => c.info().serial.clone(),
        None => Serial::parse(&a.target)?,
    };
    let authority = open_backend(&a.ca, &a.backend, Use::Read).await?;
    let vault = !authority.records_revocation_reasons();
    if vault && reason != RevocationReason::Unspecified {
        eprintln!(
            "warning: Vault records no revocation reason; {} is not sent",
            reason.name()
        );
    }
    let now = clock::now();
    let outcome = match &certificate {
        Some(c) => authority.revoke_certificate(c, reason, now).await?,
        None => authority.revoke(&serial, reason, now).await?,
    };
    let report = match outcome {
        RevokeOutcome::Revoked => Report {
            serial,
            reason: reason.name().to_owned(),
            revoked_at: now,
            already_revoked: false,
        },
        RevokeOutcome::AlreadyRevoked(at, why) => Report {
            serial,
            reason: why.name().to_owned(),
            revoked_at: at,
            already_revoked: true,
        },
    };
    if format.is_json() {
        output::print_json(&report)?;
    } else if report.already_revoked {
        println!(
            "Serial {} was already revoked at {} ({}); nothing changed",
            report.serial,
            output::time(report.revoked_at),
            report.reason
        );
    } else if authority.kind() == "acme" {
        println!(
            "Revoked serial {} ({}) at the ACME server; it publishes the revocation itself",
            report.serial, report.reason
        );
    } else {
        if vault {
            println!(
                "Revoked serial {}; Vault has rebuilt its CRL (fetch it with `pki crl`)",
                report.serial
            );
        } else {
            println!(
                "Revoked serial {} ({}); publish a new CRL with `pki crl`",
                report.serial, report.reason
            );
        }
    }
    Ok(0)
}
