//! Any files in a directory: the standard PEM layout (`cert.pem`, `key.pem`, `chain.pem`,
//! `fullchain.pem`, `ca.pem`), a chosen subset, or names and paths of one's own; an optional
//! reload command. No probe is required: what reads the files is not known.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{Content, Invalid, Kind, Ops, OutputFile, Paths, RawCommand, Step, StepFuture, command, Uses};
use crate::exec::CommandSpec;

/// A files target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Files {
    /// The files, in the order written.
    pub files: Vec<OutputFile>,
    /// Run after the files changed.
    pub reload_command: Option<CommandSpec>,
}

impl Files {
    /// The five standard PEM files in `dir`.
    pub fn standard(dir: &Path) -> Self {
        Self {
            files: DEFAULT_SET
                .iter()
                .filter_map(|name| CHOICES.iter().find(|c| c.0 == *name))
                .map(|(_, content, file)| OutputFile::new(dir.join(file), *content))
                .collect(),
            reload_command: None,
        }
    }
}

/// The files a table may choose: key, content, default file name.
const CHOICES: [(&str, Content, &str); 6] = [
    ("cert", Content::Cert, "cert.pem"),
    ("key", Content::Key, "key.pem"),
    ("chain", Content::Chain, "chain.pem"),
    ("fullchain", Content::Fullchain, "fullchain.pem"),
    ("ca", Content::Ca, "ca.pem"),
    ("combined", Content::Combined, "combined.pem"),
];

/// What a table without `files` and without any file key gets.
const DEFAULT_SET: [&str; 5] = ["cert", "key", "chain", "fullchain", "ca"];

/// The keys of a files target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    dir: Option<String>,
    files: Option<Vec<String>>,
    cert: Option<String>,
    key: Option<String>,
    chain: Option<String>,
    fullchain: Option<String>,
    ca: Option<String>,
    combined: Option<String>,
    reload_command: Option<RawCommand>,
}

impl Raw {
    /// The path given for a file key, if any.
    fn given(&self, key: &str) -> Option<&str> {
        match key {
            "cert" => self.cert.as_deref(),
            "key" => self.key.as_deref(),
            "chain" => self.chain.as_deref(),
            "fullchain" => self.fullchain.as_deref(),
            "ca" => self.ca.as_deref(),
            "combined" => self.combined.as_deref(),
            _ => None,
        }
    }

    /// The file keys chosen: `files`, else those given a path, else the standard five.
    fn selected(&self) -> Result<Vec<&str>, Invalid> {
        match &self.files {
            Some(list) if list.is_empty() => {
                Err(Invalid::new("files", "an empty list: name at least one file"))
            }
            Some(list) => Ok(list.iter().map(String::as_str).collect()),
            None => {
                let explicit: Vec<&str> = CHOICES
                    .iter()
                    .filter(|c| self.given(c.0).is_some())
                    .map(|c| c.0)
                    .collect();
                Ok(if explicit.is_empty() {
                    DEFAULT_SET.to_vec()
                } else {
                    explicit
                })
            }
        }
    }
}

impl Kind for Files {
    const NAMES: &'static [&'static str] = &["files"];
    type Raw = Raw;

    fn from_raw(raw: Raw, paths: &Paths<'_>) -> Result<Self, Invalid> {
        let dir: Option<PathBuf> = raw.dir.as_deref().map(|d| paths.path(d));
        let mut files = Vec::new();
        for key in raw.selected()? {
            let Some((_, content, default)) = CHOICES.iter().find(|c| c.0 == key) else {
                return Err(Invalid::new(
                    "files",
                    format!("unknown file {key:?} (cert, key, chain, fullchain, ca, combined)"),
                ));
            };
            let path = match (raw.given(key), &dir) {
                (Some(p), Some(d)) if !Path::new(p).is_absolute() => d.join(p),
                (Some(p), _) => paths.path(p),
                (None, Some(d)) => d.join(default),
                (None, None) => {
                    return Err(Invalid::new(
                        "dir",
                        format!("required unless every file has a path ({key} has none)"),
                    ));
                }
            };
            files.push(OutputFile::new(path, *content));
        }
        Ok(Self {
            files,
            reload_command: command("reload_command", raw.reload_command)?,
        })
    }
}

impl Ops for Files {
    fn uses(&self) -> Uses<'_> {
        Uses {
            commands: self.reload_command.iter().collect(),
            secrets: Vec::new(),
        }
    }

    fn files(&self) -> Vec<OutputFile> {
        self.files.clone()
    }

    fn needs_probe(&self) -> bool {
        false
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
