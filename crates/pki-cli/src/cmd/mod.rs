//! One module per subcommand, and what they share: opening the CA, parsing values.

mod backend;
mod batch;
mod ca;
mod crl;
mod inspect;
mod issue;
mod list;
mod renew;
mod revoke;
mod rotate;
pub(crate) mod secret;
pub(crate) mod vault;

use anyhow::{Context, Result};
use pki::Authority;
use pki::authority::offline::OfflineCa;

use crate::UsageError;
use crate::args::{CaCommand, CaOpts, Cli, Command};

/// Runs the parsed command and returns the exit code.
pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let json = cli.json;
    match cli.command {
        Command::Ca(CaCommand::Init(a)) => ca::init(a, json),
        Command::Issue(a) => issue::run(a, json).await,
        Command::Renew(a) => renew::run(a, json).await,
        Command::Revoke(a) => revoke::run(a, json).await,
        Command::Crl(a) => crl::run(a, json).await,
        Command::List(a) => list::run(a, json).await,
        Command::Inspect(a) => inspect::run(a, json),
        Command::Rotate(a) => rotate::run(a, json).await,
        Command::Secret(c) => secret::run(c, json).await,
        Command::Vault(c) => vault::run(c, json).await,
    }
}

/// Opens the offline CA of `--ca-dir` / `PKI_CA_DIR`; with `unlock`, loads its signing key,
/// asking for the passphrase only if the key is encrypted.
pub(crate) fn open_authority(opts: &CaOpts, unlock: bool) -> Result<Authority> {
    let dir = opts.ca_dir.as_deref().ok_or_else(|| {
        UsageError("no CA directory: give --ca-dir DIR or set PKI_CA_DIR".to_owned())
    })?;
    let mut ca = OfflineCa::open(dir)?;
    if unlock {
        let passphrase = if ca.key_is_encrypted()? {
            Some(crate::passphrase::for_unlock(
                opts.passphrase_file.as_deref(),
            )?)
        } else {
            None
        };
        ca.unlock(passphrase.as_ref())
            .with_context(|| format!("cannot unlock the CA in {}", dir.display()))?;
    }
    Ok(Authority::Offline(ca))
}

/// Parses a value with its `FromStr`, keeping the library's error (which names the value).
pub(crate) fn parse<T>(value: &str) -> Result<T>
where
    T: std::str::FromStr<Err = pki::Error>,
{
    Ok(value.parse::<T>()?)
}

/// Reads a PEM input file with the size bound every input gets.
pub(crate) fn read_pem(path: &std::path::Path) -> Result<Vec<u8>> {
    Ok(pki::fsio::read_limited(path, pki::fsio::MAX_PEM_INPUT)?)
}
