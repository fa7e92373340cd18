//! The file set database servers share: the full chain (`cert`), the key and optionally the CA
//! that verifies clients (`ca`).

use std::path::PathBuf;

use serde::Deserialize;

use super::{Content, Invalid, OutputFile, Paths, RawCommand};

/// Full chain, key and an optional CA file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsFiles {
    /// Leaf and intermediates.
    pub cert: PathBuf,
    /// The key.
    pub key: PathBuf,
    /// The CA the server verifies clients with.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files in the order written: key, full chain, CA.
    pub(crate) fn files(&self) -> Vec<OutputFile> {
        let mut files = vec![
            OutputFile::new(&self.key, Content::Key),
            OutputFile::new(&self.cert, Content::Fullchain),
        ];
        if let Some(ca) = &self.ca {
            files.push(OutputFile::new(ca, Content::Ca));
        }
        files
    }
}

/// The keys of a database target that reloads with a command.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWithReload {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    pub(crate) reload_command: Option<RawCommand>,
}

impl RawWithReload {
    /// The files it names.
    pub(crate) fn tls_files(&self, paths: &Paths<'_>) -> Result<TlsFiles, Invalid> {
        tls_files(paths, &self.cert, &self.key, &self.ca)
    }
}

/// Validates the paths of the three keys.
pub(crate) fn tls_files(
    paths: &Paths<'_>,
    cert: &Option<String>,
    key: &Option<String>,
    ca: &Option<String>,
) -> Result<TlsFiles, Invalid> {
    Ok(TlsFiles {
        cert: paths.required("cert", cert.clone())?,
        key: paths.required("key", key.clone())?,
        ca: ca.as_deref().map(|p| paths.path(p)),
    })
}
