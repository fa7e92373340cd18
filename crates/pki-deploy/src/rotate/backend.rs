//! The authority a run signs with: opened once per run, and for the offline CA unlocked only
//! when something is due.

use pki::Authority;
use pki::authority::offline::{self, CaKeySource, KeyProtection, OfflineCa};
use pki::clock;

use super::Options;
use crate::config::{Backend, Config, OfflineBackend};
use crate::error::Result;
use crate::log::Event;

/// Where the offline CA's passphrase comes from: the config's file, else the run's options.
fn key_source(backend: &OfflineBackend, opts: &Options) -> CaKeySource {
    match (&backend.passphrase_file, &opts.ca_passphrase) {
        (Some(file), _) => CaKeySource::File(file.clone()),
        (None, Some(given)) => CaKeySource::Given(given.duplicate()),
        (None, None) => CaKeySource::Nothing,
    }
}

/// Opens the backend without unlocking anything. A missing offline CA that the config asks
/// to create is created first, except in a dry run, which then has no authority (`None`):
/// every certificate plans as missing.
pub(crate) async fn open(config: &Config, opts: &Options) -> Result<Option<Authority>> {
    match &config.backend {
        Backend::Vault(settings) => {
            let settings = settings.as_ref().clone().with_env()?;
            Ok(Some(Authority::Vault(
                pki::authority::vault::VaultAuthority::connect(&settings).await?,
            )))
        }
        Backend::Offline(offline) => {
            let exists = offline.ca_dir.join(offline::files::INVENTORY).is_file();
            match &offline.create {
                Some(_) if !exists && opts.dry_run => return Ok(None),
                Some(create) if !exists => {
                    let protection = if create.insecure_no_passphrase {
                        KeyProtection::None
                    } else {
                        KeyProtection::Passphrase(key_source(offline, opts).required()?)
                    };
                    offline::init(
                        &offline.ca_dir,
                        &create.init_options(protection),
                        clock::now(),
                    )?;
                    let created = format!("created the CA in {}", offline.ca_dir.display());
                    opts.log.info(Event::run("ca-created", created));
                }
                _ => {}
            }
            Ok(Some(Authority::Offline(OfflineCa::open(&offline.ca_dir)?)))
        }
    }
}

/// Makes the authority ready to sign: loads the offline CA's key (a Vault backend logs in at
/// its first request and needs nothing here).
pub(crate) fn unlock(authority: &mut Authority, config: &Config, opts: &Options) -> Result<()> {
    if let (Authority::Offline(ca), Backend::Offline(offline)) = (authority, &config.backend) {
        ca.unlock_from(&key_source(offline, opts))?;
    }
    Ok(())
}
