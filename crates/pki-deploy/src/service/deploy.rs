//! One target's deployment: [`prepare`] writes the new version beside the one in service
//! (nothing the service reads changes), [`activate`] switches it in, has the service check and
//! load it, and proves with a probe that it is served; on any failure it switches back to the
//! previous version, has the service load that again, and checks it is served.
//!
//! The run state records, per target, the last version a probe proved to be served (or, without
//! a probe, that was activated): a run killed between switch and proof leaves `current` ahead of
//! that record, and the next run finishes the job.

use std::fmt;

use pki::fsio::Durability;
use pki::{Certificate, IssuedCertificate};

use super::layout::{self, TargetDirs};
use super::{Step, TargetConfig};
use crate::config::CertificateConfig;
use crate::error::{Error, Result};
use crate::probe::{self, Served};

/// A version written into a target's directory, not yet switched in.
#[derive(Debug, Clone)]
pub struct Prepared {
    id: String,
    previous: Option<String>,
    adopted: bool,
    durability: Durability,
}

/// What [`prepare`] writes: the target's rendering of a store version.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Preparation<'a> {
    /// The store version rendered.
    pub store_version: &'a str,
    /// The target's version last proven served there: what a rollback returns to.
    pub verified: Option<&'a str>,
    /// Per file, or left to the caller's `syncfs` (then before [`activate`]).
    pub durability: Durability,
}

impl<'a> Preparation<'a> {
    /// Store version `store_version`, written durably file by file, no verified version known.
    pub fn new(store_version: &'a str) -> Self {
        Self {
            store_version,
            verified: None,
            durability: Durability::Immediate,
        }
    }
}

/// How far an activation got before it failed: what a rollback must undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reached {
    /// The files were switched; the service was not asked to load them.
    Switched,
    /// The service was asked to load the new files.
    Loading,
}

impl Prepared {
    /// The version prepared.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether files found in place were adopted as the version [`layout::ADOPTED`] (they were being
    /// served: that is what a rollback returns to).
    pub fn adopted(&self) -> bool {
        self.adopted
    }
}

/// What a rollback restored.
#[derive(Debug)]
#[non_exhaustive]
pub enum Restored {
    /// The previous files are back and the previous certificate is served.
    Served {
        /// What the probe saw.
        served: Box<Served>,
        /// Reloading the previous files failed too, yet the service still serves them.
        reload_error: Option<Box<Error>>,
    },
    /// The previous files are back (no probe proves more).
    Files,
}

impl fmt::Display for Restored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Served {
                served,
                reload_error: None,
            } => write!(
                f,
                "previous certificate restored and served ({})",
                served.describe()
            ),
            Self::Served {
                served,
                reload_error: Some(e),
            } => write!(
                f,
                "previous files restored; reloading them failed too ({e}), but the service \
                 still serves the previous certificate ({})",
                served.describe()
            ),
            Self::Files => f.write_str("previous files restored"),
        }
    }
}

/// What happened to one target.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// The new version is served (or activated, for targets without a probe).
    Deployed {
        /// What the probe saw, if there is a probe.
        served: Option<Box<Served>>,
    },
    /// It failed; the previous version was restored (`rollback` says whether that worked).
    Failed {
        /// Why the deployment failed.
        error: Error,
        /// The rollback: `None` when there was nothing to roll back to.
        rollback: Option<Result<Restored>>,
    },
}

/// Renders and writes the target's version of a store version (adopting files found in place
/// on a first deployment). Nothing the service reads changes yet.
pub fn prepare(
    target: &TargetConfig,
    material: &IssuedCertificate,
    how: &Preparation<'_>,
) -> Result<Prepared> {
    let Preparation {
        store_version,
        verified,
        durability,
    } = *how;
    let dirs = TargetDirs::open(target)?;
    let id = layout::version_id(target, store_version);
    let had_current = dirs.current().is_some();
    let in_place = layout::adopt(target, &dirs, durability)?;
    let adopted = !had_current && in_place.is_some();
    // Roll back to what was last proven served; a version switched to by a run that was
    // killed before verifying it is not a safe place to return to. Without any record (a
    // first deployment, or a lost state file) the version in place is the best there is.
    let previous = verified
        .map(str::to_owned)
        .or(in_place)
        .filter(|p| *p != id && dirs.version(p).is_ok());
    let pinned: Vec<&str> = previous.as_deref().into_iter().collect();
    let version = layout::NewVersion {
        id: &id,
        files: layout::render(target, material)?,
        keep: &pinned,
    };
    layout::stage(&dirs, version, durability)?;
    Ok(Prepared {
        id,
        previous,
        adopted,
        durability,
    })
}

