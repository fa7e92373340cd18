//! `pki list`.

use std::io::{BufWriter, Write};

use anyhow::Result;
use pki::authority::ListFilter;
use pki::{clock, duration};

use super::{open_authority, parse};
use crate::args::ListArgs;
use crate::output;

pub(crate) async fn run(a: ListArgs, json: bool) -> Result<u8> {
    let now = clock::now();
    let filter = ListFilter {
        status: a.status.as_deref().map(parse).transpose()?,
        expiring_before: a
            .expiring
            .as_deref()
            .map(duration::parse)
            .transpose()?
            .map(|d| now + d),
    };
    let authority = open_authority(&a.ca, false)?;
    let records = authority.list(&filter, now).await?;
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    if json {
        // Compact: an inventory may hold a hundred thousand rows.
        serde_json::to_writer(&mut out, &records)?;
        writeln!(out)?;
    } else {
        let rows: Vec<Vec<String>> = records
            .iter()
            .map(|r| {
                vec![
                    r.serial.clone(),
                    r.status.name().to_owned(),
                    output::time(r.not_after),
                    r.profile.clone(),
                    r.key_algorithm.clone(),
                    r.common_name.clone(),
                ]
            })
            .collect();
        out.write_all(
            output::table(
                &[
                    "SERIAL",
                    "STATUS",
                    "NOT AFTER",
                    "PROFILE",
                    "KEY",
                    "COMMON NAME",
                ],
                &rows,
            )
            .as_bytes(),
        )?;
    }
    out.flush()?;
    Ok(0)
}
