//! Choosing the backend: the offline CA of `--ca-dir`, or Vault / OpenBao configured by a
//! `--vault-config` file, the environment and the `--mount`/`--role` flags.

use std::path::Path;

use anyhow::Result;
use pki::Authority;
use pki::authority::vault::{VaultAuthority, VaultSettings};

use super::open_authority;
use crate::UsageError;
use crate::args::{Backend, BackendOpts, CaOpts};

/// Vault settings: the config file if given, then the environment for what it leaves unset.
pub(crate) fn vault_settings(config: Option<&Path>) -> Result<VaultSettings> {
    let settings = match config {
        Some(path) => {
            let bytes = pki::fsio::read_limited(path, 1 << 20)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| UsageError(format!("{} is not UTF-8 text", path.display())))?;
            // The error's own text quotes the offending line, which could hold a token someone
            // tried to put there: report the line number and the message only.
            let mut settings = toml::from_str::<VaultSettings>(&text).map_err(|e| {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                UsageError(format!(
                    "{}:{}: {}",
                    path.display(),
                    line.map_or_else(String::new, |l| l.to_string()),
                    e.message()
                ))
            })?;
            // Relative paths are relative to the config file, as in the rotation config.
            let base = path.parent().unwrap_or(Path::new("."));
            for p in [
                &mut settings.ca_cert,
                &mut settings.ca_path,
                &mut settings.token_file,
                &mut settings.role_id_file,
                &mut settings.secret_id_file,
            ]
            .into_iter()
            .flatten()
            {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
            settings
        }
        None => VaultSettings::default(),
    };
    Ok(settings.with_env())
}

/// Connects to Vault with the settings and the backend flags.
pub(crate) async fn connect_vault(opts: &BackendOpts) -> Result<VaultAuthority> {
    let mut settings = vault_settings(opts.vault_config.as_deref())?;
    if let Some(mount) = &opts.mount {
        settings.mount = Some(mount.clone());
    }
    if let Some(role) = &opts.role {
        settings.role = Some(role.clone());
    }
    settings.server_keygen |= opts.server_keygen;
    // Errors name the address themselves.
    Ok(VaultAuthority::connect(&settings).await?)
}

/// The authority the flags choose; `unlock` loads the offline CA's key (Vault needs nothing).
pub(crate) async fn open_backend(
    ca: &CaOpts,
    opts: &BackendOpts,
    unlock: bool,
) -> Result<Authority> {
    match opts.backend {
        Backend::Offline => open_authority(ca, unlock),
        Backend::Vault => Ok(Authority::Vault(connect_vault(opts).await?)),
    }
}
