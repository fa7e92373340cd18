//! `pki renew`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use pki::authority::{RenewKey, Renewal};
use pki::bundle::{self, Contents, Existing};
use pki::{Certificate, CertificateRequest, PrivateKey, clock, duration};

use super::Use;
use super::backend::open_backend;
use super::{parse, read_pem};
use crate::UsageError;
use crate::args::RenewArgs;
use crate::output::{self, Format};

/// Where the current certificate and key are, and where the successor goes.
struct Paths {
    cert: PathBuf,
    key: PathBuf,
    out: PathBuf,
}

fn resolve(a: &RenewArgs) -> Result<Paths> {
    if a.target.is_dir() {
        let dir = &a.target;
        return Ok(Paths {
            cert: dir.join(bundle::files::CERT),
            key: a
                .key_file
                .clone()
                .unwrap_or_else(|| dir.join(bundle::files::KEY)),
            out: a.out.clone().unwrap_or_else(|| dir.clone()),
        });
    }
    let parent = a
        .target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let named_like_ours = a.target.file_name() == Some(std::ffi::OsStr::new(bundle::files::CERT));
    let out = match (&a.out, named_like_ours) {
        (Some(out), _) => out.clone(),
        (None, true) => parent.to_path_buf(),
        (None, false) => {
            return Err(UsageError(format!(
                "{} is not in a directory written by `pki issue`: give --out DIR",
                a.target.display()
            ))
            .into());
        }
    };
    Ok(Paths {
        cert: a.target.clone(),
        key: a
            .key_file
            .clone()
            .unwrap_or_else(|| parent.join(bundle::files::KEY)),
        out,
    })
}

pub(crate) async fn run(a: RenewArgs, format: Format) -> Result<u8> {
    let paths = resolve(&a)?;
    let cert_origin = paths.cert.display().to_string();
    let current = Certificate::from_pem(&read_pem(&paths.cert)?, &cert_origin)?;
    let ttl = a.ttl.as_deref().map(duration::parse).transpose()?;
    // Checked before anything is signed: the names must make a request again.
    CertificateRequest::renewal_of(&current, ttl)?;
    let key = if a.reuse_key {
        let origin = paths.key.display().to_string();
        // The key in use, which may sit in a service's directory: never through a link.
        let (text, _) = pki::fsio::read_private(&paths.key, pki::fsio::MAX_PEM_INPUT)?;
        let key = PrivateKey::from_pem(&text, &origin)?;
        if !current.matches_key(&key) {
            return Err(pki::Error::KeyMismatch {
                certificate: cert_origin,
                key: origin,
            }
            .into());
        }
        RenewKey::Reuse(key)
    } else {
        RenewKey::New(a.key.as_deref().map(parse).transpose()?)
    };
    bundle::check_output(&paths.out, Contents::ALL, Existing::Replace)?;
    let authority = open_backend(&a.ca, &a.backend, Use::Sign).await?;
    let mut renewal = Renewal::new(key);
    renewal.ttl = ttl;
    let issued = authority
        .renew(&current, renewal, clock::now())
        .await
        .context("cannot issue the successor")?;
    let files = bundle::write_dir(&paths.out, &issued, Existing::Replace)?;
    output::issued(&issued, &files, format, "Renewed")?;
    Ok(0)
}