/// Switches a prepared version in, tests, reloads or hot-swaps, and probes; on any failure
/// switches back to the previous version, has the service load it again and checks that it is
/// served. A deferred batch must be synced between [`prepare`] and this.
pub async fn activate(
    cert: &CertificateConfig,
    target: &TargetConfig,
    prepared: &Prepared,
    material: &IssuedCertificate,
) -> Outcome {
    let env = hook_env(cert, target, material);
    let dirs = match TargetDirs::open(target) {
        Ok(d) => d,
        Err(error) => {
            return Outcome::Failed {
                error,
                rollback: None,
            };
        }
    };
    // Whether the service was asked to load the new files: a rollback then asks it to load
    // the previous ones; a failure before that needs only the files switched back.
    let mut reached = Reached::Switched;
    let attempt = async {
        layout::switch(target, &dirs, &prepared.id, prepared.durability)?;
        let version = dirs.version(&prepared.id)?;
        let step = Step {
            target,
            version: &version,
            env: &env,
        };
        target.ops().check(&step).await?;
        reached = Reached::Loading;
        target.ops().load(&step).await?;
        prove(cert, target, Some(&material.certificate)).await
    }
    .await;
    match attempt {
        Ok(served) => match layout::prune_in(&dirs, Some(&prepared.id)) {
            Ok(()) => Outcome::Deployed {
                served: served.map(Box::new),
            },
            Err(error) => Outcome::Failed {
                error,
                rollback: None,
            },
        },
        Err(error) => {
            let back = Back {
                cert,
                target,
                dirs: &dirs,
                env: &env,
            };
            let rollback = match &prepared.previous {
                Some(previous) => Some(back.to(previous, reached).await),
                None => None,
            };
            Outcome::Failed { error, rollback }
        }
    }
}

/// What a rollback works with.
struct Back<'a> {
    cert: &'a CertificateConfig,
    target: &'a TargetConfig,
    dirs: &'a TargetDirs,
    env: &'a [(&'static str, String)],
}

impl Back<'_> {
    /// Switches back to `previous`, makes the service load it again if it was asked to load
    /// the new version, and proves the previous certificate is served.
    async fn to(&self, previous: &str, reached: Reached) -> Result<Restored> {
        let target = self.target;
        layout::switch(target, self.dirs, previous, Durability::Immediate)?;
        let version = self.dirs.version(previous)?;
        let step = Step {
            target,
            version: &version,
            env: self.env,
        };
        let reload = match reached {
            Reached::Loading => target.ops().load(&step).await,
            Reached::Switched => Ok(()),
        };
        let leaf = layout::version_leaf(target, &version);
        // The probe decides: a reload command that fails again (it failed once already) does
        // not matter if the service still serves the previous certificate.
        match (prove(self.cert, target, leaf.as_ref()).await?, reload) {
            (Some(served), reload) => Ok(Restored::Served {
                served: Box::new(served),
                reload_error: reload.err().map(Box::new),
            }),
            (None, Ok(())) => Ok(Restored::Files),
            (None, Err(e)) => Err(e),
        }
    }
}

/// Proves with a probe that the service serves `leaf` (nothing to prove without a probe, or
/// without a leaf to look for).
async fn prove(
    cert: &CertificateConfig,
    target: &TargetConfig,
    leaf: Option<&Certificate>,
) -> Result<Option<Served>> {
    match (target.probe(), leaf) {
        (Some(p), Some(leaf)) => Ok(Some(
            probe::expect(p, &server_name(cert, target), leaf).await?,
        )),
        _ => Ok(None),
    }
}

/// The SNI name a probe sends: the configured one, else the certificate's first DNS name that
/// is not a wildcard, else the probe's host.
pub fn server_name(cert: &CertificateConfig, target: &TargetConfig) -> String {
    if let Some(n) = target.probe().and_then(|p| p.server_name.clone()) {
        return n;
    }
    let dns = cert.request.names().iter().find_map(|n| match n {
        pki::SubjectName::Dns(d) if !d.starts_with('*') => Some(d.clone()),
        _ => None,
    });
    dns.unwrap_or_else(|| {
        target
            .probe()
            .and_then(|p| {
                p.address
                    .rsplit_once(':')
                    .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
            })
            .unwrap_or_else(|| "localhost".to_owned())
    })
}

/// The variables a test or reload command gets besides `PATH`, `LANG` and `HOME`.
fn hook_env(
    cert: &CertificateConfig,
    target: &TargetConfig,
    material: &IssuedCertificate,
) -> Vec<(&'static str, String)> {
    let info = material.certificate.info();
    vec![
        ("PKI_CERT_NAME", cert.name.clone()),
        ("PKI_SERIAL", info.serial.to_hex()),
        (
            "PKI_NOT_AFTER",
            pki::error::Rfc3339(info.not_after).to_string(),
        ),
        (
            "PKI_FILES",
            target
                .files()
                .iter()
                .map(|f| f.path.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}
