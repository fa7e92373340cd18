//! PostgreSQL: full chain, key and optionally the CA for client certificates. The server
//! refuses a key with more than 0600 when it owns it, or more than 0640 when root does; the
//! default follows the owner. `systemctl reload postgresql` (or any `reload_command`) makes it
//! read them: `pg_reload_conf()` answers true even when the new files fail to load, so the
//! probe (PostgreSQL's SSLRequest, then TLS) decides.

use serde::Deserialize;

use super::tls_files::{RawWithReload, TlsFiles};
use super::{Invalid, Kind, Ops, OutputFile, Paths, Step, StepFuture, command, Uses};
use crate::exec::CommandSpec;
use crate::probe::ProbeProtocol;

/// A PostgreSQL target.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Postgres {
    /// The files.
    pub files: TlsFiles,
    /// Makes the server load them (default `systemctl reload postgresql`).
    pub reload_command: CommandSpec,
}

/// The keys of a PostgreSQL target.
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub(crate) struct Raw(RawWithReload);

impl Kind for Postgres {
    const NAMES: &'static [&'static str] = &["postgres", "postgresql"];
    type Raw = Raw;

    fn from_raw(Raw(raw): Raw, paths: &Paths<'_>) -> Result<Self, Invalid> {
        Ok(Self {
            files: raw.tls_files(paths)?,
            reload_command: command("reload_command", raw.reload_command)?
                .unwrap_or_else(|| CommandSpec::of(&["systemctl", "reload", "postgresql"])),
        })
    }
}

/// The most a key may allow: 0600 when the server's user owns it, 0640 when root does.
fn allowed_key_mode(owner: u32) -> u32 {
    if owner == 0 { 0o640 } else { 0o600 }
}

impl Ops for Postgres {
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
        Some("PostgreSQL")
    }

    fn default_key_mode(&self, owner: u32) -> u32 {
        allowed_key_mode(owner)
    }

    fn check_key_mode(&self, owner: u32, mode: u32) -> Result<(), String> {
        if mode & !allowed_key_mode(owner) != 0 {
            return Err(format!(
                "PostgreSQL refuses a key with more than 0600 when it owns it, or 0640 when \
                 root does (this key: owner uid {owner}, mode {mode:04o})"
            ));
        }
        Ok(())
    }

    fn probe_protocol(&self) -> ProbeProtocol {
        ProbeProtocol::Postgres
    }

    fn load<'a>(&'a self, step: &'a Step<'a>) -> StepFuture<'a> {
        Box::pin(step.run(&self.reload_command))
    }
}
