//! Where the CA passphrase comes from: a file, the `PKI_CA_PASSPHRASE` variable, or a prompt
//! on the terminal. Never from an argument: argv is visible to every user of the machine.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use pki::SecretString;

/// The environment variable holding the CA passphrase.
pub(crate) const ENV: &str = "PKI_CA_PASSPHRASE";

fn from_file_or_env(file: Option<&Path>) -> Result<Option<SecretString>> {
    if let Some(path) = file {
        let secret = pki::fsio::read_secret_file(path)
            .with_context(|| format!("cannot use passphrase file {}", path.display()))?;
        if secret.is_empty() {
            bail!("passphrase file {} is empty", path.display());
        }
        return Ok(Some(secret));
    }
    match std::env::var(ENV) {
        Ok(v) if !v.is_empty() => Ok(Some(SecretString::new(v))),
        _ => Ok(None),
    }
}

/// The passphrase that unlocks an encrypted CA key.
pub(crate) fn for_unlock(file: Option<&Path>) -> Result<SecretString> {
    if let Some(p) = from_file_or_env(file)? {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let entered = rpassword::prompt_password("CA key passphrase: ")
            .context("cannot read the passphrase from the terminal")?;
        return Ok(SecretString::new(entered));
    }
    bail!(
        "the CA key is encrypted: give --passphrase-file FILE or set {ENV} \
         (no terminal to prompt on)"
    )
}

/// A new passphrase for `ca init` (asked twice on a terminal).
pub(crate) fn for_init(file: Option<&Path>) -> Result<SecretString> {
    if let Some(p) = from_file_or_env(file)? {
        return Ok(p);
    }
    if std::io::stdin().is_terminal() {
        let first = SecretString::new(
            rpassword::prompt_password("New CA key passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        let second = SecretString::new(
            rpassword::prompt_password("Repeat the passphrase: ")
                .context("cannot read the passphrase from the terminal")?,
        );
        if first.expose() != second.expose() {
            bail!("the passphrases differ");
        }
        if first.is_empty() {
            bail!("the passphrase is empty");
        }
        return Ok(first);
    }
    Err(crate::UsageError(format!(
        "the CA keys need a passphrase: give --passphrase-file FILE or set {ENV} \
         (or --insecure-no-passphrase for a throwaway CA)"
    ))
    .into())
}
