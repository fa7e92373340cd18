//! The authorities a run signs with: each backend its certificates name is opened once per
//! run, and an offline CA is unlocked only when something it signs is due. A backend that
//! cannot be opened fails its own certificates, not the others'.

use std::collections::HashMap;
use std::sync::Arc;

use pki::authority::offline::{self, CaKeySource, KeyProtection, OfflineCa};
use pki::{Authority, Certificate, clock};

use super::Options;
use crate::config::{Backend, CertificateConfig, Config, OfflineBackend};
use crate::error::{Error, Result};
use crate::log::Event;

/// One backend of the run.
#[derive(Debug)]
pub(crate) struct Signer {
    /// Its name in the config.
    pub name: String,
    /// The authority (none in a dry run before its offline CA exists).
    pub authority: Option<Authority>,
    /// Why it cannot sign (it could not be opened or unlocked).
    pub broken: Option<Arc<Error>>,
}

/// Every backend the run's certificates use, and the current issuer of each that answered.
#[derive(Debug, Default)]
pub(crate) struct Signers {
    /// By config order.
    pub all: Vec<Signer>,
    /// The current issuer of each backend that opened, by name.
    pub issuers: HashMap<String, Certificate>,
    /// The trust bundle of each backend that opened and has one, by name.
    pub trust: HashMap<String, Vec<Certificate>>,
}

impl Signers {
    /// The signer called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Signer> {
        self.all.iter().find(|s| s.name == name)
    }

    /// Why the backend called `name` cannot sign, if it cannot.
    pub(crate) fn broken(&self, name: &str) -> Option<&Arc<Error>> {
        self.get(name).and_then(|s| s.broken.as_ref())
    }
}

/// Where the offline CA's passphrase comes from: the config's file, else the run's options.
fn key_source(backend: &OfflineBackend, opts: &Options) -> CaKeySource {
    match (&backend.passphrase_file, &opts.ca_passphrase) {
        (Some(file), _) => CaKeySource::File(file.clone()),
        (None, Some(given)) => CaKeySource::Given(given.duplicate()),
        (None, None) => CaKeySource::Nothing,
    }
}

/// Opens every backend `certs` use and asks each for its current issuer. With one backend in
/// use, its failure is the run's (returned); with several, a failing one is logged and its
/// certificates fail with its error.
pub(crate) async fn open_all(
    config: &Config,
    opts: &Options,
    certs: &[&CertificateConfig],
) -> Result<Signers> {
    let trusted = |name: &str| config.trust.iter().any(|t| t.backend == name);
    let used: Vec<_> = config
        .backends
        .iter()
        .filter(|b| certs.iter().any(|c| c.backend == b.name) || trusted(&b.name))
        .collect();
    let mut signers = Signers::default();
    for named in &used {
        let opened = match open(&named.backend, opts).await {
            Ok(Some(a)) => match facts(&a).await {
                Ok((issuer, trust)) => Ok((Some(a), issuer, trust)),
                Err(e) => Err(e.into()),
            },
            Ok(None) => Ok((None, None, Vec::new())),
            Err(e) => Err(e),
        };
        let mut signer = Signer {
            name: named.name.clone(),
            authority: None,
            broken: None,
        };
        match opened {
            Ok((authority, issuer, trust)) => {
                signer.authority = authority;
                if let Some(issuer) = issuer {
                    signers.issuers.insert(named.name.clone(), issuer);
                }
                if !trust.is_empty() {
                    signers.trust.insert(named.name.clone(), trust);
                }
            }
            Err(e) if used.len() == 1 => return Err(e),
            Err(e) => {
                opts.log.error(Event::run(
                    "backend-failed",
                    format!("backend {:?}: {e}", named.name),
                ));
                signer.broken = Some(Arc::new(e));
            }
        }
        signers.all.push(signer);
    }
    Ok(signers)
}

/// A backend's current issuer and trust bundle.
async fn facts(authority: &Authority) -> pki::Result<(Option<Certificate>, Vec<Certificate>)> {
    let issuer = authority.current_issuer().await?;
    let trust = authority.trust_anchors(clock::now()).await?;
    Ok((issuer, trust))
}

/// Opens a backend without unlocking anything. A missing offline CA that the config asks to
/// create is created first, except in a dry run, which then has no authority (`None`): its
/// certificates plan as missing.
async fn open(backend: &Backend, opts: &Options) -> Result<Option<Authority>> {
    match backend {
        // A dry run plans without the server (and creates no account).
        Backend::Acme(_) if opts.dry_run => Ok(None),
        Backend::Acme(settings) => Ok(Some(Authority::Acme(
            pki::authority::acme::AcmeAuthority::connect(settings).await?,
        ))),
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
            // A root rollover whose overlap has passed: the staged root signs from now on.
            if !opts.dry_run
                && let Some(change) =
                    offline::root_rollover::activate_due(&offline.ca_dir, clock::now())?
            {
                let replaced = change.replaced.map(|r| r.subject).unwrap_or_default();
                opts.log.info(Event::run(
                    "root-activated",
                    format!(
                        "{}: the staged root {} signs from now on, replacing {replaced}; \
                         certificates it did not sign are reissued",
                        offline.ca_dir.display(),
                        change.root.subject
                    ),
                ));
            }
            Ok(Some(Authority::Offline(OfflineCa::open(&offline.ca_dir)?)))
        }
    }
}

/// Makes the backends that sign something due ready to sign: loads each offline CA's key (a
/// Vault backend logs in at its first request and needs nothing here). With one backend in
/// use its failure is the run's; with several, the backend is marked broken.
pub(crate) fn unlock_due(
    signers: &mut Signers,
    due: &[&str],
    config: &Config,
    opts: &Options,
) -> Result<()> {
    let single = signers.all.len() == 1;
    for signer in &mut signers.all {
        if !due.contains(&signer.name.as_str()) {
            continue;
        }
        let (Some(Authority::Offline(ca)), Some(Backend::Offline(offline))) =
            (signer.authority.as_mut(), config.backend(&signer.name))
        else {
            continue;
        };
        match ca.unlock_from(&key_source(offline, opts)) {
            Ok(()) => {}
            Err(e) if single => return Err(e.into()),
            Err(e) => {
                opts.log.error(Event::run(
                    "backend-failed",
                    format!("backend {:?}: {e}", signer.name),
                ));
                signer.broken = Some(Arc::new(e.into()));
            }
        }
    }
    Ok(())
}
