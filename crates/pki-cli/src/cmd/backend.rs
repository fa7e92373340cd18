//! Choosing the backend: the offline CA of `--ca-dir`, Vault / OpenBao configured by a
//! `--vault-config` file, the environment and the `--mount`/`--role` flags, or an ACME server
//! described by an `--acme-config` file.

use std::path::Path;

use anyhow::Result;
use pki::Authority;
use pki::authority::vault::{VaultAuthority, VaultSettings};

use super::{Use, open_authority};
use crate::UsageError;

/// Largest `--vault-config` file read.
const MAX_VAULT_CONFIG: u64 = 1 << 20;
use crate::args::{Backend, BackendOpts, CaOpts};

/// Vault settings: the config file if given, then the environment for what it leaves unset.
pub(crate) fn vault_settings(config: Option<&Path>) -> Result<VaultSettings> {
    let settings = match config {
        Some(path) => {
            let bytes = pki::fsio::read_limited(path, MAX_VAULT_CONFIG)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| UsageError(format!("{} is not UTF-8 text", path.display())))?;
            VaultSettings::from_toml(&text, path)?
        }
        None => VaultSettings::default(),
    };
    Ok(settings.with_env()?)
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

/// The authority the flags choose, ready for `usage` (Vault needs nothing unlocked).
pub(crate) async fn open_backend(ca: &CaOpts, opts: &BackendOpts, usage: Use) -> Result<Authority> {
    match opts.backend {
        Backend::Offline => open_authority(ca, usage),
        Backend::Vault => Ok(Authority::Vault(connect_vault(opts).await?)),
        Backend::Acme => {
            let path = opts.acme_config.as_deref().ok_or_else(|| {
                UsageError("--backend acme needs --acme-config FILE (or PKI_ACME_CONFIG)".into())
            })?;
            let settings = pki_deploy::config::load_acme_settings(path)
                .map_err(|e| UsageError(e.to_string()))?;
            Ok(Authority::Acme(
                pki::authority::acme::AcmeAuthority::connect(&settings).await?,
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_config_file_is_read_relative_to_itself_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.toml");
        std::fs::write(
            &path,
            "address = \"https://vault.internal:8200\"\nca_cert = \"ca.pem\"\n",
        )
        .unwrap();
        let s = vault_settings(Some(&path)).unwrap();
        assert_eq!(
            s.ca_cert.as_deref(),
            Some(dir.path().join("ca.pem").as_path())
        );
        std::fs::write(
            &path,
            "address = \"https://v:8200\"\ntoken = \"hvs.s3cr3t-value\"\n",
        )
        .unwrap();
        let e = vault_settings(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("vault.toml:2:"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }
}
