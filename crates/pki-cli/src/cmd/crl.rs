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
    let crl = authority.crl(next_update, clock::now()).await?;
    let pem = crl.pem();
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
        }))?;
    } else if let Some(out) = &a.out {
        println!(
            "Wrote CRL #{} with {} revoked certificate(s) to {}; next update {}",
            crl.number,
            crl.entries,
            out.display(),
            output::time(crl.next_update)
        );
    } else {
        std::io::stdout().lock().write_all(pem.as_bytes())?;
    }
    Ok(0)
}
