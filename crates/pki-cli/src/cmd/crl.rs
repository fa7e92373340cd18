//! `pki crl`.

use std::io::Write;

use anyhow::Result;
use pki::fsio::{self, FileMode};
use pki::{clock, duration};

use super::Use;
use super::backend::open_backend;
use crate::args::CrlArgs;
use crate::output::{self, Format};

pub(crate) async fn run(a: CrlArgs, format: Format) -> Result<u8> {
    let next_update = duration::parse(&a.next_update)?;
    let authority = open_backend(&a.ca, &a.backend, Use::Sign).await?;
    let now = clock::now();
    let crl = authority.crl(next_update, now).await?;
    let retired = retired_crls(&authority, &a, next_update, now)?;
    // One file for all: Nginx, HAProxy and OpenSSL read every CRL a file holds.
    let mut pem = crl.pem();
    for r in &retired {
        pem.push_str(&r.pem());
    }
    if let Some(out) = &a.out {
        fsio::write_atomic(out, pem.as_bytes(), FileMode::PUBLIC)?;
    }
    if format.is_json() {
        output::print_json(&serde_json::json!({
            "number": crl.number,
            "entries": crl.entries,
            "this_update": output::time(crl.this_update),
            "next_update": output::time(crl.next_update),
            "file": a.out.as_ref().map(|p| p.display().to_string()),
            "pem": if a.out.is_none() { Some(&pem) } else { None },
            "retired_issuers": retired.len(),
        }))?;
    } else if let Some(out) = &a.out {
        println!(
            "Wrote CRL #{} with {} revoked certificate(s) to {}; next update {}",
            crl.number,
            crl.entries,
            out.display(),
            output::time(crl.next_update)
        );
        if !retired.is_empty() {
            println!(
                "  and {} CRL(s) signed by retired intermediates that still have unexpired \
                 certificates",
                retired.len()
            );
        }
    } else {
        std::io::stdout().lock().write_all(pem.as_bytes())?;
    }
    Ok(0)
}

/// The CRLs of an offline CA's retired intermediates still in use (none for Vault: its
/// issuers publish their own).
fn retired_crls(
    authority: &pki::authority::Authority,
    a: &CrlArgs,
    next_update: time::Duration,
    now: time::OffsetDateTime,
) -> Result<Vec<pki::authority::offline::SignedCrl>> {
    let pki::authority::Authority::Offline(ca) = authority else {
        return Ok(Vec::new());
    };
    if ca.retired_in_use(now)?.is_empty() {
        return Ok(Vec::new());
    }
    let passphrase = if ca.key_is_encrypted()? {
        Some(crate::passphrase::for_unlock(
            a.ca.passphrase_file.as_deref(),
        )?)
    } else {
        None
    };
    Ok(ca.retired_crls(passphrase.as_ref(), next_update, now)?)
}
