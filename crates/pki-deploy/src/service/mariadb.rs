//! MariaDB / MySQL: full chain, key (read by the server's own user, so group-readable by
//! default) and optionally the CA for client certificates. `FLUSH SSL` (`mariadb -e`) reloads
//! them; the probe speaks the MySQL protocol up to the switch to TLS.

use serde::Deserialize;

use super::tls_files::{RawWithReload, TlsFiles};
use super::{Invalid, Kind, Ops, OutputFile, Paths, Step, StepFuture, command, Uses};
use crate::exec::CommandSpec;
use crate::probe::ProbeProtocol;

/// A MariaDB target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mariadb {
    /// The files.
    pub files: TlsFiles,
    /// Makes the server load them (default `mariadb -e "FLUSH SSL"`).
    pub reload_command: CommandSpec,
}

/// The keys of a MariaDB target.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct Raw(RawWithReload);

impl Kind for Mariadb {
    const NAMES: &'static [&'static str] = &["mariadb", "mysql"];
    type Raw = Raw;

    fn from_raw(Raw(raw): Raw, paths: &Paths<'_>) -> Result<Self, Invalid> {
        Ok(Self {
            files: raw.tls_files(paths)?,
            reload_command: command("reload_command", raw.reload_command)?
                .unwrap_or_else(|| CommandSpec::of(&["mariadb", "-e", "FLUSH SSL"])),
        })
    }
}

impl Ops for Mariadb {
    fn uses(&self) -> Uses<'_> {
        Uses {
            commands: vec![&self.reload_command],
            secrets: Vec::new(),
        }
    }

    fn files(&self) -> Vec<OutputFile> {
        self.files.files()
    }

    fn reads_key_as(&self) -> Option<&'static str> {
        Some("MariaDB")
    }

    fn default_key_mode(&self, _owner: u32) -> u32 {
        0o640
    }

    fn probe_protocol(&self) -> ProbeProtocol {
        ProbeProtocol::Mysql
    }

    fn load<'a>(&'a self, step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(step.run(&self.reload_command))
    }
}
