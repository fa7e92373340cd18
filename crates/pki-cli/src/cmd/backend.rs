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
            settings.resolve_paths(|p| base.join(p));
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::disallowed_methods)]
mod tests {
    use super::*;

    /// A file in a fresh directory under the system temporary directory.
    fn config_file(text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "pki-backend-test-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("vault.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn paths_in_a_vault_config_are_relative_to_it() {
        let path = config_file(
            "address = \"https://vault.internal:8200\"\nca_cert = \"ca.pem\"\ntoken_file = \"/etc/pki/token\"\n",
        );
        let s = vault_settings(Some(&path)).unwrap();
        let dir = path.parent().unwrap();
        assert_eq!(s.ca_cert.as_deref(), Some(dir.join("ca.pem").as_path()));
        assert_eq!(s.token_file.as_deref(), Some(Path::new("/etc/pki/token")));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_vault_config_names_the_line_without_quoting_it() {
        let path = config_file("address = \"https://v:8200\"\ntoken = \"hvs.s3cr3t-value\"\n");
        let e = vault_settings(Some(&path)).unwrap_err().to_string();
        assert!(e.contains("vault.toml:2:"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
