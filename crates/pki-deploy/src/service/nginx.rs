//! Nginx: the full chain (`cert`) and the key as two files. `nginx -t` checks the new files
//! before `nginx -s reload`; nginx keeps answering with its old workers for a moment after the
//! reload, which the probe rides out (it wants the new certificate several times in a row).

use std::path::PathBuf;

use serde::Deserialize;

use super::{Content, Invalid, Kind, Ops, OutputFile, Paths, RawCommand, Step, StepFuture, command, Uses};
use crate::exec::CommandSpec;

/// An Nginx target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Nginx {
    /// `ssl_certificate`: leaf and intermediates.
    pub cert: PathBuf,
    /// `ssl_certificate_key`.
    pub key: PathBuf,
    /// Checks the configuration with the new files (default `nginx -t -q`).
    pub test_command: CommandSpec,
    /// Makes nginx load them (default `nginx -s reload`).
    pub reload_command: CommandSpec,
}

impl Nginx {
    /// A target for these two files with the default commands.
    pub fn new(cert: PathBuf, key: PathBuf) -> Self {
        Self {
            cert,
            key,
            test_command: CommandSpec::of(&["nginx", "-t", "-q"]),
            reload_command: CommandSpec::of(&["nginx", "-s", "reload"]),
        }
    }
}

/// The keys of an Nginx target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    cert: Option<String>,
    key: Option<String>,
    test_command: Option<RawCommand>,
    reload_command: Option<RawCommand>,
}

impl Kind for Nginx {
    const NAMES: &'static [&'static str] = &["nginx"];
    type Raw = Raw;

    fn from_raw(raw: Raw, paths: &Paths<'_>) -> Result<Self, Invalid> {
        let mut nginx = Self::new(
            paths.required("cert", raw.cert)?,
            paths.required("key", raw.key)?,
        );
        if let Some(test) = command("test_command", raw.test_command)? {
            nginx.test_command = test;
        }
        if let Some(reload) = command("reload_command", raw.reload_command)? {
            nginx.reload_command = reload;
        }
        Ok(nginx)
    }
}

impl Ops for Nginx {
    fn uses(&self) -> Uses<'_> {
        Uses {
            commands: vec![&self.test_command, &self.reload_command],
            secrets: Vec::new(),
        }
    }

    fn files(&self) -> Vec<OutputFile> {
        vec![
            OutputFile::new(&self.key, Content::Key),
            OutputFile::new(&self.cert, Content::Fullchain),
        ]
    }

    fn check<'a>(&'a self, step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(step.run(&self.test_command))
    }

    fn load<'a>(&'a self, step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(step.run(&self.reload_command))
    }
}
