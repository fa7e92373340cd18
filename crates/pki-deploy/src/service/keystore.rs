//! The JVM services (Solr, Elasticsearch, Neo4j): a PKCS#12 keystore (`pkcs12`, encrypted with
//! the password in `password_file`, the key under `alias`), and/or PEM files with a PKCS#8 key
//! (`cert` + `key`: what Elasticsearch and Neo4j read), and optionally a PKCS#12 truststore
//! holding the trust bundle (`truststore`, for client authentication and outgoing TLS). The key is read by the service's own
//! user (group-readable by default). Solr and Elasticsearch reread their files themselves; an
//! optional `reload_command` covers the others. No probe is required.

use std::path::PathBuf;

use pki::{IssuedCertificate, bundle};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::{Content, Invalid, Kind, Ops, OutputFile, Paths, RawCommand, Step, StepFuture, command, Uses};
use crate::error::Result;
use crate::exec::CommandSpec;

/// A keystore target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Keystore {
    /// The PKCS#12 file and how it is protected.
    pub pkcs12: Option<Pkcs12>,
    /// PEM files: the full chain and the PKCS#8 key.
    pub pem: Option<PemPair>,
    /// A PKCS#12 truststore of the trust bundle.
    pub truststore: Option<Truststore>,
    /// Run after the files changed.
    pub reload_command: Option<CommandSpec>,
}

/// A PKCS#12 keystore file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs12 {
    /// Where.
    pub path: PathBuf,
    /// The file holding its password (mode 0600).
    pub password_file: PathBuf,
    /// The key's alias (default: the certificate's name).
    pub alias: String,
}

/// A PKCS#12 truststore file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Truststore {
    /// Where.
    pub path: PathBuf,
    /// The file holding its password (mode 0600).
    pub password_file: PathBuf,
}

/// The PEM variant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PemPair {
    /// Leaf and intermediates.
    pub cert: PathBuf,
    /// The PKCS#8 key.
    pub key: PathBuf,
}

/// The keys of a keystore target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    pkcs12: Option<String>,
    password_file: Option<String>,
    alias: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    truststore: Option<String>,
    truststore_password_file: Option<String>,
    reload_command: Option<RawCommand>,
}

impl Kind for Keystore {
    const NAMES: &'static [&'static str] = &["keystore"];
    type Raw = Raw;

    fn from_raw(raw: Raw, paths: &Paths<'_>) -> std::result::Result<Self, Invalid> {
        if raw.key.is_some() != raw.cert.is_some() {
            return Err(Invalid::new("cert", "the PEM variant needs both cert and key"));
        }
        let pem = match (&raw.cert, &raw.key) {
            (Some(c), Some(k)) => Some(PemPair {
                cert: paths.path(c),
                key: paths.path(k),
            }),
            _ => None,
        };
        let truststore = match &raw.truststore {
            Some(t) => Some(Truststore {
                path: paths.path(t),
                password_file: raw
                    .truststore_password_file
                    .as_deref()
                    .or(raw.password_file.as_deref())
                    .map(|f| paths.path(f))
                    .ok_or_else(|| {
                        Invalid::new(
                            "truststore_password_file",
                            "required with truststore (or password_file)",
                        )
                    })?,
            }),
            None => None,
        };
        let pkcs12 = match raw.pkcs12 {
            Some(p) => Some(Pkcs12 {
                path: paths.path(&p),
                password_file: raw
                    .password_file
                    .as_deref()
                    .map(|f| paths.path(f))
                    .ok_or_else(|| Invalid::new("password_file", "required with pkcs12"))?,
                alias: raw.alias.unwrap_or_else(|| paths.certificate.to_owned()),
            }),
            None => None,
        };
        if pkcs12.is_none() && pem.is_none() {
            return Err(Invalid::new(
                "pkcs12",
                "give pkcs12 (with password_file), or cert and key, or both",
            ));
        }
        Ok(Self {
            pkcs12,
            pem,
            truststore,
            reload_command: command("reload_command", raw.reload_command)?,
        })
    }
}

impl Ops for Keystore {
    fn uses(&self) -> Uses<'_> {
        Uses {
            commands: self.reload_command.iter().collect(),
            secrets: self
                .pkcs12
                .iter()
                .map(|p| p.password_file.as_path())
                .chain(self.truststore.iter().map(|t| t.password_file.as_path()))
                .collect(),
        }
    }

    fn files(&self) -> Vec<OutputFile> {
        let mut files = Vec::new();
        if let Some(p) = &self.pkcs12 {
            files.push(OutputFile::new(&p.path, Content::Pkcs12));
        }
        if let Some(p) = &self.pem {
            files.push(OutputFile::new(&p.key, Content::Key));
            files.push(OutputFile::new(&p.cert, Content::Fullchain));
        }
        if let Some(t) = &self.truststore {
            files.push(OutputFile::new(&t.path, Content::Truststore));
        }
        files
    }

    fn reads_key_as(&self) -> Option<&'static str> {
        Some("the keystore's service")
    }

    fn default_key_mode(&self, _owner: u32) -> u32 {
        0o640
    }

    fn needs_probe(&self) -> bool {
        false
    }

    fn render(&self, file: &OutputFile, material: &IssuedCertificate) -> Result<Zeroizing<Vec<u8>>> {
        match (&self.pkcs12, file.content) {
            (Some(p), Content::Pkcs12) => {
                let password = pki::fsio::read_secret_file(&p.password_file)?;
                let store = bundle::pkcs12(material, &password, &p.alias)?;
                Ok(Zeroizing::new(store.expose().to_vec()))
            }
            (_, Content::Truststore) => {
                let Some(t) = &self.truststore else {
                    return super::render_pem(Content::Truststore, material);
                };
                let password = pki::fsio::read_secret_file(&t.password_file)?;
                let store = bundle::pkcs12_truststore(&bundle::trust_anchors(material), &password)?;
                Ok(Zeroizing::new(store.expose().to_vec()))
            }
            (_, content) => super::render_pem(content, material),
        }
    }

    fn describe(&self) -> String {
        self.pkcs12
            .as_ref()
            .map(|p| format!("alias={}", p.alias))
            .unwrap_or_default()
    }

    fn load<'a>(&'a self, step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(async move {
            match &self.reload_command {
                Some(reload) => step.run(reload).await,
                None => Ok(()),
            }
        })
    }
}
