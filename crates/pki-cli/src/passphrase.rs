//! Where the CA passphrase comes from: a file, the `PKI_CA_PASSPHRASE` variable, or a prompt
//! on the terminal. Never from an argument: argv is visible to every user of the machine. The
//! rules for a file and the variable are the library's ([`CaKeySource`]); the prompt is ours.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use pki::SecretString;
use pki::authority::offline::CaKeySource;

/// The environment variable holding the CA passphrase.
pub(crate) const ENV: &str = "PKI_CA_PASSPHRASE";

/// The file if one is given, else the variable.
pub(crate) fn source(file: Option<&Path>) -> CaKeySource {
    match file {
        Some(path) => CaKeySource::File(path.to_path_buf()),
        None => CaKeySource::Env(ENV.to_owned()),
    }
}

/// The passphrase that unlocks an encrypted CA key: the file, the variable, or a prompt.
pub(crate) fn for_unlock(file: Option<&Path>) -> Result<SecretString> {
    if let Some(p) = source(file).passphrase()? {
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
    if let Some(p) = source(file).passphrase()? {
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
