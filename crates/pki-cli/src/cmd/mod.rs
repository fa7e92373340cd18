//! One module per subcommand, and what they share: opening the CA, parsing values.

pub(crate) mod acme;
mod backend;
mod batch;
mod ca;
mod crl;
pub(crate) mod doctor;
pub(crate) mod generate;
mod inspect;
mod issue;
mod list;
mod renew;
mod revoke;
mod rotate;
pub(crate) mod secret;
pub(crate) mod status;
pub(crate) mod vault;

use anyhow::{Context, Result};
use pki::Authority;
use pki::authority::offline::{CaKeySource, OfflineCa};

use crate::UsageError;
use crate::args::{CaCommand, CaOpts, Cli, Command};
use crate::output::Format;

/// Runs the parsed command and returns the exit code.
pub(crate) async fn run(cli: Cli) -> Result<u8> {
    let format = if cli.json { Format::Json } else { Format::Text };
    match cli.command {
        Command::Ca(CaCommand::Init(a)) => ca::init(a, format),
        Command::Ca(CaCommand::Backup(a)) => ca::backup(a, format),
        Command::Ca(CaCommand::Restore(a)) => ca::restore(a, format),
        Command::Ca(CaCommand::RotateIntermediate(a)) => ca::rotate_intermediate(a, format),
        Command::Ca(CaCommand::RotateRoot(a)) => ca::rotate_root(a, format),
        Command::Issue(a) => issue::run(a, format).await,
        Command::Renew(a) => renew::run(a, format).await,
        Command::Revoke(a) => revoke::run(a, format).await,
        Command::Crl(a) => crl::run(a, format).await,
        Command::List(a) => list::run(a, format).await,
        Command::Inspect(a) => inspect::run(a, format),
        Command::Rotate(a) => rotate::run(a, format).await,
        Command::Secret(c) => secret::run(c, format).await,
        Command::Vault(c) => vault::run(c, format).await,
        Command::Acme(c) => acme::run(c, format).await,
        Command::Status(a) => status::run(a, format),
        Command::Doctor(a) => doctor::run(a, format).await,
        Command::Generate(a) => generate::run(&a),
    }
}

/// What a command does with the authority it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    /// Reads it (list, revoke): no key is needed.
    Read,
    /// Signs with it: the offline CA's key is unlocked.
    Sign,
}

/// Opens the offline CA of `--ca-dir` / `PKI_CA_DIR`; to sign, loads its key, asking for the
/// passphrase only if the key is encrypted.
pub(crate) fn open_authority(opts: &CaOpts, usage: Use) -> Result<Authority> {
    let dir = opts.ca_dir.as_deref().ok_or_else(|| {
        UsageError("no CA directory: give --ca-dir DIR or set PKI_CA_DIR".to_owned())
    })?;
    let mut ca = OfflineCa::open(dir)?;
    if usage == Use::Sign {
        // A prompt only when the key needs a passphrase and neither file nor variable has it.
        let source = if ca.key_is_encrypted()? {
            CaKeySource::Given(crate::passphrase::for_unlock(
                opts.passphrase_file.as_deref(),
            )?)
        } else {
            CaKeySource::Nothing
        };
        ca.unlock_from(&source)
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
