//! A `[[trust]]` table, the trust target: a backend's trust bundle (every CA its clients must
//! trust now, see [`pki::Authority::trust_anchors`]) written to one file, for hosts that need
//! the CAs but no certificate of their own: the system store under
//! `/usr/local/share/ca-certificates/` followed by `update-ca-certificates`, a client's CA file.

use std::path::PathBuf;

use serde::Deserialize;
use time::Duration;

use super::doc::Table;
use super::target::{IdValue, ModeValue, group, mode, user};
use super::{Backend, NamedBackend};
use crate::error::Result;
use crate::exec::CommandSpec;
use crate::service::RawCommand;

/// Where a backend's trust bundle is written.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustConfig {
    /// The file (written atomically, never through a link).
    pub path: PathBuf,
    /// The backend whose bundle it holds.
    pub backend: String,
    /// Owner of the file (default: the writing process).
    pub uid: Option<u32>,
    /// Group of the file (default: the writing process's).
    pub gid: Option<u32>,
    /// Its mode (default `0644`).
    pub mode: u32,
    /// Run after the file changed (`update-ca-certificates`).
    pub reload_command: Option<CommandSpec>,
    /// Limit for the command.
    pub command_timeout: Duration,
    /// Line of the table in the config file.
    pub line: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    path: String,
    backend: Option<String>,
    owner: Option<IdValue>,
    group: Option<IdValue>,
    mode: Option<ModeValue>,
    reload_command: Option<RawCommand>,
    command_timeout: Option<String>,
}

/// Reads one `[[trust]]` table; `backends` are the config's.
pub(super) fn read(mut table: Table<'_>, backends: &[NamedBackend]) -> Result<TrustConfig> {
    let line = table.line();
    let raw: Raw = table.read("[[trust]]")?;
    let names = || {
        backends
            .iter()
            .map(|b| format!("{:?}", b.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let backend = match raw.backend {
        Some(name) => backends.iter().find(|b| b.name == name).ok_or_else(|| {
            table.error(
                "backend",
                format!("no backend {name:?} in this config (it has {})", names()),
            )
        })?,
        None if backends.len() == 1 => &backends[0],
        None => backends
            .iter()
            .find(|b| b.name == super::DEFAULT_BACKEND)
            .ok_or_else(|| table.error("backend", format!("required: one of {}", names())))?,
    };
    if matches!(backend.backend, Backend::Acme(_)) {
        return Err(table.error(
            "backend",
            format!(
                "{:?} is an ACME backend: its roots are public and come with the system",
                backend.name
            ),
        ));
    }
    let path = crate::config::resolve(table.source().base(), &raw.path);
    if path.file_name().is_none() {
        return Err(table.error("path", "must name a file"));
    }
    let id = |v: Option<IdValue>, f: fn(IdValue) -> std::result::Result<u32, String>, key| {
        v.map(f).transpose().map_err(|m| table.error(key, m))
    };
    Ok(TrustConfig {
        path,
        backend: backend.name.clone(),
        uid: id(raw.owner, user, "owner")?,
        gid: id(raw.group, group, "group")?,
        mode: raw
            .mode
            .map(mode)
            .transpose()
            .map_err(|m| table.error("mode", m))?
            .unwrap_or(0o644),
        reload_command: crate::service::command("reload_command", raw.reload_command)
            .map_err(|e| table.error(e.key, e.problem))?,
        command_timeout: match raw.command_timeout {
            Some(t) => pki::duration::parse(&t).map_err(|e| table.error("command_timeout", e))?,
            None => crate::service::DEFAULT_COMMAND_TIMEOUT,
        },
        line,
    })
}
