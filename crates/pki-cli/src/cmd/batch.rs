//! `pki issue --batch FILE`: one certificate per line of FILE (`COMMON_NAME [SAN...]`), each
//! written to `OUT/<common name>/` as `pki issue` would, with up to `--concurrency` requests in
//! flight (Vault) and a progress bar when stderr is a terminal.
//!
//! Each directory is written atomically once its certificate is checked: a run that stops half
//! way (Vault sealed or gone) leaves complete directories and absent ones, never a partial one.
//! The first failure stops new requests; the certificates already written stay.

use std::collections::{BTreeMap, HashSet};
use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pki::authority::Batch;
use pki::bundle::{self, Contents};
use pki::{CertificateRequest, SubjectName, clock, name};
use serde::Serialize;

use super::Use;
use super::backend::open_backend;
use super::parse;
use crate::UsageError;
use crate::args::IssueArgs;
use crate::output::{self, Format};

/// Largest batch file read.
const MAX_BATCH_FILE: u64 = 16 << 20;

#[derive(Serialize)]
struct Written {
    name: String,
    dir: PathBuf,
    serial: String,
    #[serde(with = "time::serde::rfc3339")]
    not_after: time::OffsetDateTime,
}

/// The directory name for a common name: lower case, `*` spelled `_wildcard_`, and then the
/// file-name rules every name used as a path must pass.
fn dir_name(common_name: &str) -> Result<String> {
    let lowered = common_name.to_ascii_lowercase().replace('*', "_wildcard_");
    Ok(name::file_component(&lowered)?.to_owned())
}

/// Parses the batch file into (directory, request) pairs, naming the line of any mistake.
fn read_batch(
    path: &Path,
    profile: pki::Profile,
    ttl: time::Duration,
) -> Result<Vec<(String, CertificateRequest)>> {
    let bytes = pki::fsio::read_limited(path, MAX_BATCH_FILE)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| UsageError(format!("{} is not UTF-8 text", path.display())))?;
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at =
            |e: &dyn std::fmt::Display| UsageError(format!("{}:{}: {e}", path.display(), n + 1));
        let mut words = line.split_whitespace();
        let Some(cn) = words.next() else { continue };
        let names = words
            .map(SubjectName::parse)
            .collect::<pki::Result<Vec<_>>>()
            .map_err(|e| at(&e))?;
        let request = CertificateRequest::new(cn, names, profile, ttl).map_err(|e| at(&e))?;
        let dir = dir_name(cn).map_err(|e| at(&e))?;
        if !seen.insert(dir.clone()) {
            return Err(at(&format!("{dir} appears twice")).into());
        }
        out.push((dir, request));
    }
    if out.is_empty() {
        return Err(UsageError(format!("{} lists no certificate", path.display())).into());
    }
    Ok(out)
}

fn progress_bar(len: usize, format: Format) -> ProgressBar {
    if format.is_json() || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{bar:40} {pos}/{len} certificates  {per_sec}  ETA {eta}  {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

pub(crate) async fn run(a: IssueArgs, format: Format) -> Result<u8> {
    let Some(batch) = a.batch.as_deref() else {
        return Err(UsageError("--batch FILE is required".to_owned()).into());
    };
    let profile = parse(&a.profile)?;
    let ttl = a.ttl.0;
    let algorithm = parse(&a.key)?;
    if a.concurrency == 0 || a.concurrency > 256 {
        return Err(UsageError("--concurrency must be from 1 to 256".to_owned()).into());
    }
    let entries = read_batch(batch, profile, ttl)?;
    // Every output directory is checked before the first request, so a clash is found before
    // anything is issued.
    for (dir, _) in &entries {
        bundle::check_output(&a.out.join(dir), Contents::ALL, a.existing())?;
    }
    let requests: Vec<CertificateRequest> = entries.iter().map(|(_, r)| r.clone()).collect();
    let authority = open_backend(&a.ca, &a.backend, Use::Sign).await?;
    let bar = progress_bar(requests.len(), format);
    let mut written: Vec<Written> = Vec::new();
    let mut warnings: BTreeMap<String, usize> = BTreeMap::new();
    let mut failure: Option<(usize, anyhow::Error)> = None;
    let mut batch = Batch::new(&requests, algorithm);
    batch.concurrency = a.concurrency;
    authority
        .issue_many(&batch, clock::now(), |i, outcome| {
            let dir = a.out.join(&entries[i].0);
            let step = outcome.map_err(anyhow::Error::from).and_then(|issued| {
                bundle::write_dir(&dir, &issued, a.existing())
                    .with_context(|| format!("cannot write {}", dir.display()))?;
                Ok(issued)
            });
            match step {
                Ok(issued) => {
                    for w in &issued.warnings {
                        *warnings.entry(w.clone()).or_default() += 1;
                    }
                    let info = issued.certificate.info();
                    written.push(Written {
                        name: requests[i].common_name().to_owned(),
                        dir,
                        serial: info.serial.to_hex(),
                        not_after: info.not_after,
                    });
                    bar.inc(1);
                    ControlFlow::Continue(())
                }
                Err(e) => {
                    failure = Some((i, e));
                    ControlFlow::Break(())
                }
            }
        })
        .await;
    bar.finish_and_clear();
    for (w, count) in &warnings {
        eprintln!("warning ({count} certificate(s)): {w}");
    }
    if let Some((i, e)) = failure {
        if !format.is_json() {
            for w in &written {
                println!("Issued {} into {}", w.name, w.dir.display());
            }
        }
        return Err(e.context(format!(
            "issued {} of {} certificates; stopped at {} (line for {}); the directories written \
             are complete, the others were not created",
            written.len(),
            requests.len(),
            entries[i].0,
            requests[i].common_name()
        )));
    }
    if written.len() != requests.len() {
        return Err(anyhow!(
            "issued {} of {} certificates",
            written.len(),
            requests.len()
        ));
    }
    written.sort_by(|x, y| x.dir.cmp(&y.dir));
    if format.is_json() {
        output::print_json(&serde_json::json!({ "issued": written }))?;
    } else {
        println!(
            "Issued {} certificates into {} ({} backend)",
            written.len(),
            a.out.display(),
            authority.kind()
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names() {
        assert_eq!(
            dir_name("API.example.internal").unwrap(),
            "api.example.internal"
        );
        assert_eq!(
            dir_name("*.example.internal").unwrap(),
            "_wildcard_.example.internal"
        );
        assert!(dir_name("../etc").is_err());
        assert!(dir_name("a/b").is_err());
    }
}
