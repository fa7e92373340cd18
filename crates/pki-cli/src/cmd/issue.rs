//! `pki issue`.

use anyhow::Result;
use pki::bundle::{self, Contents};
use pki::{CertificateRequest, Csr, SubjectKey, SubjectName, clock};

use super::Use;
use super::backend::open_backend;
use super::{parse, read_pem};
use crate::UsageError;
use crate::args::IssueArgs;
use crate::output::{self, Format};

pub(crate) async fn run(a: IssueArgs, format: Format) -> Result<u8> {
    if a.batch.is_some() {
        return super::batch::run(a, format).await;
    }
    let profile = parse(&a.profile)?;
    let ttl = a.ttl.0;
    let names = a
        .san
        .iter()
        .map(|s| SubjectName::parse(s))
        .collect::<pki::Result<Vec<_>>>()?;
    let csr = match &a.csr {
        Some(path) => {
            if !names.is_empty() {
                return Err(UsageError(
                    "--san cannot be combined with --csr: the CSR's names are used".to_owned(),
                )
                .into());
            }
            Some(Csr::from_pem(
                &read_pem(path)?,
                &path.display().to_string(),
            )?)
        }
        None => None,
    };
    let algorithm = parse(&a.key)?;
    let request = match &csr {
        Some(csr) => csr.to_request(a.common_name.as_deref(), profile, ttl)?,
        None => {
            let cn = a.common_name.as_deref().ok_or_else(|| {
                UsageError("COMMON_NAME is required unless --csr is given".to_owned())
            })?;
            CertificateRequest::new(cn, names, profile, ttl)?
        }
    };
    // Every check that can fail is done before signing, so a refused request leaves neither a
    // certificate in the inventory nor a file in --out.
    let contents = if csr.is_some() {
        Contents::ALL.without_key()
    } else {
        Contents::ALL
    };
    bundle::check_output(&a.out, contents, a.existing())?;
    let authority = open_backend(&a.ca, &a.backend, Use::Sign).await?;
    let now = clock::now();
    let issued = match &csr {
        Some(csr) => authority.sign(&request, SubjectKey::Csr(csr), now).await?,
        None => authority.issue(&request, algorithm, now).await?,
    };
    let files = bundle::write_dir(&a.out, &issued, a.existing())?;
    output::issued(&issued, &files, format, "Issued")?;
    Ok(0)
}
