//! `pki list`.

use std::io::{BufWriter, Write};

use anyhow::Result;
use pki::authority::{ListFilter, Record};
use pki::{clock, duration};

use super::Use;
use super::backend::open_backend;
use super::parse;
use crate::args::ListArgs;
use crate::output::{self, Format};

pub(crate) async fn run(a: ListArgs, format: Format) -> Result<u8> {
    let now = clock::now();
    let mut filter = ListFilter::default();
    filter.status = a.status.as_deref().map(parse).transpose()?;
    filter.expiring_before = a
        .expiring
        .as_deref()
        .map(duration::parse)
        .transpose()?
        .map(|d| now + d);
    let authority = open_backend(&a.ca, &a.backend, Use::Read).await?;
    // Rows are streamed: an inventory may hold a hundred thousand of them.
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut failure: Option<std::io::Error> = None;
    let write = |out: &mut BufWriter<_>, r: Record, first: bool| -> std::io::Result<()> {
        if format.is_json() {
            out.write_all(if first { b"[" } else { b"," })?;
            serde_json::to_writer(&mut *out, &r)?;
            Ok(())
        } else {
            writeln!(
                out,
                "{:<32}  {:<7}  {}  {:<13}  {:<10}  {}",
                r.serial,
                r.status.name(),
                output::Utc(r.not_after),
                r.profile.map_or("-", pki::Profile::name),
                r.key_algorithm.map_or("-", pki::KeyAlgorithm::name),
                r.common_name
            )
        }
    };
    if !format.is_json() {
        writeln!(
            out,
            "{:<32}  {:<7}  {:<20}  {:<13}  {:<10}  COMMON NAME",
            "SERIAL", "STATUS", "NOT AFTER", "PROFILE", "KEY"
        )?;
    }
    let mut count = 0usize;
    authority
        .list_each(&filter, now, |r| {
            if failure.is_none()
                && let Err(e) = write(&mut out, r, count == 0)
            {
                failure = Some(e);
            }
            count += 1;
            Ok(())
        })
        .await?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    if format.is_json() {
        out.write_all(if count == 0 { b"[]\n" } else { b"]\n" })?;
    }
    out.flush()?;
    Ok(0)
}
