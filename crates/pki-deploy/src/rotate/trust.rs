//! The trust phase, before any certificate: each `[[trust]]` file gets its backend's trust
//! bundle, so that a host trusts a new root before any service it talks to presents it. A file
//! that changed has its reload command run (`update-ca-certificates`); if that fails, the
//! previous content is put back and the command run once more.

use pki::Certificate;
use pki::fsio::{Dir, FileMode, Owners};
use serde::Serialize;
use serde_json::json;

use super::Options;
use super::backend::Signers;
use crate::config::{Config, TrustConfig};
use crate::error::{Error, Result};
use crate::exec;
use crate::log::{Event, Logger};

/// Largest trust file read back.
const MAX_BUNDLE: u64 = 1 << 20;

/// What happened to one `[[trust]]` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TrustAction {
    /// It held the bundle already.
    InSync,
    /// It was written (and its reload command run).
    Updated,
    /// A dry run: it would be written.
    WouldUpdate,
    /// It could not be written, or its command failed (the previous content is back).
    Failed,
}

/// The outcome of one `[[trust]]` file.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TrustOutcome {
    /// The file.
    pub path: std::path::PathBuf,
    /// The backend whose bundle it holds.
    pub backend: String,
    /// What was done.
    pub action: TrustAction,
    /// How many CAs the bundle holds.
    pub cas: usize,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Writes every trust file of `config` (plans them in a dry run).
pub(crate) async fn deploy_all(
    config: &Config,
    signers: &Signers,
    opts: &Options,
) -> Vec<TrustOutcome> {
    let (log, dry_run) = (&opts.log, opts.dry_run);
    let mut out = Vec::new();
    for t in &config.trust {
        let bundle = signers.trust.get(&t.backend);
        let cas = bundle.map_or(0, Vec::len);
        let outcome = |action, error: Option<String>| TrustOutcome {
            path: t.path.clone(),
            backend: t.backend.clone(),
            action,
            cas,
            error,
        };
        let Some(bundle) = bundle else {
            let why = signers.broken(&t.backend).map_or_else(
                || format!("backend {:?} gave no trust bundle", t.backend),
                |e| format!("backend {:?}: {e}", t.backend),
            );
            if !dry_run {
                log.error(Event::run(
                    "trust-failed",
                    format!("{}: {why}", t.path.display()),
                ));
            }
            out.push(outcome(TrustAction::Failed, Some(why)));
            continue;
        };
        let pem: String = bundle.iter().map(Certificate::pem).collect();
        let result = if dry_run {
            differs(t, &pem).map(|d| {
                if d {
                    TrustAction::WouldUpdate
                } else {
                    TrustAction::InSync
                }
            })
        } else {
            deploy(t, &pem, log).await
        };
        match result {
            Ok(action) => out.push(outcome(action, None)),
            Err(e) => {
                log.error(Event::run(
                    "trust-failed",
                    format!("{}: {e}", t.path.display()),
                ));
                out.push(outcome(TrustAction::Failed, Some(e.to_string())));
            }
        }
    }
    out
}

/// The name of the file in its directory.
fn file_name(t: &TrustConfig) -> String {
    t.path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parent(t: &TrustConfig) -> &std::path::Path {
    t.path.parent().unwrap_or(std::path::Path::new("/"))
}

/// The file's directory, created if missing and checked (no component another user could
/// swap), and its name.
fn place(t: &TrustConfig) -> Result<(Dir, String)> {
    Ok((
        Dir::create(parent(t), 0o755, Owners::running())?,
        file_name(t),
    ))
}

/// What the file holds now (`None`: there is none).
fn current(dir: &Dir, name: &str) -> Result<Option<Vec<u8>>> {
    if dir.entry(name)?.is_none() {
        return Ok(None);
    }
    Ok(Some(dir.read_file(name, MAX_BUNDLE)?.0.to_vec()))
}

fn differs(t: &TrustConfig, pem: &str) -> Result<bool> {
    if !t.path.parent().is_some_and(std::path::Path::is_dir) {
        return Ok(true);
    }
    let dir = Dir::open(parent(t), Owners::running())?;
    Ok(current(&dir, &file_name(t))?.as_deref() != Some(pem.as_bytes()))
}

fn write(dir: &Dir, name: &str, bytes: &[u8], t: &TrustConfig) -> Result<()> {
    let mut staged = dir.stage(name, bytes, FileMode::owned(t.mode, t.uid, t.gid))?;
    staged.sync()?;
    staged.commit()?;
    dir.sync()?;
    Ok(())
}

async fn deploy(t: &TrustConfig, pem: &str, log: &Logger) -> Result<TrustAction> {
    let (dir, name) = place(t)?;
    let previous = current(&dir, &name)?;
    if previous.as_deref() == Some(pem.as_bytes()) {
        return Ok(TrustAction::InSync);
    }
    write(&dir, &name, pem.as_bytes(), t)?;
    let env = [("PKI_TRUST_FILE", t.path.display().to_string())];
    if let Some(command) = &t.reload_command
        && let Err(e) = exec::run(command, &env, t.command_timeout).await
    {
        let restored = match &previous {
            Some(bytes) => write(&dir, &name, bytes, t),
            None => dir.remove_file(&name).map_err(Error::from),
        };
        if let Err(r) = restored {
            log.error(Event::run(
                "trust-failed",
                format!(
                    "{}: cannot put the previous content back: {r}",
                    t.path.display()
                ),
            ));
        }
        if let Err(again) = exec::run(command, &env, t.command_timeout).await {
            log.warn(Event::run(
                "trust-failed",
                format!(
                    "{}: the command failed again on the previous content: {again}",
                    t.path.display()
                ),
            ));
        }
        return Err(e);
    }
    log.info(
        Event::run(
            "trust-updated",
            format!(
                "{}: wrote the trust bundle of backend {:?}",
                t.path.display(),
                t.backend
            ),
        )
        .with("file", json!(t.path.display().to_string())),
    );
    Ok(TrustAction::Updated)
}
